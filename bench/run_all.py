"""Run every benchmark (what ``make bench`` calls) and print one summary.

    python bench/run_all.py [--quick] [--strict] [--only NAME,...]   (names: see BENCHMARKS below)

Each benchmark runs in its own process with a time limit, its output streamed as it goes; the summary repeats the
headline ratios and goals. Exit status: 0 when every benchmark ran (goals that FAIL are reported, not fatal,
because absolute timings depend on the machine); 1 with --strict when a goal fails; 2 when a benchmark crashed or
ran out of time.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (script, time limit in seconds: full, quick)
BENCHMARKS = {
    "catalog": ("catalog_queries.py", 480, 150),
    "upload": ("upload_throughput.py", 240, 120),
    "memory": ("upload_memory.py", 180, 120),
    "thumbnail": ("thumbnail_throughput.py", 300, 120),
    "vectors": ("vector_search.py", 240, 120),
    "embedding": ("embedding_throughput.py", 300, 150),
    "upload_many": ("upload_many.py", 240, 120),
    "s3upload": ("s3_upload_throughput.py", 240, 120),
    "team_upload": ("team_upload_throughput.py", 240, 120),
}


def run(name: str, quick: bool, out: Path) -> tuple[int, dict | None, float]:
    script, full_limit, quick_limit = BENCHMARKS[name]
    limit = quick_limit if quick else full_limit
    argv = [sys.executable, str(HERE / script), "--json", str(out)] + (["--quick"] if quick else [])
    print(f"\n=== {name}: {' '.join(argv[1:])} (limit {limit} s)", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=HERE.parent)
    try:
        code = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        # Interrupt our own child so its finally blocks stop the servers it started, then kill it if need be.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"=== {name}: killed after {limit} s")
        code = 124
    elapsed = time.perf_counter() - started
    result = json.loads(out.read_text()) if out.exists() and out.stat().st_size else None
    return code, result, elapsed


def summarize(name: str, result: dict) -> tuple[list[str], list[bool]]:
    """Summary lines and goal verdicts of one benchmark's JSON."""
    lines, goals = [], []
    if name == "catalog":
        worst = max(result["results"], key=lambda e: e["duckdb_p95_ms"] / e["limit_ms"])
        slowest_vs = min(result["results"], key=lambda e: e["ratio_p50"])
        lines.append(
            f"catalog ({result['rows']:,} rows): latency goals {_v(result['goals']['latency'])} (worst: "
            f"{worst['query']} as {worst['who']}, p95 {worst['duckdb_p95_ms']:.1f} ms vs < {worst['limit_ms']:.0f})"
        )
        lines.append(
            f"catalog: not slower than SQLite {_v(result['goals']['not_slower_than_sqlite'])} (lowest "
            f"SQLite/DuckDB p50 ratio {slowest_vs['ratio_p50']:.2f}x: {slowest_vs['query']} as {slowest_vs['who']})"
        )
        goals += [result["goals"]["latency"], result["goals"]["not_slower_than_sqlite"]]
    elif name == "upload":
        targets = result["targets"]
        rates = ", ".join(f"{k} {v['requests_per_s']:.0f} req/s" for k, v in targets.items())
        lines.append(f"upload: {rates}")
        for base, ratio in result["ratios"].items():
            if ratio["goal"] is None:
                lines.append(f"upload: ours/{base} {ratio['ratio']:.2f}x (info)")
                continue
            lines.append(f"upload: ours/{base} {ratio['ratio']:.2f}x, goal >= {ratio['goal']}: {_v(ratio['pass'])}")
            goals.append(ratio["pass"])
        errors = {k: v["errors"] for k, v in targets.items() if v["errors"]}
        if errors:
            lines.append(f"upload: requests with unexpected answers: {errors}")
    elif name == "team_upload":
        rates = ", ".join(
            f"{setup} {row['requests_per_s']:.0f} uploads/s (CPU ms per upload: server "
            f"{row['server_cpu_ms_per_upload']:.1f}, PostgreSQL {row['postgres_cpu_ms_per_upload']:.1f})"
            for setup, row in result["setups"].items()
        )
        lines.append(f"team_upload: {rates}")
        lines.append(f"team_upload: two servers/one {result['ratio']:.2f}x, goal >= 0.9: {_v(result['pass'])}")
        goals.append(result["pass"])
    elif name == "memory":
        for key, check in result["checks"].items():
            info = key.endswith("_info")
            verdict = "(info)" if info else _v(check["pass"])
            lines.append(f"memory: {key}: +{check['increase_mb']:.1f} MB (HTTP {check['status']}) {verdict}")
            if not info:
                goals.append(check["pass"])
    elif name == "thumbnail":
        targets, ratio = result["targets"], result["ratio"]
        lines.append(
            f"thumbnail: ours {targets['ours']['images_per_s']:.1f} images/s, baseline "
            f"{targets['baseline']['images_per_s']:.1f} images/s ({result['images']} JPEGs of 12 MP, "
            f"{result['cpus']} CPUs, {result['workers']} workers)"
        )
        lines.append(f"thumbnail: ours/baseline {ratio['ratio']:.2f}x, goal >= {ratio['goal']}: {_v(ratio['pass'])}")
        goals.append(ratio["pass"])
    elif name == "vectors":
        search, hamming, similar = result["search"], result["hamming"], result["similar"]
        lines.append(
            f"vectors ({search['vectors']:,} x {search['dim']}): search top {search['limit']} p50 "
            f"{search['ours_p50_ms']:.1f} ms, p95 {search['ours_p95_ms']:.1f} ms; numpy brute force "
            f"{search['baseline_p50_ms']:.1f}/{search['baseline_p95_ms']:.1f} ms (baseline/ours p50 "
            f"{search['ratio_p50']:.2f}x); load {search['load_seconds']:.2f} s"
        )
        scale = "" if result["goals"]["full_size"] else " (below 1M vectors: information)"
        lines.append(
            f"vectors: p95 < 100 ms{scale} {_v(result['goals']['latency'])}; exact {_v(result['goals']['exact'])}; "
            f"hamming_groups {hamming['hashes']:,} hashes {hamming['seconds']:.2f} s; group_similar "
            f"{similar['vectors']:,} vectors {similar['seconds']:.2f} s"
        )
        goals += [result["goals"]["latency"], result["goals"]["exact"]]
    elif name == "embedding":
        lines.append(
            f"embedding: worker {result['worker_images_per_s']:.1f} images/s, bare open_clip loop "
            f"{' and '.join(f'{rate:.1f}' for rate in result['bare_images_per_s'])} images/s "
            f"({result['images']} images, {result['embeddings_stored']} embeddings stored)"
        )
        lines.append(f"embedding: worker/bare {result['ratio']:.2f}x, goal >= {result['goal']}: {_v(result['pass'])}")
        goals.append(result["pass"])
    elif name == "s3upload":
        targets, ratio = result["targets"], result["ratio"]
        lines.append(
            f"s3upload: ours {targets['ours']['requests_per_s']:.0f} req/s, boto3 put_object "
            f"{targets['ceiling']['requests_per_s']:.0f} req/s ({result['clients']} clients, moto on loopback)"
        )
        lines.append(f"s3upload: ours/ceiling {ratio['ratio'] or 0:.2f}x, goal >= {ratio['goal']}: {_v(ratio['pass'])}")
        goals.append(ratio["pass"])
        errors = {k: v["errors"] for k, v in targets.items() if v["errors"]}
        mismatched = {k: v for k, v in result["objects_in_bucket"].items() if not v["match"]}
        if errors:
            lines.append(f"s3upload: requests with unexpected answers: {errors}")
        if mismatched:
            lines.append(f"s3upload: MISMATCH between acknowledged uploads and objects in the bucket: {mismatched}")
    elif name == "upload_many":
        lines.append(
            f"upload_many: {result['upload_many']['uploads_per_s']:.0f} uploads/s against a plain loop's "
            f"{result['loop']['uploads_per_s']:.0f} ({result['images']} images): {result['ratio']:.2f}x, goal >= "
            f"{result['goal']}: {_v(result['pass'])}; server CPU per file against single uploads "
            f"{result['cpu_ratio']:.2f}, goal <= 0.5: {_v(result['cpu_ratio'] <= 0.5)}"
        )
        goals += [result["pass"], result["cpu_ratio"] <= 0.5]
    return lines, goals


def _v(ok: bool | None) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the ~1 minute version of each benchmark")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal fails")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {sorted(unknown)}")
    summary, goals, crashed = [], [], []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-results-") as folder:
        for name in names:
            code, result, elapsed = run(name, args.quick, Path(folder) / f"{name}.json")
            if code != 0 or result is None:
                crashed.append(name)
                summary.append(f"{name}: did not complete (exit {code}) after {elapsed:.0f} s; see its output above")
                continue
            lines, verdicts = summarize(name, result)
            summary += [f"{line}   [{elapsed:.0f} s]" if i == 0 else line for i, line in enumerate(lines)]
            goals += verdicts
    print(f"\n=== summary ({'quick' if args.quick else 'full'}, {time.perf_counter() - started:.0f} s)")
    for line in summary:
        print("  " + line)
    failed = goals.count(False)
    print(f"  goals: {len(goals) - failed} PASS, {failed} FAIL" + (f"; crashed: {crashed}" if crashed else ""))
    if crashed:
        return 2
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
