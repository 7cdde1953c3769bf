"""The upload ceiling: a minimal Tornado app that streams a request body to a file and answers 202.

No parsing, hashing, validation, database or auth: whatever our server does on top costs throughput relative to
this. ``POST /upload`` writes the raw body (multipart and all) to a new file under ``--dir``; ``GET /`` answers 200
(readiness). With ``--fsync`` the file is fsynced before the answer, like a durable upload.

    python bench/ceiling_server.py --port 8123 --dir /tmp/ceiling [--fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from pathlib import Path

import tornado.web

MAX_BODY = 1 << 30


class ReadyHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"data": "ok"})


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def initialize(self, folder: Path, fsync: bool) -> None:
        self.folder = folder
        self.fsync = fsync
        self.file = None

    def prepare(self) -> None:
        self.request.connection.set_max_body_size(MAX_BODY)
        self.name = uuid.uuid4().hex
        self.file = open(self.folder / self.name, "wb")  # noqa: SIM115 - closed in post/on_connection_close

    def data_received(self, chunk: bytes) -> None:
        self.file.write(chunk)

    def post(self) -> None:
        self.file.flush()
        if self.fsync:
            os.fsync(self.file.fileno())
        self.file.close()
        self.set_status(202)
        self.write({"data": {"id": self.name}})

    def on_connection_close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()


async def serve(port: int, ip: str, folder: Path, fsync: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    app = tornado.web.Application(
        [(r"/", ReadyHandler), (r"/upload", UploadHandler, {"folder": folder, "fsync": fsync})]
    )
    app.listen(port, address=ip)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--fsync", action="store_true", help="fsync each file before answering")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.ip, args.dir, args.fsync))


if __name__ == "__main__":
    main()
