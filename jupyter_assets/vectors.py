"""Search by meaning and duplicate grouping: in-memory, exact, pure numpy (no torch, no DuckDB).

* :class:`VectorIndex` holds the L2-normalised float32 embeddings of ONE model, a row per asset id, and answers
  exact top-k cosine queries by brute force (one BLAS matrix-vector product over the live rows, then a partial
  sort). At 1,000,000 x 512 that is ~2 GB of floats and ~50 ms per query on two cores, bound by memory bandwidth.
* :func:`hamming_groups` groups assets whose 64-bit perceptual hashes are within a few bits (multi-index hashing).
* :func:`group_similar` groups assets whose embeddings are within a cosine threshold (blockwise, O(N^2 * d)).

The index ranks; only the catalog knows which assets a caller may see and which match the other filters, so the
search module (``search.py``) asks for a few more candidates than a page needs and widens the ranking until the page
is full or the index is exhausted.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import combinations, pairwise

import numpy as np

_MIN_CAPACITY = 1024
_LOAD_BLOCK = 8192  # rows normalised per step of load()
_LOAD_THREADS = 4
_RESCORE_BLOCK = 2048  # candidates scored again in float64 per step (8 MB at 512 dimensions)
_SIMILAR_ROWS = 1024  # group_similar tile: 1024 x 8192 float32 scores = 32 MB
_SIMILAR_COLS = 8192
_MASK64 = (1 << 64) - 1
# A vector whose norm is this close to 1 is kept as given: dividing it again would only add rounding noise (and
# would perturb the order of near-tied scores against a caller's own float64 check).
_UNIT_TOLERANCE = 1e-6


def _unit(vector: np.ndarray | Sequence[float], dim: int) -> np.ndarray:
    """One vector as float32 of unit length (not a copy when it already is); ValueError unless it is finite,
    non-zero and of length dim."""
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        raise ValueError(f"expected a vector of shape ({dim},), got {array.shape}")
    norm = float(np.linalg.norm(array))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError("vector must be finite and non-zero")
    return array if abs(norm - 1.0) <= _UNIT_TOLERANCE else array / np.float32(norm)


def _float32_error(dim: int) -> float:
    """A bound on |float32 dot - exact dot| for unit vectors of length dim (n*u/(1-n*u), u = 2^-24), with slack."""
    return 1.5 * dim * 2.0**-24 / (1 - dim * 2.0**-24)


def _exact_scores(matrix: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float64 cosines of matrix[rows] with query, computed the same way for every row.

    BLAS float32 products round differently for rows at different positions (tails of its blocks and threads), so
    two identical vectors may score a few units in the last place apart; einsum here sums each row in one fixed
    order, in float64, so identical vectors tie exactly.
    """
    query64 = query.astype(np.float64)
    scores = np.empty(rows.size)
    for start in range(0, rows.size, _RESCORE_BLOCK):
        block = rows[start : start + _RESCORE_BLOCK]
        scores[start : start + block.size] = np.einsum("ij,j->i", matrix[block].astype(np.float64), query64)
    return scores


def _top(
    scores: np.ndarray,
    matrix: np.ndarray,
    ids: Sequence[str],
    query: np.ndarray,
    limit: int,
    exclude: set[str] | None,
    scratch: np.ndarray,
) -> list[tuple[str, float]]:
    """The best `limit` (id, score) of the rows scored by `scores` (float32 BLAS scores of matrix rows; row i is
    ids[i]), by descending exact score, then ascending id.

    The float32 scores only pick candidates: a partition (O(n)) finds the k-th best, and every row within the
    float32 error bound of it is kept, so no row of the exact top k is lost. The candidates (about k) are then scored
    again in float64 (_exact_scores), sorted, and rows with equal scores ordered by id. `scratch` (float32, >= n)
    spares the partition an allocation.
    """
    n = scores.size
    # Excluded ids can only push results down: asking for len(exclude) more keeps the answer exact.
    want = min(n, limit + (len(exclude) if exclude else 0))
    if limit == 0 or want == 0:
        return []
    if want < n:
        part = scratch[:n]
        np.copyto(part, scores)
        part.partition(n - want)
        rows = np.flatnonzero(scores >= part[n - want] - 2 * _float32_error(query.size))
    else:
        rows = np.arange(n)
    exact = _exact_scores(matrix, rows, query)
    order = np.argsort(-exact, kind="stable")
    exact = exact[order]
    names = [ids[row] for row in rows[order].tolist()]
    tied = np.flatnonzero(exact[1:] == exact[:-1])  # i where exact[i] == exact[i + 1]
    if tied.size:
        breaks = np.flatnonzero(np.diff(tied) > 1)
        starts = tied[np.r_[0, breaks + 1]]
        ends = tied[np.r_[breaks, tied.size - 1]] + 2
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            names[start:end] = sorted(names[start:end])
    pairs = zip(names, exact.tolist(), strict=True)
    if exclude:
        pairs = ((name, score) for name, score in pairs if name not in exclude)
    result = []
    for pair in pairs:
        result.append(pair)
        if len(result) == limit:
            break
    return result


def _normalise_rows(stored: np.ndarray, matrix: np.ndarray, ids: Sequence[str], start: int, stop: int) -> None:
    """stored[start:stop] = matrix[start:stop] as float32 unit rows; ValueError naming a zero or non-finite row."""
    for block_start in range(start, stop, _LOAD_BLOCK):
        block_stop = min(block_start + _LOAD_BLOCK, stop)
        block = stored[block_start:block_stop]  # one block stays in cache between copy, norm and divide
        block[...] = matrix[block_start:block_stop]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))  # a NaN or inf anywhere makes the norm one
        if bad.size:
            raise ValueError(f"vector of {ids[block_start + int(bad[0])]!r} is zero or not finite")
        norms[np.abs(norms - 1) <= _UNIT_TOLERANCE] = 1  # already unit: stored bit for bit
        block /= norms[:, None]


class VectorIndex:
    """L2-normalised float32 vectors of one model, keyed by asset id, with exact brute-force cosine search.

    Storage: rows 0..len-1 of a capacity-sized matrix (capacity doubles when full, so add is amortised O(1));
    remove moves the last row into the hole (O(1)). Row order is therefore arbitrary; results never depend on it.

    Threads: searches hold no lock during the matrix product. A search registers as a reader and takes a snapshot
    (matrix reference, row count, id list) under a short lock. Appending a new id writes a row past every reader's
    row count (or into a freshly grown copy), so it never waits for searches. Changing rows a snapshot can see
    (remove, or re-adding an existing id) waits until the searches in flight end (at most one product, ~50 ms at
    1M x 512) and holds off new ones for the few microseconds of the change, so a search always sees one state.
    """

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        self.dim = dim
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._ids: list[str] = []  # row -> asset id
        self._rows: dict[str, int] = {}  # asset id -> row
        self._count = 0
        self._write_lock = threading.Lock()  # one writer at a time
        self._state = threading.Condition()  # guards the published (matrix, ids, count) and the reader count
        self._readers = 0
        self._exclusive = False
        self._local = threading.local()  # per-thread score buffers, reused across searches

    def __len__(self) -> int:
        return self._count

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._rows

    def vector(self, asset_id: str) -> np.ndarray | None:
        """A copy of the stored (normalised) vector of asset_id, or None."""
        with self._write_lock:
            row = self._rows.get(asset_id)
            return None if row is None else self._matrix[row].copy()

    def load(self, ids: Sequence[str], matrix: np.ndarray) -> None:
        """Replace the whole content: row i of matrix is the vector of ids[i]. Vectors are normalised here.

        ValueError on a shape mismatch, a repeated id or a zero or non-finite row. Searches running meanwhile
        finish on the previous content.
        """
        matrix = np.asarray(matrix)
        n = len(ids)
        if matrix.ndim != 2 or matrix.shape != (n, self.dim):
            raise ValueError(f"expected a matrix of shape ({n}, {self.dim}), got {matrix.shape}")
        # Headroom for adds; pages past row n are not touched, so they cost address space, not memory.
        stored = np.empty((max(_MIN_CAPACITY, n + n // 4), self.dim), dtype=np.float32)
        # Most of a big load is the kernel providing fresh (huge) pages on first touch, which goes faster from
        # several threads; numpy releases the GIL, so the id map is built meanwhile.
        workers = max(1, min(_LOAD_THREADS, os.cpu_count() or 1, n // _LOAD_BLOCK))
        bounds = [n * i // workers for i in range(workers + 1)]
        with ThreadPoolExecutor(workers) as pool:
            copies = [pool.submit(_normalise_rows, stored, matrix, ids, lo, hi) for lo, hi in pairwise(bounds)]
            rows = {asset_id: row for row, asset_id in enumerate(ids)}
            for copy in copies:
                copy.result()  # re-raises a bad row's ValueError
        if len(rows) != n:
            raise ValueError("ids must be unique")
        with self._write_lock, self._state:
            self._matrix, self._ids, self._rows, self._count = stored, list(ids), rows, n

    def add(self, asset_id: str, vector: np.ndarray | Sequence[float]) -> None:
        """Insert or replace the vector of asset_id (normalised here). ValueError: wrong length, zero, non-finite."""
        unit = _unit(vector, self.dim)
        with self._write_lock:
            row = self._rows.get(asset_id)
            if row is not None:
                with self._exclusive_access():
                    self._matrix[row] = unit
                return
            n = self._count
            if n == len(self._matrix):
                grown = np.empty((max(_MIN_CAPACITY, 2 * n), self.dim), dtype=np.float32)
                grown[:n] = self._matrix[:n]  # readers keep using the old array meanwhile
                with self._state:
                    self._matrix = grown
            # Row n is past every snapshot's row count: no reader looks at it until the count is published.
            self._matrix[n] = unit
            self._ids.append(asset_id)
            self._rows[asset_id] = n
            with self._state:
                self._count = n + 1

    def remove(self, asset_id: str) -> bool:
        """Forget asset_id; False when it was not there."""
        with self._write_lock:
            row = self._rows.get(asset_id)
            if row is None:
                return False
            with self._exclusive_access():
                last = self._count - 1
                if row != last:
                    moved = self._ids[last]
                    self._matrix[row] = self._matrix[last]
                    self._ids[row] = moved
                    self._rows[moved] = row
                self._ids.pop()
                del self._rows[asset_id]
                self._count = last
            return True

    def search(
        self, query: np.ndarray | Sequence[float], limit: int, exclude: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """The best `limit` (asset id, cosine) pairs for query, best first, equal scores by ascending id; exact.

        Scores are float64 cosines of the stored float32 vectors (identical vectors tie exactly). `limit` may exceed
        len(self): then every asset comes back. Ids in `exclude` are skipped and do not count towards `limit`.
        ValueError when limit < 0 or the query has the wrong length or is zero or not finite.
        """
        if limit < 0:
            raise ValueError("limit must be >= 0")
        unit = _unit(query, self.dim)
        with self._reading() as (matrix, ids, n):
            scores, scratch = self._buffers(n, len(matrix))
            np.dot(matrix[:n], unit, out=scores)  # BLAS gemv straight on the live rows: no copy of the matrix
            return _top(scores, matrix, ids, unit, limit, exclude, scratch)

    def snapshot(self, only: set[str] | None = None) -> tuple[list[str], np.ndarray]:
        """Copies of the ids and their (normalised) vectors, row i for ids[i]: for work too long to block writers.
        ``only``: just these assets (those a caller may see)."""
        with self._reading() as (matrix, ids, n):
            if only is None:
                return ids[:n], matrix[:n].copy()
            rows = [row for row in range(n) if ids[row] in only]
            return [ids[row] for row in rows], matrix[rows]

    @contextmanager
    def _reading(self) -> Iterator[tuple[np.ndarray, list[str], int]]:
        """A consistent (matrix, ids, row count) that no writer changes in place until the block ends."""
        with self._state:
            while self._exclusive:
                self._state.wait()
            self._readers += 1
            snapshot = (self._matrix, self._ids, self._count)
        try:
            yield snapshot
        finally:
            with self._state:
                self._readers -= 1
                if not self._readers:
                    self._state.notify_all()

    @contextmanager
    def _exclusive_access(self) -> Iterator[None]:
        """Wait for the searches in flight and keep new ones out (writers call this under _write_lock)."""
        with self._state:
            self._exclusive = True  # set before waiting, so a stream of new searches cannot starve the writer
            while self._readers:
                self._state.wait()
        try:
            yield
        finally:
            with self._state:
                self._exclusive = False
                self._state.notify_all()

    def _buffers(self, n: int, capacity: int) -> tuple[np.ndarray, np.ndarray]:
        """This thread's (scores of length n, scratch) float32 buffers, reallocated when the index outgrows them."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None or len(buffers[0]) < n:
            buffers = (np.empty(capacity, dtype=np.float32), np.empty(capacity, dtype=np.float32))
            self._local.buffers = buffers
        return buffers[0][:n], buffers[1]


def _roots(parent: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The root of each node, compressing the paths of the nodes asked about."""
    roots = parent[nodes]
    while True:
        up = parent[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    parent[nodes] = roots
    return roots


def _union(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Merge the components of a[i] and b[i] for every i (vectorised union-find: a root always points lower)."""
    while a.size:
        a, b = _roots(parent, a), _roots(parent, b)
        differ = a != b
        a, b = a[differ], b[differ]
        # Each root hooks to the lowest root it touches; links left over (another hook won) go round again.
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))


def _labels(parent: np.ndarray) -> np.ndarray:
    """Component label of every node (its lowest node), from a union-find parent array."""
    while True:
        up = parent[parent]
        if np.array_equal(up, parent):
            return parent
        parent = up


def _groups(ids: Sequence[str], labels: np.ndarray) -> list[list[str]]:
    """Ids sharing a label, groups of 2+ only; members sorted, groups sorted by their first member."""
    sizes = np.bincount(labels)
    members = np.flatnonzero(sizes[labels] >= 2)
    groups: dict[int, list[str]] = {}
    for index, label in zip(members.tolist(), labels[members].tolist(), strict=True):
        groups.setdefault(label, []).append(ids[index])
    # Groups are disjoint, so sorting the lists sorts them by first member.
    return sorted(sorted(group) for group in groups.values())


def _hash_tables(max_distance: int, n: int) -> list[list[tuple[int, int]]]:
    """Multi-index hashing tables, each a list of (shift, width) bit chunks: two hashes within max_distance bits
    agree exactly on every chunk of at least one table.

    Split the 64 bits into m chunks (m > max_distance). Two hashes that differ in at most max_distance bits differ
    in at most max_distance chunks, so they agree on at least t = m - max_distance chunks: every combination of t
    chunks is a table, and a close pair shares a key in one of them. m = max_distance + 1 (t = 1) is the classic
    scheme; with 1M hashes its short keys make huge buckets (at distance 6: 9-bit keys, ~2,000 hashes per bucket),
    so m is chosen by a cost model: per table one sort of n keys (about as dear as 2 compared pairs per key) plus
    the pairs compared within buckets (n^2 / 2 / 2^key_bits for uniform hashes). A key and a row number must fit in
    64 bits together (see _close_pairs); t = 1 always does.
    """
    index_bits = max(1, (n - 1).bit_length())
    best: tuple[float, int] | None = None
    for m in range(max_distance + 1, min(64, max_distance + 12) + 1):
        t = m - max_distance
        key_bits = sum(sorted(64 // m + (i < 64 % m) for i in range(m))[:t])
        cost = math.comb(m, t) * (2 * n + n * n / 2 / 2.0**key_bits)
        if key_bits + index_bits <= 64 and (best is None or cost < best[0]):
            best = (cost, m)
    assert best is not None
    m = best[1]
    chunks, shift = [], 0
    for i in range(m):
        width = 64 // m + (i < 64 % m)
        chunks.append((shift, width))
        shift += width
    return [list(chosen) for chosen in combinations(chunks, m - max_distance)]


def _close_pairs(codes: np.ndarray, chunks: list[tuple[int, int]], max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of codes that agree on every chunk and are within max_distance bits overall."""
    n = len(codes)
    key = np.zeros(n, dtype=np.uint64)
    position = 0
    for shift, width in chunks:
        key |= ((codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)) << np.uint64(position)
        position += width
    # Key and row number packed into one uint64: a plain sort (~6x faster than argsort) gives both orders.
    index_bits = np.uint64(max(1, (n - 1).bit_length()))
    packed = np.sort((key << index_bits) | np.arange(n, dtype=np.uint64))
    order = (packed & ((np.uint64(1) << index_bits) - np.uint64(1))).astype(np.intp)
    keys = packed >> index_bits
    sorted_codes = codes[order]
    found_a, found_b = [], []
    # Compare each code with the one `offset` places later while both share a key: sorted, so once a run of equal
    # keys ends for i it has ended for every later offset. Work: the pairs within buckets, not all pairs.
    offset = 1
    first = np.flatnonzero(keys[1:] == keys[:-1])
    while first.size:
        later = first + offset
        close = np.bitwise_count(sorted_codes[first] ^ sorted_codes[later]) <= max_distance
        found_a.append(order[first[close]])
        found_b.append(order[later[close]])
        offset += 1
        first = first[first + offset < n]
        first = first[keys[first + offset] == keys[first]]
    if not found_a:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate(found_a), np.concatenate(found_b)


def hamming_groups(hashes: Sequence[tuple[str, int]], max_distance: int) -> list[list[str]]:
    """Groups of asset ids whose 64-bit hashes are within max_distance differing bits, linked transitively.

    hashes: (asset id, hash) with 0 <= hash < 2**64 (a negative value is read as a signed 64-bit int). A group is a
    connected component of "within max_distance" (so two members can be further apart through a third). Only groups
    of 2+; members sorted, groups sorted by first member.

    Cost: identical hashes are merged first; then, per multi-index table (see _hash_tables), one sort plus the pairs
    inside its buckets. ~1M uniform hashes at distance <= 6 take seconds; heavily skewed hashes (many images
    sharing most bits, e.g. blank ones) make big buckets and can be much slower.
    """
    if max_distance < 0:
        raise ValueError("max_distance must be >= 0")
    n = len(hashes)
    if n < 2:
        return []
    ids = [asset_id for asset_id, _ in hashes]
    values = [value for _, value in hashes]
    if min(values) < -(1 << 63) or max(values) > _MASK64:
        raise ValueError("hashes must fit in 64 bits")
    codes = np.fromiter((value & _MASK64 for value in values), dtype=np.uint64, count=n)
    unique, inverse = np.unique(codes, return_inverse=True)
    parent = np.arange(len(unique))
    if max_distance >= 64:
        parent[:] = 0
    elif max_distance > 0:
        for chunks in _hash_tables(max_distance, len(unique)):
            _union(parent, *_close_pairs(unique, chunks, max_distance))
    return _groups(ids, _labels(parent)[inverse])


def group_similar(ids: list[str], matrix: np.ndarray, threshold: float) -> list[tuple[list[str], float]]:
    """Groups of assets whose embeddings have cosine >= threshold, linked transitively, with the group's score.

    The score is the LOWEST cosine among all pairs of members that reach the threshold (the weakest link that
    qualifies); unlinked members can be less similar than that. Groups of 2+ only; members sorted, groups sorted
    by first member. Exactly 1.0 can miss identical vectors (rounding): use a threshold a little below.

    Cost: every pair is scored, O(N^2 * d) (20k x 512: ~1 s; 1M: hours), in 1024 x 8192 tiles so memory stays at
    a copy of the index plus ~32 MB. Row i of the normalised ``matrix`` is ``ids[i]``: a ``VectorIndex.snapshot``,
    so the index stays writable meanwhile.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError("threshold must be within [-1, 1]")
    n = len(ids)
    parent = np.arange(n)
    weakest = np.full(n, np.inf, dtype=np.float32)  # lowest qualifying score touching each node
    for row_start in range(0, n, _SIMILAR_ROWS):
        rows = matrix[row_start : row_start + _SIMILAR_ROWS]
        # Only columns from row_start on: each pair is scored once (the tile on the diagonal keeps j > i).
        for col_start in range(row_start, n, _SIMILAR_COLS):
            tile = rows @ matrix[col_start : col_start + _SIMILAR_COLS].T
            r, c = np.nonzero(tile >= threshold)
            a, b = r + row_start, c + col_start
            upper = b > a
            if not upper.any():
                continue
            a, b, scores = a[upper], b[upper], tile[r[upper], c[upper]]
            np.minimum.at(weakest, a, scores)
            np.minimum.at(weakest, b, scores)
            _union(parent, a, b)
    labels = _labels(parent)
    groups = _groups(ids, labels)
    lowest = np.full(n, np.inf, dtype=np.float32)
    np.minimum.at(lowest, labels, weakest)
    row_of = {asset_id: row for row, asset_id in enumerate(ids)}
    return [(group, float(lowest[labels[row_of[group[0]]]])) for group in groups]
