"""Durable before acknowledged: half-way failures leave nothing, crashes leave either nothing or a complete asset
whose job resumes, deletes never leak files; enrichment and its record; events and Parquet export; migrations."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import requests
from PIL import Image

import jupyter_assets.catalog.schema as schema_module
import jupyter_assets.storage.local as local_module
import jupyter_assets.uploads as uploads_module
from jupyter_assets.auth import Principal
from jupyter_assets.catalog import Catalog, DuckDBEngine
from jupyter_assets.catalog.schema import MIGRATIONS
from jupyter_assets.http.upload import KEEP_IN_MEMORY
from jupyter_assets.model import ListQuery, new_id, utc_now
from jupyter_assets.processing import Job
from jupyter_assets.processing.enrichment import MAX_JOB_ATTEMPTS
from jupyter_assets.processing.sweeper import IN_FLIGHT_GRACE
from jupyter_assets.service import AssetService, ServiceConfig
from jupyter_assets.storage import storage_key
from jupyter_assets.storage.s3 import S3Storage
from jupyter_assets.uploads import UploadForm

from conftest import (
    ADMIN_KEY,
    StandaloneServer,
    assert_error,
    jpeg_bytes,
    plain_s3_client,
    png_bytes,
    stored_files,
)

API = "/api/v1/assets"
LEASE = timedelta(minutes=1)  # of the jobs these tests claim by hand
ADMIN = Principal("t", frozenset({"assets:read", "assets:write", "assets:delete", "assets:admin"}), "api_key")


# -- helpers --------------------------------------------------------------------------------------------------


@pytest.fixture
def services(tmp_path: Path) -> Iterator:
    """Build AssetServices on a library folder; every one still open is closed at the end of the test."""
    opened: list[AssetService] = []

    def make(root: Path | None = None, **config) -> AssetService:
        service = AssetService(
            ServiceConfig(root_dir=root or tmp_path / "library", public_base_url="http://x", **config)
        )
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.close()  # a no-op for those the test closed itself (see close())


def close(service: AssetService) -> None:
    service.close()
    service.close = lambda: None  # the fixture's final close becomes a no-op


def upload_form(service: AssetService, data: bytes | None = None, **fields: str) -> UploadForm:
    """What the multipart parser would hand the service: a real temporary file, hashed and counted, and the
    bytes themselves when the file is small."""
    data = data if data is not None else png_bytes()
    descriptor, path = service.uploads.new_incoming_file()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return UploadForm(
        file_received=True,
        file_name="kitten.png",
        content_type="image/png",
        temp_path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        fields=dict(fields),
        data=data if len(data) <= KEEP_IN_MEMORY else None,
    )


def recording(steps: list[str], step: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, noting ``step`` in ``steps`` each time it is called."""
    return lambda *args, **kwargs: (steps.append(step), function(*args, **kwargs))[1]


def record_upload_steps(service: AssetService, monkeypatch) -> list[str]:
    """The durability steps of the service's uploads, in the order they run (each still does its work)."""
    steps: list[str] = []
    monkeypatch.setattr(uploads_module, "fsync_file", recording(steps, "fsync file", uploads_module.fsync_file))
    monkeypatch.setattr(
        uploads_module, "fsync_directory", recording(steps, "fsync directory", uploads_module.fsync_directory)
    )
    insert = service.catalog.assets.insert_many
    monkeypatch.setattr(service.catalog.assets, "insert_many", recording(steps, "insert", insert))
    return steps


def asset_count(service: AssetService) -> int:
    return service.catalog.assets.list(ListQuery(), None).total


def incoming(root: Path) -> list[Path]:
    folder = root / "incoming"
    return sorted(folder.rglob("*")) if folder.exists() else []


def large_jpeg(side: int = 6000) -> bytes:
    """A smooth JPEG of side x side pixels: under 1 MB to send, and the upload check reads JPEGs at 1/8 scale,
    but the worker decodes all 36 megapixels for the thumbnail, so jobs take far longer than uploads."""
    gradient = Image.linear_gradient("L").resize((side, side))
    image = Image.merge(
        "RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90), gradient.transpose(Image.Transpose.ROTATE_180))
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment after SOI: different bytes (and checksum), same pixels, no re-encoding."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def failing(error: BaseException):
    def fail(*args, **kwargs):
        raise error

    return fail


def webp_size(url: str) -> tuple[int, int]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/webp"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP"
    return image.size


# -- half-way failures leave nothing --------------------------------------------------------------------------


def fail_half_way(service: AssetService, step: str, monkeypatch) -> list[str]:
    """Make one step of an upload fail: ``put`` after the file is written, or ``insert`` (the catalog row)."""
    reached: list[str] = []
    if step == "put":
        real_put = service.library.storage.put

        def put_then_fail(key: str, source: Path, message: str | None = None, **given: object) -> None:
            real_put(key, source, message)
            reached.append(key)
            raise OSError("disk full after the rename")

        monkeypatch.setattr(service.library.storage, "put", put_then_fail)
    else:

        def insert_fails(rows):
            reached.append(rows[0][0].storage_key)
            raise RuntimeError("catalog unavailable")

        monkeypatch.setattr(service.catalog.assets, "insert_many", insert_fails)
    return reached


def assert_library_empty(service: AssetService) -> None:
    root = service.config.root_dir
    assert asset_count(service) == 0
    assert service.catalog.jobs.queued_count() == 0
    assert service.catalog.analytics.usage_stats(None).total_assets == 0
    assert stored_files(root) == []
    assert incoming(root) == []


@pytest.mark.parametrize("step", ["put", "insert"])
def test_failure_half_way_through_an_upload_leaves_nothing(services, monkeypatch, step: str) -> None:
    service = services()
    reached = fail_half_way(service, step, monkeypatch)
    with pytest.raises((OSError, RuntimeError)):
        service.uploads.create(ADMIN, upload_form(service))
    assert reached, "the failure must be injected after the validation"
    assert_library_empty(service)
    # ... and the library still works afterwards.
    monkeypatch.undo()
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    assert stored_files(service.config.root_dir) == [service.config.root_dir / "files" / asset.storage_key]


@pytest.mark.parametrize("step", ["put", "insert"])
def test_failure_whose_cleanup_also_fails_is_retried_not_leaked(services, monkeypatch, step: str) -> None:
    """A file that cannot be removed is recorded for the retry sweep, never silently leaked (architecture rule 5)."""
    service = services()
    root = service.config.root_dir
    fail_half_way(service, step, monkeypatch)
    monkeypatch.setattr(service.library.storage, "delete", failing(OSError("read-only file system")))
    with pytest.raises((OSError, RuntimeError)):
        service.uploads.create(ADMIN, upload_form(service))
    assert asset_count(service) == 0
    monkeypatch.undo()  # the storage recovers
    service.sweeper.sweep()
    assert stored_files(root) == []
    close(service)

    restarted = services(root, workers=0)
    restarted.start()
    assert_library_empty(restarted)


def test_failed_upload_cleanup_is_swept_at_the_next_start(services, monkeypatch) -> None:
    """The same, when the process stops before any sweep: the next start removes the file."""
    service = services()
    root = service.config.root_dir
    fail_half_way(service, "put", monkeypatch)
    monkeypatch.setattr(service.library.storage, "delete", failing(OSError("read-only file system")))
    with pytest.raises(OSError):
        service.uploads.create(ADMIN, upload_form(service))
    close(service)
    monkeypatch.undo()

    restarted = services(root, workers=0)
    restarted.start()
    assert_library_empty(restarted)


def test_crash_between_file_and_row_is_cleaned_at_start(services) -> None:
    service = services()
    root = service.config.root_dir
    kept = service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    orphan_key = "2026/01/02/0123456789abcdef0123456789abcdef.png"
    service.catalog.cleanup.add(orphan_key, None, "upload_in_flight")
    service.library.storage.put_bytes(orphan_key, png_bytes())
    # A note about a key whose upload did commit (the crash came after the row): the file must stay.
    service.catalog.cleanup.add(kept.storage_key, None, "upload_in_flight")
    (root / "incoming" / "upload-left-by-a-crash").write_bytes(b"half an upload")
    assert (root / "files" / orphan_key).exists()
    close(service)  # the process "crashed": nothing else ran

    restarted = services(root, workers=0)
    restarted.start()
    assert not (root / "files" / orphan_key).exists()
    assert stored_files(root) == [root / "files" / kept.storage_key]
    assert (root / "files" / kept.storage_key).read_bytes() == png_bytes()
    assert incoming(root) == []
    assert restarted.catalog.cleanup.pending() == []
    assert asset_count(restarted) == 1
    assert restarted.catalog.assets.get(kept.id).status == "ready"


def test_delete_whose_file_removal_fails_is_retried_by_the_sweep(services, monkeypatch) -> None:
    service = services()
    root = service.config.root_dir
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    path = root / "files" / asset.storage_key
    assert path.exists()
    real_delete = service.library.storage.delete
    failures = []

    def delete_fails_once(key: str, message: str | None = None) -> None:
        if not failures:
            failures.append(key)
            raise OSError("file busy")
        real_delete(key)

    monkeypatch.setattr(service.library.storage, "delete", delete_fails_once)
    result = service.assets.delete(ADMIN, asset.id)
    assert result["id"] == asset.id
    assert result["status"] == "ready"
    assert failures == [asset.storage_key]
    assert service.catalog.assets.get(asset.id) is None  # the row is gone even though the file is not
    assert asset_count(service) == 0
    assert path.exists()

    assert service.sweeper.sweep() == 1
    assert not path.exists()
    assert stored_files(root) == []
    assert service.sweeper.sweep() == 0


def test_the_periodic_sweep_leaves_files_of_runs_under_way_alone(services) -> None:
    """A skill run notes its file before storing it and commits the row later: a sweep in between must not take
    the file, unless the note is older than any run can be (a run that crashed). At start, nothing is under way."""
    service = services()
    service.catalog.cleanup.add("2026/11/29/in-flight.webp", None, "derivative_in_flight")
    service.library.storage.put_bytes("2026/11/29/in-flight.webp", b"thumbnail bytes")
    assert service.sweeper.sweep(in_flight_before=utc_now() - IN_FLIGHT_GRACE) == 0
    assert service.library.storage.size("2026/11/29/in-flight.webp") == len(b"thumbnail bytes")
    assert service.sweeper.sweep(in_flight_before=utc_now() + IN_FLIGHT_GRACE) == 1
    assert service.library.storage.size("2026/11/29/in-flight.webp") is None


def test_the_periodic_sweep_leaves_a_key_a_run_is_writing_whatever_older_notes_say(services) -> None:
    """A conversion stores under a key its asset had before (back to PNG after WebP): a failed removal of the old
    PNG noted long ago must not take the new file from the run."""
    service = services()
    key = storage_key(new_id(), ".png")
    service.catalog.cleanup.add(key, None, "delete_failed")
    service.catalog.cleanup.add(key, None, "original_in_flight")
    service.library.storage.put_bytes(key, png_bytes())
    assert service.sweeper.sweep(in_flight_before=utc_now() - IN_FLIGHT_GRACE) == 0
    assert service.library.storage.size(key) == len(png_bytes())


def test_delete_whose_file_removal_fails_is_retried_at_the_next_start(services, monkeypatch) -> None:
    service = services()
    root = service.config.root_dir
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    monkeypatch.setattr(service.library.storage, "delete", failing(OSError("file busy")))
    service.assets.delete(ADMIN, asset.id)
    assert len(stored_files(root)) == 1
    close(service)

    restarted = services(root, workers=0)
    restarted.start()
    assert stored_files(root) == []
    assert asset_count(restarted) == 0


# The start of a crash script: a service on argv[1] holding one upload of the image at argv[2] (``asset``).
UPLOADED_IN_A_SCRIPT = """
import hashlib, os, sys
from pathlib import Path
from jupyter_assets.auth import Principal
from jupyter_assets.service import AssetService, ServiceConfig
from jupyter_assets.uploads import UploadForm

root, data = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()
service = AssetService(ServiceConfig(root_dir=root, public_base_url="http://x", workers=0))
admin = Principal("t", frozenset({"assets:read", "assets:write", "assets:delete", "assets:admin"}), "api_key")
descriptor, path = service.uploads.new_incoming_file()
os.write(descriptor, data)
os.close(descriptor)
form = UploadForm(True, "kitten.png", "image/png", path, len(data), hashlib.sha256(data).hexdigest(),
                  {"runenrichment": "false"})
asset = service.uploads.create(admin, form)
"""

CRASH_DURING_A_STORAGE_WRITE = (
    UPLOADED_IN_A_SCRIPT
    + """
print(asset.id, flush=True)
os.replace = lambda *args, **kwargs: os._exit(17)  # the process dies as a finished write is moved into place
service.skill_runs.run(admin, asset.id, "thumbnail", None)
"""
)


def test_storage_write_cut_by_a_crash_leaves_no_temporary_file(services, tmp_path: Path) -> None:
    root = tmp_path / "library"
    image = tmp_path / "image.png"
    image.write_bytes(png_bytes(300, 200))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_DURING_A_STORAGE_WRITE, str(root), str(image)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert crashed.returncode == 17, crashed.stderr  # it died while writing the thumbnail
    asset_id = crashed.stdout.strip()

    restarted = services(root, workers=0)
    restarted.start()
    asset = restarted.catalog.assets.get(asset_id)
    assert asset is not None
    assert stored_files(root) == [root / "files" / asset.storage_key]
    assert incoming(root) == []


# -- rewrites in place (exif-strip, watermark keep the key) ---------------------------------------------------

CRASH_DURING_A_REWRITE = (
    UPLOADED_IN_A_SCRIPT
    + """
moment = sys.argv[3]
service.skill_runs.run(admin, asset.id, "thumbnail", None)
print(asset.id, flush=True)
put_bytes = service.library.storage.put_bytes
real_replace = os.replace
if moment == "replace":  # the process dies as the new bytes are moved over the old ones (the thumbnail went first)
    def replace(source, target):
        if str(target).endswith(asset.storage_key):
            os._exit(17)
        real_replace(source, target)
    os.replace = replace
elif moment == "commit":  # the new bytes (and the new thumbnail) are stored; the catalog never hears of them
    service.catalog.runs.commit = lambda *args, **kwargs: os._exit(17)
else:  # a delete comes between the note and the bytes, which then store the file again
    def put_after_a_delete(key, data):
        if key != asset.storage_key:  # the new thumbnail, stored before the new original
            return put_bytes(key, data)
        service.assets.delete(admin, asset.id)
        put_bytes(key, data)
        os._exit(17)
    service.library.storage.put_bytes = put_after_a_delete
service.skill_runs.run(admin, asset.id, "watermark", {"opacity": 1})
"""
)


def crash_during_a_rewrite(root: Path, tmp_path: Path, moment: str) -> tuple[str, bytes]:
    """Upload a PNG, make its thumbnail, then die at ``moment`` of a watermark; the asset id and the PNG."""
    data = png_bytes(300, 200, color=(20, 30, 40))
    image = tmp_path / "image.png"
    image.write_bytes(data)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_DURING_A_REWRITE, str(root), str(image), moment],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert crashed.returncode == 17, crashed.stderr
    return crashed.stdout.strip(), data


def assert_catalog_describes_the_stored_bytes(service: AssetService, asset_id: str) -> bytes:
    """The asset's size and checksum are those of its stored original, and its thumbnail's of the stored one, and
    nothing else is stored or noted; the original's bytes."""
    asset = service.catalog.assets.detail(asset_id)
    data = service.library.storage.read(asset.storage_key)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (asset.size, asset.checksum_sha256)
    assert asset.storage_key == storage_key(asset.id, ".png")
    (derivative,) = asset.derivatives
    thumbnail = service.library.storage.read(derivative.storage_key)
    assert hashlib.sha256(thumbnail).hexdigest() == derivative.checksum_sha256
    root = service.config.root_dir / "files"
    assert stored_files(service.config.root_dir) == sorted([root / asset.storage_key, root / derivative.storage_key])
    assert service.catalog.cleanup.pending() == [] and service.catalog.cleanup.rewrite_notes() == []
    return data


def thumbnail_of(service: AssetService, asset_id: str) -> Image.Image:
    (derivative,) = service.catalog.assets.detail(asset_id).derivatives
    return Image.open(io.BytesIO(service.library.storage.read(derivative.storage_key))).convert("L")


def test_a_crash_after_a_rewrite_stored_its_bytes_but_before_its_commit_is_settled_at_start(
    services, tmp_path: Path
) -> None:
    root = tmp_path / "library"
    asset_id, original = crash_during_a_rewrite(root, tmp_path, "commit")
    restarted = services(root, workers=0)
    before = restarted.catalog.assets.get(asset_id)
    assert before.checksum_sha256 == hashlib.sha256(original).hexdigest()
    restarted.start()
    data = assert_catalog_describes_the_stored_bytes(restarted, asset_id)
    assert data != original and Image.open(io.BytesIO(data)).convert("L").getextrema()[1] == 255  # the watermark
    after = restarted.catalog.assets.get(asset_id)
    assert (after.width, after.height) == (300, 200) and after.updated_at > before.updated_at
    assert thumbnail_of(restarted, asset_id).getextrema()[1] > 200  # made again, from the watermarked picture


def test_a_crash_while_a_rewrite_moves_its_bytes_into_place_leaves_the_old_original(services, tmp_path: Path) -> None:
    root = tmp_path / "library"
    asset_id, original = crash_during_a_rewrite(root, tmp_path, "replace")
    restarted = services(root, workers=0)
    restarted.start()
    assert assert_catalog_describes_the_stored_bytes(restarted, asset_id) == original
    assert thumbnail_of(restarted, asset_id).getextrema()[1] < 60  # still the dark picture's
    assert incoming(root) == [] and not list((root / "files" / ".partial").iterdir())


def test_a_rewrite_that_a_delete_overtook_leaves_no_file_after_a_crash(services, tmp_path: Path) -> None:
    root = tmp_path / "library"
    asset_id, _ = crash_during_a_rewrite(root, tmp_path, "delete")
    restarted = services(root, workers=0)
    assert restarted.library.storage.size(storage_key(asset_id, ".png")) is not None  # stored again after the delete
    restarted.start()
    assert restarted.catalog.assets.get(asset_id) is None
    assert stored_files(root) == []
    assert restarted.catalog.cleanup.pending() == [] and restarted.catalog.cleanup.rewrite_notes() == []


def test_a_rewrite_makes_its_bytes_durable_under_its_note_before_its_commit(services, monkeypatch) -> None:
    # The reverse of a crash between bytes and commit: a commit whose bytes are not durable yet. The note comes
    # first, then the new thumbnail is stored, then the new bytes are fsynced, renamed over the old ones and the
    # rename fsynced; only then (and at once) the commit.
    service = services(workers=0)
    asset = service.uploads.create(ADMIN, upload_form(service, png_bytes(120, 90), runenrichment="false"))
    steps: list[str] = []
    monkeypatch.setattr(
        service.catalog.cleanup, "note_rewrite", recording(steps, "note", service.catalog.cleanup.note_rewrite)
    )
    monkeypatch.setattr(local_module.os, "fsync", recording(steps, "fsync", os.fsync))
    real_replace = os.replace
    monkeypatch.setattr(
        local_module.os,
        "replace",
        lambda source, target: (steps.append(f"rename {target}"), real_replace(source, target))[1],
    )
    monkeypatch.setattr(service.catalog.runs, "commit", recording(steps, "commit", service.catalog.runs.commit))
    assert service.skill_runs.run(ADMIN, asset.id, "watermark", None)["succeeded"]
    original = service.library.storage.path_for(asset.storage_key)
    (thumbnail,) = service.catalog.assets.detail(asset.id).derivatives
    thumbnail_file = service.library.storage.path_for(thumbnail.storage_key)
    assert steps[:9] == [
        "note", "fsync", f"rename {thumbnail_file}", "fsync", "fsync", f"rename {original}", "fsync", "commit", "commit"
    ]  # fmt: skip
    assert_catalog_describes_the_stored_bytes(service, asset.id)


@pytest.mark.parametrize("stored", [False, True], ids=["before-storing", "after-storing"])
def test_a_rewrite_whose_storage_fails_leaves_the_catalog_describing_what_is_stored(
    services, monkeypatch, stored: bool
) -> None:
    """A storage that fails a write may have stored it anyway (a timeout after the write): the run fails, and the
    catalog takes whichever bytes are there, at once."""
    service = services(workers=0)
    asset = service.uploads.create(ADMIN, upload_form(service, png_bytes(120, 90), runenrichment="false"))
    service.skill_runs.run(ADMIN, asset.id, "thumbnail", None)
    real_put = service.library.storage.put_bytes
    failed: list[str] = []

    def put_fails_once(key: str, data: bytes) -> None:
        if failed or key != asset.storage_key:  # the new thumbnail is stored first
            return real_put(key, data)
        failed.append(key)
        if stored:
            real_put(key, data)
        raise OSError("the disk went away")

    monkeypatch.setattr(service.library.storage, "put_bytes", put_fails_once)
    result = service.skill_runs.run(ADMIN, asset.id, "watermark", None)
    assert result["succeeded"] is False and "disk went away" in result["steps"][0]["errorMessage"]
    assert failed == [asset.storage_key]
    data = assert_catalog_describes_the_stored_bytes(service, asset.id)
    assert (data == png_bytes(120, 90)) is not stored


def test_enrichment_changes_updated_at_at_every_status(services) -> None:
    service = services(workers=0)
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="true"))
    seen = [(asset.status, asset.updated_at)]

    def note() -> None:
        current = service.catalog.assets.get(asset.id)
        seen.append((current.status, current.updated_at))

    ((job_id, _, _),) = service.catalog.jobs.claim("this-server", LEASE, MAX_JOB_ATTEMPTS)
    note()
    service.catalog.jobs.recover(MAX_JOB_ATTEMPTS)  # a restart puts it back in the queue
    note()
    service.enrichment.process([Job(job_id, asset.id, ("thumbnail",))])
    note()
    assert [status for status, _ in seen] == ["pending", "processing", "pending", "ready"]
    times = [updated for _, updated in seen]
    assert times == sorted(times) and len(set(times)) == len(times), times


# -- migrations -----------------------------------------------------------------------------------------------


def test_new_catalog_is_at_the_latest_migration_and_reopening_keeps_data(services, tmp_path: Path) -> None:
    latest = max(version for version, _ in MIGRATIONS)
    service = services()
    root = service.config.root_dir
    assert service.catalog.schema_version() == latest
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    close(service)

    reopened = services(root, workers=0)
    assert reopened.catalog.schema_version() == latest
    assert reopened.catalog.assets.get(asset.id).checksum_sha256 == asset.checksum_sha256
    close(reopened)

    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as db:
        applied = db.execute(
            "SELECT version, count(*) FROM schema_version GROUP BY version ORDER BY version"
        ).fetchall()
    assert applied == [(version, 1) for version, _ in sorted(MIGRATIONS)]  # each applied exactly once


def test_a_new_migration_is_applied_once_to_an_existing_catalog(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "catalog.duckdb"
    catalog = Catalog(DuckDBEngine(path))
    catalog.cleanup.add("2026/01/01/" + "a" * 32 + ".png", None, "marker")
    old = catalog.schema_version()
    catalog.close()

    extra = (old + 1, "CREATE TABLE migration_probe (n INTEGER); INSERT INTO migration_probe VALUES (1);")
    monkeypatch.setattr(schema_module, "MIGRATIONS", [*MIGRATIONS, extra])
    for _ in range(2):  # a second open must not run it again (the INSERT would double the rows)
        catalog = Catalog(DuckDBEngine(path))
        assert catalog.schema_version() == old + 1
        assert catalog.cleanup.pending() == [("2026/01/01/" + "a" * 32 + ".png", None)]
        catalog.close()
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM migration_probe").fetchone()[0] == 1


# -- processing -----------------------------------------------------------------------------------------------


def test_enrichment_makes_a_thumbnail_that_never_upscales(server: StandaloneServer) -> None:
    api = server.api()
    expected = {(64, 48): (64, 48), (1000, 500): (256, 128), (500, 1000): (128, 256), (256, 256): (256, 256)}
    uploaded = {}
    for size in expected:
        asset = api.upload_ok(png_bytes(*size), runEnrichment="true")
        assert asset["status"] == "pending"  # acknowledged before any processing
        assert asset["derivatives"] == []
        uploaded[size] = asset["id"]
    for size, asset_id in uploaded.items():
        asset = api.wait_for_status(asset_id)
        assert asset["status"] == "ready"
        thumbnails = [d for d in asset["derivatives"] if d["kind"] == "thumbnail_256"]
        assert len(asset["derivatives"]) == len(thumbnails) == 1
        thumb = thumbnails[0]
        assert thumb["contentType"] == "image/webp"
        assert thumb["extension"] == ".webp"
        assert (thumb["width"], thumb["height"]) == expected[size]
        assert webp_size(thumb["publicUrl"]) == expected[size]
        summary = asset["latestExecutionSummary"]
        assert summary["skillName"] == "thumbnail"
        assert summary["triggerSource"] == "upload"
        assert summary["succeeded"] is True
        assert [s["stepName"] for s in summary["steps"]] == ["generate_thumbnail"]
        assert all(s["succeeded"] and not s["errorMessage"] for s in summary["steps"])
    stats = api.get(f"{API}/usage-stats").json()["data"]
    assert stats["mostActiveSkill"] == {"skillName": "thumbnail", "runCount": len(expected)}
    assert stats["totalDerivatives"] == len(expected)
    assert stats["totalAssets"] == len(expected)
    assert len(stored_files(server.root)) == 2 * len(expected)
    assert api.get(f"{API}?status=pending").json()["data"]["total"] == 0
    assert api.get(f"{API}?status=processing").json()["data"]["total"] == 0


def test_file_the_worker_cannot_decode_fails_with_the_reason(make_server) -> None:
    server = make_server().start("--workers", "0")
    api = server.api()
    garbage = api.upload_ok(png_bytes(120, 80), runEnrichment="true")
    full = png_bytes(300, 300, noise=True)
    truncated = api.upload_ok(full, runEnrichment="true")
    assert garbage["status"] == truncated["status"] == "pending"
    server.stop()
    (server.root / "files" / garbage["storageKey"]).write_bytes(b"this is not an image at all" * 100)
    (server.root / "files" / truncated["storageKey"]).write_bytes(full[: len(full) // 2])

    server.start()
    for asset_id in (garbage["id"], truncated["id"]):
        asset = api.wait_for_status(asset_id)
        assert asset["status"] == "failed"  # never ready
        assert asset["derivatives"] == []
        summary = asset["latestExecutionSummary"]
        assert summary["skillName"] == "thumbnail"
        assert summary["triggerSource"] == "upload"
        assert summary["succeeded"] is False
        assert [s["stepName"] for s in summary["steps"]] == ["generate_thumbnail"]
        assert summary["steps"][0]["succeeded"] is False
        assert summary["steps"][0]["errorMessage"].strip()
    assert api.get(f"{API}?status=failed").json()["data"]["total"] == 2
    assert len(stored_files(server.root)) == 2  # no derivative written for either


# -- jobs survive a restart -----------------------------------------------------------------------------------


def test_queued_jobs_survive_sigkill(make_server) -> None:
    server = make_server().start("--workers", "0")
    api = server.api()
    uploads = []
    for n in range(10):
        data = png_bytes(80 + n, 60, color=(n * 20, 100, 50))
        asset = api.upload_ok(data, runEnrichment="true")
        assert asset["status"] == "pending"
        uploads.append((asset, data))
    assert api.get(f"{API}?status=pending").json()["data"]["total"] == 10
    server.stop(kill=True)

    server.start()
    for asset, data in uploads:
        done = api.wait_for_status(asset["id"])
        assert done["status"] == "ready"
        assert [d["kind"] for d in done["derivatives"]] == ["thumbnail_256"]
        assert done["derivatives"][0]["width"] == asset["width"]  # under 256: never upscaled
        assert (server.root / "files" / asset["storageKey"]).read_bytes() == data  # acknowledged means durable
    assert api.get(API).json()["data"]["total"] == 10
    assert api.get(f"{API}?status=pending").json()["data"]["total"] == 0
    assert len(stored_files(server.root)) == 20


# On PostgreSQL, test_team_library kills a server mid-enrichment and another finishes its jobs.
@pytest.mark.duckdb_only
def test_sigkill_in_the_middle_of_processing_loses_nothing_and_leaves_nothing(make_server) -> None:
    server = make_server().start()
    api = server.api()
    base = large_jpeg()
    assert len(base) < 10 * 1024 * 1024 - 1000

    def upload(n: int) -> tuple[dict, str]:
        data = with_comment(base, f"copy {n}")
        asset = server.api().upload_ok(data, name=f"photo-{n}.jpg", content_type="image/jpeg", runEnrichment="true")
        return asset, hashlib.sha256(data).hexdigest()

    with ThreadPoolExecutor(4) as pool:  # far faster than two workers make thumbnails: a queue builds up
        uploads = list(pool.map(upload, range(15)))

    # An upload cut off by the crash as well: its temporary file must not survive the restart.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    boundary = "crash-boundary"
    head = (
        f"POST {API} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 8000000\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    sock.sendall(head + base[:1000] + b"\xff" * 3_000_000)  # far more than the server buffers before writing
    deadline = time.monotonic() + 10
    while not incoming(server.root) and time.monotonic() < deadline:
        time.sleep(0.01)
    cut_upload_started = bool(incoming(server.root))
    states = {a["status"] for a in api.get(f"{API}?pageSize=100").json()["data"]["items"]}
    server.stop(kill=True)
    sock.close()
    assert cut_upload_started, "the cut upload must have reached the server's disk before the kill"
    assert states & {"pending", "processing"}, "the kill must interrupt work in progress"

    server.start()
    for asset, checksum in uploads:
        done = api.wait_for_status(asset["id"], timeout=120)
        assert done["status"] == "ready"
        assert done["checksumSha256"] == checksum
        assert [d["kind"] for d in done["derivatives"]] == ["thumbnail_256"]
        assert (done["derivatives"][0]["width"], done["derivatives"][0]["height"]) == (256, 256)
        stored = (server.root / "files" / asset["storageKey"]).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == checksum
    assert api.get(f"{API}?status=pending").json()["data"]["total"] == 0
    assert api.get(f"{API}?status=processing").json()["data"]["total"] == 0
    assert api.get(API).json()["data"]["total"] == 15
    # Exactly the originals and one thumbnail each: no orphan from a thumbnail written when the kill came.
    assert len(stored_files(server.root)) == 30
    assert incoming(server.root) == []


# On a team library a restarted server leaves files in flight alone for IN_FLIGHT_GRACE (they may be another
# server's uploads), so "nothing left" holds only an hour later there.
@pytest.mark.duckdb_only
def test_sigkill_during_uploads_leaves_complete_assets_or_nothing(make_server) -> None:
    """Kill -9 while three clients upload, three times: every acknowledged upload survives intact, every asset in
    the catalog is complete, no stored file belongs to nothing, and every job finishes after the restart."""
    server = make_server().start()
    acknowledged: dict[str, str] = {}
    for round_number in range(3):
        stop = threading.Event()
        target = len(acknowledged) + 6

        def upload_until_killed(client: int, stop: threading.Event, shade: int) -> None:
            api = server.api()
            n = 0
            while not stop.is_set():
                data = png_bytes(40 + n % 60, 30 + client, color=(shade, client * 60, n % 256))
                try:
                    response = api.upload(data, runEnrichment="true", timeout=10)
                except requests.RequestException:
                    return  # the server is gone
                if response.status_code == 202:
                    acknowledged[response.json()["data"]["id"]] = hashlib.sha256(data).hexdigest()
                n += 1

        clients = [threading.Thread(target=upload_until_killed, args=(c, stop, round_number * 80)) for c in range(3)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(kill=True)
        stop.set()
        for client in clients:
            client.join(30)
        assert len(acknowledged) >= target
        server.start()
        assert incoming(server.root) == []

    api = server.api()
    items = []
    page = 1
    while True:
        data = api.get(f"{API}?pageSize=100&page={page}").json()["data"]
        items += data["items"]
        if page * 100 >= data["total"]:
            break
        page += 1
    assert set(acknowledged) <= {item["id"] for item in items}
    referenced = set()
    for item in items:
        asset = api.wait_for_status(item["id"])
        assert asset["status"] == "ready"
        assert acknowledged.get(asset["id"], asset["checksumSha256"]) == asset["checksumSha256"]
        stored = server.root / "files" / asset["storageKey"]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == asset["checksumSha256"]
        assert [d["kind"] for d in asset["derivatives"]] == ["thumbnail_256"]
        referenced.add(stored)
        referenced.add(server.root / "files" / asset["derivatives"][0]["publicUrl"].split("/content/", 1)[1])
    assert set(stored_files(server.root)) == referenced  # nothing stored that no asset references


# -- events and export ----------------------------------------------------------------------------------------


def test_events_and_export(make_server, tmp_path: Path) -> None:
    server = make_server().start()
    api = server.api()
    enriched = api.upload_ok(png_bytes(300, 200), runEnrichment="true")
    plain = api.upload_ok(png_bytes(40, 40), description="plain")
    doomed = api.upload_ok(png_bytes(20, 20))
    assert api.wait_for_status(enriched["id"])["status"] == "ready"
    run = api.post(f"{API}/{plain['id']}/skills/thumbnail/run")
    assert run.status_code == 200 and run.json()["data"]["succeeded"] is True
    assert api.delete(f"{API}/{doomed['id']}").status_code == 200

    response = api.get(f"{API}/export?table=events")
    assert response.status_code == 200
    events = pq.read_table(io.BytesIO(response.content)).to_pylist()
    kinds = [e["kind"] for e in events]
    assert kinds.count("upload") == 3
    assert kinds.count("delete") == 1
    assert kinds.count("skill_run") == 2
    runs = {e["asset_id"]: e for e in events if e["kind"] == "skill_run"}
    assert set(runs) == {enriched["id"], plain["id"]}
    assert all(e["skill_name"] == "thumbnail" and e["succeeded"] is True for e in runs.values())
    assert {e["asset_id"] for e in events if e["kind"] == "delete"} == {doomed["id"]}

    response = api.get(f"{API}/export?table=assets")
    assert response.status_code == 200
    assets = pq.read_table(io.BytesIO(response.content)).to_pylist()
    assert {a["id"] for a in assets} == {enriched["id"], plain["id"]}
    assert {a["description"] for a in assets} == {None, "plain"}

    for table, rows in (("derivatives", 2), ("executions", 2)):
        response = api.get(f"{API}/export?table={table}")
        assert response.status_code == 200
        assert pq.read_table(io.BytesIO(response.content)).num_rows == rows

    assert_error(api.get(f"{API}/export?table=nope"), 400, "export_table_invalid")
    assert_error(api.get(f"{API}/export"), 400, "export_table_invalid")
    assert incoming(server.root) == []

    server.stop()
    destination = tmp_path / "export"
    result = server.cli("export", str(destination))
    assert result.returncode == 0, result.stderr
    for name in ("assets.parquet", "derivatives.parquet", "executions.parquet"):
        assert (destination / name).is_file(), name
    assert {a["id"] for a in pq.read_table(destination / "assets.parquet").to_pylist()} == {
        enriched["id"],
        plain["id"],
    }
    assert pq.read_table(destination / "derivatives.parquet").num_rows == 2
    day_folders = sorted(p.name for p in (destination / "events").iterdir() if p.is_dir())
    assert day_folders and all(name.startswith("day=") for name in day_folders)
    with duckdb.connect() as db:
        rows = db.execute(
            "SELECT kind, count(*) FROM read_parquet(?, hive_partitioning = true) GROUP BY kind ORDER BY kind",
            [str(destination / "events" / "**" / "*.parquet")],
        ).fetchall()
        days = db.execute(
            "SELECT DISTINCT CAST(day AS VARCHAR) FROM read_parquet(?, hive_partitioning = true)",
            [str(destination / "events" / "**" / "*.parquet")],
        ).fetchall()
    assert rows == [("delete", 1), ("skill_run", 2), ("upload", 3)]
    assert sorted(f"day={d}" for (d,) in days) == day_folders
    import pyarrow.dataset as ds

    partitioned = ds.dataset(destination / "events", format="parquet", partitioning="hive").to_table()
    assert partitioned.num_rows == len(events)


# -- an upload committed but not yet stored (the crash window of the upload path) ------------------------------


def test_committed_row_with_its_bytes_still_incoming_is_stored_and_enriched_at_start(services, tmp_path) -> None:
    data = png_bytes(300, 200)
    service = services(workers=1)
    form = upload_form(service, data, runenrichment="true")
    # The crash: the bytes never reach storage.
    service.library.storage.put = lambda key, source, **given: None
    asset = service.uploads._create(ADMIN, form)  # create would also remove the incoming file
    close(service)
    root = tmp_path / "library"
    assert form.temp_path.exists() and not (root / "files" / asset.storage_key).exists()

    restarted = services(workers=1)
    restarted.start()
    assert restarted.enrichment.workers.wait_idle(timeout=60)
    assert (root / "files" / asset.storage_key).read_bytes() == data
    assert not list((root / "incoming").iterdir())
    stored = restarted.catalog.assets.detail(asset.id)
    assert stored.status == "ready"
    assert [d.kind for d in stored.derivatives] == ["thumbnail_256"]


def test_committed_row_whose_bytes_never_became_durable_is_forgotten_at_start(services, tmp_path) -> None:
    service = services(workers=1)
    form = upload_form(service, png_bytes(300, 200))
    service.library.storage.put = lambda key, source, **given: None
    asset = service.uploads._create(ADMIN, form)
    close(service)
    form.temp_path.write_bytes(b"\x89PNG half of it")  # the crash lost the end of the file

    restarted = services(workers=1)
    restarted.start()
    assert restarted.catalog.assets.get(asset.id) is None
    assert not list((tmp_path / "library" / "incoming").iterdir())
    assert not (tmp_path / "library" / "files" / asset.storage_key).exists()


def test_the_bytes_are_durable_before_the_row_can_commit(services, monkeypatch) -> None:
    # A row is committed as soon as the writer gets to it: were its bytes made durable afterwards, a power cut in
    # between could lose the incoming file's name and leave a committed row whose bytes exist nowhere.
    service = services()
    steps = record_upload_steps(service, monkeypatch)
    service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    assert steps == ["fsync file", "fsync directory", "insert"]


def test_incoming_file_without_a_row_is_dropped_at_start(services, tmp_path) -> None:
    service = services()
    form = upload_form(service)  # a crash before the commit: only the incoming file exists
    close(service)
    restarted = services()
    restarted.start()
    assert not form.temp_path.exists()
    assert asset_count(restarted) == 0


# -- S3 stores an upload while its row is being committed ------------------------------------------------------


@pytest.fixture
def bucket(moto_endpoint: str) -> tuple[Any, str]:
    """A plain client and a new bucket on the moto server."""
    raw = plain_s3_client(moto_endpoint, "us-east-1", "key", "secret")
    name = f"durability-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=name)
    return raw, name


@pytest.fixture
def on_bucket(services, moto_endpoint: str, bucket) -> tuple[AssetService, str]:
    """A service whose default storage profile is the test's bucket, and that profile's id."""
    service = services()
    body = {
        "name": "bucket",
        "providerType": "s3",
        "isDefault": True,
        "configuration": {"endpoint": moto_endpoint, "bucket": bucket[1], "region": "us-east-1"},
        "secretConfiguration": {"accessKey": "key", "secretKey": "secret"},
    }
    return service, service.profiles.create(ADMIN, body)["id"]


def objects_in(raw: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in raw.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_an_s3_upload_whose_commit_fails_leaves_nothing_in_the_bucket(bucket, on_bucket, monkeypatch) -> None:
    (raw, name), (service, _) = bucket, on_bucket
    failed: Future = Future()
    failed.set_exception(RuntimeError("the catalog write failed"))
    stored: list[str] = []
    put = S3Storage.put
    monkeypatch.setattr(
        S3Storage, "put", lambda self, key, *args, **kwargs: (stored.append(key), put(self, key, *args, **kwargs))
    )
    monkeypatch.setattr(service.catalog.assets, "insert_many", lambda rows: ([None] * len(rows), failed))
    with pytest.raises(RuntimeError, match="the catalog write failed"):
        service.uploads.create(ADMIN, upload_form(service))
    assert len(stored) == 1  # the bytes went up while the row was being committed...
    assert objects_in(raw, name) == []  # ...and were removed when the commit failed
    assert not list((service.config.root_dir / "incoming").iterdir())
    assert asset_count(service) == 0


def test_an_s3_upload_makes_only_the_incoming_name_durable_before_its_row_and_its_put(
    bucket, on_bucket, monkeypatch
) -> None:
    # The bucket has the bytes before the upload is acknowledged; what a crash must not lose is the incoming
    # file's name, which tells the next start what the bucket may hold of an upload whose row never committed.
    (raw, name), (service, _) = bucket, on_bucket
    steps = record_upload_steps(service, monkeypatch)
    monkeypatch.setattr(S3Storage, "put", recording(steps, "put", S3Storage.put))
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    assert steps == ["fsync directory", "insert", "put"]
    assert objects_in(raw, name) == [asset.storage_key]


@pytest.mark.parametrize("bytes_survived", [True, False], ids=["bytes-survived", "bytes-lost"])
def test_bytes_an_s3_profile_received_before_a_crash_lost_the_commit_are_removed_at_start(
    services, bucket, on_bucket, bytes_survived: bool
) -> None:
    (raw, name), (service, profile_id) = bucket, on_bucket
    kept = service.uploads.create(ADMIN, upload_form(service, runenrichment="false"))
    form = upload_form(service, jpeg_bytes())
    asset_id = form.temp_path.stem
    # The crash: the bytes reached the bucket while the row was being committed; the commit never landed.
    service.library.storage_for(profile_id).put(storage_key(asset_id, ".jpg"), form.temp_path)
    if not bytes_survived:  # they were never fsynced: the next start cannot tell the format from them
        form.temp_path.write_bytes(b"")
    close(service)
    assert len(objects_in(raw, name)) == 2

    restarted = services()
    restarted.start()
    assert objects_in(raw, name) == [kept.storage_key]
    assert not form.temp_path.exists()
    assert [asset.id for asset in restarted.catalog.assets.list(ListQuery(), None).items] == [kept.id]


def test_a_committed_s3_upload_whose_incoming_bytes_a_crash_lost_is_kept_at_start(services, bucket, on_bucket) -> None:
    (raw, name), (service, _) = bucket, on_bucket
    form = upload_form(service, runenrichment="false")
    asset = service.uploads.create(ADMIN, form)
    # The crash: the removal of the incoming file did not last, and its bytes (never fsynced) were lost.
    form.temp_path.write_bytes(b"")
    close(service)

    restarted = services()
    restarted.start()
    assert restarted.catalog.assets.get(asset.id) is not None
    assert objects_in(raw, name) == [asset.storage_key]
    assert not form.temp_path.exists()


def test_an_s3_rewrite_replaces_the_object_under_its_key_with_one_put(bucket, on_bucket, monkeypatch) -> None:
    (raw, name), (service, _) = bucket, on_bucket
    asset = service.uploads.create(ADMIN, upload_form(service, png_bytes(120, 90), runenrichment="false"))
    puts: list[str] = []
    put_bytes = S3Storage.put_bytes
    monkeypatch.setattr(
        S3Storage,
        "put_bytes",
        lambda self, key, *args, **kwargs: (puts.append(key), put_bytes(self, key, *args, **kwargs))[1],
    )
    after = service.skill_runs.run(ADMIN, asset.id, "watermark", {"opacity": 1})["asset"]
    assert after.storage_key == asset.storage_key and after.checksum_sha256 != asset.checksum_sha256
    (thumbnail,) = after.derivatives
    assert puts == [thumbnail.storage_key, asset.storage_key]  # the new thumbnail first, one PUT for the original
    assert objects_in(raw, name) == sorted([asset.storage_key, thumbnail.storage_key])
    stored = raw.get_object(Bucket=name, Key=asset.storage_key)["Body"].read()
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (after.size, after.checksum_sha256)
    assert service.catalog.cleanup.rewrite_notes() == [] and service.catalog.cleanup.pending() == []


# -- jobs that keep failing ------------------------------------------------------------------------------------


def test_a_job_that_keeps_killing_the_server_is_given_up(services) -> None:
    service = services(workers=0)
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="true"))
    for attempt in range(MAX_JOB_ATTEMPTS):  # starts that each died while running the job
        if attempt:
            assert service.catalog.jobs.recover(MAX_JOB_ATTEMPTS) == 1  # the restart
        assert len(service.catalog.jobs.claim("this-server", LEASE, MAX_JOB_ATTEMPTS)) == 1
    close(service)

    restarted = services(workers=1)
    restarted.start()
    assert restarted.catalog.assets.get(asset.id).status == "failed"
    assert restarted.catalog.jobs.queued_count() == 0


def test_an_unexpected_error_in_enrichment_fails_the_asset_instead_of_leaving_it_processing(services) -> None:
    service = services(workers=1)
    service.enrichment._enrich = lambda job, context, executions: 1 / 0
    service.start()
    asset = service.uploads.create(ADMIN, upload_form(service, runenrichment="true"))
    assert service.enrichment.workers.wait_idle(timeout=30)
    assert service.catalog.assets.get(asset.id).status == "failed"
    assert service.catalog.jobs.queued_count() == 0
