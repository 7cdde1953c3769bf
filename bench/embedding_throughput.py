"""Embedding throughput through the worker against a bare open_clip loop, same images, same model.

Ours: an ``AssetService`` with ``enrichment_skills=("embed",)`` and the real worker pool (2 workers, queued jobs taken
in batches): decode, preprocess, one batched forward pass per batch, and the catalog write of every embedding
(plus the in-memory search index). The assets are uploaded first with their jobs queued; the clock runs from
``service.start()`` until the pool is idle, with the model already loaded.

Baseline: the loop an open_clip user writes: open each file, preprocess, stack a batch of the same size, encode,
normalise. Same ViT-B-32 (random weights: the cost is the same as real ones), same images, same batch size.
Run in the order baseline, ours, baseline; the ratio is against the mean of the two baseline runs.

Goal (issue 3): ours at least 85% of the bare loop.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy
from benchlib import write_json
from PIL import Image, ImageDraw

from jupyter_assets.auth import ALL_SCOPES, Principal
from jupyter_assets.model import file_sha256
from jupyter_assets.processing.enrichment import JOB_BATCH
from jupyter_assets.service import AssetService, ServiceConfig
from jupyter_assets.skills.models import ModelSettings
from jupyter_assets.uploads import UploadForm

MODEL = "ViT-B-32"
GOAL = 0.85


def photo(seed: int, size: tuple[int, int]) -> bytes:
    """A 'photo': smooth gradients, shapes and sensor-like noise, saved as a quality-90 JPEG."""
    rng = numpy.random.default_rng(seed)
    width, height = size
    x = numpy.linspace(0, 1, width, dtype=numpy.float32)[None, :, None]
    y = numpy.linspace(0, 1, height, dtype=numpy.float32)[:, None, None]
    base = 255 * (x * rng.random(3) + y * rng.random(3)) / 2
    noise = rng.normal(0, 12, (height, width, 3))
    image = Image.fromarray(numpy.clip(base + noise, 0, 255).astype(numpy.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        radius = int(rng.integers(10, width // 4))
        draw.ellipse((x0, y0, x0 + radius, y0 + radius), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def bare_loop(model, preprocess, paths: list[Path], threads: int) -> float:
    """Images per second of the plain open_clip loop, with torch's default threads (the service sets its own)."""
    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    for start in range(0, len(paths), JOB_BATCH):
        batch = torch.stack([preprocess(Image.open(path).convert("RGB")) for path in paths[start : start + JOB_BATCH]])
        with torch.inference_mode():
            features = model.encode_image(batch)
        torch.nn.functional.normalize(features, dim=-1).numpy()
    return len(paths) / (time.perf_counter() - started)


def through_the_worker(root: Path, checkpoint: Path, images: list[bytes]) -> tuple[float, int]:
    """Images per second from queued jobs to committed embeddings, and how many embeddings were stored."""
    settings = ModelSettings(clip_model=MODEL, clip_pretrained=str(checkpoint))
    config = ServiceConfig(root, "http://127.0.0.1", enrichment_skills=("embed",), models=settings)
    service = AssetService(config)
    try:
        service.models.clip()  # loaded before the clock starts, as in a server that has been up a while
        principal = Principal("bench", ALL_SCOPES, "api_key")
        for number, data in enumerate(images):
            descriptor, path = service.uploads.new_incoming_file()
            with open(descriptor, "wb") as handle:
                handle.write(data)
            form = UploadForm(True, f"photo-{number}.jpg", "image/jpeg", path, len(data), file_sha256(path))
            service.uploads.create(principal, form)  # runEnrichment defaults to true: the job waits in the queue
        started = time.perf_counter()
        service.start()
        if not service.enrichment.workers.wait_idle(3600):
            raise RuntimeError("the worker pool did not finish")
        rate = len(images) / (time.perf_counter() - started)
        stored = len(service.catalog.assets.embeddings(MODEL, service.models.clip().weights)[0])
        return rate, stored
    finally:
        service.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images")
    parser.add_argument("--images", type=int, help="how many images (default 96, quick 32)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    count = args.images or (32 if args.quick else 96)

    import open_clip
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-embed-") as folder:
        work = Path(folder)
        images = [photo(seed, (1024, 768)) for seed in range(count)]
        paths = []
        for number, data in enumerate(images):
            paths.append(work / f"photo-{number}.jpg")
            paths[-1].write_bytes(data)
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(MODEL)
        checkpoint = work / "vit-b-32-random.pt"
        torch.save(model.state_dict(), checkpoint)
        model.eval()
        threads = torch.get_num_threads()
        print(f"{count} JPEGs of 1024x768, {MODEL} (random weights), batch {JOB_BATCH}, torch threads "
              f"{threads}", flush=True)  # fmt: skip

        bare_loop(model, preprocess, paths[:JOB_BATCH], threads)  # warm-up: first-call allocations
        first = bare_loop(model, preprocess, paths, threads)
        print(f"  bare open_clip loop:   {first:6.2f} images/s", flush=True)
        ours, stored = through_the_worker(work / "library", checkpoint, images)
        print(f"  through the worker:    {ours:6.2f} images/s ({stored} embeddings stored)", flush=True)
        second = bare_loop(model, preprocess, paths, threads)
        print(f"  bare open_clip loop:   {second:6.2f} images/s", flush=True)

    baseline = (first + second) / 2
    ratio = ours / baseline
    verdict = "PASS" if ratio >= GOAL and stored == count else "FAIL"
    print(f"\nworker / bare loop: {ratio:.2f}x (goal >= {GOAL}x): {verdict}")
    write_json(
        args.json,
        {
            "images": count,
            "bare_images_per_s": [first, second],
            "worker_images_per_s": ours,
            "embeddings_stored": stored,
            "ratio": ratio,
            "goal": GOAL,
            "pass": verdict == "PASS",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
