"""Crash recovery of uploads: the row is committed while the bytes wait in incoming/<id>.upload."""

from __future__ import annotations

import hashlib
from pathlib import Path

from jupyter_assets.auth import ALL_SCOPES, Principal
from jupyter_assets.model import ListQuery
from jupyter_assets.service import AssetService, ServiceConfig, UploadForm

from conftest import png_bytes

ADMIN = Principal("tester", ALL_SCOPES, "api_key")


def make_service(root: Path) -> AssetService:
    return AssetService(ServiceConfig(root_dir=root, public_base_url="http://assets.test", workers=1))


def incoming_upload(service: AssetService, data: bytes, **fields: str) -> UploadForm:
    descriptor, path = service.new_incoming_file()
    with open(descriptor, "wb") as handle:
        handle.write(data)
    return UploadForm(
        file_received=True,
        file_name="crash.png",
        content_type="image/png",
        temp_path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        fields={"runenrichment": "true", **fields},
    )


def test_committed_row_with_incoming_file_is_stored_and_enriched(tmp_path: Path) -> None:
    data = png_bytes(300, 200)
    service = make_service(tmp_path)
    form = incoming_upload(service, data)
    original_put = service.storage.put
    service.storage.put = lambda key, source: None  # the crash: the bytes never reach storage
    asset = service._create_asset(ADMIN, form)
    service.storage.put = original_put
    service.catalog.close()
    assert form.temp_path.exists() and not (tmp_path / "files" / asset.storage_key).exists()

    restarted = make_service(tmp_path)
    restarted.start()
    try:
        assert restarted.workers.wait_idle(timeout=60)
        assert (tmp_path / "files" / asset.storage_key).read_bytes() == data
        assert not list((tmp_path / "incoming").iterdir())
        stored = restarted.catalog.get_asset_detail(asset.id)
        assert stored.status == "ready"
        assert [d.kind for d in stored.derivatives] == ["thumbnail_256"]
    finally:
        restarted.close()


def test_incoming_file_without_a_row_is_dropped(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    form = incoming_upload(service, png_bytes())  # a crash before the commit: only the incoming file exists
    service.close()
    restarted = make_service(tmp_path)
    restarted.start()
    try:
        assert not form.temp_path.exists()
        assert restarted.catalog.list_assets(ListQuery(), None).total == 0
        assert not (tmp_path / "files").exists() or not any((tmp_path / "files").rglob("*.png"))
    finally:
        restarted.close()
