"""open_clip models: loaded lazily, once per process, shared by requests and the worker.

torch and open_clip are imported here on first use only, so ``import jupyter_assets`` stays light and a server
without the AI packages (or without weights) still serves everything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy

from ..model import file_sha256

if TYPE_CHECKING:
    from PIL import Image

CAPTION_MAX_TOKENS = 30
TEXT_BATCH = 256
# A model that failed to load is not tried again for this long: a tag that cannot be downloaded took 14-50 s per
# attempt, and every queued image or skill run would pay it again.
RETRY_FAILED_LOAD_SECONDS = 600


@dataclass(frozen=True)
class ModelSettings:
    """The AssetsApp traits that choose models. An unset (empty) ``*_pretrained`` means "not configured"."""

    clip_model: str = "ViT-B-32"
    clip_pretrained: str = ""
    caption_model: str = "coca_ViT-B-32"
    caption_pretrained: str = ""  # as for CLIP: nothing downloads unless asked
    device: str = "auto"

    @property
    def clip_configured(self) -> bool:
        return bool(self.clip_pretrained.strip())


class ModelUnavailableError(RuntimeError):
    """The model cannot be had: not configured, weights missing, or the AI packages are not installed."""


def weights_label(pretrained: str) -> str:
    """What identifies the weights in the catalog: the pretrained tag, or a checkpoint's file name and content hash
    (so replacing the file under the same name is not mistaken for the same model)."""
    path = Path(pretrained).expanduser()
    if not path.is_file():
        return pretrained
    return f"{path.name}@sha256:{file_sha256(path)[:12]}"


def model_name(configured: str) -> str:
    """The model's name: the setting itself, or the file stem when it names an open_clip JSON config (custom
    architectures, and the tests' tiny models)."""
    return Path(configured).stem if configured.endswith(".json") else configured


def _registered_model_name(configured: str) -> str:
    path = Path(configured).expanduser()
    if configured.endswith(".json") and path.is_file():
        import open_clip

        open_clip.add_model_config(path)
    return model_name(configured)


def not_configured(model: str, setting_name: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"No weights are configured for '{model}': set c.AssetsApp.{setting_name} (or "
        f"JUPYTER_ASSETS_{setting_name.upper()}) to a pretrained tag such as 'laion2b_s34b_b79k' or to the "
        "path of a checkpoint file."
    )


def _pick_device(setting: str) -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def _create(model: str, pretrained: str, device_setting: str, setting_name: str) -> tuple[Any, Any, str]:
    """(model in eval mode, its image preprocessing, device), or ModelUnavailableError naming the setting."""
    if not pretrained.strip():
        raise not_configured(model, setting_name)
    try:
        import open_clip
    except ImportError as error:
        raise ModelUnavailableError(
            f"open_clip is not installed ({error}); install jupyter-assets[ai] to use '{model}'."
        ) from error
    try:
        device = _pick_device(device_setting)
        created, _, preprocess = open_clip.create_model_and_transforms(
            _registered_model_name(model), pretrained=pretrained, device=device
        )
    except Exception as error:  # no network, a missing file, a wrong tag: all mean "no usable weights"
        reason = " ".join(str(error).split())
        raise ModelUnavailableError(
            f"Check c.AssetsApp.{setting_name} (JUPYTER_ASSETS_{setting_name.upper()}): the weights '{pretrained}' "
            f"of '{model}' could not be loaded. A tag needs network access to download them once; a path must "
            f"name a readable checkpoint file. ({type(error).__name__}: "
            f"{reason[:200] + '…' if len(reason) > 200 else reason})"
        ) from error
    created.eval()
    return created, preprocess, device


class ClipModel:
    """An open_clip model for image and text embeddings (L2-normalised float32 rows). Inference is thread-safe:
    the workers run their forward passes side by side (see ModelHub for the CPU threads each gets)."""

    def __init__(self, settings: ModelSettings, weights: str, cache_dir: Path | None = None) -> None:
        import open_clip

        self.cache_dir = cache_dir
        self.model_name = model_name(settings.clip_model)
        self.weights = weights  # see weights_label: computed once by the hub
        self._model, self.preprocess, self.device = _create(
            settings.clip_model, settings.clip_pretrained, settings.device, "clip_pretrained"
        )
        self._tokenizer = open_clip.get_tokenizer(self.model_name)  # a custom config was registered by _create
        self._vocabularies: dict[str, numpy.ndarray] = {}

    def encode_images(self, images: list[Image.Image]) -> numpy.ndarray:
        import torch

        batch = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        with torch.inference_mode():
            features = self._model.encode_image(batch)
        return _normalised(features)

    def encode_texts(self, texts: list[str]) -> numpy.ndarray:
        import torch

        tokens = self._tokenizer(texts).to(self.device)
        with torch.inference_mode():
            features = self._model.encode_text(tokens)
        return _normalised(features)

    def vocabulary_embeddings(self, labels: tuple[str, ...], templates: tuple[str, ...]) -> numpy.ndarray:
        """One normalised row per label (the mean over the prompt templates). Computed once per vocabulary and
        kept in memory and on disk: with a full-size text encoder the shipped vocabulary takes minutes on a CPU."""
        key = hashlib.sha256(json.dumps([self.model_name, self.weights, templates, labels]).encode()).hexdigest()
        cached = self._vocabularies.get(key)
        if cached is not None:
            return cached
        path = self.cache_dir / f"text-embeddings-{key[:24]}.npy" if self.cache_dir else None
        if path is not None and path.is_file():
            cached = numpy.load(path)
        else:
            prompts = [template.format(label) for label in labels for template in templates]
            encoded = numpy.concatenate(
                [self.encode_texts(prompts[start : start + TEXT_BATCH]) for start in range(0, len(prompts), TEXT_BATCH)]
            )
            matrix = encoded.reshape(len(labels), len(templates), -1).mean(axis=1)
            cached = matrix / numpy.linalg.norm(matrix, axis=1, keepdims=True)
            if path is not None:
                _save_atomically(path, cached)
        self._vocabularies[key] = cached
        return cached


def _save_atomically(path: Path, matrix: numpy.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: the workers of one process may save the same vocabulary at the same moment.
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            numpy.save(handle, matrix)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


class CaptionModel:
    """A CoCa model that writes one caption per image (greedy decoding: deterministic and about 3x faster than
    beam search on a CPU)."""

    def __init__(self, settings: ModelSettings) -> None:
        self.model_name = model_name(settings.caption_model)
        self.weights = weights_label(settings.caption_pretrained) if settings.caption_pretrained.strip() else ""
        self._model, self.preprocess, self.device = _create(
            settings.caption_model, settings.caption_pretrained, settings.device, "caption_pretrained"
        )

    def caption(self, images: list[Image.Image]) -> list[str]:
        import open_clip
        import torch

        batch = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        with torch.inference_mode():
            tokens = self._model.generate(batch, generation_type="top_k", top_k=1, seq_len=CAPTION_MAX_TOKENS)
        return [_clean_caption(open_clip.decode(row)) for row in tokens]


def _clean_caption(decoded: str) -> str:
    text = decoded.split("<end_of_text>")[0].replace("<start_of_text>", "")
    text = " ".join(text.split()).strip(" .")
    return text[:1].upper() + text[1:] if text else text


def _normalised(features: Any) -> numpy.ndarray:
    import torch

    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


class ModelHub:
    """The process's models, each loaded on first use. A failed load is remembered (with its message) for
    RETRY_FAILED_LOAD_SECONDS, so that every queued image does not retry a download that cannot work."""

    def __init__(
        self, settings: ModelSettings, log: logging.Logger, cache_dir: Path | None = None, workers: int = 1
    ) -> None:
        self.settings = settings
        self._workers = workers
        self._cache_dir = cache_dir  # for what is slow to recompute (text embeddings of vocabularies)
        self._log = log
        # One lock per model, held while it loads (a minute, or a download that hangs), and one for the CLIP
        # key: looking up what is indexed must never wait for a load.
        self._locks = {"clip": threading.Lock(), "caption": threading.Lock(), "clip_key": threading.Lock()}
        self._loaded: dict[str, Any] = {}
        self._failed_at: dict[str, float] = {}  # by model name: when its load last failed (time.monotonic)

    def clip(self) -> ClipModel:
        key = self.clip_key()
        weights = key[1] if key else ""
        return self._get("clip", lambda: ClipModel(self.settings, weights, self._cache_dir))

    def captioner(self) -> CaptionModel:
        return self._get("caption", lambda: CaptionModel(self.settings))

    def clip_key(self) -> tuple[str, str] | None:
        """(model, weights label) of the configured CLIP model without loading it, or None when unconfigured."""
        if not self.settings.clip_configured:
            return None
        with self._locks["clip_key"]:
            if "clip_key" not in self._loaded:
                self._loaded["clip_key"] = (
                    model_name(self.settings.clip_model),
                    weights_label(self.settings.clip_pretrained),
                )
            return self._loaded["clip_key"]

    def _get(self, name: str, factory: Callable[[], Any]) -> Any:
        with self._locks[name]:
            loaded = self._loaded.get(name)
            retry = name in self._failed_at and time.monotonic() - self._failed_at[name] > RETRY_FAILED_LOAD_SECONDS
            if loaded is None or retry:
                try:
                    self._share_cores()
                    loaded = factory()
                    self._failed_at.pop(name, None)
                    self._log.info("loaded %s model %s (%s)", name, loaded.model_name, loaded.weights)
                except ModelUnavailableError as error:
                    loaded = error
                    self._failed_at[name] = time.monotonic()
                    self._log.warning("%s model unavailable: %s", name, error)
                self._loaded[name] = loaded
        if isinstance(loaded, ModelUnavailableError):
            raise loaded
        return loaded

    def _share_cores(self) -> None:
        """Give each worker's forward pass its share of the CPU cores. Measured on 2 cores with 2 workers: one
        thread each, running side by side, embeds 1.2x faster than two threads each taking turns, and 1.9x faster
        than two threads each running at once (torch's threads then wait on each other's cores)."""
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // self._workers))
