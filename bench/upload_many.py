"""``AssetsClient.upload_many`` against a plain loop of ``requests.post`` calls with the same files.

One ``jupyter-assets serve`` subprocess per set-up; N small PNGs (default 1000, 300 with ``--quick``) written to a
folder. The baseline posts them one after the other with one ``requests.Session`` (what a notebook user writes);
ours hands the folder to ``upload_many`` (8 concurrent workers sending up to 100 files per request to
``POST /api/v1/assets/batch``, no progress bar). A third set-up sends the same files as single uploads from 8
threads (what ``upload_many`` did before the batch endpoint). Each runs on its own fresh library, so the resumable
skip of already-stored checksums does not help ours. All must store every file. Printed: seconds, uploads/s and
the server's CPU per stored file.

Goals: ``upload_many`` at least 3x faster than the loop (issue 5); with the batch endpoint, server CPU per stored
file at most half that of single uploads (issue 17).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests
from benchlib import LOOPBACK, ServerProcess, free_port, process_cpu_seconds, tool, write_json
from PIL import Image

from jupyter_assets.client import AssetsClient

API_KEY = "bench-key"
GOAL = 3.0
CPU_GOAL = 0.5


def write_pngs(folder: Path, count: int) -> list[Path]:
    """Distinct small PNGs (noise, about 12 KB each)."""
    rng = random.Random(7)
    paths = []
    for number in range(count):
        image = Image.frombytes("RGB", (64, 64), rng.randbytes(64 * 64 * 3))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        path = folder / f"image-{number:04d}.png"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def start_server(work: Path, name: str) -> tuple[ServerProcess, str]:
    port = free_port()
    server = ServerProcess(
        name,
        [tool("jupyter-assets"), "serve", "--port", str(port), "--ip", LOOPBACK, "--root", str(work / name)],
        work / f"{name}.log",
        env={"JUPYTER_ASSETS_API_KEYS": API_KEY},
    ).start()
    url = f"http://{LOOPBACK}:{port}"
    server.wait_ready(f"{url}/api/v1/assets", {"Authorization": f"Bearer {API_KEY}"})
    return server, url


def plain_loop(url: str, paths: list[Path]) -> float:
    """Seconds to post every file, one after the other."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as handle:
            response = session.post(
                f"{url}/api/v1/assets",
                files={"file": (path.name, handle, "image/png")},
                data={"runEnrichment": "false"},
                timeout=60,
            )
        response.raise_for_status()
    return time.perf_counter() - started


def concurrent_singles(url: str, paths: list[Path]) -> float:
    """Seconds to send every file as a single upload from 8 threads, each with its own connection."""

    def send(share: list[Path]) -> None:
        with AssetsClient(url, API_KEY) as client:
            for path in share:
                client.upload(path, run_enrichment=False)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, [paths[i::8] for i in range(8)]))
    return time.perf_counter() - started


def with_upload_many(url: str, folder: Path, count: int) -> float:
    client = AssetsClient(url, API_KEY)
    started = time.perf_counter()
    report = client.upload_many(folder, workers=8, progress=False, run_enrichment=False)
    elapsed = time.perf_counter() - started
    if len(report.uploaded) != count or report.failed:
        raise RuntimeError(f"upload_many stored {len(report.uploaded)} of {count}; failed: {report.failed[:3]}")
    return elapsed


def stored(url: str) -> int:
    return AssetsClient(url, API_KEY).list(page_size=1).total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 images instead of 1000")
    parser.add_argument("--images", type=int, help="how many images")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    count = args.images or (300 if args.quick else 1000)
    with tempfile.TemporaryDirectory(prefix="bench-upload-many-") as folder:
        work = Path(folder)
        images = work / "images"
        images.mkdir()
        paths = write_pngs(images, count)
        results = {}
        for name, run in (
            ("loop", lambda url: plain_loop(url, paths)),
            ("singles x8", lambda url: concurrent_singles(url, paths)),
            ("upload_many", lambda url: with_upload_many(url, images, count)),
        ):
            server, url = start_server(work, name.replace(" ", "-"))
            try:
                process = psutil.Process(server.pid)
                cpu_before = process_cpu_seconds(process)
                seconds = run(url)
                cpu_ms = (process_cpu_seconds(process) - cpu_before) * 1000 / count
                if stored(url) != count:
                    raise RuntimeError(f"{name}: the library holds {stored(url)} assets, not {count}")
            finally:
                server.stop()
            results[name] = {"seconds": seconds, "uploads_per_s": count / seconds, "server_cpu_ms_per_file": cpu_ms}
            print(
                f"  {name:12s} {seconds:7.2f} s  {count / seconds:7.1f} uploads/s  server CPU {cpu_ms:5.2f} ms/file",
                flush=True,
            )
    ratio = results["loop"]["seconds"] / results["upload_many"]["seconds"]
    cpu_ratio = results["upload_many"]["server_cpu_ms_per_file"] / results["singles x8"]["server_cpu_ms_per_file"]
    verdict = "PASS" if ratio >= GOAL else "FAIL"
    cpu_verdict = "PASS" if cpu_ratio <= CPU_GOAL else "FAIL"
    print(f"\nupload_many / plain loop: {ratio:.2f}x faster (goal >= {GOAL}x): {verdict}")
    print(f"server CPU per file, batch / single uploads: {cpu_ratio:.2f} (goal <= {CPU_GOAL}): {cpu_verdict}")
    write_json(
        args.json,
        {"images": count, **results, "ratio": ratio, "goal": GOAL, "pass": verdict == "PASS", "cpu_ratio": cpu_ratio},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
