"""Adapters to AWS services and their local stand-ins: object storage (S3 or a folder), secrets, Step Functions."""
