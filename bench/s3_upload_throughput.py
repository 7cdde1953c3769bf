"""S3 upload throughput: our server writing to an S3 endpoint against boto3 ``put_object`` of the same files.

Two servers run as subprocesses on free loopback ports:

* moto: ``moto_server`` (moto's S3-compatible server, in memory), one bucket; in its own process, so the S3 side
  has its own CPU, the same for both targets;
* ours: ``jupyter-assets serve`` (API key ``bench-key``) with an ``s3`` storage profile over that bucket, created
  over HTTP and made the default (``POST /api/v1/system/storage/providers``, prefix ``bench-ours``).

Two targets take turns, 8 clients each, for a fixed duration after a warm-up:

* ours: ``POST /api/v1/assets`` multipart (``file`` as x.png, image/png, plus ``runEnrichment=false``) over one
  keep-alive connection per client thread, expecting 202;
* ceiling: one boto3 client shared by the threads (clients are thread-safe), ``put_object`` of the same PNGs
  under ``bench-ceiling/<unique>.png``: what this server could reach at best, since it stores through boto3.

The PNGs are the ~200 KB noise images of ``upload_throughput.py``; request bodies are built before the clock
starts. The bench process (clients) shares the machine's cores with both servers, equally for both targets.

Printed: requests/s, MB/s, latency p50/p95, our server's CPU ms per upload and moto's CPU ms per upload (as
information), then the ratio ours/ceiling (goal >= 0.7). At the end the bucket is listed: it must hold as many
objects under each prefix as uploads were acknowledged (a mismatch is printed loudly, never asserted).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
from benchlib import (
    LOOPBACK,
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
from botocore.config import Config
from upload_throughput import MULTIPART_TYPE, make_pngs, multipart_body

API_KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BUCKET = "bench-assets"
REGION = "us-east-1"
OURS_PREFIX = "bench-ours"
CEILING_PREFIX = "bench-ceiling"
GOAL = 0.7

# One step of a client: (n) -> (accepted, error sample or None, bytes sent).
Step = Callable[[int], tuple[bool, str | None, int]]


@dataclass
class LoadResult:
    ok: int = 0
    errors: int = 0
    bytes_sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    ours_cpu_s: float = 0.0
    moto_cpu_s: float = 0.0


@dataclass
class Target:
    name: str
    # (drive id, client index) -> (step, close)
    client_factory: Callable[[str, int], tuple[Step, Callable[[], None]]]
    results: list[LoadResult] = field(default_factory=list)
    warmup_ok: int = 0
    warmup_errors: int = 0


def drive(target: Target, clients: int, duration: float, ours: psutil.Process, moto: psutil.Process) -> LoadResult:
    """Run `clients` threads against the target for `duration` seconds; count the accepted uploads."""
    result = LoadResult()
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)
    deadline_holder: list[float] = []
    drive_id = uuid.uuid4().hex[:8]

    def client(index: int) -> None:
        step, close = target.client_factory(drive_id, index)
        n = 0
        latencies, ok, errors, sent, samples = [], 0, 0, 0, []
        start_barrier.wait()
        deadline = deadline_holder[0]
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                accepted, sample, size = step(n)
                n += 1
                if accepted:
                    ok += 1
                    sent += size
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1
                    if sample and len(samples) < 3:
                        samples.append(sample)
        finally:
            close()
        with lock:
            result.ok += ok
            result.errors += errors
            result.bytes_sent += sent
            result.latencies_ms.extend(latencies)
            result.error_samples.extend(samples[: max(0, 5 - len(result.error_samples))])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ours_before, moto_before = process_cpu_seconds(ours), process_cpu_seconds(moto)
    started = time.perf_counter()
    deadline_holder.append(started + duration)
    start_barrier.wait()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - started
    result.ours_cpu_s = process_cpu_seconds(ours) - ours_before
    result.moto_cpu_s = process_cpu_seconds(moto) - moto_before
    return result


def ours_target(port: int, pngs: list[bytes]) -> Target:
    bodies = [multipart_body(png) for png in pngs]
    headers = {**AUTH, "Content-Type": MULTIPART_TYPE}

    def factory(drive_id: str, index: int) -> tuple[Step, Callable[[], None]]:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)

        def step(n: int) -> tuple[bool, str | None, int]:
            body = bodies[(index * 7 + n) % len(bodies)]
            try:
                connection.request(
                    "POST", "/api/v1/assets", body=body, headers={**headers, "Content-Length": str(len(body))}
                )
                response = connection.getresponse()
                payload = response.read()
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                return False, f"{type(error).__name__}: {error}", 0
            if response.status == 202:
                return True, None, len(body)
            return False, f"HTTP {response.status}: {payload[:300]!r}", 0

        return step, connection.close

    return Target("ours", factory)


def s3_client(endpoint: str, pool: int) -> Any:  # botocore generates the client's class
    # The same settings as jupyter_assets.storage.s3.S3Storage, except that nothing is retried here.
    config = Config(
        connect_timeout=2,
        read_timeout=20,
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        max_pool_connections=pool,
    )
    return boto3.session.Session(
        aws_access_key_id="accessKey", aws_secret_access_key="secretKey", region_name=REGION
    ).client("s3", endpoint_url=endpoint, region_name=REGION, config=config)


def ceiling_target(client: Any, pngs: list[bytes]) -> Target:
    from botocore.exceptions import BotoCoreError, ClientError

    def factory(drive_id: str, index: int) -> tuple[Step, Callable[[], None]]:
        def step(n: int) -> tuple[bool, str | None, int]:
            body = pngs[(index * 7 + n) % len(pngs)]
            try:
                client.put_object(Bucket=BUCKET, Key=f"{CEILING_PREFIX}/{drive_id}-{index}-{n}.png", Body=body)
            except (BotoCoreError, ClientError) as error:
                return False, f"{type(error).__name__}: {error}", 0
            return True, None, len(body)

        return step, lambda: None

    return Target("ceiling", factory)


def create_profile(port: int, moto_endpoint: str) -> dict:
    """The s3 profile over the bench bucket, made the default write target; returns the profile JSON."""
    body = json.dumps(
        {
            "name": "bench-s3",
            "providerType": "s3",
            "isDefault": True,
            "configuration": {
                "endpoint": moto_endpoint,
                "bucket": BUCKET,
                "region": REGION,
                "forcePathStyle": True,
                "prefix": OURS_PREFIX,
            },
            "secretConfiguration": {"accessKey": "bench", "secretKey": "bench-secret"},
        }
    ).encode()
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        connection.request(
            "POST",
            "/api/v1/system/storage/providers",
            body=body,
            headers={**AUTH, "Content-Type": "application/json", "Content-Length": str(len(body))},
        )
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 201:
        raise RuntimeError(f"creating the s3 profile answered HTTP {response.status}: {payload[:500]!r}")
    return json.loads(payload)["data"]


def count_objects(client: Any, prefix: str) -> int:
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        total += page.get("KeyCount", 0)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~30 s version (two 3 s rounds per target)")
    parser.add_argument("--duration", type=float, help="timed seconds per target (default 24; 6 with --quick)")
    parser.add_argument("--rounds", type=int, help="targets take turns this many times (default 8; 2 quick)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per target (default 2)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pool", type=int, default=50, help="distinct PNGs")
    parser.add_argument("--workdir", help="keep server folders and logs here (default: a temp dir)")
    parser.add_argument("--json", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    duration = args.duration or (6.0 if args.quick else 24.0)
    rounds = args.rounds or (2 if args.quick else 8)
    warmup = args.warmup

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-s3upload-"))
    work.mkdir(parents=True, exist_ok=True)
    pngs = make_pngs(args.pool)
    sizes = [len(p) for p in pngs]
    print(
        f"s3_upload_throughput: {args.clients} clients, {len(pngs)} PNGs of {min(sizes) / 1000:.0f}-"
        f"{max(sizes) / 1000:.0f} KB, {rounds} round(s) x {duration / rounds:.1f} s per target after {warmup:.0f} s "
        f"warm-up; {os.cpu_count()} CPUs shared by clients, our server and moto; workdir {work}",
        flush=True,
    )
    moto_port, ours_port = free_port(), free_port()
    moto_endpoint = f"http://{LOOPBACK}:{moto_port}"
    moto = ServerProcess("moto", [tool("moto_server"), "-H", LOOPBACK, "-p", str(moto_port)], work / "moto.log")
    ours = ServerProcess(
        "jupyter-assets",
        [tool("jupyter-assets"), "serve", "--port", str(ours_port), "--ip", LOOPBACK, "--root", str(work / "ours")],
        work / "ours.log",
        env={"JUPYTER_ASSETS_API_KEYS": API_KEY},
    )
    servers = [moto, ours]
    status = 0
    try:
        for server in servers:
            server.start()
        took = moto.wait_ready(f"{moto_endpoint}/moto-api/", {}, timeout=60)
        print(f"  moto ready on port {moto_port} after {took:.1f} s", flush=True)
        took = ours.wait_ready(f"http://{LOOPBACK}:{ours_port}/api/v1/assets", AUTH, timeout=90)
        print(f"  ours ready on port {ours_port} after {took:.1f} s", flush=True)
        client = s3_client(moto_endpoint, max(32, args.clients * 2))
        client.create_bucket(Bucket=BUCKET)
        profile = create_profile(ours_port, moto_endpoint)
        print(f"  s3 profile {profile.get('id')} created as the default (bucket {BUCKET}, prefix {OURS_PREFIX})")
        targets = [ours_target(ours_port, pngs), ceiling_target(client, pngs)]
        ours_proc, moto_proc = psutil.Process(ours.pid), psutil.Process(moto.pid)
        for target in targets:
            warm = drive(target, args.clients, warmup, ours_proc, moto_proc)
            target.warmup_ok, target.warmup_errors = warm.ok, warm.errors
            for sample in warm.error_samples[:2]:
                print(f"    {target.name} warm-up error: {sample}")
        for _ in range(rounds):
            for target in targets:
                target.results.append(drive(target, args.clients, duration / rounds, ours_proc, moto_proc))
                for server in servers:
                    if not server.alive():
                        raise RuntimeError(f"{server.name} died during the run.\n{server.log_tail()}")
        report = summarize(targets, args, duration, rounds)
        report["objects_in_bucket"] = {}
        for target, prefix in ((targets[0], OURS_PREFIX), (targets[1], CEILING_PREFIX)):
            stored = count_objects(client, prefix)
            accepted = sum(r.ok for r in target.results) + target.warmup_ok
            errors = sum(r.errors for r in target.results) + target.warmup_errors
            match = stored == accepted
            report["objects_in_bucket"][target.name] = {"stored": stored, "accepted": accepted, "match": match}
            answer = "202" if target.name == "ours" else "put_object successes"
            line = f"  {target.name}: {accepted} {answer}, {stored} objects under {prefix}/ in the bucket"
            if match:
                print(f"{line}: OK")
            else:
                print(f"!!! MISMATCH {line.strip()} ({errors} failed requests) !!!")
        write_json(args.json, report)
    except Exception as error:  # noqa: BLE001 - report, keep the logs
        print(f"ERROR: {error}")
        status = 2
    finally:
        for server in reversed(servers):
            server.stop()
        print_suspicious_log_lines("ours", ours.log_path)
        if args.workdir:
            print(f"  logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


def summarize(targets: list[Target], args: argparse.Namespace, duration: float, rounds: int) -> dict:
    rows = {}
    print()
    header = (
        f"{'target':<9} {'req/s':>8} {'MB/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'ours CPU ms/req':>16} "
        f"{'moto CPU ms/req':>16} {'ok':>7} {'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    for target in targets:
        row = load_row(target.results)
        ok, errors = row["ok"], row["errors"]
        ours_cpu = sum(r.ours_cpu_s for r in target.results)
        moto_cpu = sum(r.moto_cpu_s for r in target.results)
        # Our server is idle while the ceiling runs: its CPU is only meaningful for ours.
        row["ours_server_cpu_ms_per_request"] = ours_cpu * 1000 / ok if ok and target.name == "ours" else None
        row["moto_cpu_ms_per_request"] = moto_cpu * 1000 / ok if ok else None
        rows[target.name] = row
        print(
            f"{target.name:<9} {row['requests_per_s']:>8.1f} {row['mb_per_s']:>7.1f} "
            f"{fmt_number(row['p50_ms']):>8} {fmt_number(row['p95_ms']):>8} "
            f"{fmt_number(row['ours_server_cpu_ms_per_request']):>16} "
            f"{fmt_number(row['moto_cpu_ms_per_request']):>16} {ok:>7} {errors:>7}"
        )
        for sample in row["error_samples"]:
            print(f"    {target.name} error: {sample}")
    pairs = zip(rows["ours"]["per_round_requests_per_s"], rows["ceiling"]["per_round_requests_per_s"], strict=False)
    per_round = [f"{a:.0f}/{b:.0f}" for a, b in pairs]
    print(f"per round ours/ceiling req/s: {', '.join(per_round)}")
    ceiling = rows["ceiling"]["requests_per_s"]
    value = rows["ours"]["requests_per_s"] / ceiling if ceiling else None
    passed = value is not None and value >= GOAL
    print(f"ours / ceiling {fmt_ratio(value):>7}   goal >= {GOAL}: {'PASS' if passed else 'FAIL'}")
    print(f"GOALS s3_upload_throughput: ours >= {GOAL}x boto3 put_object: {'PASS' if passed else 'FAIL'}")
    return {
        "benchmark": "s3_upload_throughput",
        "clients": args.clients,
        "duration_s": duration,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "targets": rows,
        "ratio": {"ratio": value, "goal": GOAL, "pass": passed},
    }


if __name__ == "__main__":
    sys.exit(main())
