"""The client's batch upload (``AssetsClient.upload_many``): the files of a folder or a list, several at a time,
skipping what the library already holds, one bad file never stopping the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..model import file_sha256
from .results import Asset, UploadReport
from .transport import WorkerSessions

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})


def collect_paths(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files to upload: a folder gives its image files (recursively, sorted), a file itself."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    paths: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            paths.append(path)  # a missing file is reported as failed, not dropped
    return paths


class BatchUpload:
    """One run of upload_many. ``upload`` sends one file; each worker thread sends on its own session from
    ``sessions``. With ``existing`` (SHA-256 checksums), a file whose checksum is in it is skipped, and the
    checksum of each file that goes up is added to it."""

    def __init__(self, upload: Callable[[Path], Asset], sessions: WorkerSessions, existing: set[str] | None) -> None:
        self._upload = upload
        self._sessions = sessions
        self._existing = existing
        self._seen_lock = threading.Lock()

    def run(self, paths: list[Path], *, workers: int, progress: bool) -> UploadReport:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), unit="file", desc="upload")
        outcomes: dict[int, tuple[str, Any]] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = {pool.submit(self._one, path): index for index, path in enumerate(paths)}
            for future in as_completed(futures):
                try:
                    outcomes[futures[future]] = future.result()
                except Exception as error:  # a bad file is reported, never raised
                    outcomes[futures[future]] = ("failed", error)
                if bar is not None:
                    bar.update(1)
        finally:
            # On an interrupt, files not yet started are dropped; a later run skips what did go up.
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
            self._sessions.close_all()
        return _report(paths, outcomes)

    def _one(self, path: Path) -> tuple[str, Any]:
        self._sessions.ensure()
        if self._existing is None:
            return "uploaded", self._upload(path)
        checksum = file_sha256(path)
        with self._seen_lock:  # claimed before uploading, so copies within one batch go up once
            if checksum in self._existing:
                return "skipped", None
            self._existing.add(checksum)
        try:
            return "uploaded", self._upload(path)
        except BaseException:
            with self._seen_lock:
                self._existing.discard(checksum)
            raise


def _report(paths: list[Path], outcomes: dict[int, tuple[str, Any]]) -> UploadReport:
    report = UploadReport()
    for index in sorted(outcomes):  # in the order given, whatever order they finished in
        outcome, value = outcomes[index]
        if outcome == "uploaded":
            report.uploaded.append(value)
        elif outcome == "skipped":
            report.skipped.append(paths[index])
        else:
            report.failed.append((paths[index], value))
    return report
