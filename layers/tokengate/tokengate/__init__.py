"""tokengate: exchange Supabase access tokens for API tokens, and guard APIs with them.

The package is the pure core shared by every function through the Lambda layer: parsing,
verification, policy, minting and key publication. It imports nothing from boto3, botocore or
Powertools; the AWS adapters live in :mod:`tokengate.aws` and are imported only by handlers.
"""
