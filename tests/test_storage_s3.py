"""S3Storage against a real S3-compatible HTTP server (moto's, on the loopback): boto3 talks HTTP to it."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from jupyter_assets.errors import ERROR_CODES, ApiError
from jupyter_assets.storage.s3 import S3Storage

from conftest import free_port, plain_s3_client

REGION = "us-east-1"
ACCESS_KEY = "test-access-key"
# Distinctive, so that finding it in a message or a log line cannot be a coincidence.
SECRET_KEY = "s3cr3t-Zq8vW2xK9pL4mN7bR1tY6uE3iO0aS5dF"
MiB = 1024 * 1024


@pytest.fixture
def raw(moto_endpoint: str) -> Any:
    """A plain boto3 client, to check what is really in the bucket."""
    return plain_s3_client(moto_endpoint, REGION, ACCESS_KEY, SECRET_KEY)


@pytest.fixture
def bucket(raw: Any) -> str:
    name = f"assets-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=name)
    return name


def make_storage(moto_endpoint: str, bucket: str, **options: Any) -> S3Storage:
    return S3Storage(moto_endpoint, bucket, REGION, access_key=ACCESS_KEY, secret_key=SECRET_KEY, **options)


@pytest.fixture
def storage(moto_endpoint: str, bucket: str) -> S3Storage:
    return make_storage(moto_endpoint, bucket)


def configuration(moto_endpoint: str, bucket: str, **overrides: Any) -> dict[str, Any]:
    return {"endpoint": moto_endpoint, "bucket": bucket, "region": REGION, **overrides}


SECRETS = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}


def assert_secret_absent(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    assert SECRET_KEY not in str(error)
    assert SECRET_KEY not in repr(error)
    assert SECRET_KEY not in caplog.text
    assert all(SECRET_KEY not in record.getMessage() for record in caplog.records)


# -- round trips ----------------------------------------------------------------------------------------------


def test_put_bytes_read_size_round_trip(storage: S3Storage) -> None:
    data = os.urandom(700 * 1024)  # more than one 256 KiB chunk
    storage.put_bytes("2026/01/02/abc.png", data)
    assert storage.read("2026/01/02/abc.png") == data
    assert storage.size("2026/01/02/abc.png") == len(data)
    assert b"".join(storage.open("2026/01/02/abc.png")) == data


def test_put_uploads_a_file_and_leaves_the_source(storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(300 * 1024)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    storage.put("2026/01/02/file.jpg", source)
    assert storage.read("2026/01/02/file.jpg") == data
    assert source.exists()  # the caller removes it


def test_put_bytes_replaces_an_existing_object(storage: S3Storage) -> None:
    storage.put_bytes("a/b.png", b"first version")
    storage.put_bytes("a/b.png", b"second")
    assert storage.read("a/b.png") == b"second"
    assert storage.size("a/b.png") == 6


def test_zero_byte_object(storage: S3Storage) -> None:
    storage.put_bytes("empty.png", b"")
    assert storage.size("empty.png") == 0
    assert storage.read("empty.png") == b""
    assert b"".join(storage.open("empty.png")) == b""
    assert b"".join(storage.open("empty.png", 0, 0)) == b""


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (0, 10), (0, 256 * 1024 + 1), (1000, 2000), (123_456, 654_321), (700 * 1024 - 10, 700 * 1024)],
    ids=["first-byte", "first-bytes", "first-chunk-and-one", "middle", "middle-across-chunks", "last-bytes"],
)
def test_open_ranges(storage: S3Storage, start: int, end: int) -> None:
    data = os.urandom(700 * 1024)
    storage.put_bytes("range.bin", data)
    chunks = list(storage.open("range.bin", start, end))
    assert b"".join(chunks) == data[start:end]
    assert all(len(chunk) <= 256 * 1024 for chunk in chunks)


def test_open_open_ended_and_empty_ranges(storage: S3Storage) -> None:
    data = os.urandom(5000)
    storage.put_bytes("range.bin", data)
    assert b"".join(storage.open("range.bin", 4990)) == data[4990:]
    assert b"".join(storage.open("range.bin", 100, 100)) == b""
    assert b"".join(storage.open("range.bin", 5000)) == b""  # at the end: nothing, as LocalStorage
    assert b"".join(storage.open("range.bin", 4000, 9000)) == data[4000:]  # an end past the size is clipped


def test_missing_object(storage: S3Storage) -> None:
    assert storage.size("no/such.png") is None
    with pytest.raises(FileNotFoundError):
        storage.read("no/such.png")
    # open fails at once, not when the first chunk is sent
    with pytest.raises(FileNotFoundError):
        storage.open("no/such.png", 0, 10)
    with pytest.raises(FileNotFoundError):
        storage.open("no/such.png")


def test_delete_removes_the_object_and_a_missing_one_is_fine(storage: S3Storage, raw: Any, bucket: str) -> None:
    storage.put_bytes("gone.png", b"bytes")
    raw.head_object(Bucket=bucket, Key="gone.png")
    storage.delete("gone.png")
    with pytest.raises(ClientError) as caught:
        raw.head_object(Bucket=bucket, Key="gone.png")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert storage.size("gone.png") is None
    storage.delete("gone.png")
    storage.delete("never/was.png")


def test_prefix_puts_objects_under_it(moto_endpoint: str, bucket: str, raw: Any, tmp_path: Path) -> None:
    storage = make_storage(moto_endpoint, bucket, prefix="/tenant-a/images/")
    storage.put_bytes("2026/03/04/one.png", b"one")
    source = tmp_path / "two"
    source.write_bytes(b"two")
    storage.put("2026/03/04/two.png", source)
    keys = sorted(item["Key"] for item in raw.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["tenant-a/images/2026/03/04/one.png", "tenant-a/images/2026/03/04/two.png"]
    assert storage.read("2026/03/04/one.png") == b"one"
    assert storage.size("2026/03/04/two.png") == 3
    storage.delete("2026/03/04/one.png")
    assert [item["Key"] for item in raw.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "tenant-a/images/2026/03/04/two.png"
    ]


def test_large_file_goes_up_in_parts(moto_endpoint: str, bucket: str, raw: Any, tmp_path: Path) -> None:
    storage = make_storage(moto_endpoint, bucket, multipart_threshold=5 * MiB)
    data = os.urandom(12 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    storage.put("big.bin", source)
    head = raw.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB
    assert head["ContentLength"] == len(data)
    assert hashlib.sha256(storage.read("big.bin")).digest() == hashlib.sha256(data).digest()
    assert b"".join(storage.open("big.bin", 5 * MiB - 3, 5 * MiB + 3)) == data[5 * MiB - 3 : 5 * MiB + 3]


def test_small_file_goes_up_in_one_request(storage: S3Storage, raw: Any, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "small.bin"
    source.write_bytes(os.urandom(1024))
    storage.put("small.bin", source)
    assert "-" not in raw.head_object(Bucket=bucket, Key="small.bin")["ETag"]


def test_single_request_puts_send_the_sha256_of_the_bytes_at_once(storage: S3Storage, tmp_path: Path) -> None:
    # moto stores the bytes without checking x-amz-checksum-sha256 (AWS S3 refuses a body that does not match
    # it), so what is checked here is what goes over the wire.
    sent: dict[str, str] = {}  # object key -> header value
    asked_to_continue: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        key = request.url.rsplit("/", 1)[-1]
        sent[key] = request.headers["x-amz-checksum-sha256"].decode()
        if "Expect" in request.headers:
            asked_to_continue.append(key)

    storage._client.meta.events.register("before-send.s3.PutObject", capture)
    source = tmp_path / "small.bin"
    source.write_bytes(os.urandom(50_000))
    storage.put("from-file.bin", source)
    storage.put_bytes("from-bytes.bin", b"some bytes")
    # A caller that has the hash already (the upload hashed the bytes as they arrived) is trusted with it: it is
    # sent as given, not computed again (AWS S3 would refuse the put if it were wrong).
    given = hashlib.sha256(b"what the caller hashed").hexdigest()
    storage.put("hash-given.bin", source, sha256=given)
    storage.put_bytes("large.bin", os.urandom(3 * MiB))
    assert sent == {
        "from-file.bin": base64.b64encode(hashlib.sha256(source.read_bytes()).digest()).decode(),
        "from-bytes.bin": base64.b64encode(hashlib.sha256(b"some bytes").digest()).decode(),
        "hash-given.bin": base64.b64encode(bytes.fromhex(given)).decode(),
        "large.bin": sent["large.bin"],
    }
    # Below 2 MiB the body goes at once, without an "Expect: 100-continue" round trip first.
    assert asked_to_continue == ["large.bin"]
    assert storage.read("from-file.bin") == source.read_bytes()


def test_put_sends_the_bytes_it_is_given_without_reading_the_file(storage: S3Storage, tmp_path: Path) -> None:
    # The upload keeps a small file in memory: put is then handed its bytes, and never opens the file.
    data = os.urandom(50_000)
    storage.put("in-memory.bin", tmp_path / "never-written.bin", data=data)
    assert storage.read("in-memory.bin") == data


def test_concurrent_use_from_threads(storage: S3Storage) -> None:
    payloads = {f"t/{n}.bin": os.urandom(20_000 + n) for n in range(16)}
    failures: list[BaseException] = []

    def work(key: str, data: bytes) -> None:
        try:
            storage.put_bytes(key, data)
            assert storage.read(key) == data
            assert storage.size(key) == len(data)
        except BaseException as error:  # collected, so that the main thread fails the test
            failures.append(error)

    threads = [threading.Thread(target=work, args=item) for item in payloads.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# -- URLs -----------------------------------------------------------------------------------------------------


def test_presigned_url_downloads_without_credentials(moto_endpoint: str, bucket: str) -> None:
    storage = make_storage(moto_endpoint, bucket, prefix="p", presign_seconds=120)
    data = os.urandom(4096)
    storage.put_bytes("2026/05/06/pic ture.png", data)
    url = storage.presigned_url("2026/05/06/pic ture.png")
    assert url.startswith(f"{moto_endpoint}/{bucket}/p/2026/05/06/pic%20ture.png?")
    assert "X-Amz-Expires=120" in url
    assert SECRET_KEY not in url
    response = requests.get(url, timeout=10)  # plain HTTP: no credentials, no signing
    assert response.status_code == 200
    assert response.content == data
    missing = requests.get(storage.presigned_url("not/there.png"), timeout=10)
    assert missing.status_code == 404


def test_public_url(moto_endpoint: str, bucket: str) -> None:
    assert make_storage(moto_endpoint, bucket).public_url("2026/01/01/a.png") is None
    storage = make_storage(moto_endpoint, bucket, public_base_url="https://cdn.example.com/assets/")
    assert storage.public_url("2026/01/01/a b#c.png") == "https://cdn.example.com/assets/2026/01/01/a%20b%23c.png"
    prefixed = make_storage(moto_endpoint, bucket, prefix="tenant", public_base_url="https://cdn.example.com")
    assert prefixed.public_url("2026/01/01/a.png") == "https://cdn.example.com/tenant/2026/01/01/a.png"


@pytest.mark.parametrize("key", ["../escape.png", "a/../../b.png", "/absolute.png", "a//b.png", "./a.png", "", "a\\b"])
def test_unsafe_keys_are_refused(storage: S3Storage, key: str, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    calls = [
        lambda: storage.put(key, source),
        lambda: storage.put_bytes(key, b"x"),
        lambda: storage.open(key),
        lambda: storage.read(key),
        lambda: storage.size(key),
        lambda: storage.delete(key),
        lambda: storage.public_url(key),
        lambda: storage.presigned_url(key),
    ]
    for call in calls:
        with pytest.raises(ApiError) as caught:
            call()
        assert caught.value.code == "storage_provider_storage_key_invalid"


# -- configuration --------------------------------------------------------------------------------------------


def test_from_configuration_round_trip(moto_endpoint: str, bucket: str, raw: Any) -> None:
    storage = S3Storage.from_configuration(
        configuration(
            moto_endpoint,
            bucket,
            prefix="cfg",
            forcePathStyle=True,
            publicBaseUrl="https://cdn.example.com/",
            presignSeconds=60,
        ),
        SECRETS,
    )
    assert storage.name == "s3"
    storage.put_bytes("2026/01/01/x.png", b"configured")
    assert raw.get_object(Bucket=bucket, Key="cfg/2026/01/01/x.png")["Body"].read() == b"configured"
    assert storage.public_url("2026/01/01/x.png") == "https://cdn.example.com/cfg/2026/01/01/x.png"
    assert "X-Amz-Expires=60" in storage.presigned_url("2026/01/01/x.png")


def test_from_configuration_defaults(moto_endpoint: str, bucket: str) -> None:
    storage = S3Storage.from_configuration(configuration(moto_endpoint, bucket), SECRETS)
    assert storage.prefix == ""
    assert storage.public_base_url is None
    assert storage.presign_seconds == 3600
    assert storage._client.meta.config.s3 == {"addressing_style": "path"}
    virtual = S3Storage.from_configuration(configuration(moto_endpoint, bucket, forcePathStyle=False), SECRETS)
    assert virtual._client.meta.config.s3 == {"addressing_style": "virtual"}


ENDPOINT = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("overrides", "secrets", "code"),
    [
        ({"endpoint": None}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"endpoint": "127.0.0.1:9000"}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"endpoint": "ftp://127.0.0.1"}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"endpoint": "/relative/path"}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"endpoint": "http://"}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"endpoint": "http://127.0.0.1:port"}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"endpoint": f"http://key:{SECRET_KEY}@127.0.0.1:9"}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"endpoint": 42}, SECRETS, "storage_provider_profile_endpoint_invalid"),
        ({"bucket": None}, SECRETS, "storage_provider_profile_bucket_required"),
        ({"bucket": "  "}, SECRETS, "storage_provider_profile_bucket_required"),
        ({"bucket": 7}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"region": None}, SECRETS, "storage_provider_profile_region_required"),
        ({"region": ""}, SECRETS, "storage_provider_profile_region_required"),
        ({"region": ["us"]}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"publicBaseUrl": "cdn.example.com"}, SECRETS, "storage_provider_profile_public_base_url_invalid"),
        ({"publicBaseUrl": "javascript:alert(1)"}, SECRETS, "storage_provider_profile_public_base_url_invalid"),
        ({"publicBaseUrl": 1}, SECRETS, "storage_provider_profile_public_base_url_invalid"),
        ({"forcePathStyle": "maybe"}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"forcePathStyle": 1}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"presignSeconds": 0}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"presignSeconds": -5}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"presignSeconds": "3600"}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"presignSeconds": 1.5}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"presignSeconds": True}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"presignSeconds": 8 * 24 * 3600}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"prefix": "a/../b"}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({"prefix": 3}, SECRETS, "storage_provider_profile_configuration_invalid"),
        ({}, {"accessKey": ACCESS_KEY}, "storage_provider_profile_secret_key_required"),
        ({}, {"accessKey": ACCESS_KEY, "secretKey": ""}, "storage_provider_profile_secret_key_required"),
        ({}, {"secretKey": SECRET_KEY}, "storage_provider_profile_access_key_required"),
        ({}, {"accessKey": "", "secretKey": SECRET_KEY}, "storage_provider_profile_access_key_required"),
        ({}, {"accessKey": ACCESS_KEY, "secretKey": 12345}, "storage_provider_profile_configuration_invalid"),
    ],
)
def test_configuration_validation(
    overrides: dict[str, Any], secrets: dict[str, Any], code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    merged = {**configuration(ENDPOINT, "bucket"), **overrides}
    config = {key: value for key, value in merged.items() if value is not None}  # None: the key is left out
    with pytest.raises(ApiError) as caught:
        S3Storage.from_configuration(config, secrets)
    assert caught.value.code == code
    assert caught.value.status == 400
    assert_secret_absent(caught.value, caplog)


def test_configuration_must_be_objects() -> None:
    with pytest.raises(ApiError) as caught:
        S3Storage.from_configuration(["endpoint"], SECRETS)  # type: ignore[arg-type]
    assert caught.value.code == "storage_provider_profile_configuration_invalid"


def test_new_codes_are_catalogued() -> None:
    for code in (
        "storage_provider_unavailable",
        "storage_provider_bucket_not_found",
        "storage_provider_access_denied",
        "storage_provider_profile_endpoint_invalid",
        "storage_provider_profile_bucket_required",
        "storage_provider_profile_region_required",
        "storage_provider_profile_public_base_url_invalid",
        "storage_provider_profile_configuration_invalid",
    ):
        assert code in ERROR_CODES


# -- failures -------------------------------------------------------------------------------------------------


def every_operation(storage: S3Storage, tmp_path: Path) -> list[Any]:
    source = tmp_path / "source.bin"
    source.write_bytes(b"bytes")
    return [
        lambda: storage.put("k/a.png", source),
        lambda: storage.put_bytes("k/a.png", b"bytes"),
        lambda: storage.read("k/a.png"),
        lambda: storage.open("k/a.png", 0, 3),
        lambda: storage.size("k/a.png"),
        lambda: storage.delete("k/a.png"),
    ]


def test_endpoint_down_is_unavailable_quickly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    storage = make_storage(f"http://127.0.0.1:{free_port()}", "bucket")  # nothing listens there
    for operation in every_operation(storage, tmp_path):
        started = time.monotonic()
        with pytest.raises(ApiError) as caught:
            operation()
        assert time.monotonic() - started < 5
        assert caught.value.code == "storage_provider_unavailable"
        assert caught.value.status == 400
        assert_secret_absent(caught.value, caplog)


def test_missing_bucket(moto_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    storage = make_storage(moto_endpoint, f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    for operation in every_operation(storage, tmp_path):
        with pytest.raises(ApiError) as caught:
            operation()
        assert caught.value.code == "storage_provider_bucket_not_found"
        assert caught.value.status == 400
        assert_secret_absent(caught.value, caplog)


@pytest.fixture
def moto_checks_credentials(moto_endpoint: str, raw: Any) -> Iterator[tuple[str, str]]:
    """Turn on moto's request authentication (off by default) for one test, with one real IAM access key."""
    iam = boto3.client(
        "iam", endpoint_url=moto_endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y"
    )
    user = f"user-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_valid_credentials_pass_when_checked(
    moto_endpoint: str, bucket: str, moto_checks_credentials: tuple[str, str]
) -> None:
    access_key, secret_key = moto_checks_credentials
    storage = S3Storage(moto_endpoint, bucket, REGION, access_key=access_key, secret_key=secret_key)
    storage.put_bytes("ok.png", b"checked")
    assert storage.read("ok.png") == b"checked"


@pytest.mark.parametrize("wrong", ["unknown-access-key", "wrong-secret"])
def test_wrong_credentials_are_access_denied(
    moto_endpoint: str,
    bucket: str,
    tmp_path: Path,
    moto_checks_credentials: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    wrong: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    access_key, _ = moto_checks_credentials
    if wrong == "unknown-access-key":
        access_key = "AKIAUNKNOWNUNKNOWN00"
    storage = S3Storage(moto_endpoint, bucket, REGION, access_key=access_key, secret_key=SECRET_KEY)
    for operation in every_operation(storage, tmp_path):
        with pytest.raises(ApiError) as caught:
            operation()
        assert caught.value.code == "storage_provider_access_denied", operation
        assert caught.value.status == 400
        assert_secret_absent(caught.value, caplog)


def test_without_keys_the_standard_chain_is_used(
    moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolate_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    storage = S3Storage.from_configuration(configuration(moto_endpoint, bucket), {})
    storage.put_bytes("chain.png", b"from the environment")
    assert storage.read("chain.png") == b"from the environment"


def test_no_credentials_anywhere_is_access_denied(
    moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolate_credentials(monkeypatch, tmp_path)
    storage = S3Storage(moto_endpoint, bucket, REGION)
    with pytest.raises(ApiError) as caught:
        storage.read("a.png")
    assert caught.value.code == "storage_provider_access_denied"


def isolate_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials from this machine: no AWS variables, no shared files, no instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
