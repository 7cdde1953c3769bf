"""VectorIndex, hamming_groups and group_similar against numpy brute force on random data."""

from __future__ import annotations

import threading
from itertools import combinations

import numpy as np
import pytest

from jupyter_assets import vectors
from jupyter_assets.vectors import VectorIndex, group_similar, hamming_groups


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    vector = rng.standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def brute_search(
    stored: dict[str, np.ndarray], query: np.ndarray, limit: int, exclude: set[str] = frozenset()
) -> list[tuple[str, float]]:
    """Every stored vector scored in float64, best first, ties by id, cut at limit."""
    # The query normalised in float32 as the index does it (a unit query as given), so near-ties (~1e-8 apart)
    # compare alike.
    query = np.asarray(query, dtype=np.float32)
    norm = np.linalg.norm(query)
    query64 = (query if abs(norm - 1) <= 1e-6 else query / np.float32(norm)).astype(np.float64)
    scored = [(float(vector.astype(np.float64) @ query64), asset_id) for asset_id, vector in stored.items()]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [(asset_id, score) for score, asset_id in scored if asset_id not in exclude][:limit]


def assert_same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [asset_id for asset_id, _ in got] == [asset_id for asset_id, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=0, atol=1e-6)


def stored_vectors(index: VectorIndex, ids: list[str]) -> dict[str, np.ndarray]:
    return {asset_id: index.vector(asset_id) for asset_id in ids}


@pytest.mark.parametrize(("count", "dim"), [(1, 8), (7, 8), (300, 64), (3001, 32)])
def test_search_matches_brute_force(count: int, dim: int) -> None:
    rng = np.random.default_rng(count)
    matrix = rng.standard_normal((count, dim)).astype(np.float32) * 3  # not normalised: load() does it
    ids = [f"a{i:05d}" for i in rng.permutation(count)]
    index = VectorIndex(dim)
    index.load(ids, matrix)
    assert len(index) == count
    stored = stored_vectors(index, ids)
    for vector in stored.values():
        assert abs(np.linalg.norm(vector) - 1) < 1e-6
    for _ in range(5):
        query = rng.standard_normal(dim).astype(np.float32)
        for limit in (1, 5, count - 1, count, count + 10):
            assert_same(index.search(query, limit), brute_search(stored, query, limit))


def test_search_exact_after_adds_removes_upserts_and_growth() -> None:
    rng = np.random.default_rng(7)
    dim = 16
    index = VectorIndex(dim)
    model: dict[str, np.ndarray] = {}
    for step in range(9000):  # capacity grows 1024 -> 2048 -> 4096 -> 8192 on the way
        roll = rng.random()
        if roll < 0.7 or not model:
            asset_id = f"id-{step}"
        elif roll < 0.85:
            asset_id = sorted(model)[rng.integers(len(model))]  # upsert an existing id
        else:
            victim = sorted(model)[rng.integers(len(model))]
            assert index.remove(victim)
            del model[victim]
            continue
        vector = rng.standard_normal(dim).astype(np.float32)
        index.add(asset_id, vector)
        model[asset_id] = vector / np.linalg.norm(vector)
        if step % 2000 == 0:
            query = rng.standard_normal(dim).astype(np.float32)
            assert_same(index.search(query, 10), brute_search(stored_vectors(index, list(model)), query, 10))
    assert len(index) == len(model) > 4096
    for asset_id, vector in model.items():
        assert asset_id in index
        np.testing.assert_allclose(index.vector(asset_id), vector, atol=1e-6)
    stored = stored_vectors(index, list(model))
    for _ in range(10):
        query = rng.standard_normal(dim).astype(np.float32)
        for limit in (1, 20, 500, len(model) + 1):
            assert_same(index.search(query, limit), brute_search(stored, query, limit))


def test_self_query_ranks_itself_first() -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex(64)
    index.load([f"x{i}" for i in range(2000)], rng.standard_normal((2000, 64)).astype(np.float32))
    for i in rng.choice(2000, 50, replace=False):
        asset_id = f"x{i}"
        best_id, best_score = index.search(index.vector(asset_id), 3)[0]
        assert best_id == asset_id
        assert best_score == pytest.approx(1.0, abs=1e-6)


def test_identical_vectors_tie_exactly_and_break_by_id() -> None:
    rng = np.random.default_rng(11)
    dim = 512
    index = VectorIndex(dim)
    duplicate = unit(rng, dim)
    count = 4099  # BLAS handles the last rows of a block (and of each thread's share) on a different path
    dup_rows = set(rng.choice(count - 3, 40, replace=False).tolist()) | {count - 3, count - 2, count - 1}
    dup_ids = []
    for row in range(count):
        asset_id = f"r{rng.integers(10**9):09d}-{row}"
        if row in dup_rows:
            dup_ids.append(asset_id)
            index.add(asset_id, duplicate)
        else:
            index.add(asset_id, unit(rng, dim))
    for _ in range(5):
        query = rng.standard_normal(dim).astype(np.float32)
        results = index.search(query, count)
        scores = dict(results)
        assert len({scores[asset_id] for asset_id in dup_ids}) == 1
        positions = [i for i, (asset_id, _) in enumerate(results) if asset_id in dup_ids]
        assert positions == list(range(positions[0], positions[0] + len(dup_ids)))
        assert [results[i][0] for i in positions] == sorted(dup_ids)
    # The duplicates are the best match of their own vector: a limit that cuts the tie keeps the lowest ids.
    assert [asset_id for asset_id, _ in index.search(duplicate, 5)] == sorted(dup_ids)[:5]


def test_equal_scores_order_by_id() -> None:
    index = VectorIndex(4)
    for asset_id in ["d", "b", "e", "a", "c"]:
        index.add(asset_id, [0, 1, 0, 0])  # orthogonal to the query: all score exactly 0
    index.add("z", [1, 0, 0, 0])
    assert index.search([2, 0, 0, 0], 4) == [("z", 1.0), ("a", 0.0), ("b", 0.0), ("c", 0.0)]


def test_exclude_skips_ids_without_shortening_the_page() -> None:
    rng = np.random.default_rng(5)
    index = VectorIndex(32)
    ids = [f"e{i}" for i in range(500)]
    index.load(ids, rng.standard_normal((500, 32)).astype(np.float32))
    stored = stored_vectors(index, ids)
    query = rng.standard_normal(32).astype(np.float32)
    best = [asset_id for asset_id, _ in index.search(query, 10)]
    exclude = set(best[:3]) | {best[7], "not-in-index"}
    got = index.search(query, 10, exclude=exclude)
    assert len(got) == 10 and not exclude & {asset_id for asset_id, _ in got}
    assert_same(got, brute_search(stored, query, 10, exclude))


def test_remove_really_removes() -> None:
    rng = np.random.default_rng(9)
    index = VectorIndex(8)
    vectors_by_id = {f"v{i}": unit(rng, 8) for i in range(50)}
    for asset_id, vector in vectors_by_id.items():
        index.add(asset_id, vector)
    for victim in ("v49", "v0", "v25"):  # the last row, the first, one in the middle
        assert index.remove(victim)
        assert not index.remove(victim)
        assert victim not in index and index.vector(victim) is None
        assert victim not in {asset_id for asset_id, _ in index.search(vectors_by_id[victim], 100)}
        assert index.search(vectors_by_id[victim], 1)[0][1] < 0.9999
    assert len(index) == 47
    remaining = {k: v for k, v in vectors_by_id.items() if k not in {"v49", "v0", "v25"}}
    query = rng.standard_normal(8).astype(np.float32)
    assert_same(index.search(query, 100), brute_search(stored_vectors(index, list(remaining)), query, 100))
    index.add("v0", vectors_by_id["v0"])  # back again after removal
    assert index.search(vectors_by_id["v0"], 1)[0][0] == "v0"


def test_limit_beyond_size_zero_and_empty_index() -> None:
    index = VectorIndex(3)
    assert index.search([1, 0, 0], 10) == []
    assert len(index) == 0 and "a" not in index and index.vector("a") is None
    index.add("a", [1, 0, 0])
    index.add("b", [1, 1, 0])
    results = index.search([1, 0, 0], 1000)
    assert [asset_id for asset_id, _ in results] == ["a", "b"]
    assert results[1][1] == pytest.approx(2**-0.5)
    assert index.search([1, 0, 0], 0) == []


def test_invalid_input_raises_value_error() -> None:
    index = VectorIndex(4)
    index.add("a", [1, 0, 0, 0])
    for bad in ([1, 0, 0], [1, 0, 0, 0, 0], [[1, 0, 0, 0]], [0, 0, 0, 0], [np.nan, 1, 0, 0], [np.inf, 0, 0, 0]):
        with pytest.raises(ValueError):
            index.search(bad, 5)
        with pytest.raises(ValueError):
            index.add("b", bad)
    with pytest.raises(ValueError):
        index.search([1, 0, 0, 0], -1)
    with pytest.raises(ValueError):
        index.load(["a", "b"], np.ones((2, 5), dtype=np.float32))
    with pytest.raises(ValueError):
        index.load(["a", "b", "c"], np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="unique"):
        index.load(["a", "a"], np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="'y'"):
        index.load(["x", "y"], np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="'x'"):
        index.load(["x", "y"], np.array([[np.nan, 0, 0, 0], [1, 0, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError):
        VectorIndex(0)
    assert len(index) == 1 and "b" not in index  # failed calls changed nothing


def test_unit_vectors_are_stored_bit_for_bit() -> None:
    rng = np.random.default_rng(8)
    matrix = rng.standard_normal((100, 48)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = VectorIndex(48)
    index.load([f"u{i}" for i in range(100)], matrix)
    index.add("extra", matrix[0])
    assert all(np.array_equal(index.vector(f"u{i}"), matrix[i]) for i in range(100))
    assert np.array_equal(index.vector("extra"), matrix[0])


def test_snapshot_is_a_copy() -> None:
    index = VectorIndex(2)
    index.add("a", [3, 4])
    ids, matrix = index.snapshot()
    assert ids == ["a"]
    np.testing.assert_allclose(matrix, [[0.6, 0.8]], atol=1e-7)
    matrix[0] = 0
    index.add("b", [1, 0])
    assert ids == ["a"] and index.vector("a")[0] == pytest.approx(0.6)


def test_concurrent_writes_and_searches_stay_consistent() -> None:
    rng = np.random.default_rng(21)
    dim = 32
    index = VectorIndex(dim)
    anchors = {f"anchor-{i}": unit(rng, dim) for i in range(100)}  # never removed or changed
    for asset_id, vector in anchors.items():
        index.add(asset_id, vector)
    # Every id ever written, with each version of its vector: a result's score must match one version.
    versions: dict[str, list[np.ndarray]] = {asset_id: [vector] for asset_id, vector in anchors.items()}
    pool = {f"w{w}-{i}": [unit(rng, dim), unit(rng, dim)] for w in range(2) for i in range(1500)}
    versions.update(pool)
    errors: list[BaseException] = []
    searches: list[int] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        local = np.random.default_rng(worker)
        live: list[str] = []
        try:
            for i in range(1500):  # grows past 1024 and 2048 rows: capacity doubles while searches run
                asset_id = f"w{worker}-{i}"
                index.add(asset_id, pool[asset_id][0])
                live.append(asset_id)
                if i % 3 == 0:
                    victim = live.pop(int(local.integers(len(live))))
                    assert index.remove(victim)
                elif i % 5 == 0:
                    changed = live[int(local.integers(len(live)))]
                    index.add(changed, pool[changed][1])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    def reader(worker: int) -> None:
        local = np.random.default_rng(100 + worker)
        try:
            while not stop.is_set():
                anchor = f"anchor-{local.integers(len(anchors))}"
                query = anchors[anchor]
                results = index.search(query, 25)
                assert results[0][0] == anchor and results[0][1] == pytest.approx(1.0, abs=1e-6)
                assert len({asset_id for asset_id, _ in results}) == len(results) == 25
                scores = [score for _, score in results]
                assert scores == sorted(scores, reverse=True)
                for asset_id, score in results:
                    assert any(abs(float(v.astype(np.float64) @ query) - score) < 1e-5 for v in versions[asset_id])
                searches.append(1)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    readers = [threading.Thread(target=reader, args=(r,)) for r in range(3)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    stop.set()
    for thread in readers:
        thread.join(timeout=120)
    assert not errors, errors[0]
    assert len(searches) >= 30  # the searches really ran alongside the writes
    expected_count = len(anchors) + 2 * (1500 - 500)
    assert len(index) == expected_count
    ids, matrix = index.snapshot()
    assert len(ids) == len(set(ids)) == expected_count
    stored = dict(zip(ids, matrix, strict=True))
    query = rng.standard_normal(dim).astype(np.float32)
    assert_same(index.search(query, 50), brute_search(stored, query, 50))


def bit_counts(values: np.ndarray) -> np.ndarray:
    return np.unpackbits(values.view(np.uint8)).reshape(-1, 64).sum(axis=1)


def brute_hamming(hashes: list[tuple[str, int]], max_distance: int) -> list[list[str]]:
    """All pairs compared, connected components with a plain union-find."""
    codes = np.array([value & (2**64 - 1) for _, value in hashes], dtype=np.uint64)
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        close = np.flatnonzero(bit_counts(codes[i + 1 :] ^ codes[i]) <= max_distance) + i + 1
        for j in close.tolist():
            parent[find(j)] = find(i)
    groups: dict[int, list[str]] = {}
    for i, (asset_id, _) in enumerate(hashes):
        groups.setdefault(find(i), []).append(asset_id)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def flip_bits(rng: np.random.Generator, value: int, count: int) -> int:
    for bit in rng.choice(64, count, replace=False).tolist():
        value ^= 1 << bit
    return value


def planted_hashes(rng: np.random.Generator, count: int, seeds: int) -> list[tuple[str, int]]:
    """Random hashes plus, for some of them, copies 0..12 bits away (and copies of copies: chains)."""
    values = [int(v) for v in rng.integers(0, 2**64, count, dtype=np.uint64)]
    for seed in rng.choice(count, seeds, replace=False).tolist():
        value = values[seed]
        for _ in range(int(rng.integers(1, 4))):
            value = flip_bits(rng, value, int(rng.integers(0, 13)))
            values.append(value)
    order = rng.permutation(len(values))
    return [(f"h{i:05d}", values[i]) for i in order.tolist()]


@pytest.mark.parametrize("max_distance", [0, 1, 3, 6, 10])
def test_hamming_groups_match_all_pairs(max_distance: int) -> None:
    rng = np.random.default_rng(max_distance)
    hashes = planted_hashes(rng, 3000, 300)
    expected = brute_hamming(hashes, max_distance)
    assert expected  # the planted copies make groups at every distance tested
    assert hamming_groups(hashes, max_distance) == expected


def test_hamming_groups_distance_boundary_and_chains() -> None:
    rng = np.random.default_rng(1)
    base = int(rng.integers(0, 2**63))
    for distance in (1, 4, 9):
        near = flip_bits(rng, base, distance)
        assert hamming_groups([("a", base), ("b", near)], distance) == [["a", "b"]]
        assert hamming_groups([("a", base), ("b", near)], distance - 1) == []
    # a-b and b-c are 3 bits apart, a-c 6: linked through b at 3.
    a = 0
    b = 0b111
    c = 0b111111
    assert hamming_groups([("c", c), ("a", a), ("b", b), ("x", 2**64 - 1)], 3) == [["a", "b", "c"]]
    assert hamming_groups([("a", a), ("c", c)], 3) == []


def test_hamming_groups_inputs() -> None:
    assert hamming_groups([], 4) == []
    assert hamming_groups([("a", 5)], 4) == []
    # Identical hashes group at distance 0; a negative value is the same 64 bits read as signed.
    assert hamming_groups([("b", 2**64 - 1), ("a", -1), ("c", 7), ("d", 7), ("e", 8)], 0) == [["a", "b"], ["c", "d"]]
    assert hamming_groups([("a", 0), ("b", 2**64 - 1), ("c", 2**63)], 64) == [["a", "b", "c"]]
    with pytest.raises(ValueError):
        hamming_groups([("a", 2**64), ("b", 0)], 2)
    with pytest.raises(ValueError):
        hamming_groups([("a", -(2**63) - 1), ("b", 0)], 2)
    with pytest.raises(ValueError):
        hamming_groups([("a", 1), ("b", 0)], -1)


def test_hash_tables_cover_every_close_pair() -> None:
    """Pigeonhole check of the chosen tables: any pattern of <= d differing bits leaves one table's mask clean."""
    rng = np.random.default_rng(2)
    for max_distance, count in ((1, 10**6), (4, 10**6), (6, 10**6), (6, 1000), (12, 10**5)):
        masks = [
            sum(((1 << width) - 1) << shift for shift, width in table)
            for table in vectors._hash_tables(max_distance, count)
        ]
        for _ in range(2000):
            differing = flip_bits(rng, 0, max_distance)
            assert any(differing & mask == 0 for mask in masks)


def brute_similar(ids: list[str], matrix: np.ndarray, threshold: float) -> list[tuple[list[str], float]]:
    scores = matrix.astype(np.float64) @ matrix.astype(np.float64).T
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    edges = [(i, j) for i, j in combinations(range(len(ids)), 2) if scores[i, j] >= threshold]
    for i, j in edges:
        parent[find(j)] = find(i)
    weakest: dict[int, float] = {}
    members: dict[int, list[str]] = {}
    for i, j in edges:
        root = find(i)
        weakest[root] = min(weakest.get(root, 2.0), scores[i, j])
    for i, asset_id in enumerate(ids):
        members.setdefault(find(i), []).append(asset_id)
    return sorted((sorted(group), weakest[root]) for root, group in members.items() if len(group) > 1)


def test_group_similar_match_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small tiles, so the test crosses row blocks, column blocks and the diagonal tile's edge.
    monkeypatch.setattr(vectors, "_SIMILAR_ROWS", 128)
    monkeypatch.setattr(vectors, "_SIMILAR_COLS", 300)
    rng = np.random.default_rng(4)
    dim = 24
    index = VectorIndex(dim)
    count = 0
    for _ in range(1000):
        base = unit(rng, dim)
        index.add(f"s{count:05d}", base)
        count += 1
        if rng.random() < 0.15:  # a few near-copies, some chained
            for _ in range(int(rng.integers(1, 4))):
                base = base + rng.normal(0, 0.12, dim).astype(np.float32)
                index.add(f"s{count:05d}", base)
                count += 1
    ids, matrix = index.snapshot()
    threshold = 0.93
    exact = matrix.astype(np.float64) @ matrix.astype(np.float64).T
    assert np.abs(exact - threshold).min() > 1e-5  # no pair sits on the threshold within float32 rounding
    expected = brute_similar(ids, matrix, threshold)
    got = group_similar(*index.snapshot(), threshold)
    assert len(expected) > 20
    assert [group for group, _ in got] == [group for group, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
    assert any(len(group) > 2 for group, _ in got)
    assert all(score >= threshold for _, score in got)


def test_group_similar_edges() -> None:
    index = VectorIndex(2)
    assert group_similar(*index.snapshot(), 0.9) == []
    index.add("b", [1, 0])
    index.add("a", [1, 0.01])
    index.add("c", [0, 1])
    groups = group_similar(*index.snapshot(), 0.99)
    assert [group for group, _ in groups] == [["a", "b"]]
    assert groups[0][1] == pytest.approx(1 / np.hypot(1, 0.01), abs=1e-6)
    with pytest.raises(ValueError):
        group_similar(*index.snapshot(), 1.5)
