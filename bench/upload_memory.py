"""Server memory while uploading: a 200 MB body over the limit and a valid 9 MB image.

Starts ``jupyter-assets serve`` (default ``max_upload_bytes``, 10 MB, unless ``--max-upload-bytes``), samples the
server's RSS (process and children) every 20 ms with psutil, and sends over 127.0.0.1:

1. a 200 MB multipart body streamed in 64 KB chunks, (a) declared with Content-Length, (b) with
   Transfer-Encoding: chunked (what requests sends for a generator), so the size is only known by counting: the
   server should answer 400/413 ``asset_file_too_large`` early and stop reading. Like curl, the client stops
   sending as soon as an answer arrives; a reset connection is handled and reported;
2. a valid ~9 MB PNG (random noise, so it does not compress) with ``runEnrichment=false``: expect 202;
3. (information only) the same image with ``runEnrichment=true``, until the asset is ``ready``/``failed``: the
   thumbnail job decodes the whole image, so this shows the worker's footprint, not the upload path's.

For each: RSS just before (median of 0.5 s of samples), the peak during the request, the increase. Goal (issue 2):
the increase stays under 30 MB for 1a, 1b and 2.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import select
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from benchlib import LOOPBACK, ServerProcess, free_port, tool, write_json
from PIL import Image
from upload_throughput import BOUNDARY, MULTIPART_TYPE, make_pngs, multipart_body

API_KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LIMIT_MB = 30.0
GOAL_CHECKS = ("over_limit_content_length", "over_limit_chunked", "valid_9mb_upload")
MB = 1_000_000  # the goal is in MB; RSS is printed in MB too


class RssSampler:
    """Samples the RSS of a process tree every `interval` seconds in a thread; marks let you slice windows."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter(), self._rss()))
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, start: float, end: float) -> list[int]:
        return [rss for moment, rss in list(self.samples) if start <= moment <= end]

    def baseline(self, seconds: float = 0.5) -> int:
        time.sleep(seconds)
        now = time.perf_counter()
        return int(statistics.median(self.window(now - seconds, now)))


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """A tiny blocking HTTP/1.1 exchange on a fresh connection: (status, parsed JSON or text)."""
    import http.client

    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={**AUTH, **(headers or {})})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload[:300]


def stream_body(
    port: int, head: bytes, body_size: int, tail: bytes, chunked: bool = False, timeout: float = 60.0
) -> dict:
    """POST a multipart body of body_size file bytes, streamed; stop sending once the server answers.

    With chunked, the body goes as Transfer-Encoding: chunked (what requests does with a generator), so the
    server cannot refuse it from a Content-Length and must count while it streams.
    Returns what happened: status/body of the answer (if any), bytes sent, seconds, and the socket error seen.
    """
    total = len(head) + body_size + len(tail)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    request_head = (
        f"POST /api/v1/assets HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: {MULTIPART_TYPE}\r\n{framing}\r\nConnection: close\r\n\r\n"
    ).encode()

    def frame(piece: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(piece), piece) if chunked and piece else piece

    rng = random.Random(7)
    chunk = rng.randbytes(64 * 1024)
    sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
    sock.setblocking(False)
    outcome: dict = {"declared_bytes": total, "sent_bytes": 0, "socket_error": None, "status": None, "answer": None}
    pending = [request_head, frame(head)]
    remaining = body_size
    started = time.perf_counter()
    received = b""
    try:
        while time.perf_counter() - started < timeout:
            if not pending:
                if remaining > 0:
                    piece = chunk[: min(len(chunk), remaining)]
                    remaining -= len(piece)
                    pending.append(frame(piece))
                elif tail is not None:
                    pending.append(frame(tail) + (b"0\r\n\r\n" if chunked else b""))
                    tail = None
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 0.5)
            if readable:
                data = sock.recv(1 << 16)
                if not data:
                    break
                received += data
                if _complete(received):
                    break
                continue
            if writable and pending:
                try:
                    sent = sock.send(pending[0])
                except BlockingIOError:
                    continue
                outcome["sent_bytes"] += sent
                pending[0] = pending[0][sent:]
                if not pending[0]:
                    pending.pop(0)
    except OSError as error:
        outcome["socket_error"] = f"{type(error).__name__}: {error}"
        try:  # the answer may already be in our receive buffer
            sock.setblocking(True)
            sock.settimeout(1)
            while not _complete(received):
                data = sock.recv(1 << 16)
                if not data:
                    break
                received += data
        except OSError:
            pass
    finally:
        sock.close()
    outcome["seconds"] = time.perf_counter() - started
    if received:
        head_part, _, body_part = received.partition(b"\r\n\r\n")
        status_line = head_part.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ")
        outcome["status"] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        outcome["status_line"] = status_line
        try:
            outcome["answer"] = json.loads(body_part)
        except ValueError:
            outcome["answer"] = body_part[:300].decode("utf-8", "replace")
    return outcome


def _complete(received: bytes) -> bool:
    """True once a whole HTTP response (by Content-Length) is in `received`."""
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def big_png(target_bytes: int) -> bytes:
    """A noise PNG of about target_bytes (noise does not compress: ~3 bytes per pixel)."""
    side = int((target_bytes / 3) ** 0.5)
    rng = random.Random(9)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def measure(sampler: RssSampler, action, settle: float = 0.3) -> tuple[dict, int, int]:
    """Baseline RSS, run action, keep sampling `settle` s after; returns (action result, baseline, peak)."""
    baseline = sampler.baseline()
    started = time.perf_counter()
    result = action()
    time.sleep(settle)
    window = sampler.window(started, time.perf_counter())
    return result, baseline, max(window) if window else baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="same checks (this benchmark is already short)")
    parser.add_argument("--big-mb", type=float, default=200.0, help="size of the over-limit body (MB)")
    parser.add_argument("--image-mb", type=float, default=9.0, help="size of the valid image (MB)")
    parser.add_argument("--max-upload-bytes", type=int, help="JUPYTER_ASSETS_MAX_UPLOAD_BYTES for the server")
    parser.add_argument("--no-enrichment-run", action="store_true", help="skip the informational 3rd check")
    parser.add_argument("--workdir", help="keep the server folder and log here (default: a temp dir)")
    parser.add_argument("--json", help="write the results as JSON to this file")
    args = parser.parse_args(argv)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {"JUPYTER_ASSETS_API_KEYS": API_KEY}
    if args.max_upload_bytes:
        env["JUPYTER_ASSETS_MAX_UPLOAD_BYTES"] = str(args.max_upload_bytes)
    server = ServerProcess(
        "jupyter-assets",
        [tool("jupyter-assets"), "serve", "--port", str(port), "--ip", LOOPBACK, "--root", str(work / "library")],
        work / "server.log",
        env=env,
    )
    image = big_png(int(args.image_mb * 1_000_000))
    print(
        f"upload_memory: {args.big_mb:.0f} MB over-limit body, {len(image) / 1e6:.1f} MB PNG; RSS sampled every "
        f"20 ms; workdir {work}",
        flush=True,
    )
    results: dict = {"benchmark": "upload_memory", "limit_mb": LIMIT_MB, "checks": {}}
    status = 0
    try:
        server.start()
        server.wait_ready(f"http://{LOOPBACK}:{port}/api/v1/assets", AUTH, timeout=90)
        sampler = RssSampler(server.pid).start()
        # Warm-up: small valid uploads and one refused one, so lazy imports and pools are in the baseline.
        for png in make_pngs(3, 64, 64):
            code, answer = http_request(
                port, "POST", "/api/v1/assets", multipart_body(png), {"Content-Type": MULTIPART_TYPE}
            )
            if code != 202:
                raise RuntimeError(f"warm-up upload answered {code}: {answer}")
        http_request(port, "POST", "/api/v1/assets", multipart_body(b"<html></html>"), {"Content-Type": MULTIPART_TYPE})
        http_request(port, "GET", "/api/v1/assets")
        idle_rss = sampler.baseline(1.0)
        print(f"  server RSS after warm-up: {idle_rss / MB:.1f} MB", flush=True)
        results["idle_rss_mb"] = idle_rss / MB

        # 1. over the limit: declared with Content-Length (a), then chunked, so only counting can stop it (b)
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="runEnrichment"\r\n\r\nfalse\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode() + b"\x89PNG\r\n\x1a\n"
        tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        big = int(args.big_mb * 1_000_000)
        for key, label, chunked in (
            ("over_limit_content_length", "1a", False),
            ("over_limit_chunked", "1b", True),
        ):
            outcome, base, peak = measure(sampler, lambda c=chunked: stream_body(port, head, big, tail, c))
            error = outcome["answer"].get("error", {}) if isinstance(outcome["answer"], dict) else {}
            healthy = http_request(port, "GET", "/api/v1/assets?pageSize=1")[0] == 200 and server.alive()
            check = {
                "baseline_mb": base / MB,
                "peak_mb": peak / MB,
                "increase_mb": (peak - base) / MB,
                "status": outcome["status"],
                "error_code": error.get("code"),
                "sent_mb": outcome["sent_bytes"] / 1e6,
                "declared_mb": outcome["declared_bytes"] / 1e6,
                "seconds": outcome["seconds"],
                "socket_error": outcome["socket_error"],
                "answer": outcome["answer"] if not error else None,
                "server_healthy_after": healthy,
            }
            check["pass"] = check["increase_mb"] < LIMIT_MB
            results["checks"][key] = check
            print(
                f"  {label}. {args.big_mb:.0f} MB over the limit, {'chunked' if chunked else 'Content-Length'}: "
                f"answer {outcome.get('status_line', 'none')!r} code={check['error_code']} after "
                f"{check['sent_mb']:.1f} of {check['declared_mb']:.0f} MB sent, {check['seconds']:.2f} s; socket "
                f"error: {check['socket_error']}; server healthy after: {healthy}"
            )
            if check["answer"] is not None:
                print(f"     answer body: {str(check['answer'])[:300] or '(empty, no JSON error envelope)'}")
            _print_rss(check)

        # 2. a valid 9 MB image
        body = multipart_body(image, filename="big.png")
        (code, answer), base, peak = measure(
            sampler,
            lambda: http_request(port, "POST", "/api/v1/assets", body, {"Content-Type": MULTIPART_TYPE}),
        )
        check = {
            "baseline_mb": base / MB,
            "peak_mb": peak / MB,
            "increase_mb": (peak - base) / MB,
            "status": code,
            "image_mb": len(image) / 1e6,
        }
        if code != 202:
            check["answer"] = answer
        check["pass"] = check["increase_mb"] < LIMIT_MB and code == 202
        results["checks"]["valid_9mb_upload"] = check
        print(f"  2. {len(image) / 1e6:.1f} MB PNG, runEnrichment=false: HTTP {code}")
        if code != 202:
            print(f"     answer: {str(answer)[:300]}")
        _print_rss(check)

        # 3. information: the same upload with enrichment, until the job is done
        if not args.no_enrichment_run:
            body = multipart_body(image, filename="big.png").replace(b"\r\n\r\nfalse\r\n", b"\r\n\r\ntrue\r\n", 1)

            def upload_and_wait() -> tuple[int, str | None, float]:
                code, answer = http_request(port, "POST", "/api/v1/assets", body, {"Content-Type": MULTIPART_TYPE})
                if code != 202:
                    return code, str(answer)[:300], 0.0
                asset_id = answer["data"]["id"]
                started = time.perf_counter()
                state = answer["data"].get("status")
                while time.perf_counter() - started < 60 and state in ("pending", "processing"):
                    time.sleep(0.1)
                    state = http_request(port, "GET", f"/api/v1/assets/{asset_id}")[1]["data"]["status"]
                return code, state, time.perf_counter() - started

            (code, state, waited), base, peak = measure(sampler, upload_and_wait)
            check = {"baseline_mb": base / MB, "peak_mb": peak / MB, "increase_mb": (peak - base) / MB,
                     "status": code, "final_asset_status": state, "enrichment_seconds": waited}  # fmt: skip
            results["checks"]["valid_9mb_with_enrichment_info"] = check
            print(f"  3. (info) same PNG, runEnrichment=true: HTTP {code}, asset {state} after {waited:.1f} s")
            _print_rss(check, info=True)
        sampler.stop()
        ok = all(results["checks"][key]["pass"] for key in GOAL_CHECKS)
        results["pass"] = ok
        print(f"GOALS upload_memory: RSS increase < {LIMIT_MB:.0f} MB for 1a, 1b and 2: {'PASS' if ok else 'FAIL'}")
        write_json(args.json, results)
    except Exception as error:  # noqa: BLE001 - report with the server log
        print(f"ERROR: {type(error).__name__}: {error}\n{server.log_tail()}")
        status = 2
    finally:
        server.stop()
        if args.workdir:
            print(f"  log kept in {server.log_path}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


def _print_rss(check: dict, info: bool = False) -> None:
    verdict = "(info)" if info else ("PASS" if check["pass"] else "FAIL")
    print(
        f"     RSS before {check['baseline_mb']:.1f} MB, peak {check['peak_mb']:.1f} MB, "
        f"increase {check['increase_mb']:.1f} MB (< {LIMIT_MB:.0f}: {verdict})",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
