"""Small helpers every room uses, one of each: timestamps, backoff, redaction, progress, atomic
output folders, setting checks."""
