"""open_clip skills: image embeddings, zero-shot tags and CoCa captions."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy
from PIL import Image

from . import Skill, SkillRegistry, Step
from .context import SkillContext
from .image import generate_thumbnail
from .models import ClipModel, ModelUnavailableError

EMBEDDING = "clip_embedding"  # scratch key: this job's image embedding, shared by `embed` and `tags`
# Model inputs are a few hundred pixels: decoding JPEGs at a reduced DCT scale is several times faster.
MODEL_INPUT_SIDE = 448
FORWARD_BATCH = 16
# A handful of prompts: most of the benefit of CLIP's 80 ImageNet templates at a sixteenth of the cost.
TAG_TEMPLATES = (
    "a photo of a {}.",
    "a close-up photo of a {}.",
    "a picture of {}.",
    "an image showing {}.",
    "a photo of the {}.",
)
DEFAULT_TOP_K = 5
DEFAULT_THRESHOLD = 0.05


@cache
def default_vocabulary() -> tuple[str, ...]:
    """The labels shipped with the package: a few hundred everyday objects, animals, scenes and styles."""
    text = (Path(__file__).with_name("vocabulary.txt")).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def model_input(context: SkillContext) -> Image.Image:
    image = context.image(at_least=MODEL_INPUT_SIDE)
    return image if image.mode == "RGB" else image.convert("RGB")


def embed_batch(contexts: list[SkillContext]) -> None:
    """Embed the images of several jobs in as few forward passes as possible."""
    try:
        model = contexts[0].models.clip()
    except ModelUnavailableError:
        return  # each step reports it
    waiting: list[tuple[SkillContext, Image.Image]] = []
    for context in contexts:
        try:
            waiting.append((context, model_input(context)))
        except Exception:  # noqa: S112 - an undecodable image fails its own step with the decoder's message
            continue
    for start in range(0, len(waiting), FORWARD_BATCH):
        chunk = waiting[start : start + FORWARD_BATCH]
        vectors = model.encode_images([image for _, image in chunk])
        for (context, _), vector in zip(chunk, vectors, strict=True):
            context.scratch[EMBEDDING] = vector


def image_embedding(context: SkillContext, model: ClipModel) -> numpy.ndarray:
    vector = context.scratch.get(EMBEDDING)
    if vector is None:
        vector = context.scratch[EMBEDDING] = model.encode_images([model_input(context)])[0]
    return vector


def compute_embedding(context: SkillContext) -> None:
    model = context.models.clip()
    context.save_embedding(model.model_name, model.weights, image_embedding(context, model))


def zero_shot_tags(context: SkillContext) -> None:
    """Softmax over the vocabulary of 100 x cosine similarity (CLIP's zero-shot recipe); the labels over the
    threshold, best first, at most topK."""
    model = context.models.clip()
    labels = tuple(context.parameters.get("vocabulary") or default_vocabulary())
    text_embeddings = model.vocabulary_embeddings(labels, TAG_TEMPLATES)
    logits = 100.0 * (text_embeddings @ image_embedding(context, model))
    probabilities = numpy.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    threshold = context.parameters["threshold"]
    best = numpy.argsort(-probabilities, kind="stable")[: context.parameters["topK"]]
    tags = [
        {"label": labels[i], "score": round(float(probabilities[i]), 6)} for i in best if probabilities[i] >= threshold
    ]
    model_id = f"{model.model_name}/{model.weights}"
    context.save_result("tags", json.dumps({"tags": tags, "model": model_id}), model_id)


def generate_caption(context: SkillContext) -> None:
    """A CoCa caption, stored as a result; also the description and alt text where those are still empty."""
    model = context.models.captioner()
    caption = model.caption([model_input(context)])[0]
    if not caption:
        raise ValueError("the caption model produced an empty caption")
    model_id = f"{model.model_name}/{model.weights}"
    context.save_result("caption", json.dumps({"caption": caption, "model": model_id}), model_id)
    context.fill_empty_text(caption)


EMBED = Skill(
    name="embed",
    description="Compute the image's open_clip embedding (L2-normalised) for search by meaning and duplicates.",
    steps=(Step("compute_embedding", compute_embedding),),
    aliases=("embedding", "compute_embedding"),
    prepare_batch=embed_batch,
    model="clip",
)
TAGS = Skill(
    name="tags",
    description="Tag the image zero-shot with CLIP against a vocabulary (the shipped everyday labels by default).",
    steps=(Step("zero_shot_tags", zero_shot_tags),),
    parameters={
        "type": "object",
        "properties": {
            "vocabulary": {
                "type": "array",
                "description": "Labels to choose from, instead of the shipped vocabulary.",
                "items": {"type": "string", "minLength": 1, "maxLength": 200},
                "minItems": 1,
                "maxItems": 5000,
            },
            "topK": {
                "type": "integer",
                "description": "At most this many tags, best first.",
                "default": DEFAULT_TOP_K,
                "minimum": 1,
                "maximum": 100,
            },
            "threshold": {
                "type": "number",
                "description": "Keep tags whose probability (softmax over the vocabulary) is at least this.",
                "default": DEFAULT_THRESHOLD,
                "minimum": 0,
                "maximum": 1,
            },
        },
    },
    aliases=("zero_shot_tags", "auto-tag", "auto_tag"),
    prepare_batch=embed_batch,
    model="clip",
)
CAPTION = Skill(
    name="caption",
    description="Write a caption with a CoCa model; fills the description and alt text when they are empty.",
    steps=(Step("generate_caption", generate_caption),),
    aliases=("ai-caption", "ai_caption", "basic_caption", "generate_basic_caption", "generate_caption"),
    model="caption",
)
BASIC_IMAGE_ENRICH = Skill(
    name="basic_image_enrich",
    description="Generate thumbnail derivative and basic caption structured result for image assets.",
    steps=(Step("generate_thumbnail", generate_thumbnail), Step("generate_basic_caption", generate_caption)),
    model="caption",
)


def register(registry: SkillRegistry) -> None:
    for skill in (EMBED, TAGS, CAPTION, BASIC_IMAGE_ENRICH):
        registry.register(skill)
