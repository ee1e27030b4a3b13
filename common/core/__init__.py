"""The shared kernel: the typed settings, the error types, and the S3 key layout."""
