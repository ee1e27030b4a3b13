"""The object-store adapter: the one place that talks to S3.

boto3 reads its endpoint, region and credentials from the environment (``AWS_ENDPOINT_URL`` points it at
the embedded moto server locally), so this code is identical on AWS and on a laptop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from common.errors import DataNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3ObjectStore:
    """Bytes and JSON in one bucket. The boto3 client is created on first use, not at import."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and its version id ("" where the bucket is not versioned)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            raise DataNotFoundError(f"s3://{self.bucket}/{key} does not exist") from None
        return response["Body"].read(), response.get("VersionId") or ""

    def get_bytes(self, key: str) -> bytes:
        return self.get_versioned(key)[0]

    def put_bytes(self, key: str, payload: bytes, content_type: str = "application/octet-stream") -> str:
        """Write one object (S3 PUTs are atomic: readers see the old or the new object, never half)."""
        response = self.client.put_object(Bucket=self.bucket, Key=key, Body=payload, ContentType=content_type)
        return response.get("VersionId") or ""

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_json(self, key: str, document: Any) -> str:
        payload = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
        return self.put_bytes(key, payload, content_type="application/json")

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]
