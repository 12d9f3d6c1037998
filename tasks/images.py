"""Decoding and encoding photos without losing what the user cares about.

A decoded `Photo` is upright (EXIF orientation applied) and holds uint8 colour planes plus an
optional alpha plane. Encoding writes the same format, ICC profile, EXIF (orientation reset to 1),
DPI and alpha back. Anything that cannot be carried faithfully in 8 bits (16-bit PNG/TIFF,
CMYK, float TIFF) is refused with a reason rather than truncated silently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from tasks.uris import RowError

# The pixel limit is ours (Config.max_pixels), checked from the header before decoding; Pillow's
# own global guard would fire at a different, fixed size with a less helpful message.
Image.MAX_IMAGE_PIXELS = None

EXIF_ORIENTATION = 0x0112
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP")
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_COLOUR_MODES = {"RGB": ("RGB", None), "RGBA": ("RGB", "A"), "L": ("L", None), "LA": ("L", "A")}
_UNSUPPORTED_MODES = {
    "CMYK": "CMYK images are not supported: convert to RGB with the image's ICC profile first "
    "(a blind conversion would shift its colours)",
    "1": "1-bit images are not supported: edits need grey levels; convert to L first",
    "I;16": "16-bit images are not supported: 8-bit output would lose precision; convert explicitly first",
    "I;16B": "16-bit images are not supported: 8-bit output would lose precision; convert explicitly first",
    "I": "32-bit integer images are not supported; convert to 8-bit explicitly first",
    "F": "32-bit float images are not supported; convert to 8-bit explicitly first",
}


@dataclass
class Photo:
    """An upright photo. `colour` is HxWx3 (RGB) or HxW (L) uint8; `alpha` is HxW uint8 or None."""

    colour: np.ndarray
    alpha: np.ndarray | None
    format: str
    orientation: int = 1
    save_info: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.colour.shape[1], self.colour.shape[0]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def open_checked(data: bytes, max_pixels: int, what: str = "image") -> Image.Image:
    """Open an image lazily and refuse it before decoding if it is too large or not an image."""
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise RowError(f"{what} is not a readable image (unknown or corrupt format)") from None
    except Exception as exc:  # Pillow raises a zoo of types on corrupt headers
        raise RowError(f"{what} header could not be parsed: {exc}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise RowError(
            f"{what} is {width}x{height} = {width * height / 1e6:.1f} MP, over the "
            f"{max_pixels / 1e6:g} MP limit (decompression-bomb guard; raise max_pixels to allow it)"
        )
    return img


def _source_bit_depth(data: bytes, img: Image.Image) -> int:
    # Pillow decodes 48-bit RGB PNGs as 8-bit "RGB" without a word, so look at the header itself.
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24:
        return data[24]
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits)
    return 8


def _load(img: Image.Image, what: str) -> None:
    try:
        img.load()
    except Exception as exc:  # truncated JPEG → OSError, broken PNG → SyntaxError/zlib.error, ...
        raise RowError(f"{what} is unreadable or truncated: {exc}") from None


def decode_photo(data: bytes, max_pixels: int) -> Photo:
    img = open_checked(data, max_pixels)
    if img.format not in SUPPORTED_FORMATS:
        raise RowError(f"image format {img.format} is not supported; supported: {', '.join(SUPPORTED_FORMATS)}")
    if getattr(img, "n_frames", 1) > 1:
        raise RowError(f"multi-frame {img.format} ({img.n_frames} frames) is not supported")
    depth = _source_bit_depth(data, img)
    if depth > 8:
        raise RowError(f"{depth}-bit {img.format} is not supported: 8-bit output would lose precision; convert explicitly first")
    if img.mode in _UNSUPPORTED_MODES:
        raise RowError(_UNSUPPORTED_MODES[img.mode])
    _load(img, "image")

    save_info = _save_info(img, data)
    exif = img.getexif()
    orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
    upright = ImageOps.exif_transpose(img) if orientation != 1 else img
    if orientation != 1 or EXIF_ORIENTATION in exif:
        # The pixels are now upright, so the tag must say so; other EXIF fields are kept.
        exif[EXIF_ORIENTATION] = 1
    if len(exif):
        save_info["exif"] = exif.tobytes()

    if upright.mode in ("P", "PA"):
        # A palette cannot hold the new colours a fill creates: write it back as RGB(A).
        has_alpha = upright.mode == "PA" or "transparency" in upright.info
        upright = upright.convert("RGBA" if has_alpha else "RGB")
    if upright.mode not in _COLOUR_MODES:
        raise RowError(f"image mode {upright.mode} is not supported")
    colour_mode, alpha_band = _COLOUR_MODES[upright.mode]
    pixels = np.asarray(upright)
    if alpha_band:
        colour = np.ascontiguousarray(pixels[..., :-1] if colour_mode == "RGB" else pixels[..., 0])
        alpha = np.ascontiguousarray(pixels[..., -1])
    else:
        colour, alpha = np.ascontiguousarray(pixels), None
    return Photo(colour=colour, alpha=alpha, format=img.format, orientation=orientation, save_info=save_info)


def _save_info(img: Image.Image, data: bytes) -> dict:
    info: dict = {}
    if img.info.get("icc_profile"):
        info["icc_profile"] = img.info["icc_profile"]
    if "dpi" in img.info:
        info["dpi"] = tuple(float(v) for v in img.info["dpi"])
    if img.format == "JPEG":
        sampling = JpegImagePlugin.get_sampling(img)
        if sampling != -1:
            info["subsampling"] = sampling
        if img.info.get("progressive") or img.info.get("progression"):
            info["progressive"] = True
    elif img.format == "WEBP":
        info["lossless"] = data[12:16] == b"VP8L"
    elif img.format == "TIFF":
        compression = img.info.get("compression")
        if compression and compression != "raw":
            info["compression"] = compression
    return info


def encode_photo(photo: Photo, colour: np.ndarray, jpeg_quality: int = 95, webp_quality: int = 95) -> bytes:
    """Encode `colour` (same shape as `photo.colour`) with the photo's format and metadata."""
    if colour.shape != photo.colour.shape or colour.dtype != np.uint8:
        raise ValueError(f"colour must be uint8 {photo.colour.shape}, got {colour.dtype} {colour.shape}")
    if photo.alpha is not None:
        planes = colour if colour.ndim == 3 else colour[..., None]
        img = Image.fromarray(np.dstack([planes, photo.alpha]), "RGBA" if colour.ndim == 3 else "LA")
    else:
        img = Image.fromarray(colour, "RGB" if colour.ndim == 3 else "L")
    kwargs = {k: v for k, v in photo.save_info.items() if k in ("icc_profile", "dpi", "exif")}
    if photo.format == "JPEG":
        kwargs.update(quality=jpeg_quality, subsampling=photo.save_info.get("subsampling", 0))
        if photo.save_info.get("progressive"):
            kwargs["progressive"] = True
    elif photo.format == "WEBP":
        kwargs.update(quality=webp_quality, lossless=photo.save_info.get("lossless", False), exact=True)
    elif photo.format == "TIFF":
        if "compression" in photo.save_info:
            kwargs["compression"] = photo.save_info["compression"]
    elif photo.format == "BMP":
        kwargs = {k: v for k, v in kwargs.items() if k == "dpi"}
    buffer = io.BytesIO()
    img.save(buffer, format=photo.format, **kwargs)
    return buffer.getvalue()


def decode_mask(data: bytes, size: tuple[int, int], max_pixels: int) -> np.ndarray:
    """A mask file as a boolean HxW array in the upright frame: nonzero (and not transparent) = edit."""
    img = open_checked(data, max_pixels, what="mask")
    _load(img, "mask")
    img = ImageOps.exif_transpose(img)
    if img.size != size:
        raise RowError(
            f"mask is {img.size[0]}x{img.size[1]} but the image is {size[0]}x{size[1]} (upright frame); "
            "masks must match the image's size after EXIF orientation"
        )
    pixels = np.asarray(img)
    if img.mode in ("RGBA", "LA", "PA"):
        return (pixels[..., -1] > 0) & (pixels[..., :-1].max(axis=-1) > 0)
    if pixels.ndim == 3:
        return pixels.max(axis=-1) > 0
    # L, 1, I;16, I, F and P: for a palette mask the index is the label, 0 = background.
    return pixels != 0
