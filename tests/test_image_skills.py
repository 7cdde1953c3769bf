"""The Pillow skills over HTTP (thumbnail, exif-strip, format-convert, watermark), and the perceptual hash."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from pathlib import Path

import duckdb
import pytest
import requests
from PIL import Image, ImageChops, ImageCms, ImageDraw
from urllib3 import encode_multipart_formdata

from jupyter_assets.auth import Principal
from jupyter_assets.images import decode
from jupyter_assets.service import AssetService, ServiceConfig
from jupyter_assets.skills import run_skill
from jupyter_assets.skills.image import perceptual_hash
from jupyter_assets.uploads import UploadForm

from conftest import Api, StandaloneServer, assert_error, jupyter_server_config, png_bytes

DARK = (20, 30, 40)
ADMIN = Principal("tester", frozenset({"assets:read", "assets:write", "assets:delete", "assets:admin"}), "api_key")


@pytest.fixture(scope="module")
def api(shared_server: StandaloneServer) -> Api:
    return shared_server.api()


# -- images -----------------------------------------------------------------------------------------------------


def scene(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """A picture with structure (a gradient, coloured shapes): what a perceptual hash is made for."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        box = [x, y, x + rng.randrange(width // 12, width // 2), y + rng.randrange(height // 12, height // 2)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Corp"  # Make
    exif[0x0110] = "Model 7"  # Model
    if orientation:
        exif[0x0112] = orientation
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})  # GPS
    return exif


def rgba_png(width: int = 80, height: int = 60) -> bytes:
    """Opaque red on the left half, fully transparent on the right."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, width // 2, height))
    return encode(image, "PNG")


# -- helpers ----------------------------------------------------------------------------------------------------


def run(api: Api, asset_id: str, skill: str, parameters: dict | None = None) -> dict:
    response = api.post(f"/api/v1/assets/{asset_id}/skills/{skill}/run", json={"parameters": parameters or {}})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def content(api: Api, asset: dict) -> bytes:
    response = api.get(f"/api/v1/assets/{asset['id']}/content", allow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


def upload(api: Api, data: bytes, content_type: str = "image/png", enrich: bool = True) -> dict:
    name = {"image/png": "x.png", "image/jpeg": "x.jpg", "image/gif": "x.gif", "image/webp": "x.webp"}[content_type]
    created = api.upload_ok(data, name=name, content_type=content_type, runEnrichment=str(enrich).lower())
    return api.wait_for_status(created["id"]) if enrich else api.get(f"/api/v1/assets/{created['id']}").json()["data"]


def thumbnail(asset: dict) -> dict:
    (derivative,) = [d for d in asset["derivatives"] if d["kind"] == "thumbnail_256"]
    return derivative


def assert_stored(api: Api, asset: dict, fmt: str) -> Image.Image:
    """The asset's facts describe the bytes it serves, and those bytes are a `fmt` image."""
    data = content(api, asset)
    assert len(data) == asset["size"] and hashlib.sha256(data).hexdigest() == asset["checksumSha256"]
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == fmt and image.size == (asset["width"], asset["height"])
    assert asset["storedFileName"] == asset["storageKey"].rsplit("/", 1)[-1]
    assert asset["storageKey"].endswith(asset["extension"])
    return image


def assert_thumbnail_regenerated(api: Api, before: dict, after: dict) -> bytes:
    old, new = thumbnail(before), thumbnail(after)
    assert new["publicUrl"] != old["publicUrl"] and new["createdAtUtc"] >= old["createdAtUtc"]
    assert requests.get(old["publicUrl"], timeout=10).status_code == 404  # the old derivative file is gone
    response = requests.get(new["publicUrl"], timeout=10)
    assert response.status_code == 200 and response.content[8:12] == b"WEBP"
    return response.content


def file_exists(server: StandaloneServer, key: str) -> bool:
    return (server.root / "files" / key).is_file()


# -- the skills list --------------------------------------------------------------------------------------------


def test_skills_are_listed_with_their_parameter_schemas(api: Api) -> None:
    skills = {skill["name"]: skill for skill in api.get("/api/v1/assets/skills").json()["data"]}
    names = list(skills)
    assert names.index("thumbnail") < names.index("exif-strip") < names.index("format-convert")
    assert names.index("format-convert") < names.index("watermark")
    assert skills["exif-strip"]["steps"] == ["strip_exif_metadata"]
    assert skills["exif-strip"]["description"] == "Remove Exif metadata from the original image asset."
    assert skills["format-convert"]["steps"] == ["convert_image_format"]
    assert skills["watermark"]["steps"] == ["draw_watermark"]
    convert = skills["format-convert"]["parameters"]
    assert convert["required"] == ["targetFormat"]
    assert {"webp", "jpeg", "png", "gif", "bmp", "tiff", "jpg", "tif"} == set(
        convert["properties"]["targetFormat"]["enum"]
    )
    assert convert["properties"]["keepOriginal"] == {
        "type": "boolean",
        "description": convert["properties"]["keepOriginal"]["description"],
        "default": False,
    }
    watermark = skills["watermark"]["parameters"]["properties"]
    assert watermark["text"]["default"] == "jupyter-assets"
    assert (watermark["opacity"]["minimum"], watermark["opacity"]["maximum"], watermark["opacity"]["default"]) == (
        0,
        1,
        0.5,
    )
    assert (watermark["fontSize"]["type"], watermark["fontSize"]["minimum"], watermark["fontSize"]["default"]) == (
        "integer",
        1,
        36,
    )
    assert watermark["position"]["enum"] == ["bottomRight", "bottomLeft", "center", "topRight", "topLeft"]
    for skill in skills.values():
        parameters = skill["parameters"]
        assert parameters["type"] == "object"
        assert all({"type", "description"} <= set(p) for p in parameters["properties"].values())


@pytest.mark.parametrize(
    ("skill", "parameters", "problem"),
    [
        ("format-convert", {}, "'targetFormat' is required"),
        ("format-convert", {"targetFormat": "jpeg2000"}, "'targetFormat' must be one of"),
        ("format-convert", {"targetFormat": "png", "keepOriginal": "maybe"}, "'keepOriginal' must be a boolean"),
        ("watermark", {"opacity": 2}, "'opacity' must be at most 1"),
        ("watermark", {"opacity": -0.1}, "'opacity' must be at least 0"),
        ("watermark", {"fontSize": 0}, "'fontSize' must be at least 1"),
        ("watermark", {"fontSize": 12.5}, "'fontSize' must be a integer"),
        ("watermark", {"position": "middle"}, "'position' must be one of"),
        ("exif-strip", {"quality": 3}, "unknown parameter 'quality'"),
    ],
)
def test_invalid_parameters_are_400_before_anything_runs(api: Api, skill: str, parameters: dict, problem: str) -> None:
    asset = upload(api, png_bytes(40, 30), enrich=False)
    response = api.post(f"/api/v1/assets/{asset['id']}/skills/{skill}/run", json={"parameters": parameters})
    error = assert_error(response, 400, "skill_parameters_invalid")
    assert problem in error["message"]
    after = api.get(f"/api/v1/assets/{asset['id']}").json()["data"]
    assert after["checksumSha256"] == asset["checksumSha256"] and after["latestExecutionSummary"] is None


# -- format-convert ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "fmt", "content_type", "extension"),
    [
        ("webp", "WEBP", "image/webp", ".webp"),
        ("jpeg", "JPEG", "image/jpeg", ".jpg"),
        ("JPG", "JPEG", "image/jpeg", ".jpg"),
        ("gif", "GIF", "image/gif", ".gif"),
        ("bmp", "BMP", "image/bmp", ".bmp"),
        ("tiff", "TIFF", "image/tiff", ".tiff"),
        ("Tif", "TIFF", "image/tiff", ".tiff"),
        ("png", "PNG", "image/png", ".png"),
    ],
)
def test_format_convert_replaces_the_original(
    shared_server: StandaloneServer, api: Api, target: str, fmt: str, content_type: str, extension: str
) -> None:
    before = upload(api, encode(scene(1, 120, 90), "PNG"))
    result = run(api, before["id"], "format-convert", {"TargetFormat": target})  # PascalCase, any case
    assert result["succeeded"] and result["skillName"] == "format-convert"
    assert result["steps"] == [{"name": "convert_image_format", "succeeded": True, "errorMessage": None}]
    after = result["asset"]
    assert (after["contentType"], after["extension"]) == (content_type, extension)
    assert (after["width"], after["height"]) == (120, 90)
    # A new extension, the same date and hex (the asset's id); the same format keeps the key.
    assert after["storageKey"] == before["storageKey"].rsplit(".", 1)[0] + extension
    image = assert_stored(api, after, fmt)
    if fmt == "GIF":
        assert image.mode == "P"
    if fmt != "PNG":  # the old file is gone, and so is its public address
        assert not file_exists(shared_server, before["storageKey"])
        assert requests.get(before["publicUrl"], timeout=10).status_code == 404
    assert requests.get(after["publicUrl"], timeout=10).content == content(api, after)
    assert_thumbnail_regenerated(api, before, after)
    summary = after["latestExecutionSummary"]
    assert summary["skillName"] == "format-convert" and summary["succeeded"]


def test_format_convert_keep_original_keeps_the_old_file(shared_server: StandaloneServer, api: Api) -> None:
    before = upload(api, encode(scene(2, 90, 70), "PNG"))
    result = run(api, before["id"], "convert_image_format", {"targetFormat": "webp", "KeepOriginal": True})
    assert result["succeeded"]
    after = result["asset"]
    assert_stored(api, after, "WEBP")
    assert file_exists(shared_server, before["storageKey"])
    assert file_exists(shared_server, after["storageKey"])
    assert requests.get(before["publicUrl"], timeout=10).status_code == 404  # kept, but no longer served
    kept = (shared_server.root / "files" / before["storageKey"]).read_bytes()
    # A conversion back to PNG would take the kept file's key (the asset's id with .png) and overwrite it (and a
    # run of it that failed would leave the kept file to the sweep): it is refused, and nothing changes.
    back = run(api, before["id"], "convert-image-format", {"targetFormat": "png"})
    assert back["succeeded"] is False
    assert "kept by an earlier conversion" in back["steps"][0]["errorMessage"]
    assert (
        back["asset"]["storageKey"] == after["storageKey"]
        and back["asset"]["checksumSha256"] == after["checksumSha256"]
    )
    assert (shared_server.root / "files" / before["storageKey"]).read_bytes() == kept
    assert_stored(api, back["asset"], "WEBP")
    # A conversion to a third format with keepOriginal false removes the file it replaces (the WebP).
    again = run(api, before["id"], "convert-image-format", {"targetFormat": "jpeg", "keepOriginal": "false"})["asset"]
    assert_stored(api, again, "JPEG")
    assert not file_exists(shared_server, after["storageKey"])
    assert (shared_server.root / "files" / before["storageKey"]).read_bytes() == kept


def test_format_convert_to_its_own_format_cannot_keep_the_original(api: Api) -> None:
    before = upload(api, encode(scene(2, 90, 70), "PNG"), enrich=False)
    result = run(api, before["id"], "format-convert", {"targetFormat": "png", "keepOriginal": True})
    assert result["succeeded"] is False and "keepOriginal" in result["steps"][0]["errorMessage"]
    assert result["asset"]["checksumSha256"] == before["checksumSha256"]
    assert content(api, result["asset"]) == content(api, before)


def test_format_convert_flattens_transparency_onto_white_where_there_is_no_alpha(api: Api) -> None:
    for target, fmt in (("jpeg", "JPEG"), ("bmp", "BMP")):
        asset = upload(api, rgba_png(), enrich=False)
        converted = run(api, asset["id"], "format_convert", {"targetFormat": target})["asset"]
        image = assert_stored(api, converted, fmt).convert("RGB")
        red, white = image.getpixel((10, 30)), image.getpixel((70, 30))
        assert red[0] > 230 and red[1] < 30 and red[2] < 30, red
        assert min(white) > 245, white
    # Formats with alpha keep it.
    for target, fmt in (("webp", "WEBP"), ("png", "PNG"), ("gif", "GIF"), ("tiff", "TIFF")):
        asset = upload(api, rgba_png(), enrich=False)
        converted = run(api, asset["id"], "format-convert", {"targetFormat": target})["asset"]
        image = assert_stored(api, converted, fmt).convert("RGBA")
        assert image.getpixel((70, 30))[3] == 0 and image.getpixel((10, 30))[3] == 255, target


def test_format_convert_from_jpeg_applies_the_orientation(api: Api) -> None:
    # Stored 80x40, left half black; orientation 6 shows it turned 90 degrees clockwise (40x80, black on top).
    picture = Image.new("RGB", (80, 40), "white")
    picture.paste((0, 0, 0), (0, 0, 40, 40))
    data = encode(picture, "JPEG", quality=95, exif=exif_with_gps(orientation=6))
    asset = upload(api, data, "image/jpeg", enrich=False)
    converted = run(api, asset["id"], "format-convert", {"targetFormat": "png"})["asset"]
    image = assert_stored(api, converted, "PNG").convert("L")
    assert image.size == (40, 80) and (converted["width"], converted["height"]) == (40, 80)
    assert image.getpixel((20, 10)) < 40 and image.getpixel((20, 70)) > 215
    assert 0x0112 not in image.getexif()  # the EXIF travels, without the orientation it no longer needs
    assert image.getexif()[0x010F] == "SpyCam Corp"


def test_format_convert_to_a_format_we_cannot_read_back_is_refused(api: Api) -> None:
    asset = upload(api, png_bytes(30, 20), enrich=False)
    response = api.post(
        f"/api/v1/assets/{asset['id']}/skills/format-convert/run", json={"parameters": {"targetFormat": "tga"}}
    )
    assert_error(response, 400, "skill_parameters_invalid")
    assert api.get(f"/api/v1/assets/{asset['id']}").json()["data"]["checksumSha256"] == asset["checksumSha256"]


def test_animations_are_refused_rather_than_flattened(api: Api) -> None:
    frames = [Image.new("RGB", (20, 20), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    asset = upload(api, buffer.getvalue(), "image/gif", enrich=False)
    for skill, parameters in (("format-convert", {"targetFormat": "png"}), ("watermark", {})):
        result = run(api, asset["id"], skill, parameters)
        assert result["succeeded"] is False and "3 frames" in result["steps"][0]["errorMessage"]
        assert result["asset"]["checksumSha256"] == asset["checksumSha256"]


# -- exif-strip -------------------------------------------------------------------------------------------------


def test_exif_strip_removes_exif_gps_xmp_and_comments_from_a_jpeg(api: Api) -> None:
    picture = scene(3, 160, 120)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/>secret</x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(picture, "JPEG", quality=90, exif=exif_with_gps(), comment=b"shot at home", xmp=xmp, icc_profile=icc)
    original = Image.open(io.BytesIO(data))
    assert original.getexif().get_ifd(0x8825) and original.info["comment"] and original.info["xmp"]
    before = upload(api, data, "image/jpeg")
    result = run(api, before["id"], "exif-strip")
    assert result["succeeded"] and result["steps"] == [
        {"name": "strip_exif_metadata", "succeeded": True, "errorMessage": None}
    ]
    after = result["asset"]
    image = assert_stored(api, after, "JPEG")
    assert "exif" not in image.info and len(image.getexif()) == 0
    assert "comment" not in image.info and "xmp" not in image.info
    assert image.info["icc_profile"] == icc  # colour management is not a leak, and dropping it shifts colours
    assert b"SpyCam" not in content(api, after) and b"secret" not in content(api, after)
    assert after["checksumSha256"] != before["checksumSha256"] and after["contentType"] == "image/jpeg"
    # Re-encoded with the original's own quantisation tables: the quality is kept.
    assert image.quantization == original.quantization
    assert ImageChops.difference(image.convert("RGB"), original.convert("RGB")).getextrema()[0][1] < 40
    assert_thumbnail_regenerated(api, before, after)


def test_exif_strip_turns_the_pixels_by_the_orientation_it_removes(api: Api) -> None:
    picture = Image.new("RGB", (80, 40), "white")
    picture.paste((0, 0, 0), (0, 0, 40, 40))
    data = encode(picture, "JPEG", quality=95, exif=exif_with_gps(orientation=8))  # 90 degrees anticlockwise
    before = upload(api, data, "image/jpeg")
    assert (before["width"], before["height"]) == (40, 80)  # the picture as displayed
    assert (thumbnail(before)["width"], thumbnail(before)["height"]) == (40, 80)  # the thumbnail honours it too
    after = run(api, before["id"], "strip-exif-metadata")["asset"]
    image = assert_stored(api, after, "JPEG").convert("L")
    assert image.size == (40, 80) and len(image.getexif()) == 0
    assert image.getpixel((20, 70)) < 40 and image.getpixel((20, 10)) > 215  # black at the bottom


def test_exif_strip_on_png_and_webp(api: Api) -> None:
    picture = scene(4, 100, 80)
    png = encode(picture, "PNG", exif=exif_with_gps())
    assert Image.open(io.BytesIO(png)).getexif()
    after = run(api, upload(api, png)["id"], "exif_strip")["asset"]
    image = assert_stored(api, after, "PNG")
    assert len(image.getexif()) == 0
    assert ImageChops.difference(image.convert("RGB"), picture).getbbox() is None  # lossless stays lossless

    webp = encode(picture, "WEBP", lossless=True, exif=exif_with_gps())
    after = run(api, upload(api, webp, "image/webp")["id"], "exif-strip")["asset"]
    image = assert_stored(api, after, "WEBP")
    assert len(image.getexif()) == 0
    assert ImageChops.difference(image.convert("RGB"), picture).getbbox() is None


def test_exif_strip_without_exif_changes_nothing(api: Api) -> None:
    for data, content_type in ((png_bytes(50, 40), "image/png"), (encode(scene(5, 60, 40), "JPEG"), "image/jpeg")):
        before = upload(api, data, content_type)
        result = run(api, before["id"], "exif-strip")
        assert result["succeeded"]
        after = result["asset"]
        assert after["checksumSha256"] == before["checksumSha256"] and after["storageKey"] == before["storageKey"]
        assert thumbnail(after)["publicUrl"] == thumbnail(before)["publicUrl"]
        assert content(api, after) == data


# -- rewrites keep the key ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skill", "data", "content_type"),
    [
        ("watermark", encode(scene(8, 200, 150), "PNG"), "image/png"),
        ("exif-strip", encode(scene(9, 200, 150), "JPEG", exif=exif_with_gps()), "image/jpeg"),
    ],
)
def test_rewrites_keep_the_storage_key_so_a_pasted_public_url_keeps_working(
    shared_server: StandaloneServer, api: Api, skill: str, data: bytes, content_type: str
) -> None:
    before = upload(api, data, content_type)
    assert before["storageKey"].rsplit("/", 1)[-1].split(".")[0] == before["id"].replace("-", "")
    pasted = requests.get(before["publicUrl"], timeout=10)
    assert pasted.content == data and pasted.headers["ETag"].strip('"') == before["checksumSha256"]
    after = run(api, before["id"], skill)["asset"]
    assert after["storageKey"] == before["storageKey"] and after["publicUrl"] == before["publicUrl"]
    assert after["checksumSha256"] != before["checksumSha256"] and after["updatedAtUtc"] > before["updatedAtUtc"]
    assert_stored(api, after, content_type.split("/")[1].upper())
    # The same address serves the new bytes, under a new ETag (caches revalidate): no conditional hit on the old.
    again = requests.get(before["publicUrl"], headers={"If-None-Match": pasted.headers["ETag"]}, timeout=10)
    assert again.status_code == 200 and again.content == content(api, after) != data
    assert again.headers["ETag"].strip('"') == after["checksumSha256"]
    assert_thumbnail_regenerated(api, before, after)
    hex_id = after["id"].replace("-", "")  # and no second copy under another name
    assert [path.name for path in (shared_server.root / "files").rglob(f"{hex_id}.*")] == [after["storedFileName"]]


def test_a_rewrite_of_an_original_that_changed_since_the_run_read_it_is_refused(tmp_path: Path) -> None:
    """A run that read the original before another rewrite committed would undo that rewrite: it fails instead,
    and the catalog still describes the stored bytes."""
    service = AssetService(ServiceConfig(root_dir=tmp_path / "library", public_base_url="http://127.0.0.1:1"))
    service.start()
    try:
        principal = Principal("tester", frozenset({"assets:read", "assets:write"}), "api_key")
        asset = service.uploads.create(principal, upload_form(service, encode(scene(10, 120, 90), "PNG")))
        late = service.enrichment.context(asset, service.skills.get("watermark").validate_parameters({"text": "late"}))
        late.original_bytes()  # it read the original...
        first = service.skill_runs.run(principal, asset.id, "watermark", {"text": "first"})  # ...then this committed
        assert first["succeeded"]
        execution = run_skill(service.skills.get("watermark"), late, "manual", None)
        assert execution.succeeded is False and "changed" in execution.steps[0].error_message
        stored = service.catalog.assets.get(asset.id)
        data = service.library.storage.read(stored.storage_key)
        assert stored.storage_key == asset.storage_key
        assert (len(data), hashlib.sha256(data).hexdigest()) == (stored.size, stored.checksum_sha256)
        assert stored.checksum_sha256 == first["asset"].checksum_sha256
    finally:
        service.close()


def upload_form(service: AssetService, data: bytes, content_type: str = "image/png") -> UploadForm:
    descriptor, path = service.uploads.new_incoming_file()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return UploadForm(
        file_received=True,
        file_name="x.png" if content_type == "image/png" else "x.jpg",
        content_type=content_type,
        temp_path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        fields={"runenrichment": "false"},
    )


def test_a_thumbnail_of_a_turned_jpeg_whose_row_has_the_stored_size_keeps_its_shape(tmp_path: Path) -> None:
    """Rows written before width and height were the displayed size hold the stored one: the thumbnail of such a
    row still has the picture's shape."""
    service = AssetService(ServiceConfig(root_dir=tmp_path / "library", public_base_url="http://127.0.0.1:1"))
    service.start()
    try:
        principal = Principal("tester", frozenset({"assets:read", "assets:write"}), "api_key")
        data = encode(scene(11, 400, 200), "JPEG", exif=exif_with_gps(orientation=6))
        asset = service.uploads.create(principal, upload_form(service, data, "image/jpeg"))
        assert (asset.width, asset.height) == (200, 400)
        for width, height in ((200, 400), (400, 200)):  # the displayed size, then the stored one of an old row
            service.catalog.assets.update(asset.id, {"width": width, "height": height})
            result = service.skill_runs.run(principal, asset.id, "thumbnail", None)
            (derivative,) = result["asset"].derivatives
            assert (derivative.width, derivative.height) == (128, 256)
    finally:
        service.close()


# -- watermark --------------------------------------------------------------------------------------------------


def changed_box(api: Api, before: bytes, asset: dict) -> tuple[int, int, int, int]:
    image = Image.open(io.BytesIO(content(api, asset))).convert("RGB")
    box = ImageChops.difference(image, Image.open(io.BytesIO(before)).convert("RGB")).getbbox()
    assert box is not None, "the watermark changed nothing"
    return box


def test_watermark_defaults_draw_in_the_bottom_right_corner(api: Api) -> None:
    data = encode(Image.new("RGB", (400, 300), DARK), "PNG")
    before = upload(api, data)
    result = run(api, before["id"], "watermark")
    assert result["succeeded"] and result["steps"][0]["name"] == "draw_watermark"
    after = result["asset"]
    image = assert_stored(api, after, "PNG").convert("RGB")
    left, top, right, bottom = changed_box(api, data, after)
    # Padding max(12, 36/2) = 18 from the right and bottom edges (the ink sits a pixel or two inside the box).
    assert 400 - 18 - 3 <= right <= 400 - 18 and 300 - 18 - 3 <= bottom <= 300 - 18
    assert left > 100 and top > 200  # nothing in the opposite (top-left) part
    assert image.getpixel((5, 5)) == DARK
    brightest = max(image.crop((left, top, right, bottom)).getdata())
    assert 125 < brightest[0] < 145  # white at opacity 0.5 over a dark background: about halfway
    assert after["checksumSha256"] != before["checksumSha256"] and after["size"] == len(content(api, after))
    old_thumbnail = requests.get(thumbnail(before)["publicUrl"], timeout=10).content
    assert assert_thumbnail_regenerated(api, before, after) != old_thumbnail


@pytest.mark.parametrize(
    ("position", "expect"),
    [
        ("topLeft", lambda box: box[0] >= 24 and box[0] <= 28 and box[1] <= 40 and box[2] < 360),
        ("TOPRIGHT", lambda box: box[2] <= 376 and box[2] >= 372 and box[3] < 150),
        ("bottomLeft", lambda box: box[0] >= 24 and box[0] <= 28 and box[3] <= 276 and box[1] > 150),
        ("center", lambda box: abs((box[0] + box[2]) / 2 - 200) <= 3 and abs((box[1] + box[3]) / 2 - 150) <= 6),
    ],
)
def test_watermark_positions(api: Api, position: str, expect) -> None:
    data = encode(Image.new("RGB", (400, 300), DARK), "PNG")
    after = run(api, upload(api, data, enrich=False)["id"], "draw_watermark", {"Position": position, "FontSize": 48})
    box = changed_box(api, data, after["asset"])
    assert expect(box), box  # padding max(12, 48/2) = 24


def test_watermark_text_opacity_and_font_size(api: Api) -> None:
    data = encode(Image.new("RGB", (600, 200), DARK), "PNG")
    small = run(api, upload(api, data, enrich=False)["id"], "watermark", {"fontSize": 10, "text": "ab"})["asset"]
    big = run(api, upload(api, data, enrich=False)["id"], "watermark", {"fontSize": 60, "text": "ab"})["asset"]
    small_box, big_box = changed_box(api, data, small), changed_box(api, data, big)
    assert small_box[2] >= 600 - 12 - 3 and small_box[2] <= 600 - 12  # small fonts keep 12 pixels of padding
    assert (big_box[3] - big_box[1]) > 4 * (small_box[3] - small_box[1])
    opaque = run(api, upload(api, data, enrich=False)["id"], "watermark", {"opacity": 1, "text": "WWW"})["asset"]
    image = Image.open(io.BytesIO(content(api, opaque))).convert("RGB")
    assert max(image.getdata())[0] == 255
    hidden = run(api, upload(api, data, enrich=False)["id"], "watermark", {"opacity": 0})["asset"]
    assert (
        ImageChops.difference(
            Image.open(io.BytesIO(content(api, hidden))).convert("RGB"), Image.new("RGB", (600, 200), DARK)
        ).getbbox()
        is None
    )
    blank = run(api, upload(api, data, enrich=False)["id"], "watermark", {"text": "   "})
    assert blank["succeeded"] is False and "empty" in blank["steps"][0]["errorMessage"]


def test_watermark_keeps_the_format_of_jpeg_webp_and_gif(api: Api) -> None:
    dark = Image.new("RGB", (320, 240), DARK)
    for data, content_type, fmt in (
        (encode(dark, "JPEG", quality=90, exif=exif_with_gps()), "image/jpeg", "JPEG"),
        (encode(dark, "WEBP", quality=90), "image/webp", "WEBP"),
        (encode(dark.convert("P"), "GIF"), "image/gif", "GIF"),
    ):
        after = run(api, upload(api, data, content_type)["id"], "watermark", {"opacity": 1})["asset"]
        image = assert_stored(api, after, fmt).convert("L")
        assert image.crop((200, 190, 320, 240)).getextrema()[1] > 200  # white text bottom right
        assert image.crop((0, 0, 120, 60)).getextrema()[1] < 60  # nothing top left
        if fmt == "JPEG":
            assert Image.open(io.BytesIO(content(api, after))).getexif()[0x010F] == "SpyCam Corp"  # EXIF stays


# -- thumbnail --------------------------------------------------------------------------------------------------


def test_thumbnail_of_a_large_jpeg_is_drafted_but_faithful(api: Api) -> None:
    picture = scene(6, 2400, 1800)
    asset = upload(api, encode(picture, "JPEG", quality=92), "image/jpeg")
    assert asset["status"] == "ready"
    derivative = thumbnail(asset)
    assert (derivative["width"], derivative["height"]) == (256, 192)
    made = Image.open(io.BytesIO(requests.get(derivative["publicUrl"], timeout=10).content)).convert("RGB")
    reference = picture.resize((256, 192), Image.Resampling.LANCZOS)
    difference = ImageChops.difference(made, reference).convert("L")
    mean = sum(i * n for i, n in enumerate(difference.histogram())) / (256 * 192)
    assert mean < 4, mean  # drafting is invisible at thumbnail size


def test_thumbnail_never_upscales_and_keeps_alpha(api: Api) -> None:
    asset = upload(api, rgba_png(30, 20))
    derivative = thumbnail(asset)
    assert (derivative["width"], derivative["height"]) == (30, 20)
    made = Image.open(io.BytesIO(requests.get(derivative["publicUrl"], timeout=10).content))
    assert made.mode == "RGBA" and made.getpixel((25, 10))[3] == 0


# -- perceptual hash --------------------------------------------------------------------------------------------


def distance(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def test_perceptual_hash_is_64_bits_and_stable() -> None:
    image = scene(7)
    value = perceptual_hash(image)
    assert isinstance(value, int) and 0 <= value < 2**64
    assert perceptual_hash(image.copy()) == value
    assert any(perceptual_hash(scene(seed)) >= 2**63 for seed in range(8))  # unsigned: the top bit is used
    for mode in ("L", "RGBA", "P", "CMYK", "1", "I;16", "LA"):
        assert 0 <= perceptual_hash(image.convert(mode)) < 2**64
    assert 0 <= perceptual_hash(Image.new("RGB", (1, 1))) < 2**64


def test_perceptual_hash_survives_resizing_and_reencoding_and_tells_pictures_apart() -> None:
    hashes = {}
    for seed in range(6):
        image = scene(seed)
        original = perceptual_hash(image)
        for size in ((320, 240), (160, 120), (1280, 960), (256, 192)):
            assert distance(original, perceptual_hash(image.resize(size, Image.Resampling.LANCZOS))) <= 4
        jpeg = Image.open(io.BytesIO(encode(image.resize((300, 225)), "JPEG", quality=70)))
        assert distance(original, perceptual_hash(jpeg)) <= 4
        hashes[seed] = original
    for a in hashes:
        for b in hashes:
            if a < b:
                assert distance(hashes[a], hashes[b]) >= 16, (a, b)
    noise = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    assert all(distance(perceptual_hash(noise), value) >= 12 for value in hashes.values())


def test_upload_enrichment_stores_the_perceptual_hash(tmp_path: Path) -> None:
    """In process: the catalog row the thumbnail step writes (not visible over HTTP)."""
    root = tmp_path / "library"
    service = AssetService(ServiceConfig(root_dir=root, public_base_url="http://127.0.0.1:1"))
    service.start()
    principal = Principal("tester", frozenset({"assets:read", "assets:write"}), "api_key")
    expected = {}
    try:
        for seed, (fmt, content_type) in enumerate((("JPEG", "image/jpeg"), ("PNG", "image/png"))):
            data = encode(scene(seed, 1600, 1200), fmt)
            descriptor, path = service.uploads.new_incoming_file()
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            form = UploadForm(
                file_received=True,
                file_name=f"x.{fmt.lower()}",
                content_type=content_type,
                temp_path=path,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
            asset = service.uploads.create(principal, form)
            expected[asset.id] = perceptual_hash(decode(data, 10**8))
        assert service.enrichment.workers.wait_idle(60)
        assert all(service.catalog.assets.get(asset_id).status == "ready" for asset_id in expected)
    finally:
        service.close()
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as connection:
        stored = dict(connection.execute("SELECT asset_id, phash FROM image_hashes").fetchall())
    assert stored.keys() == expected.keys()
    for asset_id, value in expected.items():
        assert distance(stored[asset_id], value) <= 4


# -- rewrites and readers ---------------------------------------------------------------------------------------


@pytest.fixture
def jp_server_config(tmp_path, monkeypatch):
    return jupyter_server_config(tmp_path / "lib", monkeypatch)


async def test_content_read_while_a_rewrite_replaces_it_is_the_new_bytes_under_their_etag(
    jp_fetch, jp_serverapp, monkeypatch
) -> None:
    """A rewrite in place can replace the file between the content lookup and its read: the answer is not the new
    bytes under the old size (a body longer or shorter than its Content-Length) but the content looked up again.
    The service's read is wrapped only to force that order; the rewrite is a real watermark run."""
    body, content_type = encode_multipart_formdata(
        {"file": ("x.png", encode(scene(12, 160, 120), "PNG"), "image/png"), "runEnrichment": "false",
         "isPublic": "false"}
    )  # fmt: skip
    uploaded = await jp_fetch("api/v1/assets", method="POST", body=body, headers={"Content-Type": content_type})
    asset_id = json.loads(uploaded.body)["data"]["id"]
    service = jp_serverapp.web_app.settings["jupyter_assets_service"]
    read_content = service.assets.read_content
    rewrites: list[dict] = []

    def rewritten_in_between(content, start, end):
        if not rewrites:
            rewrites.append(service.skill_runs.run(ADMIN, asset_id, "watermark", {"opacity": 1}))
        return read_content(content, start, end)

    monkeypatch.setattr(service.assets, "read_content", rewritten_in_between)
    response = await jp_fetch("api/v1/assets", asset_id, "content")
    (rewrite,) = rewrites
    assert rewrite["succeeded"]
    stored = service.catalog.assets.get(asset_id)
    assert stored.checksum_sha256 == rewrite["asset"].checksum_sha256
    assert response.body == service.library.storage.read(stored.storage_key)
    assert int(response.headers["Content-Length"]) == len(response.body) == stored.size
    assert response.headers["ETag"] == f'"{stored.checksum_sha256}"'


def test_a_rewrite_whose_thumbnail_fails_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    """The new thumbnail is made before the new bytes are stored: when it cannot be made, the original, its facts
    and its thumbnail stay as they were, and nothing is left behind."""
    service = AssetService(ServiceConfig(root_dir=tmp_path / "library", public_base_url="http://127.0.0.1:1"))
    service.start()
    try:
        principal = Principal("tester", frozenset({"assets:read", "assets:write"}), "api_key")
        data = encode(scene(13, 120, 90), "PNG")
        asset = service.uploads.create(principal, upload_form(service, data))
        (thumbnail,) = service.skill_runs.run(principal, asset.id, "thumbnail", None)["asset"].derivatives
        put_bytes = service.library.storage.put_bytes

        def thumbnails_fail(key: str, payload: bytes) -> None:
            if key.endswith(".webp"):
                raise OSError("no space left for thumbnails")
            put_bytes(key, payload)

        monkeypatch.setattr(service.library.storage, "put_bytes", thumbnails_fail)
        result = service.skill_runs.run(principal, asset.id, "watermark", {"opacity": 1})
        assert result["succeeded"] is False and "no space left" in result["steps"][0]["errorMessage"]
        stored = service.catalog.assets.detail(asset.id)
        assert service.library.storage.read(stored.storage_key) == data
        assert (stored.size, stored.checksum_sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert [derivative.storage_key for derivative in stored.derivatives] == [thumbnail.storage_key]
        assert service.catalog.cleanup.rewrite_notes() == [] and service.catalog.cleanup.pending() == []
        files = sorted(path for path in (tmp_path / "library" / "files").rglob("*.*") if ".partial" not in path.parts)
        assert files == sorted(
            tmp_path / "library" / "files" / key for key in (asset.storage_key, thumbnail.storage_key)
        )
    finally:
        service.close()


def test_a_rewrite_overtaken_by_another_servers_commits_nothing_of_its_own(tmp_path: Path, monkeypatch) -> None:
    """Two servers of one library do not share the rewrite lock: another server's rewrite may commit between this
    one's note and its commit. The commit is guarded by the checksum the run started from, so it fails rather than
    describe its own bytes over the other's, and the catalog then takes the facts of the bytes stored last."""
    service = AssetService(ServiceConfig(root_dir=tmp_path / "library", public_base_url="http://127.0.0.1:1"))
    service.start()
    try:
        principal = Principal("tester", frozenset({"assets:read", "assets:write"}), "api_key")
        asset = service.uploads.create(principal, upload_form(service, encode(scene(14, 120, 90), "PNG")))
        other = encode(scene(15, 120, 90), "PNG")
        put_bytes = service.library.storage.put_bytes

        def the_other_server_commits_after(key: str, payload: bytes) -> None:
            put_bytes(key, payload)
            if key == asset.storage_key:  # the other server stores its rewrite, then commits it
                put_bytes(key, other)
                facts = {"size": len(other), "checksum_sha256": hashlib.sha256(other).hexdigest()}
                service.catalog.assets.update(asset.id, facts)

        monkeypatch.setattr(service.library.storage, "put_bytes", the_other_server_commits_after)
        result = service.skill_runs.run(principal, asset.id, "watermark", {"opacity": 1})
        assert result["succeeded"] is False and "changed" in result["steps"][0]["errorMessage"]
        stored = service.catalog.assets.get(asset.id)
        data = service.library.storage.read(stored.storage_key)
        assert data == other
        assert (stored.size, stored.checksum_sha256) == (len(other), hashlib.sha256(other).hexdigest())
        assert service.catalog.cleanup.rewrite_notes() == []
    finally:
        service.close()
