"""Upload throughput: our server against Jupyter's Contents API and a minimal streaming Tornado handler.

Three servers run as subprocesses on free loopback ports:

* ours: ``jupyter-assets serve`` (API key ``bench-key``), ``POST /api/v1/assets`` multipart (``file`` as x.png,
  image/png, plus ``runEnrichment=false``), expecting 202;
* contents: a plain Jupyter server, ``PUT /api/contents/<name>.png`` with ``{"type": "file", "format": "base64",
  "content": ...}`` (how a Jupyter user stores a file today), expecting 201;
* ceiling: ``bench/ceiling_server.py``, which only streams the body to a file (the same multipart bytes as ours).

A pool of distinct ~200 KB PNGs (random noise, made with Pillow) is uploaded by 8 client threads, each with its
own keep-alive connection, for a fixed duration after a warm-up. Request bodies are built before the clock starts
(base64 and JSON included), so the clients spend as little CPU as possible; they still share the machine's cores
with the server, equally for all three targets. With several rounds the targets take turns, so drift in the
machine's load hits all of them alike.

Printed: requests/s, MB/s, latency p50/p95 and the server's CPU ms per upload for each target, then the ratios
ours/contents (goal >= 1.5) and ours/ceiling (goal >= 0.6).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from benchlib import (
    LOOPBACK,
    REPO,
    ServerProcess,
    fmt_number,
    fmt_ratio,
    free_port,
    load_row,
    print_suspicious_log_lines,
    process_cpu_seconds,
    tool,
    write_json,
)
from PIL import Image

API_KEY = "bench-key"
JUPYTER_TOKEN = "bench"
BOUNDARY = "----jupyterassetsbench7MA4YWxkTrZu0gW"


def make_pngs(count: int, width: int = 250, height: int = 270, seed: int = 1) -> list[bytes]:
    """Distinct PNGs of random RGB noise (incompressible, so ~width*height*3 bytes each)."""
    import random

    rng = random.Random(seed)
    images = []
    for _ in range(count):
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def multipart_body(png: bytes, filename: str = "x.png", content_type: str = "image/png") -> bytes:
    """The body requests/a browser would send: the form field first, then the file part."""
    return b"".join(
        [
            f"--{BOUNDARY}\r\n".encode(),
            b'Content-Disposition: form-data; name="runEnrichment"\r\n\r\nfalse\r\n',
            f"--{BOUNDARY}\r\n".encode(),
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode(),
            f"Content-Type: {content_type}\r\n\r\n".encode(),
            png,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass
class LoadResult:
    ok: int = 0
    errors: int = 0
    bytes_sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    server_cpu_s: float = 0.0


@dataclass
class Target:
    name: str
    server: ServerProcess
    port: int
    method: str
    bodies: list[bytes]
    headers: dict[str, str]
    expect: int
    path_for: object  # callable (unique key) -> request path
    data_dir: Path
    results: list[LoadResult] = field(default_factory=list)
    warmup_ok: int = 0

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"


def drive(target: Target, clients: int, duration: float) -> LoadResult:
    """Run `clients` threads against the target for `duration` seconds; count the expected answers."""
    result = LoadResult()
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)
    deadline_holder: list[float] = []
    drive_id = uuid.uuid4().hex[:8]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(LOOPBACK, target.port, timeout=60)
        n = 0
        latencies, ok, errors, sent, samples = [], 0, 0, 0, []
        start_barrier.wait()
        deadline = deadline_holder[0]
        while time.perf_counter() < deadline:
            body = target.bodies[(index * 7 + n) % len(target.bodies)]
            path = target.path_for(f"{drive_id}-{index}-{n}")
            n += 1
            started = time.perf_counter()
            try:
                connection.request(
                    target.method, path, body=body, headers={**target.headers, "Content-Length": str(len(body))}
                )
                response = connection.getresponse()
                payload = response.read()
                status = response.status
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{type(error).__name__}: {error}")
                continue
            if status == target.expect:
                ok += 1
                sent += len(body)
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"HTTP {status}: {payload[:300]!r}")
        connection.close()
        with lock:
            result.ok += ok
            result.errors += errors
            result.bytes_sent += sent
            result.latencies_ms.extend(latencies)
            result.error_samples.extend(samples[: max(0, 5 - len(result.error_samples))])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    process = psutil.Process(target.server.pid)
    cpu_before = process_cpu_seconds(process)
    started = time.perf_counter()
    deadline_holder.append(started + duration)
    start_barrier.wait()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - started
    result.server_cpu_s = process_cpu_seconds(process) - cpu_before
    return result


def start_targets(work: Path, pngs: list[bytes], ceiling_fsync: bool, only: set[str]) -> list[Target]:
    python = sys.executable
    targets: list[Target] = []
    multipart = [multipart_body(png) for png in pngs]

    if "ours" in only:
        port, root = free_port(), work / "ours"
        server = ServerProcess(
            "jupyter-assets",
            [tool("jupyter-assets"), "serve", "--port", str(port), "--ip", LOOPBACK, "--root", str(root)],
            work / "ours.log",
            env={"JUPYTER_ASSETS_API_KEYS": API_KEY},
        )
        headers = {"Authorization": f"Bearer {API_KEY}"}
        targets.append(
            Target("ours", server, port, "POST", multipart, {**headers, "Content-Type": MULTIPART_TYPE}, 202,
                   lambda key: "/api/v1/assets", root)
        )  # fmt: skip
    if "contents" in only:
        port, root = free_port(), work / "contents"
        root.mkdir()
        config = work / "jupyter_config"
        config.mkdir()
        server = ServerProcess(
            "jupyter-server",
            [
                python, "-m", "jupyter_server", f"--IdentityProvider.token={JUPYTER_TOKEN}",
                f"--ServerApp.root_dir={root}", f"--port={port}", f"--ip={LOOPBACK}", "--no-browser",
                "--allow-root", "--ServerApp.port_retries=0", "--ServerApp.jpserver_extensions=jupyter_assets=False",
            ],
            work / "contents.log",
            env={"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(work / "jupyter_runtime")},
        )  # fmt: skip
        bodies = [
            json.dumps({"type": "file", "format": "base64", "content": base64.b64encode(png).decode()}).encode()
            for png in pngs
        ]
        headers = {"Authorization": f"token {JUPYTER_TOKEN}", "Content-Type": "application/json"}
        targets.append(
            Target("contents", server, port, "PUT", bodies, headers, 201,
                   lambda key: f"/api/contents/bench-{key}.png", root)
        )  # fmt: skip
    for name, fsync in (("ceiling", False), ("ceiling+fsync", True)):
        if name not in only and not (name == "ceiling+fsync" and ceiling_fsync):
            continue
        port, root = free_port(), work / name.replace("+", "_")
        argv = [python, str(REPO / "bench" / "ceiling_server.py"), "--port", str(port), "--dir", str(root)]
        server = ServerProcess(name, argv + (["--fsync"] if fsync else []), work / f"{root.name}.log")
        targets.append(
            Target(name, server, port, "POST", multipart, {"Content-Type": MULTIPART_TYPE}, 202,
                   lambda key: "/upload", root)
        )  # fmt: skip
    return targets


READY = {
    "ours": ("/api/v1/assets", {"Authorization": f"Bearer {API_KEY}"}),
    "contents": ("/api/status", {"Authorization": f"token {JUPYTER_TOKEN}"}),
    "ceiling": ("/", {}),
    "ceiling+fsync": ("/", {}),
}


def count_assets(target: Target) -> int | None:
    """Our server's total asset count (to check every 202 became an asset)."""
    connection = http.client.HTTPConnection(LOOPBACK, target.port, timeout=30)
    try:
        connection.request("GET", "/api/v1/assets?pageSize=1", headers={"Authorization": f"Bearer {API_KEY}"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        return json.loads(body)["data"]["total"]
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~1 minute version (one 5 s round per target)")
    parser.add_argument("--duration", type=float, help="timed seconds per target (default 15; 5 with --quick)")
    parser.add_argument("--rounds", type=int, help="targets take turns this many times (default 3; 1 quick)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per target (default 3; 2 with --quick)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pool", type=int, default=50, help="distinct PNGs")
    parser.add_argument("--ceiling-fsync", action="store_true", help="also measure a ceiling that fsyncs")
    parser.add_argument(
        "--only", default="ours,contents,ceiling", help="comma-separated targets (ours, contents, ceiling)"
    )
    parser.add_argument("--workdir", help="keep server folders and logs here (default: a temp dir)")
    parser.add_argument("--json", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    duration = args.duration or (5.0 if args.quick else 15.0)
    rounds = args.rounds or (1 if args.quick else 3)
    warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 3.0)
    only = {name.strip() for name in args.only.split(",") if name.strip()}

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-upload-"))
    work.mkdir(parents=True, exist_ok=True)
    pngs = make_pngs(args.pool)
    sizes = [len(p) for p in pngs]
    print(
        f"upload_throughput: {args.clients} clients, {len(pngs)} PNGs of {min(sizes) / 1000:.0f}-"
        f"{max(sizes) / 1000:.0f} KB, {rounds} round(s) x {duration / rounds:.1f} s per target after {warmup:.0f} s "
        f"warm-up; {os.cpu_count()} CPUs shared by clients and server; workdir {work}",
        flush=True,
    )
    targets: list[Target] = []
    status = 0
    try:
        targets = start_targets(work, pngs, args.ceiling_fsync, only)
        for target in targets:
            target.server.start()
        for target in targets:
            path, headers = READY[target.name]
            took = target.server.wait_ready(target.url(path), headers, timeout=90)
            print(f"  {target.name} ready on port {target.port} after {took:.1f} s", flush=True)
        for target in targets:
            target.warmup_ok = drive(target, args.clients, warmup).ok
        for _ in range(rounds):
            for target in targets:
                target.results.append(drive(target, args.clients, duration / rounds))
                if not target.server.alive():
                    raise RuntimeError(f"{target.name} died during the run.\n{target.server.log_tail()}")
        report = summarize(targets, args, duration, rounds)
        ours = next((t for t in targets if t.name == "ours"), None)
        if ours is not None:
            total = count_assets(ours)
            accepted = sum(r.ok for r in ours.results) + ours.warmup_ok
            report["ours_assets_in_catalog"] = {"total": total, "accepted_202": accepted}
            verdict = "OK" if total == accepted else "MISMATCH"
            print(f"  ours: {accepted} uploads answered 202, catalog total afterwards {total}: {verdict}")
        write_json(args.json, report)
    except Exception as error:  # noqa: BLE001 - report, keep the logs
        print(f"ERROR: {error}")
        status = 2
    finally:
        for target in targets:
            target.server.stop()
        ours = next((t for t in targets if t.name == "ours"), None)
        if ours is not None:
            print_suspicious_log_lines("ours", ours.server.log_path)
        if args.workdir:
            print(f"  logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


def summarize(targets: list[Target], args: argparse.Namespace, duration: float, rounds: int) -> dict:
    rows = {}
    print()
    header = (
        f"{'target':<14} {'req/s':>8} {'MB/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'srv CPU ms/req':>15} "
        f"{'ok':>7} {'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    for target in targets:
        row = load_row(target.results)
        ok, errors = row["ok"], row["errors"]
        cpu = sum(r.server_cpu_s for r in target.results)
        row["server_cpu_ms_per_request"] = cpu * 1000 / ok if ok else None
        rows[target.name] = row
        print(
            f"{target.name:<14} {row['requests_per_s']:>8.1f} {row['mb_per_s']:>7.1f} "
            f"{fmt_number(row['p50_ms']):>8} {fmt_number(row['p95_ms']):>8} "
            f"{fmt_number(row['server_cpu_ms_per_request']):>15} {ok:>7} {errors:>7}"
        )
        for sample in row["error_samples"]:
            print(f"    {target.name} error: {sample}")
    ratios = {}
    ours = rows.get("ours", {}).get("requests_per_s")
    for base, goal in (("contents", 1.5), ("ceiling", 0.6), ("ceiling+fsync", None)):
        if ours is None or base not in rows or not rows[base]["requests_per_s"]:
            continue
        ratio = ours / rows[base]["requests_per_s"]
        ratios[base] = {"ratio": ratio, "goal": goal, "pass": None if goal is None else ratio >= goal}
        verdict = "(info)" if goal is None else f"goal >= {goal}: {'PASS' if ratio >= goal else 'FAIL'}"
        print(f"ours / {base:<14} {fmt_ratio(ratio):>7}   {verdict}")
    if {"contents", "ceiling"} <= ratios.keys():
        print(
            "GOALS upload_throughput: ours >= 1.5x contents: "
            f"{'PASS' if ratios['contents']['pass'] else 'FAIL'}; ours >= 0.6x ceiling: "
            f"{'PASS' if ratios['ceiling']['pass'] else 'FAIL'}"
        )
    return {
        "benchmark": "upload_throughput",
        "clients": args.clients,
        "duration_s": duration,
        "rounds": rounds,
        "targets": rows,
        "ratios": ratios,
    }


if __name__ == "__main__":
    sys.exit(main())
