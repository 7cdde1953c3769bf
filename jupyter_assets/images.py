"""Reading images safely: sniff the real format, refuse decompression bombs, prove the file decodes."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from .errors import ApiError

# Pillow format name -> (content type, extension)
FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", ".png"),
    "JPEG": ("image/jpeg", ".jpg"),
    "GIF": ("image/gif", ".gif"),
    "WEBP": ("image/webp", ".webp"),
    "BMP": ("image/bmp", ".bmp"),
    "TIFF": ("image/tiff", ".tiff"),
}
EXTENSIONS = tuple(extension for _, extension in FORMATS.values())
QUARTER_TURNS = frozenset({5, 6, 7, 8})  # EXIF orientations that show the stored picture turned (or transposed)


@dataclass(frozen=True)
class ImageFacts:
    content_type: str
    extension: str
    width: int
    height: int


class ImageDecodeError(Exception):
    """The bytes are not an image Pillow can fully decode."""


class ImageTooLargeError(ImageDecodeError):
    """The image declares more pixels than allowed (a decompression bomb, or simply too big)."""


def open_bounded(source: Path | bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse images that declare more pixels than allowed before decoding."""
    try:
        image = Image.open(source if isinstance(source, Path) else io.BytesIO(source), formats=list(FORMATS))
    except Image.DecompressionBombError as error:  # Pillow's own guard fires first for truly huge headers
        raise ImageTooLargeError(f"the image declares too many pixels: {error}") from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageDecodeError(f"not a recognised image: {error}") from error
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLargeError(f"the image declares {width}x{height} pixels, over the limit of {max_pixels}")
    return image


def decode(source: Path | bytes, max_pixels: int, at_least: int | None = None) -> Image.Image:
    """A decoded image (first frame), bounded by max_pixels. With ``at_least``, a JPEG is decoded at the smallest
    DCT scale (1/2 to 1/8) that keeps both sides at least that long: several times faster for thumbnails and
    model inputs, which need a few hundred pixels."""
    image = open_bounded(source, max_pixels)
    if at_least and image.format == "JPEG":
        scale = max(1, min(image.width, image.height) // at_least)
        image.draft("RGB", (image.width // scale, image.height // scale))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as error:
        raise ImageDecodeError(f"the image cannot be decoded: {error}") from error
    return image


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as the picture is shown: after its EXIF orientation, which may turn it a quarter. The
    orientation is what the header holds (the base getexif: a PNG's own would inflate every pixel looking for an
    eXIf chunk after them)."""
    width, height = image.size
    if Image.Image.getexif(image).get(ExifTags.Base.Orientation) in QUARTER_TURNS:
        return height, width
    return width, height


def _check_complete(image: Image.Image) -> None:
    """Prove the file is whole, as cheaply as the format allows. A PNG's chunk lengths and CRCs are checked
    without inflating the pixels (a tenth of the cost); other formats are decoded, JPEG at 1/8 scale (it still
    reads every byte). A PNG whose compressed data is corrupt behind valid CRCs (crafted, not truncated) passes
    here and fails in processing instead."""
    if image.format == "PNG":
        image.verify()
        return
    if image.format == "JPEG":
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image.load()


def sniff_format(source: Path | bytes, max_pixels: int) -> tuple[str, str] | None:
    """(content type, extension) of the image format of these bytes (see inspect_upload), from the header
    alone, or None if they are no image we read."""
    try:
        with open_bounded(source, max_pixels) as image:
            return FORMATS.get(image.format or "")
    except (ImageTooLargeError, ImageDecodeError):
        return None


def inspect_upload(source: Path | bytes, declared_type: str, max_pixels: int) -> ImageFacts:
    """Check an uploaded file (its path, or its bytes) is a complete image of the declared type; return its real
    format and its size as displayed."""
    try:
        image = open_bounded(source, max_pixels)
    except ImageTooLargeError as error:
        raise ApiError("asset_image_too_large", f"The image is too large: {error}.") from error
    except ImageDecodeError as error:
        raise ApiError("asset_content_type_mismatch", f"The file is not an image of type '{declared_type}'.") from error
    with image:
        sniffed = FORMATS.get(image.format or "")
        if sniffed is None or sniffed[0] != declared_type.lower():
            actual = sniffed[0] if sniffed else (image.format or "unknown")
            raise ApiError(
                "asset_content_type_mismatch",
                f"The file was declared as '{declared_type}' but its bytes are '{actual}'.",
            )
        width, height = displayed_size(image)
        try:
            _check_complete(image)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as error:
            raise ApiError(
                "asset_image_unreadable", f"The image cannot be decoded (truncated or corrupt): {error}"
            ) from error
    return ImageFacts(sniffed[0], sniffed[1], width, height)
