"""Pillow skills."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from . import Skill, SkillRegistry, Step
from .context import SkillContext

THUMBNAIL_BOX = (256, 256)


def generate_thumbnail(context: SkillContext) -> None:
    """Fit in 256x256 keeping the aspect ratio, never upscale, WebP."""
    image = context.image().copy()
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "transparency" in image.info or image.mode in ("LA", "PA") else "RGB")
    image.thumbnail(THUMBNAIL_BOX, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=80, method=4)
    context.save_derivative("thumbnail_256", buffer.getvalue(), "image/webp", ".webp", *image.size)


THUMBNAIL = Skill(
    name="thumbnail",
    description="Generate a thumbnail derivative (fits 256x256, WebP) for image assets.",
    steps=(Step("generate_thumbnail", generate_thumbnail),),
    aliases=("generate_thumbnail",),
)


def register(registry: SkillRegistry) -> None:
    registry.register(THUMBNAIL)
