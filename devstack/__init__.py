"""The local stack: the template's API served on loopback, with moto as KMS and Secrets Manager."""
