"""Thumbnail throughput on 12-megapixel JPEGs: our enrichment path against a plain Pillow loop.

Distinct 4000x3000 JPEGs (quality 90; gradients, sensor-like noise and shapes, ~3 MB each, what a phone camera
writes) are generated once into a temporary folder. Then, in each round:

* ours: the real path. An ``AssetService`` in a fresh library takes every file as an upload with enrichment (the
  catalog row and its queued ``thumbnail`` job are committed; the service is closed before any worker starts), and
  a second ``AssetService`` on the same library is started: it resumes the queued jobs in its worker pool (the
  default 2 workers), which runs the ``thumbnail`` skill (decode, EXIF orientation, resize, perceptual hash, WebP,
  derivative file and catalog rows) and marks each asset ready. Timed: from ``start()`` until
  ``workers.wait_idle()``. Uploading is not timed (``upload_throughput.py`` measures it).
* baseline: a single-threaded loop over the same files, ``Image.open(path)``, ``thumbnail((256, 256))``, save as
  WebP into memory (what one writes by hand; Pillow's ``thumbnail`` already drafts JPEGs at reduced scale).

Afterwards every asset must be ready with a 256x192 WebP thumbnail. Printed: images/s for both (best round and
median), the ratio ours/baseline (goal >= 3, from the medians) and the CPU count, since the worker pool can only
use as many cores as it has workers.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import write_json
from PIL import Image, ImageChops, ImageDraw

from jupyter_assets.auth import Principal
from jupyter_assets.service import AssetService, ServiceConfig
from jupyter_assets.uploads import UploadForm

GOAL = 3.0
SIZE = (4000, 3000)
PRINCIPAL = Principal("bench", frozenset({"assets:read", "assets:write"}), "api_key")


def make_jpeg(path: Path, seed: int) -> None:
    """A photo-like picture: smooth colour gradients, a few dozen shapes with hard edges, and Gaussian grain (what
    makes a camera JPEG ~3 MB and expensive to decode)."""
    rng = random.Random(seed)
    width, height = SIZE
    channels = [
        Image.linear_gradient("L").rotate(rng.choice((90, 270))).resize(SIZE),
        Image.linear_gradient("L").rotate(rng.choice((0, 180))).resize(SIZE),
        Image.radial_gradient("L").resize(SIZE),
    ]
    rng.shuffle(channels)
    picture = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(picture)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        box = [x, y, x + rng.randrange(80, 900), y + rng.randrange(80, 900)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice((draw.ellipse, draw.rectangle))
        shape(box, fill=colour, outline=(0, 0, 0), width=rng.randrange(1, 12))
    noise = Image.effect_noise(SIZE, 48)  # one noise field, shifted per channel (three cost three times as much)
    grain = Image.merge("RGB", [noise, ImageChops.offset(noise, 7, 3), ImageChops.offset(noise, -5, 11)])
    Image.blend(picture, grain, 0.15).save(path, format="JPEG", quality=90)


class Clock:
    """Wall time and this process's CPU time (every thread: workers and the catalog's writer alike)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def baseline(paths: list[Path]) -> Clock:
    with Clock() as clock:
        for path in paths:
            with Image.open(path) as image:
                image.thumbnail((256, 256))
                image.save(io.BytesIO(), format="WEBP")
    return clock


def service(root: Path) -> AssetService:
    log = logging.getLogger("bench")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return AssetService(ServiceConfig(root_dir=root, public_base_url="http://127.0.0.1:1"), log)


def upload_all(root: Path, paths: list[Path]) -> list[str]:
    """Every file as an upload with enrichment; the jobs stay queued in the catalog (no worker ever starts)."""
    uploader = service(root)
    ids = []
    try:
        for path in paths:
            descriptor, incoming = uploader.uploads.new_incoming_file()
            data = path.read_bytes()
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            form = UploadForm(
                file_received=True,
                file_name=path.name,
                content_type="image/jpeg",
                temp_path=incoming,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                fields={"runenrichment": "true"},
            )
            ids.append(uploader.uploads.create(PRINCIPAL, form).id)
    finally:
        uploader.close()
    return ids


def ours(root: Path, paths: list[Path]) -> Clock:
    ids = upload_all(root, paths)
    worker = service(root)
    try:
        with Clock() as clock:
            worker.start()  # resumes the queued jobs: the same code path as uploads while it runs
            if not worker.enrichment.workers.wait_idle(600):
                raise RuntimeError("the worker pool did not finish within 600 s")
        check(worker, ids)
    finally:
        worker.close()
    return clock


def check(worker: AssetService, ids: list[str]) -> None:
    for asset_id in ids:
        asset = worker.catalog.assets.detail(asset_id)
        thumbnails = [(d.kind, d.width, d.height, d.content_type) for d in asset.derivatives]
        if asset.status != "ready" or thumbnails != [("thumbnail_256", 256, 192, "image/webp")]:
            raise RuntimeError(f"asset {asset_id} is {asset.status} with derivatives {thumbnails}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds (about 30 s)")
    parser.add_argument("--images", type=int, help="JPEGs per round (default 24; 10 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds, each measuring both sides (default 3; 2 with --quick)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--workdir", help="keep the images and libraries in this folder")
    args = parser.parse_args(argv)
    count = args.images or (10 if args.quick else 24)
    rounds = args.rounds or (2 if args.quick else 3)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-thumbnail-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        paths = [work / "images" / f"photo-{n:03d}.jpg" for n in range(count)]
        paths[0].parent.mkdir(exist_ok=True)
        for n, path in enumerate(paths):
            make_jpeg(path, n)
        megabytes = sum(p.stat().st_size for p in paths) / count / 1e6
        print(
            f"{count} JPEGs of {SIZE[0]}x{SIZE[1]} (quality 90, {megabytes:.1f} MB on average) made in "
            f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs; {rounds} round(s)"
        )
        baseline(paths[:2])  # warm the page cache and Pillow's codecs
        clocks: dict[str, list[Clock]] = {"baseline": [], "ours": []}
        for round_number in range(rounds):
            clocks["baseline"].append(baseline(paths))
            clocks["ours"].append(ours(work / f"library-{round_number}", paths))
            print(
                f"  round {round_number + 1}: baseline {count / clocks['baseline'][-1].wall:.1f} images/s, "
                f"ours {count / clocks['ours'][-1].wall:.1f} images/s"
            )
        report = summarize(clocks, count, rounds)
        write_json(args.json, report)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def summarize(clocks: dict[str, list[Clock]], count: int, rounds: int) -> dict:
    rates = {}
    for name, measured in clocks.items():
        walls = [clock.wall for clock in measured]
        rates[name] = {
            "images_per_s": count / statistics.median(walls),
            "best_images_per_s": count / min(walls),
            "per_round_images_per_s": [count / wall for wall in walls],
            "ms_per_image": statistics.median(walls) * 1000 / count,
            "cpu_ms_per_image": statistics.median(clock.cpu for clock in measured) * 1000 / count,
        }
    print()
    print(f"{'target':<10} {'images/s':>9} {'best':>7} {'ms/image':>9} {'CPU ms/image':>13}")
    for name, row in rates.items():
        print(
            f"{name:<10} {row['images_per_s']:>9.1f} {row['best_images_per_s']:>7.1f} {row['ms_per_image']:>9.1f} "
            f"{row['cpu_ms_per_image']:>13.1f}"
        )
    ratio = rates["ours"]["images_per_s"] / rates["baseline"]["images_per_s"]
    passed = ratio >= GOAL
    print(f"ours / baseline {ratio:.2f}x   goal >= {GOAL}: {'PASS' if passed else 'FAIL'}")
    print(f"GOALS thumbnail_throughput: ours >= {GOAL}x baseline: {'PASS' if passed else 'FAIL'}")
    return {
        "benchmark": "thumbnail_throughput",
        "images": count,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "workers": ServiceConfig.workers,
        "targets": rates,
        "ratio": {"ratio": ratio, "goal": GOAL, "pass": passed},
    }


if __name__ == "__main__":
    sys.exit(main())
