"""Upload throughput of a team library: one server against two servers on the same PostgreSQL catalog and shared
folder, in the same run.

A real PostgreSQL server (Debian's, started in a temporary folder as the tests do, with fsync on as in
production) holds the catalog; a local storage profile in one folder is the team's default storage. Two
``jupyter-assets serve`` processes join that library. Then, in rounds where the two set-ups take turns:

* one server: 8 client threads upload to server A (server B idles);
* two servers: 4 client threads upload to A and 4 to B at the same time.

The uploads are ``upload_throughput.py``'s (distinct ~200 KB PNGs, ``runEnrichment=false``, keep-alive
connections). Printed: uploads/s of each set-up, their ratio (goal: two servers >= 0.9x one, since on 2 cores a
second server can only add its own overhead), and the CPU ms per upload of the servers and of PostgreSQL (every
process of the cluster), from which ``bench/README.md`` works out what more cores would give.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import psutil
from benchlib import (
    LOOPBACK,
    ServerProcess,
    fmt_ratio,
    free_port,
    load_row,
    print_suspicious_log_lines,
    process_cpu_seconds,
    tool,
    write_json,
)
from upload_throughput import (
    API_KEY,
    MULTIPART_TYPE,
    LoadResult,
    Target,
    count_assets,
    drive,
    make_pngs,
    multipart_body,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import PostgresServer  # noqa: E402 - the tests' real PostgreSQL server

GOAL_RATIO = 0.9
SETUPS = {"one server": 1, "two servers": 2}


def start_servers(work: Path, database: str, bodies: list[bytes], count: int) -> list[Target]:
    profile = {"name": "team-files", "providerType": "local", "configuration": {"rootPath": str(work / "files")}}
    env = {
        "JUPYTER_ASSETS_API_KEYS": API_KEY,
        "JUPYTER_ASSETS_CATALOG_URL": database,
        "JUPYTER_ASSETS_STORAGE_PROFILES": json.dumps([{**profile, "isDefault": True}]),
    }
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": MULTIPART_TYPE}
    targets = []
    for index in range(count):
        port, root = free_port(), work / f"server-{index}"
        argv = [tool("jupyter-assets"), "serve", "--port", str(port), "--ip", LOOPBACK, "--root", str(root)]
        server = ServerProcess(f"server-{index}", argv, work / f"server-{index}.log", env=env)
        targets.append(Target(server.name, server, port, "POST", bodies, headers, 202, lambda key: "/api/v1/assets",
                              root))  # fmt: skip
    return targets


def postgres_cpu_seconds(server: PostgresServer) -> float:
    """CPU seconds of the cluster: the postmaster and every backend and worker it started."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    return process_cpu_seconds(psutil.Process(postmaster))


def drive_together(targets: list[Target], clients: int, duration: float) -> list[LoadResult]:
    """Split ``clients`` evenly over the targets and drive them all for the same ``duration``."""
    results: list[LoadResult | None] = [None] * len(targets)

    def run(index: int) -> None:
        results[index] = drive(targets[index], clients // len(targets), duration)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [result for result in results if result is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~1 minute version (one 5 s round per set-up)")
    parser.add_argument("--duration", type=float, help="timed seconds per set-up (default 15; 5 with --quick)")
    parser.add_argument("--rounds", type=int, help="set-ups take turns this many times (default 3; 1 quick)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    duration = args.duration or (5.0 if args.quick else 15.0)
    rounds = args.rounds or (1 if args.quick else 3)

    work = Path(tempfile.mkdtemp(prefix="bench-team-upload-"))
    bodies = [multipart_body(png) for png in make_pngs(50)]
    print(f"team_upload_throughput: {args.clients} clients, {rounds} round(s) x {duration / rounds:.1f} s per set-up")
    postgres = PostgresServer({"fsync": "on"}).start()
    targets: list[Target] = []
    measured: dict[str, dict] = {name: {"results": [], "server_cpu_s": 0.0, "postgres_cpu_s": 0.0} for name in SETUPS}
    try:
        targets = start_servers(work, postgres.new_database(), bodies, 2)
        for target in targets:  # one after the other: the first creates the team's default profile
            target.server.start()
            target.server.wait_ready(target.url("/api/v1/assets"), {"Authorization": f"Bearer {API_KEY}"}, 90)
        accepted = sum(result.ok for result in drive_together(targets, args.clients, 3.0))  # warm-up of both
        for _ in range(rounds):
            for name, count in SETUPS.items():
                postgres_before = postgres_cpu_seconds(postgres)
                results = drive_together(targets[:count], args.clients, duration / rounds)
                measured[name]["postgres_cpu_s"] += postgres_cpu_seconds(postgres) - postgres_before
                measured[name]["server_cpu_s"] += sum(result.server_cpu_s for result in results)
                measured[name]["results"].append(_combined(results))
                accepted += sum(result.ok for result in results)
        report = summarize(measured)
        report["catalog_totals"] = [count_assets(target) for target in targets]
        matched = all(total == accepted for total in report["catalog_totals"])
        print(f"  {accepted} uploads answered 202; the catalog total on each server: {report['catalog_totals']}: "
              f"{'OK' if matched else 'MISMATCH'}")  # fmt: skip
        write_json(args.json, report)
        status = 0 if report["pass"] and matched else 1
    finally:
        for target in targets:
            target.server.stop()
            print_suspicious_log_lines(target.name, target.server.log_path)
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
    return status


def _combined(results: list[LoadResult]) -> LoadResult:
    """Several servers' results of one round as one (they ran for the same time)."""
    combined = LoadResult(elapsed_s=max(result.elapsed_s for result in results))
    for result in results:
        combined.ok += result.ok
        combined.errors += result.errors
        combined.bytes_sent += result.bytes_sent
        combined.latencies_ms.extend(result.latencies_ms)
        combined.error_samples.extend(result.error_samples)
    return combined


def summarize(measured: dict[str, dict]) -> dict:
    print()
    header = (
        f"{'set-up':<12} {'uploads/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'server CPU ms':>14} {'pg CPU ms':>10} "
        f"{'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = {}
    for name, entry in measured.items():
        row = load_row(entry["results"])
        ok = row["ok"] or 1
        row["server_cpu_ms_per_upload"] = entry["server_cpu_s"] * 1000 / ok
        row["postgres_cpu_ms_per_upload"] = entry["postgres_cpu_s"] * 1000 / ok
        rows[name] = row
        print(
            f"{name:<12} {row['requests_per_s']:>10.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
            f"{row['server_cpu_ms_per_upload']:>14.1f} {row['postgres_cpu_ms_per_upload']:>10.1f} {row['errors']:>7}"
        )
        for sample in row["error_samples"]:
            print(f"    {name} error: {sample}")
    ratio = rows["two servers"]["requests_per_s"] / rows["one server"]["requests_per_s"]
    passed = ratio >= GOAL_RATIO and not any(row["errors"] for row in rows.values())
    print(f"two servers / one server {fmt_ratio(ratio)}   goal >= {GOAL_RATIO}: {'PASS' if passed else 'FAIL'}")
    return {"benchmark": "team_upload_throughput", "setups": rows, "ratio": ratio, "pass": passed}


if __name__ == "__main__":
    sys.exit(main())
