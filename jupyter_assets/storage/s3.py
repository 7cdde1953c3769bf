"""Files in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...) under ``<prefix>/<storageKey>``.

S3 makes an object visible only once it is complete (a multipart upload only when it is completed), and
acknowledges a write once it is durable, so no temporary object or fsync is needed here."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ResponseStreamingError,
)
from botocore.utils import determine_content_length

from ..errors import ApiError
from . import StoredFileChanged, check_key

CHUNK_SIZE = 256 * 1024
# Smaller files go up in one request, from memory (so at most this much per upload in flight).
MULTIPART_THRESHOLD = 8 * 1024 * 1024
# Smaller PutObject bodies are sent without asking the server first (see _send_small_body_at_once).
EXPECT_CONTINUE_FROM = 2 * 1024 * 1024
# SigV4 presigned URLs are valid for seven days at most.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

ACCESS_DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Storage:
    name = "s3"

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        region: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        force_path_style: bool = True,
        prefix: str = "",
        public_base_url: str | None = None,
        presign_seconds: int = 3600,
        multipart_threshold: int = MULTIPART_THRESHOLD,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.presign_seconds = presign_seconds
        # Sessions are not thread-safe but clients are: one session here, one client shared by every thread.
        # Without keys the session falls back to boto3's chain (environment, shared files, instance roles).
        # The secret stays inside the session: it is never an attribute that a repr or a log could show.
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        config = Config(
            # A dead endpoint must fail in a second or two, not after botocore's default minute of retries.
            connect_timeout=2,
            read_timeout=20,
            retries={"total_max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path" if force_path_style else "virtual"},
            signature_version="s3v4",
            max_pool_connections=32,
        )
        self._client = session.client("s3", endpoint_url=endpoint, region_name=region, config=config)
        self._client.meta.events.register("before-sign.s3.PutObject", _send_small_body_at_once)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=max(multipart_threshold, 5 * 1024 * 1024)
        )

    @classmethod
    def from_configuration(cls, configuration: dict[str, Any], secrets: dict[str, Any]) -> S3Storage:
        """An S3Storage from an ``s3`` profile's camelCase configuration and its secrets, or a 400 ApiError
        naming the field (never a secret's value)."""
        if not isinstance(configuration, dict) or not isinstance(secrets, dict):
            raise _invalid("The configuration and the secrets must be objects.")
        endpoint, bucket, region = _endpoint_bucket_region(configuration)
        force_path_style = configuration.get("forcePathStyle", True)
        if force_path_style is None:
            force_path_style = True
        if not isinstance(force_path_style, bool):
            raise _invalid("forcePathStyle must be a boolean.")
        prefix = _prefix(configuration)
        public_base_url = configuration.get("publicBaseUrl")
        if public_base_url is not None and not _is_http_url(public_base_url):
            raise ApiError(
                "storage_provider_profile_public_base_url_invalid",
                "publicBaseUrl must be an absolute http or https URL without credentials, query or fragment.",
            )
        presign_seconds = _presign_seconds(configuration)
        access_key, secret_key = _credentials(secrets)
        return cls(
            endpoint=endpoint,
            bucket=bucket,
            region=region,
            access_key=access_key,
            secret_key=secret_key,
            force_path_style=force_path_style,
            prefix=prefix,
            public_base_url=public_base_url,
            presign_seconds=presign_seconds,
        )

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(
        self, key: str, source: Path, message: str | None = None, sha256: str | None = None, data: bytes | None = None
    ) -> None:
        """Upload the file (from ``data``, its bytes, when given), in parts when it is over the multipart
        threshold. The source is left in place."""
        if (len(data) if data is not None else source.stat().st_size) < self._transfer.multipart_threshold:
            # One request, from memory: a transfer manager (threads, futures) costs more than the upload of a
            # small image, and a file body is sent in 16 KB blocks, each a round trip through the GIL.
            self.put_bytes(key, source.read_bytes() if data is None else data, sha256)
            return
        object_key = self.object_key(key)
        with self._errors(), create_transfer_manager(self._client, self._transfer) as manager:
            # result() re-raises the underlying botocore error (boto3's upload_file would wrap it in a string).
            manager.upload(str(source), self.bucket, object_key).result()

    def put_bytes(self, key: str, data: bytes, sha256: str | None = None) -> None:
        """One PutObject carrying the SHA-256 of ``data`` (hex ``sha256`` when the caller has it), which S3 checks
        the body against and keeps with the object (botocore would otherwise compute a CRC32 of its own)."""
        object_key = self.object_key(key)
        digest = bytes.fromhex(sha256) if sha256 else hashlib.sha256(data).digest()
        checksum = base64.b64encode(digest).decode()
        with self._errors():
            self._client.put_object(
                Bucket=self.bucket, Key=object_key, Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum
            )

    def open(
        self, key: str, start: int = 0, end: int | None = None, expected_size: int | None = None
    ) -> Iterator[bytes]:
        """A ranged GET, sent at once so that a missing file (or, with ``expected_size``, one of another size)
        raises here, not mid-response. The object a GET answers with is read to the end, whatever PUTs follow."""
        object_key = self.object_key(key)
        if end is not None and end <= start:
            return iter(())
        arguments = {"Bucket": self.bucket, "Key": object_key}
        # No Range for the whole file: a zero-byte object answers any range with 416.
        if start > 0 or end is not None:
            arguments["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        with self._errors(key):
            try:
                response = self._client.get_object(**arguments)
            except ClientError as error:
                if _error_code(error) != "InvalidRange":
                    raise
                # Start at or past the end: nothing, as LocalStorage; unless the range fitted the size expected.
                if expected_size is not None and start < expected_size:
                    raise StoredFileChanged(key, expected_size, None) from None
                return iter(())
        if expected_size is not None:
            content_range = response.get("ContentRange")  # bytes <first>-<last>/<whole size>
            found = int(content_range.rsplit("/", 1)[1]) if content_range else response["ContentLength"]
            if found != expected_size:
                response["Body"].close()
                raise StoredFileChanged(key, expected_size, found)
        return self._stream(response["Body"])

    def _stream(self, body: Any) -> Iterator[bytes]:
        try:
            with self._errors():
                yield from body.iter_chunks(CHUNK_SIZE)
        finally:
            body.close()

    def read(self, key: str) -> bytes:
        object_key = self.object_key(key)
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            with response["Body"] as body:
                return body.read()

    def size(self, key: str) -> int | None:
        object_key = self.object_key(key)
        with self._errors():
            try:
                return self._client.head_object(Bucket=self.bucket, Key=object_key)["ContentLength"]
            except ClientError as error:
                if _error_code(error) not in NOT_FOUND_CODES:
                    raise
            # A HEAD answer has no body, so a 404 does not say whether the object or the bucket is missing.
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if _error_code(error) in NOT_FOUND_CODES:
                    raise self._bucket_not_found() from None
                raise
            return None

    def delete(self, key: str, message: str | None = None) -> None:
        """S3 answers 204 for a missing key too, so a missing file is not an error."""
        object_key = self.object_key(key)
        with self._errors():
            self._client.delete_object(Bucket=self.bucket, Key=object_key)

    def public_url(self, key: str) -> str | None:
        """``<publicBaseUrl>/<object key>``: the base is the bucket's public root, so the prefix is part of it."""
        object_key = self.object_key(key)
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/{quote(object_key)}"

    def redirect_url(self, key: str) -> str | None:
        """The public URL, or a presigned one for a bucket without a public base URL."""
        return self.public_url(key) or self.presigned_url(key)

    def presigned_url(self, key: str) -> str:
        """A GET URL valid for presignSeconds that needs no credentials (signed locally, no request is sent)."""
        object_key = self.object_key(key)
        with self._errors():
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": object_key}, ExpiresIn=self.presign_seconds
            )

    @contextmanager
    def _errors(self, missing_key: str | None = None) -> Iterator[None]:
        """botocore failures as ApiErrors; a missing object as FileNotFoundError when ``missing_key`` is given.

        Messages name the endpoint and the bucket, never a credential; ``from None`` keeps botocore's own
        exception (and its request details) out of the traceback that the service logs."""
        try:
            yield
        except (NoCredentialsError, PartialCredentialsError):
            raise self._access_denied("no credentials were found") from None
        except (ConnectionError, HTTPClientError, ResponseStreamingError):
            raise ApiError(
                "storage_provider_unavailable",
                f"The storage endpoint {self.endpoint} did not answer.",
            ) from None
        except ClientError as error:
            code = _error_code(error)
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code == "NoSuchBucket":
                raise self._bucket_not_found() from None
            if code in ACCESS_DENIED_CODES:
                raise self._access_denied(f"it answered {code}") from None
            if missing_key is not None and code in NOT_FOUND_CODES:
                raise FileNotFoundError(f"No object is stored under '{missing_key}'.") from None
            if status >= 500:
                raise ApiError(
                    "storage_provider_unavailable",
                    f"The storage endpoint {self.endpoint} failed ({code}).",
                ) from None
            raise
        except BotoCoreError as error:
            # Anything else botocore raises (a bad response, a checksum mismatch): its class name, not its text.
            raise ApiError(
                "storage_provider_unavailable",
                f"The storage endpoint {self.endpoint} failed ({type(error).__name__}).",
            ) from None

    def _bucket_not_found(self) -> ApiError:
        return ApiError(
            "storage_provider_bucket_not_found", f"The bucket '{self.bucket}' does not exist at {self.endpoint}."
        )

    def _access_denied(self, reason: str) -> ApiError:
        return ApiError(
            "storage_provider_access_denied",
            f"Access to the bucket '{self.bucket}' at {self.endpoint} was denied: {reason}.",
        )


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _send_small_body_at_once(request: Any, **_: Any) -> None:
    """botocore asks the server for "100 Continue" before sending any PutObject body, which costs a round trip
    per upload. It saves sending a large body that the server refuses anyway; below 2 MiB it is left out, as the
    AWS SDKs for Go and Kotlin do (a body of unknown length keeps it)."""
    length = determine_content_length(request.body)
    if "Expect" in request.headers and length is not None and length < EXPECT_CONTINUE_FROM:
        del request.headers["Expect"]


# -- configuration ------------------------------------------------------------------------------------------------


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
        and parts.password is None
        and not parts.query
        and not parts.fragment
    )


def _invalid(message: str) -> ApiError:
    return ApiError("storage_provider_profile_configuration_invalid", message)


def _endpoint_bucket_region(configuration: dict[str, Any]) -> tuple[str, str, str]:
    """The endpoint URL, and the bucket and region trimmed."""
    endpoint = configuration.get("endpoint")
    if not _is_http_url(endpoint):
        raise ApiError(
            "storage_provider_profile_endpoint_invalid",
            "endpoint must be an absolute http or https URL without credentials, query or fragment.",
        )
    bucket = configuration.get("bucket")
    if bucket is None or (isinstance(bucket, str) and not bucket.strip()):
        raise ApiError("storage_provider_profile_bucket_required", "bucket is required.")
    region = configuration.get("region")
    if region is None or (isinstance(region, str) and not region.strip()):
        raise ApiError("storage_provider_profile_region_required", "region is required.")
    if not isinstance(bucket, str) or not isinstance(region, str):
        raise _invalid("bucket and region must be strings.")
    return endpoint, bucket.strip(), region.strip()


def _prefix(configuration: dict[str, Any]) -> str:
    prefix = configuration.get("prefix") or ""
    if not isinstance(prefix, str):
        raise _invalid("prefix must be a string.")
    prefix = prefix.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ApiError:
            raise _invalid("prefix must be a relative path without empty, '.' or '..' segments.") from None
    return prefix


def _presign_seconds(configuration: dict[str, Any]) -> int:
    presign_seconds = configuration.get("presignSeconds")
    if presign_seconds is None:
        presign_seconds = 3600
    # bool is an int in Python: refuse true/false explicitly.
    if (
        isinstance(presign_seconds, bool)
        or not isinstance(presign_seconds, int)
        or not 1 <= presign_seconds <= MAX_PRESIGN_SECONDS
    ):
        raise _invalid(f"presignSeconds must be an integer from 1 to {MAX_PRESIGN_SECONDS}.")
    return presign_seconds


def _credentials(secrets: dict[str, Any]) -> tuple[str | None, str | None]:
    """The access key and secret key: both, or neither (boto3's own credential chain: environment, profile,
    instance role)."""
    access_key = secrets.get("accessKey")
    secret_key = secrets.get("secretKey")
    if any(value is not None and not isinstance(value, str) for value in (access_key, secret_key)):
        raise _invalid("accessKey and secretKey must be strings.")
    either = "give both, or neither to use boto3's own credentials (environment, profile, instance role)."
    if access_key and not secret_key:
        raise ApiError("storage_provider_profile_secret_key_required", f"secretKey is required: {either}")
    if secret_key and not access_key:
        raise ApiError("storage_provider_profile_access_key_required", f"accessKey is required: {either}")
    return access_key or None, secret_key or None
