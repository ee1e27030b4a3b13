"""The object-store adapters: the one place that talks to S3, and its in-memory twin.

boto3 reads its endpoint, region and credentials from the environment (``AWS_ENDPOINT_URL`` points it at
the embedded moto server locally), so this code is identical on AWS and on a laptop.

:class:`MemoryObjectStore` keeps the same contract (versions, ETags, conditional writes, sorted listings)
in a dict: the backtest runs years of the live loop's own code (bars, prediction log, decisions) on it,
with no server in between.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from common.core.errors import ConcurrentWriteError, DataNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    version_id: str  # "" where the bucket is not versioned
    etag: str  # what a conditional write (If-Match) compares against


class ObjectStore(Protocol):
    """What the domain code needs of an object store (S3 in the live loop, memory in the backtest)."""

    bucket: str

    def get_object(self, key: str, version_id: str | None = None) -> StoredObject: ...

    def get_bytes(self, key: str) -> bytes: ...

    def put_bytes(
        self,
        key: str,
        payload: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str: ...

    def get_json(self, key: str) -> Any: ...

    def put_json(self, key: str, document: Any, *, if_match: str | None = None, if_absent: bool = False) -> str: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...


def encode_json(document: Any) -> bytes:
    """How every JSON object is stored (sorted keys: the same document is the same bytes)."""
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode()


class _DerivedCalls:
    """What both stores derive from ``get_object`` and ``put_bytes``: one implementation of each."""

    def get_object(self, key: str, version_id: str | None = None) -> StoredObject:
        raise NotImplementedError

    def put_bytes(
        self,
        key: str,
        payload: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes:
        return self.get_object(key).body

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_json(self, key: str, document: Any, *, if_match: str | None = None, if_absent: bool = False) -> str:
        """JSON as :meth:`put_bytes` writes bytes, with the same conditions."""
        return self.put_bytes(
            key, encode_json(document), content_type="application/json", if_match=if_match, if_absent=if_absent
        )


class S3ObjectStore(_DerivedCalls):
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

    def get_object(self, key: str, version_id: str | None = None) -> StoredObject:
        """The newest object, or the version ``version_id`` of it (:class:`DataNotFoundError` when either is
        missing). Reading a version needs ``s3:GetObjectVersion`` besides ``s3:GetObject``."""
        where = f"s3://{self.bucket}/{key}" + (f"?versionId={version_id}" if version_id else "")
        try:
            if version_id:
                response = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            else:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            raise DataNotFoundError(f"{where} does not exist") from None
        except self.client.exceptions.ClientError as exc:
            # A version id S3 does not know is NoSuchVersion, or InvalidArgument when it is not even well-formed.
            if version_id and exc.response["Error"]["Code"] in {"NoSuchVersion", "InvalidArgument", "404"}:
                raise DataNotFoundError(f"{where} does not exist") from None
            raise
        return StoredObject(response["Body"].read(), response.get("VersionId") or "", response["ETag"])

    def put_bytes(
        self,
        key: str,
        payload: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        """Write one object (S3 PUTs are atomic: readers see the old or the new object, never half).

        ``if_match`` (an ETag) / ``if_absent`` make it a conditional write: it fails with
        :class:`ConcurrentWriteError` instead of overwriting a change made since the object was read.
        """
        conditions: dict[str, str] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=payload, ContentType=content_type, **conditions
            )
        except self.client.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}:
                raise ConcurrentWriteError(f"s3://{self.bucket}/{key} changed while it was being updated") from None
            raise
        return response.get("VersionId") or ""

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


class MemoryObjectStore(_DerivedCalls):
    """An :class:`ObjectStore` in a dict, with S3's semantics where the domain code relies on them: a write
    is atomic and gets a new version id, earlier versions stay readable by their id (a versioned bucket),
    the ETag is the MD5 of the body (as S3's for a single PUT), a conditional write that fails raises
    :class:`ConcurrentWriteError`, listings are in key order."""

    def __init__(self, bucket: str = "memory") -> None:
        self.bucket = bucket
        self._objects: dict[str, StoredObject] = {}
        self._versions: dict[str, dict[str, StoredObject]] = {}  # key -> version id -> object (the newest too)
        self._keys: list[str] = []  # sorted, for prefix listings
        self._writes = 0

    def get_object(self, key: str, version_id: str | None = None) -> StoredObject:
        stored = self._versions.get(key, {}).get(version_id) if version_id else self._objects.get(key)
        if stored is None:
            version = f"?versionId={version_id}" if version_id else ""
            raise DataNotFoundError(f"memory://{self.bucket}/{key}{version} does not exist")
        return stored

    def put_bytes(
        self,
        key: str,
        payload: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        current = self._objects.get(key)
        if (if_absent and current is not None) or (
            if_match is not None and (current is None or current.etag != if_match)
        ):
            raise ConcurrentWriteError(f"memory://{self.bucket}/{key} changed while it was being updated")
        self._writes += 1
        version = str(self._writes)
        stored = StoredObject(bytes(payload), version, f'"{hashlib.md5(payload, usedforsecurity=False).hexdigest()}"')
        self._objects[key] = stored
        self._versions.setdefault(key, {})[version] = stored
        if current is None:
            bisect.insort(self._keys, key)
        return version

    def exists(self, key: str) -> bool:
        return key in self._objects

    def list_keys(self, prefix: str) -> Iterator[str]:
        start = bisect.bisect_left(self._keys, prefix)
        for key in self._keys[start:]:
            if not key.startswith(prefix):
                return
            yield key
