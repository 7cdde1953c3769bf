"""The client's batch upload (``AssetsClient.upload_many``): the files of a folder or a list, several at a time,
skipping what the library already holds, one bad file never stopping the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..model import file_sha256
from .results import UploadReport
from .transport import WorkerSessions

MAX_BATCH_FILES = 100  # what the server takes in one request
GROUP_BYTES = 32 * 1024 * 1024  # files of one request, at most: a request lost to a network error resends little
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
    """One run of upload_many. ``upload`` sends a group of files in one request (``upload_batch``); each worker
    thread sends on its own session from ``sessions``. With ``existing`` (SHA-256 checksums), a file whose
    checksum is in it is skipped, and the checksum of each file that goes up is added to it."""

    def __init__(
        self, upload: Callable[[list[Path]], list[Any]], sessions: WorkerSessions, existing: set[str] | None
    ) -> None:
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
            futures = {pool.submit(self._group, [paths[i] for i in group]): group for group in _groups(paths, workers)}
            for future in as_completed(futures):
                group = futures[future]
                try:
                    results = future.result()
                except Exception as error:  # a bad file is reported, never raised
                    results = [("failed", error)] * len(group)
                outcomes.update(zip(group, results, strict=True))
                if bar is not None:
                    bar.update(len(group))
        finally:
            # On an interrupt, groups not yet started are dropped; a later run skips what did go up.
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
            self._sessions.close_all()
        return _report(paths, outcomes)

    def _group(self, paths: list[Path]) -> list[tuple[str, Any]]:
        self._sessions.ensure()
        results: list[tuple[str, Any] | None] = [None] * len(paths)
        claimed: dict[int, str] = {}  # index in the group -> checksum claimed for it
        for index, path in enumerate(paths):
            if self._existing is None:
                continue
            try:
                checksum = file_sha256(path)
            except OSError as error:
                results[index] = ("failed", error)
                continue
            with self._seen_lock:  # claimed before uploading, so copies within one run go up once
                if checksum in self._existing:
                    results[index] = ("skipped", None)
                    continue
                self._existing.add(checksum)
            claimed[index] = checksum
        sending = [index for index, result in enumerate(results) if result is None]
        try:
            answers = self._upload([paths[index] for index in sending]) if sending else []
        except Exception as error:  # the request failed as a whole: so did each file it carried
            answers = [error] * len(sending)
        except BaseException:
            self._release(claimed.values())
            raise
        self._release(
            claimed[i] for i, answer in zip(sending, answers, strict=True) if _failed(answer) and i in claimed
        )
        for index, answer in zip(sending, answers, strict=True):
            results[index] = ("failed", answer) if _failed(answer) else ("uploaded", answer)
        return results

    def _release(self, checksums: Iterable[str]) -> None:
        """Files that did not go up: a later run (or a copy later in this one) uploads them."""
        with self._seen_lock:
            if self._existing is not None:
                self._existing.difference_update(checksums)


def _failed(answer: Any) -> bool:
    return isinstance(answer, Exception)


def _groups(paths: list[Path], workers: int) -> list[list[int]]:
    """The files' indexes in groups of one request each: at most MAX_BATCH_FILES files and GROUP_BYTES (a larger
    file goes alone), and small enough that every worker gets some."""
    per_group = max(1, min(MAX_BATCH_FILES, -(-len(paths) // max(1, workers))))
    groups: list[list[int]] = []
    size = 0
    for index, path in enumerate(paths):
        try:
            file_size = path.stat().st_size
        except OSError:
            file_size = 0  # reported when the group is read
        if not groups or len(groups[-1]) >= per_group or size + file_size > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += file_size
    return groups


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
