"""Embeddings, zero-shot tags, captions, search by meaning and duplicates, with real open_clip code and tiny models.

The models are built from tiny open_clip configs (random weights, saved as checkpoints) and loaded through the same
`clip_pretrained=<path>` setting users use; their outputs are meaningless but the plumbing is real end to end.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import numpy
import pytest
from PIL import Image, ImageDraw

import jupyter_assets.search as search_module
import jupyter_assets.skills.models as models_module
from jupyter_assets.auth import ALL_SCOPES, Principal
from jupyter_assets.processing import Job, WorkerPool
from jupyter_assets.service import AssetService, ServiceConfig
from jupyter_assets.skills.models import ModelHub, ModelSettings, ModelUnavailableError, _save_atomically
from jupyter_assets.uploads import UploadForm

from conftest import (
    JWT_SECRET,
    Api,
    StandaloneServer,
    assert_error,
    free_port,
    model_env,
    png_bytes,
    server_env,
)


@pytest.fixture(scope="module")
def ai_server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, str]) -> StandaloneServer:
    root = tmp_path_factory.mktemp("ai") / "library"
    server = StandaloneServer(root, free_port(), server_env(**model_env(tiny_models))).start()
    yield server
    server.stop()


@pytest.fixture
def ai(ai_server: StandaloneServer) -> Api:
    api = ai_server.api()
    for item in api.get("/api/v1/assets?pageSize=100").json()["data"]["items"]:  # each test starts empty
        api.delete(f"/api/v1/assets/{item['id']}")
    return api


def picture(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A picture with structure (gradient, shapes) that perceptual hashes and models can tell apart."""
    rng = numpy.random.default_rng(seed)
    width, height = size
    gradient = numpy.linspace(0, 255, width, dtype=numpy.float32)[None, :, None] * rng.random(3)[None, None, :]
    pixels = numpy.broadcast_to(gradient, (height, width, 3)).astype(numpy.uint8)
    image = Image.fromarray(numpy.ascontiguousarray(pixels))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        w, h = int(rng.integers(10, width // 2)), int(rng.integers(10, height // 2))
        draw.rectangle((x, y, x + w, y + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def encoded(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def upload_enriched(api: Api, data: bytes, **fields) -> dict:
    created = api.upload_ok(data, runEnrichment="true", **fields)
    asset = api.wait_for_status(created["id"])
    assert asset["status"] == "ready", asset
    return asset


def result(asset: dict, kind: str) -> dict:
    matches = [r for r in asset["structuredResults"] if r["kind"] == kind]
    assert matches, f"no {kind} result in {asset['structuredResults']}"
    return json.loads(matches[0]["payloadJson"])


def user_token(subject: str) -> str:
    claims = {"sub": subject, "scope": "assets:read assets:write assets:delete", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


# -- the model code itself ----------------------------------------------------------------------------------


def test_image_embeddings_are_unit_norm_and_deterministic(tiny_models: dict[str, str]) -> None:
    settings = ModelSettings(clip_model=tiny_models["tiny-clip"], clip_pretrained=tiny_models["tiny-clip-weights"])
    model = ModelHub(settings, logging.getLogger("test")).clip()
    images = [picture(1), picture(2)]
    first, again = model.encode_images(images), model.encode_images(list(reversed(images)))
    assert first.shape == (2, 64) and first.dtype == numpy.float32
    numpy.testing.assert_allclose(numpy.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    numpy.testing.assert_allclose(first, again[::-1], atol=1e-5)  # same image, same vector, in any batch
    assert not numpy.allclose(first[0], first[1])
    assert model.weights.startswith("tiny-clip.pt@sha256:")


def test_missing_weights_name_the_setting_to_change(tmp_path: Path) -> None:
    hub = ModelHub(ModelSettings(clip_pretrained=str(tmp_path / "missing.pt")), logging.getLogger("test"))
    with pytest.raises(Exception, match="clip_pretrained") as raised:
        hub.clip()
    assert type(raised.value).__name__ == "ModelUnavailableError"


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, jupyter_assets.app, jupyter_assets.service; print('torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


def test_workers_saving_the_same_vocabulary_at_once_all_succeed(tmp_path: Path) -> None:
    # Two enrichment workers that meet a vocabulary for the first time both compute and save it.
    path = tmp_path / "text-embeddings.npy"
    matrix = numpy.arange(12, dtype=numpy.float32).reshape(3, 4)

    def save_many() -> None:
        for _ in range(50):
            _save_atomically(path, matrix)

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(save_many) for _ in range(8)]:
            future.result()  # a save that lost its partial file to another one raises here
    numpy.testing.assert_array_equal(numpy.load(path), matrix)
    assert [p.name for p in tmp_path.iterdir()] == ["text-embeddings.npy"]


def test_idle_workers_claim_again_when_a_job_is_queued() -> None:
    waiting = [Job(str(n), str(n), ("embed",)) for n in range(5)]
    processed: list[str] = []
    lock = threading.Lock()

    def claim() -> list[Job]:
        with lock:
            batch = waiting[:2]
            del waiting[:2]
            return batch

    pool = WorkerPool(claim, lambda jobs: processed.extend(job.id for job in jobs), 2, logging.getLogger("test"))
    pool.start()
    assert pool.wait_idle(10)
    assert sorted(processed) == ["0", "1", "2", "3", "4"]
    waiting.append(Job("late", "late", ("embed",)))
    pool.wake()
    assert pool.wait_idle(10)
    pool.stop()
    assert processed[-1] == "late"


# -- enrichment, search and duplicates over HTTP ------------------------------------------------------------


def test_upload_enrichment_embeds_and_tags_in_batches(ai: Api) -> None:
    created = [ai.upload_ok(encoded(picture(seed)), runEnrichment="true") for seed in range(6)]
    for asset in created:
        ready = ai.wait_for_status(asset["id"])
        assert ready["status"] == "ready"
        assert [d["kind"] for d in ready["derivatives"]] == ["thumbnail_256"]
        tags = result(ready, "tags")
        assert tags["model"].startswith("tiny-clip/tiny-clip.pt@sha256:")
        assert ready["latestExecutionSummary"]["triggerSource"] == "upload"
        # Every enriched asset is its own nearest neighbour.
        similar = ai.get(f"/api/v1/assets/{asset['id']}/similar?limit=3").json()["data"]
        assert similar["items"][0]["id"] == asset["id"]
        assert similar["items"][0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert [i["score"] for i in similar["items"]] == sorted((i["score"] for i in similar["items"]), reverse=True)
    stats = ai.get("/api/v1/assets/usage-stats").json()["data"]
    assert stats["mostActiveSkill"]["runCount"] == 6  # thumbnail, embed and tags ran once per asset


def test_text_search_ranks_by_score_and_keeps_filters(ai: Api) -> None:
    pngs = [upload_enriched(ai, encoded(picture(seed))) for seed in range(4)]
    jpeg = upload_enriched(ai, encoded(picture(9), "JPEG"), name="photo.jpg", content_type="image/jpeg")
    no_embedding = ai.upload_ok(encoded(picture(10)))  # no enrichment: no embedding, never in the results
    body = ai.get("/api/v1/assets?text=a+red+square+on+a+blue+background").json()["data"]
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5 and body["total"] == 5
    assert no_embedding["id"] not in {item["id"] for item in body["items"]}
    only_png = ai.get("/api/v1/assets?text=a+photo&contentType=image/png").json()["data"]
    assert {item["id"] for item in only_png["items"]} == {asset["id"] for asset in pngs} and only_png["total"] == 4
    second_page = ai.get("/api/v1/assets?text=a+photo&page=2&pageSize=2").json()["data"]
    first_page = ai.get("/api/v1/assets?text=a+photo&page=1&pageSize=2").json()["data"]
    everything = ai.get("/api/v1/assets?text=a+photo").json()["data"]
    assert [i["id"] for i in first_page["items"] + second_page["items"]] == [i["id"] for i in everything["items"]][:4]
    assert jpeg["id"] in {item["id"] for item in everything["items"]}
    assert_error(ai.get("/api/v1/assets?text=" + "x" * 1001), 400, "request_invalid")


def test_search_never_shows_other_owners_private_assets(ai: Api) -> None:
    alice, bob = ai.as_(user_token("alice")), ai.as_(user_token("bob"))
    private = upload_enriched(alice, encoded(picture(1)), isPublic="false")
    public = upload_enriched(alice, encoded(picture(2)), isPublic="true")
    bobs = upload_enriched(bob, encoded(picture(1)), isPublic="false")  # the same bytes as alice's private one
    seen_by_bob = {item["id"] for item in bob.get("/api/v1/assets?text=anything").json()["data"]["items"]}
    assert seen_by_bob == {public["id"], bobs["id"]}
    similar = bob.get(f"/api/v1/assets/{bobs['id']}/similar").json()["data"]["items"]
    assert private["id"] not in {item["id"] for item in similar}
    assert_error(bob.get(f"/api/v1/assets/{private['id']}/similar"), 404, "asset_not_found")
    groups = bob.get("/api/v1/assets/duplicates").json()["data"]["groups"]
    assert all(private["id"] not in group["assetIds"] for group in groups)
    admin_groups = ai.get("/api/v1/assets/duplicates").json()["data"]["groups"]
    assert {"reason": "exact", "assetIds": sorted([private["id"], bobs["id"]]), "score": 1.0} in admin_groups


def test_duplicates_find_exact_near_and_leave_unrelated_alone(ai: Api) -> None:
    original = picture(5, (400, 300))
    first = upload_enriched(ai, encoded(original))
    copy = upload_enriched(ai, encoded(original))
    resized = upload_enriched(ai, encoded(original.resize((200, 150)), "JPEG"), content_type="image/jpeg")
    unrelated = upload_enriched(ai, encoded(picture(77, (400, 300))))
    groups = ai.get("/api/v1/assets/duplicates").json()["data"]["groups"]
    exact = [g for g in groups if g["reason"] == "exact"]
    assert exact == [{"reason": "exact", "assetIds": sorted([first["id"], copy["id"]]), "score": 1.0}]
    near = [g for g in groups if g["reason"] == "near"]
    assert [sorted(g["assetIds"]) for g in near] == [sorted([first["id"], copy["id"], resized["id"]])]
    assert all(unrelated["id"] not in g["assetIds"] for g in exact + near)
    # Similar groups come from the (random, tiny) model: check them against the scores `similar` reports.
    for group in (g for g in groups if g["reason"] == "similar"):
        assert group["score"] >= 0.95
        for member in group["assetIds"]:
            neighbours = ai.get(f"/api/v1/assets/{member}/similar").json()["data"]["items"]
            assert any(n["id"] in group["assetIds"] and n["id"] != member and n["score"] >= 0.95 for n in neighbours)
    assert_error(ai.get("/api/v1/assets/duplicates?threshold=0.2"), 400, "request_invalid")
    assert_error(ai.get("/api/v1/assets/duplicates?threshold=abc"), 400, "request_invalid")


def test_tags_respect_top_k_threshold_and_vocabulary(ai: Api) -> None:
    asset = ai.upload_ok(encoded(picture(3)))
    vocabulary = ["cat", "dog", "car", "tree", "beach"]

    def tags(**parameters) -> list[dict]:
        response = ai.post(f"/api/v1/assets/{asset['id']}/skills/tags/run", json={"parameters": parameters})
        assert response.status_code == 200 and response.json()["data"]["succeeded"], response.text
        return result(response.json()["data"]["asset"], "tags")["tags"]

    every = tags(vocabulary=vocabulary, topK=5, threshold=0)
    assert sorted(t["label"] for t in every) == sorted(vocabulary)
    assert sum(t["score"] for t in every) == pytest.approx(1.0, abs=1e-3)  # probabilities over the vocabulary
    assert [t["score"] for t in every] == sorted((t["score"] for t in every), reverse=True)
    assert tags(vocabulary=vocabulary, topK=2, threshold=0) == every[:2]
    assert every[2]["score"] > every[3]["score"]
    cut = (every[2]["score"] + every[3]["score"]) / 2
    assert [t["label"] for t in tags(Vocabulary=vocabulary, TopK=5, Threshold=cut)] == [t["label"] for t in every[:3]]
    assert tags(vocabulary=vocabulary, threshold=1) == []
    assert len(tags(topK=7, threshold=0)) == 7  # the shipped vocabulary
    for bad in ({"topK": 0}, {"threshold": 2}, {"vocabulary": []}, {"vocabulary": "cat"}, {"vocabulary": [""]}):
        response = ai.post(f"/api/v1/assets/{asset['id']}/skills/tags/run", json={"parameters": bad})
        assert_error(response, 400, "skill_parameters_invalid")


def test_caption_fills_only_empty_texts(ai: Api) -> None:
    blank = ai.upload_ok(encoded(picture(4)))
    described = ai.upload_ok(encoded(picture(6)), description="my own words")
    run = ai.post(f"/api/v1/assets/{blank['id']}/skills/caption/run").json()["data"]
    assert run["succeeded"] and run["steps"] == [{"name": "generate_caption", "succeeded": True, "errorMessage": None}]
    caption = result(run["asset"], "caption")
    assert caption["caption"] and caption["model"].startswith("tiny-coca/")
    assert run["asset"]["description"] == run["asset"]["altText"] == caption["caption"]
    kept = ai.post(f"/api/v1/assets/{described['id']}/skills/ai-caption/run").json()["data"]
    assert kept["skillName"] == "caption"
    assert kept["asset"]["description"] == "my own words"
    assert kept["asset"]["altText"] == result(kept["asset"], "caption")["caption"]
    enrich = ai.post(f"/api/v1/assets/{blank['id']}/skills/basic_image_enrich/run").json()["data"]
    assert [s["name"] for s in enrich["steps"]] == ["generate_thumbnail", "generate_basic_caption"]
    assert enrich["succeeded"]


def test_deleted_assets_leave_the_index_and_restart_reloads_it(ai_server: StandaloneServer, ai: Api) -> None:
    keep = upload_enriched(ai, encoded(picture(11)))
    gone = upload_enriched(ai, encoded(picture(12)))
    assert ai.delete(f"/api/v1/assets/{gone['id']}").status_code == 200
    similar = ai.get(f"/api/v1/assets/{keep['id']}/similar").json()["data"]["items"]
    assert [item["id"] for item in similar] == [keep["id"]]
    ai_server.stop()
    ai_server.start()
    again = ai.get(f"/api/v1/assets/{keep['id']}/similar").json()["data"]["items"]
    assert [item["id"] for item in again] == [keep["id"]]
    assert again[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_an_asset_without_an_embedding_says_how_to_get_one(ai: Api) -> None:
    asset = ai.upload_ok(encoded(picture(13)))
    error = assert_error(ai.get(f"/api/v1/assets/{asset['id']}/similar"), 409, "asset_not_embedded")
    assert "embed" in error["message"]
    assert ai.post(f"/api/v1/assets/{asset['id']}/skills/embed/run").json()["data"]["succeeded"]
    assert ai.get(f"/api/v1/assets/{asset['id']}/similar").json()["data"]["items"][0]["id"] == asset["id"]
    assert_error(ai.get(f"/api/v1/assets/{asset['id']}/similar?limit=0"), 400, "request_invalid")


# -- without models -----------------------------------------------------------------------------------------


def test_without_a_model_search_is_409_and_skills_fail_with_the_setting(make_server) -> None:
    api = make_server().start().api()  # the defaults: no CLIP model, no caption model
    first = api.upload_ok(png_bytes(40, 40), runEnrichment="true")
    second = api.upload_ok(png_bytes(40, 40), runEnrichment="true")
    ready = api.wait_for_status(first["id"])
    assert ready["status"] == "ready" and ready["latestExecutionSummary"]["skillName"] == "thumbnail"
    error = assert_error(api.get("/api/v1/assets?text=a+dog"), 409, "model_unavailable")
    assert "clip_pretrained" in error["message"]
    assert_error(api.get(f"/api/v1/assets/{first['id']}/similar"), 409, "model_unavailable")
    for skill, setting in (
        ("embed", "clip_pretrained"),
        ("tags", "clip_pretrained"),
        ("caption", "caption_pretrained"),
    ):
        run = api.post(f"/api/v1/assets/{first['id']}/skills/{skill}/run").json()["data"]
        assert not run["succeeded"] and setting in run["steps"][0]["errorMessage"]
        assert run["asset"]["latestExecutionSummary"]["succeeded"] is False
    # Parameters are checked before the model is looked for.
    assert_error(
        api.post(f"/api/v1/assets/{first['id']}/skills/tags/run", json={"parameters": {"topK": -1}}),
        400,
        "skill_parameters_invalid",
    )
    api.wait_for_status(second["id"])
    groups = api.get("/api/v1/assets/duplicates").json()["data"]["groups"]
    assert {"reason": "exact", "assetIds": sorted([first["id"], second["id"]]), "score": 1.0} in groups


class UnreachableHub:
    """Stands in for huggingface.co, which cannot be reached from this machine (nor from a user's laptop without
    network): it accepts connections and answers nothing until released, as a download that hangs does; then it
    answers 404, so the download fails at once instead of after huggingface_hub's retries."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.released = threading.Event()
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            self.connected.set()
            threading.Thread(target=self._answer_when_released, args=(connection,), daemon=True).start()

    def _answer_when_released(self, connection: socket.socket) -> None:
        with connection:
            self.released.wait()
            connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.mark.duckdb_only  # about model loading and the request threads, not the catalog
def test_a_model_that_hangs_while_loading_never_blocks_reads_and_then_fails_fast(
    make_server, tiny_models: dict[str, str], tmp_path: Path
) -> None:
    """Without network, a caption tag hung every caption run for 14-50 s, and eight runs at once left a plain list
    waiting 44 s. Model loads run apart from the reads (and from the CLIP model's), and a failed load is
    remembered."""
    hub = UnreachableHub()
    api = (
        make_server(
            JUPYTER_ASSETS_CLIP_MODEL=tiny_models["tiny-clip"],
            JUPYTER_ASSETS_CLIP_PRETRAINED=tiny_models["tiny-clip-weights"],
            JUPYTER_ASSETS_CAPTION_PRETRAINED="mscoco_finetuned_laion2b_s13b_b90k",
            HF_ENDPOINT=hub.url,
            HF_HOME=str(tmp_path / "hf"),
            HF_HUB_ETAG_TIMEOUT="600",
            HF_HUB_DOWNLOAD_TIMEOUT="600",
        )
        .start()
        .api()
    )
    ids = [api.upload_ok(png_bytes(20 + n, 20))["id"] for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        runs = [pool.submit(api.post, f"/api/v1/assets/{asset_id}/skills/caption/run") for asset_id in ids]
        assert hub.connected.wait(120), "the caption model never tried to download its weights"
        for _ in range(5):  # while every run waits for the model, reads are served
            assert api.get("/api/v1/assets", timeout=10).json()["data"]["total"] == 8
            assert api.get(f"/api/v1/assets/{ids[0]}", timeout=10).status_code == 200
            assert api.get("/api/v1/assets/duplicates", timeout=10).status_code == 200
            assert api.get("/api/v1/assets?text=a+cat", timeout=30).status_code == 200  # the CLIP model's own
        # ... and so are skills that need no model.
        thumbnail = api.post(f"/api/v1/assets/{ids[1]}/skills/thumbnail/run", timeout=30).json()["data"]
        assert thumbnail["succeeded"]
        assert not any(run.done() for run in runs)
        hub.released.set()
        answers = [run.result(timeout=120).json()["data"] for run in runs]
    for answer in answers:
        message = answer["steps"][0]["errorMessage"]
        assert not answer["succeeded"] and message.startswith("Check c.AssetsApp.caption_pretrained"), message
        assert len(message) < 600, message
    # The failure is remembered: another run fails at once, without asking the hub again.
    hub.released.clear()  # a new attempt would hang (and this request time out)
    again = api.post(f"/api/v1/assets/{ids[0]}/skills/caption/run", timeout=30).json()["data"]
    assert again["steps"][0]["errorMessage"].startswith("Check c.AssetsApp.caption_pretrained")


def test_a_failed_model_load_is_tried_again_only_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = ModelHub(ModelSettings(), logging.getLogger("test"))
    attempts = []

    def failing_load() -> None:
        attempts.append(1)
        raise ModelUnavailableError("no weights")

    for _ in range(3):
        with pytest.raises(ModelUnavailableError):
            hub._get("caption", failing_load)
    assert len(attempts) == 1
    monkeypatch.setattr(models_module, "RETRY_FAILED_LOAD_SECONDS", 0)
    with pytest.raises(ModelUnavailableError):
        hub._get("caption", failing_load)
    assert len(attempts) == 2


def test_vocabulary_embeddings_are_computed_once_and_kept_on_disk(tiny_models: dict[str, str], tmp_path: Path) -> None:
    settings = ModelSettings(clip_model=tiny_models["tiny-clip"], clip_pretrained=tiny_models["tiny-clip-weights"])
    first = ModelHub(settings, logging.getLogger("test"), tmp_path).clip()
    labels, templates = ("cat", "dog", "boat"), ("a photo of a {}.", "a {}.")
    computed = first.vocabulary_embeddings(labels, templates)
    assert computed.shape == (3, 64)
    numpy.testing.assert_allclose(numpy.linalg.norm(computed, axis=1), 1.0, atol=1e-5)
    assert len(list(tmp_path.glob("text-embeddings-*.npy"))) == 1
    # A new process (a new hub) reads them back instead of running the text encoder again.
    second = ModelHub(settings, logging.getLogger("test"), tmp_path).clip()
    second.encode_texts = None  # any call would fail
    numpy.testing.assert_array_equal(second.vocabulary_embeddings(labels, templates), computed)
    assert second.vocabulary_embeddings(labels, templates) is second.vocabulary_embeddings(labels, templates)


def test_the_similar_tier_is_left_out_for_libraries_too_big_to_compare_pairwise(
    tiny_models: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ModelSettings(clip_model=tiny_models["tiny-clip"], clip_pretrained=tiny_models["tiny-clip-weights"])
    service = AssetService(ServiceConfig(tmp_path / "library", "http://x", models=settings, workers=0))
    try:
        admin = Principal("admin", ALL_SCOPES, "api_key")
        ids = []
        for seed in (1, 2, 3):
            data = encoded(picture(seed))
            descriptor, path = service.uploads.new_incoming_file()
            with open(descriptor, "wb") as handle:
                handle.write(data)
            form = UploadForm(True, "p.png", "image/png", path, len(data), hashlib.sha256(data).hexdigest())
            form.fields["runenrichment"] = "false"
            ids.append(service.uploads.create(admin, form).id)
        for asset_id in ids:  # three identical embeddings: one similar group
            service.search.embedding_saved(*service.models.clip_key(), asset_id, numpy.ones(64, dtype=numpy.float32))
        assert [g["reason"] for g in service.search.duplicates(admin, 0.95)] == ["similar"]
        monkeypatch.setattr(search_module, "MAX_SIMILAR_TIER", 2)
        assert service.search.duplicates(admin, 0.95) == []
    finally:
        service.close()
