"""Pillow skills: thumbnail (with a perceptual hash), exif-strip, format-convert and watermark."""

from __future__ import annotations

import functools
import io
import math
from datetime import datetime
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps, JpegImagePlugin

from ..images import FORMATS, open_bounded
from . import Skill, SkillRegistry, Step
from .context import SkillContext, SkillEnvironment, settle_rewrites_with

THUMBNAIL_BOX = (256, 256)
# A JPEG drafted at reduced DCT scale is an exact block average (no aliasing), so a draft 1.5x the thumbnail is
# enough for a sharp Lanczos finish; it lets a 12-megapixel photo decode at 1/8 scale.
DRAFT_GAP = 1.5
HASH_SIZE = 8  # 8x8 low frequencies: 64 bits
HASH_SAMPLE = 32  # the classic pHash works on a 32x32 greyscale copy
QUALITY = 95  # lossy re-encodes of an original, when its own JPEG tables are not available

# Modes each format stores as they are; anything else is converted first.
_MODES: dict[str, frozenset[str]] = {
    "JPEG": frozenset({"L", "RGB", "CMYK"}),
    "BMP": frozenset({"1", "L", "P", "RGB"}),
    "GIF": frozenset({"L", "P"}),  # Pillow's GIF writer turns RGB(A) into a palette, keeping a transparent entry
    "PNG": frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}),
    "WEBP": frozenset({"RGB", "RGBA"}),
    "TIFF": frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"}),
}
_NO_ALPHA = frozenset({"JPEG", "BMP"})
_COLOUR_KEY = frozenset({"PNG", "GIF"})  # formats that store a palette/colour-key transparency ("transparency" info)
_EXIF_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})  # where EXIF is a blob of its own that can travel between them
_LOSSLESS_TIFF = frozenset({"raw", "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits"})
# TIFF keeps its metadata in the same directory as the pixel layout: these are the tags that describe the picture's
# origin (description, make, model, software, date, artist, XMP, copyright, IPTC, Photoshop, EXIF and GPS blocks).
_TIFF_METADATA_TAGS = frozenset({270, 271, 272, 305, 306, 315, 700, 33432, 33723, 34377, 34665, 34853})

TARGET_FORMATS = {
    "webp": "WEBP",
    "jpeg": "JPEG",
    "jpg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "tif": "TIFF",
}
POSITIONS = {  # where the text's box sits, as fractions of the free space
    "bottomRight": (1.0, 1.0),
    "bottomLeft": (0.0, 1.0),
    "center": (0.5, 0.5),
    "topRight": (1.0, 0.0),
    "topLeft": (0.0, 0.0),
}


# -- thumbnail and perceptual hash --------------------------------------------------------------------------


def generate_thumbnail(context: SkillContext) -> None:
    """Fit in 256x256 keeping the aspect ratio, never upscale, WebP; store the perceptual hash of the same pixels."""
    source, full_size = _thumbnail_source(context)
    image = ImageOps.exif_transpose(source)  # a copy: the shared decoded original is never changed
    full_size = _shown_as(full_size, image)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    image = image.resize(_fit(full_size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    context.save_image_hash(perceptual_hash(image))
    buffer = io.BytesIO()
    # Method 2 encodes a thumbnail twice as fast as the default 4, at the same quality and a few % more bytes.
    image.save(buffer, format="WEBP", quality=80, method=2)
    context.save_derivative("thumbnail_256", buffer.getvalue(), "image/webp", ".webp", *image.size)


def _thumbnail_source(context: SkillContext) -> tuple[Image.Image, tuple[int, int]]:
    """The original decoded just large enough for the thumbnail (a JPEG at reduced DCT scale: a fraction of the
    work), and its full size."""
    full_size = (context.asset.width, context.asset.height)
    if not (full_size[0] and full_size[1]):
        image = context.image()
        return image, image.size
    return context.image(at_least=math.ceil(DRAFT_GAP * min(_fit(full_size)))), full_size


def _shown_as(full_size: tuple[int, int], image: Image.Image) -> tuple[int, int]:
    """The full size in the orientation of the (possibly reduced) upright picture. Catalog rows hold the displayed
    size, rows written before that the stored one: whichever aspect ratio the picture has is the right one."""
    width, height = full_size
    aspect = image.width / image.height
    return (width, height) if abs(width / height - aspect) <= abs(height / width - aspect) else (height, width)


def _fit(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(THUMBNAIL_BOX[0] / size[0], THUMBNAIL_BOX[1] / size[1], 1.0)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


@functools.cache
def _dct_rows() -> Any:
    """The first HASH_SIZE rows of the (unnormalised) DCT-II matrix for HASH_SAMPLE points."""
    import numpy

    k = numpy.arange(HASH_SIZE)[:, None]
    n = numpy.arange(HASH_SAMPLE)[None, :]
    return numpy.cos(numpy.pi * (2 * n + 1) * k / (2 * HASH_SAMPLE))


def perceptual_hash(image: Image.Image) -> int:
    """The classic 64-bit DCT perceptual hash (pHash) as an unsigned int: greyscale 32x32, 2-D DCT, the 8x8 lowest
    frequencies, one bit per coefficient above their median (first coefficient = most significant bit). Resized or
    re-encoded copies of a picture land a few bits apart; unrelated pictures about 32. Transparency is ignored."""
    import numpy

    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    small = image.resize((HASH_SAMPLE, HASH_SAMPLE), Image.Resampling.LANCZOS, reducing_gap=2.0).convert("L")
    pixels = numpy.asarray(small, dtype=numpy.float64)
    rows = _dct_rows()
    low = rows @ pixels @ rows.T  # only the low-frequency corner of the 2-D DCT is ever needed
    bits = (low > numpy.median(low)).flatten()
    return int.from_bytes(numpy.packbits(bits).tobytes(), "big")


# -- skills that rewrite the original -----------------------------------------------------------------------


def strip_exif_metadata(context: SkillContext) -> None:
    """Re-encode the original in its own format without EXIF, XMP or comments (the ICC profile stays, so colours
    do not shift). The EXIF orientation is applied to the pixels first, so the picture does not turn."""
    source = _still_original(context)
    if not _has_exif(source):
        return
    image = ImageOps.exif_transpose(source)
    lossless = _is_lossless_webp(context, source)
    data, size = _encode(image, source.format, source, lossless=lossless)
    _replace(context, data, source.format, size)


def convert_image_format(context: SkillContext) -> None:
    target = TARGET_FORMATS[context.parameters["targetFormat"]]
    source = _still_original(context)
    image = ImageOps.exif_transpose(source)
    lossless = target == "WEBP" and _is_lossless_webp(context, source)
    data, size = _encode(image, target, source, lossless=lossless, exif=_exif_bytes(source, image))
    _replace(context, data, target, size, keep_old_file=context.parameters["keepOriginal"])


def draw_watermark(context: SkillContext) -> None:
    parameters = context.parameters
    text = parameters["text"]
    if not text.strip():
        raise ValueError("The watermark 'text' is empty.")
    source = _still_original(context)
    canvas = ImageOps.exif_transpose(source)  # drawn where the viewer sees the corner
    if canvas.mode not in ("L", "LA", "RGB", "RGBA"):
        canvas = canvas.convert("RGBA" if _has_alpha(canvas) else "RGB")
    _draw_text(canvas, text, parameters["opacity"], parameters["fontSize"], parameters["position"])
    lossless = _is_lossless_webp(context, source)
    data, size = _encode(canvas, source.format, source, lossless=lossless, exif=_exif_bytes(source, canvas))
    _replace(context, data, source.format, size)


def _draw_text(canvas: Image.Image, text: str, opacity: float, font_size: int, position: str) -> None:
    """White text, alpha = opacity, its box `padding` pixels from the edges the position names."""
    font = ImageFont.load_default(size=font_size)  # FreeType font embedded in Pillow: no system fonts needed
    mask = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(mask)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    padding = max(12, font_size / 2)
    fx, fy = POSITIONS[position]
    free_x, free_y = canvas.width - (right - left), canvas.height - (bottom - top)
    x = padding + fx * (free_x - 2 * padding)
    y = padding + fy * (free_y - 2 * padding)
    draw.text((x - left, y - top), text, fill=round(255 * opacity), font=font)
    canvas.paste(ImageColor.getcolor("white", canvas.mode), None, mask)


def _still_original(context: SkillContext) -> Image.Image:
    """The decoded original. Rewriting an animation would keep only its first frame, so animations are refused."""
    with open_bounded(context.original_bytes(), context.max_pixels) as probe:
        frames = getattr(probe, "n_frames", 1)
    if frames > 1:
        raise ValueError(f"The image has {frames} frames; only still images can be rewritten.")
    return context.image()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _has_exif(image: Image.Image) -> bool:
    exif = image.getexif()
    if image.format == "TIFF":
        return not _TIFF_METADATA_TAGS.isdisjoint(exif)
    return len(exif) > 0


def _exif_bytes(source: Image.Image, image: Image.Image) -> bytes | None:
    """The EXIF to carry into a rewritten original (the orientation tag is gone once the pixels are turned)."""
    if source.format not in _EXIF_FORMATS:
        return None
    exif = image.getexif()
    return exif.tobytes() if len(exif) else None


def _is_lossless_webp(context: SkillContext, source: Image.Image) -> bool:
    """Whether the original is a lossless WebP (its bitstream chunk is VP8L), so a rewrite stays lossless."""
    if source.format != "WEBP":
        return False
    data = context.original_bytes()
    offset = 12  # after RIFF <size> WEBP
    while offset + 8 <= len(data):
        fourcc = data[offset : offset + 4]
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc == b"VP8L"
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += 8 + size + (size & 1)
    return False


def _colour_space(image: Image.Image) -> str:
    return {"CMYK": "CMYK", "1": "L", "L": "L", "LA": "L", "I;16": "L", "I": "L"}.get(image.mode, "RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on a white background, for formats without alpha."""
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _prepare(image: Image.Image, target: str) -> Image.Image:
    """The image in a mode the target stores, transparency flattened onto white where the target has no alpha."""
    keyed = "transparency" in image.info
    alpha = _has_alpha(image)
    if alpha and target in _NO_ALPHA:
        return _flatten(image)
    if image.mode in _MODES[target] and not (keyed and target not in _COLOUR_KEY):
        return image
    return image.convert("RGBA" if alpha else "RGB")


def _encode(
    image: Image.Image, target: str, source: Image.Image, *, lossless: bool = False, exif: bytes | None = None
) -> tuple[bytes, tuple[int, int]]:
    """Encode a private copy of the picture. Only what is named here travels (ICC profile, colour key, the EXIF
    given): never the source's XMP, comments or other chunks, whatever Pillow would copy from ``info``."""
    prepared = _prepare(image, target)
    options: dict[str, Any] = {}
    if target in _COLOUR_KEY and "transparency" in prepared.info:
        options["transparency"] = prepared.info["transparency"]
    icc = source.info.get("icc_profile")
    if icc and target in ("JPEG", "PNG", "WEBP", "TIFF") and _colour_space(prepared) == _colour_space(source):
        options["icc_profile"] = icc  # a profile describes one colour space: it must not follow a conversion
    if exif and target in _EXIF_FORMATS:
        options["exif"] = exif
    if target == "JPEG":
        options.update(_jpeg_options(prepared, source))
    elif target == "WEBP":
        options.update(lossless=lossless, quality=QUALITY)
    elif target == "TIFF":
        compression = source.info.get("compression") if source.format == "TIFF" else None
        options["compression"] = compression if compression in _LOSSLESS_TIFF else "tiff_lzw"
    prepared.info = {}
    buffer = io.BytesIO()
    prepared.save(buffer, format=target, **options)
    return buffer.getvalue(), prepared.size


def _jpeg_options(prepared: Image.Image, source: Image.Image) -> dict[str, Any]:
    """A JPEG rewritten with the original's own quantisation tables and subsampling keeps its quality."""
    if source.format == "JPEG" and prepared.mode == source.mode and getattr(source, "quantization", None):
        sampling = JpegImagePlugin.get_sampling(source)
        return {"qtables": source.quantization, **({"subsampling": sampling} if sampling != -1 else {})}
    return {"quality": QUALITY}


def _replace(
    context: SkillContext, data: bytes, target: str, size: tuple[int, int], keep_old_file: bool = False
) -> None:
    content_type, extension = FORMATS[target]
    # The old thumbnail shows the old picture: a new one is committed with the new original.
    context.replace_original(
        data, content_type, extension, *size, keep_old_file=keep_old_file, refresh=generate_thumbnail
    )


def settle_rewrites(environment: SkillEnvironment, noted_before: datetime | None = None) -> int:
    """Settle the rewrites in place that a crash or a failing storage left uncommitted (see settle_rewrite),
    making their thumbnails again: settle_rewrites_with bound to generate_thumbnail, for the service's sweep."""
    return settle_rewrites_with(environment, generate_thumbnail, noted_before)


# -- registration -------------------------------------------------------------------------------------------

THUMBNAIL = Skill(
    name="thumbnail",
    description="Generate a thumbnail derivative (fits 256x256, WebP) for image assets.",
    steps=(Step("generate_thumbnail", generate_thumbnail),),
    aliases=("generate_thumbnail",),
)

EXIF_STRIP = Skill(
    name="exif-strip",
    description="Remove Exif metadata from the original image asset.",
    steps=(Step("strip_exif_metadata", strip_exif_metadata),),
    aliases=("strip_exif_metadata", "strip-exif-metadata", "exif_strip"),
)

FORMAT_CONVERT = Skill(
    name="format-convert",
    description=(
        "Convert the original image asset to another format (new content type, extension and storage key); "
        "transparency is flattened onto white for formats without alpha."
    ),
    steps=(Step("convert_image_format", convert_image_format),),
    parameters={
        "type": "object",
        "properties": {
            "targetFormat": {
                "type": "string",
                "description": "The format to convert to (case-insensitive; jpg and tif are accepted too).",
                "enum": list(TARGET_FORMATS),
            },
            "keepOriginal": {
                "type": "boolean",
                "description": "Keep the old file in storage instead of deleting it.",
                "default": False,
            },
        },
        "required": ["targetFormat"],
    },
    aliases=("convert_image_format", "convert-image-format", "format_convert"),
)

WATERMARK = Skill(
    name="watermark",
    description="Draw a semi-transparent white text watermark onto the original image asset.",
    steps=(Step("draw_watermark", draw_watermark),),
    parameters={
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "description": "The text to draw.",
                "default": "jupyter-assets",
                "minLength": 1,
            },
            "opacity": {
                "type": "number",
                "description": "Opacity of the text, from 0 (invisible) to 1 (opaque).",
                "minimum": 0,
                "maximum": 1,
                "default": 0.5,
            },
            "fontSize": {
                "type": "integer",
                "description": "Font size in pixels.",
                "minimum": 1,
                "default": 36,
            },
            "position": {
                "type": "string",
                "description": "Where the text goes; it keeps max(12, fontSize/2) pixels from the edges it is near.",
                "enum": list(POSITIONS),
                "default": "bottomRight",
            },
        },
        "required": [],
    },
    aliases=("draw_watermark", "draw-watermark"),
)


def register(registry: SkillRegistry) -> None:
    for skill in (THUMBNAIL, EXIF_STRIP, FORMAT_CONVERT, WATERMARK):
        registry.register(skill)
