"""Search by meaning, similar assets and duplicates, over the vector index of the configured CLIP model."""

from __future__ import annotations

import threading
from typing import Any

from .auth import Principal
from .errors import ApiError
from .library import Library
from .model import Asset, ListQuery, Page
from .skills.models import ClipModel, ModelHub, ModelUnavailableError, not_configured
from .vectors import VectorIndex, group_similar, hamming_groups

HASH_BITS = 64
# Near-identical copies differ by a few bits of their perceptual hash: up to 6 for a resized flat graphic, whose
# many near-zero frequencies flip easily. The threshold maps onto bits at twice the naive rate (0.95: 6 bits);
# past 6 the search slows sharply (multi-index hashing needs many more tables) and finds look-alikes, not copies.
MAX_NEAR_BITS = 6
# The similar tier compares every pair of embeddings: about 1.5 s at 20,000 on 2 cores, growing with the square.
# Past this many a request would take minutes, so the tier is left out (exact and near still answer).
MAX_SIMILAR_TIER = 50_000
# Candidates asked of the index for one page: twice what the page needs, at least this many (one pass over the
# index costs the same for 64 candidates as for 2); four times more while filters leave the page short.
MIN_CANDIDATES = 64


class Search:
    """The vector index (one per model and weights: loaded at start, kept in step with every embedding committed
    and every asset deleted) and the queries over it."""

    def __init__(self, library: Library, models: ModelHub) -> None:
        self.library = library
        self.catalog = library.catalog
        self.models = models
        self._indexes: dict[tuple[str, str], VectorIndex] = {}
        self._indexes_lock = threading.Lock()

    # -- the index ----------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the configured model's embeddings from the catalog."""
        key = self.models.clip_key()
        if key is None:
            return
        ids, matrix = self.catalog.assets.embeddings(*key)
        if ids:
            index = VectorIndex(matrix.shape[1])
            index.load(ids, matrix)
            self._indexes[key] = index
            self.library.log.info("search by meaning: %d embeddings of %s/%s loaded", len(ids), *key)

    def embedding_saved(self, model: str, weights: str, asset_id: str, vector: Any) -> None:
        """An embedding was committed: searches see it at once."""
        with self._indexes_lock:
            index = self._indexes.get((model, weights))
            if index is None:
                index = self._indexes[(model, weights)] = VectorIndex(len(vector))
        index.add(asset_id, vector)

    def embedding_recorded(self, asset_id: str, model: str, weights: str) -> None:
        """An embedding was committed by another server of a team library (or by this one: adding it again
        changes nothing)."""
        if (model, weights) != self.models.clip_key() and (model, weights) not in self._indexes:
            return  # a model this server does not search with
        ids, matrix = self.catalog.assets.embeddings(model, weights, asset_id)
        if ids:
            self.embedding_saved(model, weights, asset_id, matrix[0])

    def forget(self, asset_id: str) -> None:
        """An asset was deleted."""
        for index in list(self._indexes.values()):
            index.remove(asset_id)

    def _index(self) -> tuple[str, VectorIndex | None]:
        """The configured model's id and its index (None before the first embedding), or 409 model_unavailable."""
        key = self.models.clip_key()
        if key is None:
            raise ApiError("model_unavailable", str(not_configured(self.models.settings.clip_model, "clip_pretrained")))
        return "/".join(key), self._indexes.get(key)

    def _clip_model(self) -> ClipModel:
        try:
            return self.models.clip()
        except ModelUnavailableError as error:
            raise ApiError("model_unavailable", str(error)) from error

    # -- queries ------------------------------------------------------------------------------------------

    def by_meaning(self, principal: Principal, query: ListQuery) -> Page:
        """A page of the assets whose embeddings are nearest to the text ``query.meaning``."""
        model = self._clip_model()
        _, index = self._index()
        if index is None:
            return Page([], query.page, query.page_size, 0)
        vector = model.encode_texts([query.meaning])[0]
        items = self._ranked(principal, index, vector, query)
        total = self.catalog.assets.count_embedded(query, principal.visible_owner, model.model_name, model.weights)
        return Page(items, query.page, query.page_size, total)

    def similar(self, principal: Principal, asset_id: str, limit: int) -> dict[str, Any]:
        """The nearest neighbours of an asset's embedding, the asset itself first (score 1)."""
        principal.require("assets:read")
        model_id, index = self._index()
        asset = self.library.visible(principal, asset_id)
        vector = index.vector(asset.id) if index is not None else None
        if vector is None:
            raise ApiError(
                "asset_not_embedded",
                f"Asset '{asset.id}' has no embedding from {model_id} yet: wait for its enrichment or run the "
                "'embed' skill on it.",
            )
        return {"items": self._ranked(principal, index, vector, ListQuery(page_size=limit)), "model": model_id}

    def _ranked(self, principal: Principal, index: VectorIndex, vector: Any, query: ListQuery) -> list[Asset]:
        """One page of the assets nearest to ``vector`` among those that pass the query's filters. The index
        ranks; the catalog filters; the candidate list grows until the page is full or the index exhausted."""
        wanted = query.page * query.page_size
        limit = max(2 * wanted, MIN_CANDIDATES)
        while True:
            ranked = index.search(vector, limit)
            candidates = [asset_id for asset_id, _ in ranked]
            passing = self.catalog.assets.matching(candidates, query, principal.visible_owner)
            hits = [(passing[asset_id], score) for asset_id, score in ranked if asset_id in passing]
            if len(hits) >= wanted or len(ranked) < limit:
                break
            limit *= 4
        page = hits[wanted - query.page_size : wanted]
        for asset, score in page:
            asset.score = round(float(score), 6)
        return [asset for asset, _ in page]

    def duplicates(self, principal: Principal, threshold: float) -> list[dict[str, Any]]:
        """Groups of exact copies (same bytes), near-identical images (perceptual hashes within the threshold)
        and, when embeddings exist, similar images (cosine similarity at least the threshold)."""
        principal.require("assets:read")
        visible_to = principal.visible_owner
        groups = [
            {"reason": "exact", "assetIds": ids, "score": 1.0}
            for ids in self.catalog.assets.checksum_groups(visible_to)
        ]
        max_distance = min(round((1 - threshold) * 2 * HASH_BITS), MAX_NEAR_BITS)
        for ids in hamming_groups(self.catalog.assets.image_hashes(visible_to), max_distance):
            groups.append({"reason": "near", "assetIds": ids, "score": None})
        groups += self._similar_groups(visible_to, threshold)
        return _without_groups_inside_stronger(groups)

    def _similar_groups(self, visible_to: str | None, threshold: float) -> list[dict[str, Any]]:
        key = self.models.clip_key()
        index = self._indexes.get(key) if key else None
        if index is None or not len(index):
            return []
        only = set(self.catalog.assets.visible_ids(visible_to)) if visible_to is not None else None
        ids, matrix = index.snapshot(only)
        if len(ids) > MAX_SIMILAR_TIER:
            self.library.log.warning("duplicates: similar tier left out for %d embeddings", len(ids))
            return []
        return [
            {"reason": "similar", "assetIds": members, "score": round(float(score), 6)}
            for members, score in group_similar(ids, matrix, threshold)
        ]


def _without_groups_inside_stronger(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A group wholly inside a stronger (earlier) one says nothing new. Such a group holds the first member too,
    so only the kept groups holding that member are compared."""
    kept: list[dict[str, Any]] = []
    kept_holding: dict[str, list[set[str]]] = {}
    for group in groups:
        members = set(group["assetIds"])
        if not any(members <= stronger for stronger in kept_holding.get(group["assetIds"][0], [])):
            kept.append(group)
            for asset_id in members:
                kept_holding.setdefault(asset_id, []).append(members)
    return kept
