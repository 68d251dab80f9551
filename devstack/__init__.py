"""The local stack: the template's API served on loopback, with moto as KMS and Secrets Manager."""

# How often a loopback server's loop looks for a stop request (the local stack's, the Supabase
# stand-in's, the tests' servers): at socketserver's default (0.5 s), every stop waits that long.
STOP_POLL_SECONDS = 0.05
