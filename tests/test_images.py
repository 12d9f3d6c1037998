import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage import data as photos

from tasks.images import decode_mask, decode_photo, encode_photo
from tasks.uris import RowError

LIMIT = 100_000_000


def encoded(pixels, fmt="PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_png_round_trip_is_bit_exact():
    pixels = photos.astronaut()
    photo = decode_photo(encoded(pixels), LIMIT)
    assert photo.format == "PNG" and photo.alpha is None
    again = decode_photo(encode_photo(photo, photo.colour), LIMIT)
    np.testing.assert_array_equal(again.colour, pixels)


def test_exif_orientation_is_applied_and_reset():
    upright = photos.rocket()  # 427 x 640, landscape
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # as a phone held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"  # Make: other tags must survive
    photo = decode_photo(encoded(stored, "JPEG", quality=98, exif=exif.tobytes()), LIMIT)
    assert photo.size == (640, 427) and photo.orientation == 6
    assert np.abs(photo.colour.astype(int) - upright).mean() < 3  # upright, up to JPEG loss
    out = Image.open(io.BytesIO(encode_photo(photo, photo.colour)))
    assert out.format == "JPEG" and out.size == (640, 427)
    assert out.getexif()[0x0112] == 1 and out.getexif()[0x010F] == "TestCam"


def test_jpeg_stays_jpeg_with_its_icc_profile_and_sampling():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encoded(photos.coffee(), "JPEG", quality=92, icc_profile=icc, subsampling=0)
    photo = decode_photo(source, LIMIT)
    out = Image.open(io.BytesIO(encode_photo(photo, photo.colour)))
    assert out.format == "JPEG"
    assert out.info["icc_profile"] == icc
    from PIL import JpegImagePlugin
    assert JpegImagePlugin.get_sampling(out) == 0


def test_alpha_channel_is_kept_exactly():
    rgba = np.dstack([photos.chelsea(), np.tile(np.linspace(0, 255, 451, dtype=np.uint8), (300, 1))])
    photo = decode_photo(encoded(rgba), LIMIT)
    assert photo.colour.shape == (300, 451, 3)
    out = np.asarray(Image.open(io.BytesIO(encode_photo(photo, photo.colour))))
    np.testing.assert_array_equal(out, rgba)


def test_grey_and_palette_images():
    grey = decode_photo(encoded(photos.camera()), LIMIT)
    assert grey.colour.shape == (512, 512)
    palette = Image.fromarray(photos.astronaut()).convert("P", palette=Image.Palette.ADAPTIVE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    photo = decode_photo(buffer.getvalue(), LIMIT)
    np.testing.assert_array_equal(photo.colour, np.asarray(palette.convert("RGB")))


def test_decompression_bomb_is_refused_from_its_header():
    # A PNG header claiming 20000 x 20000 pixels; the data is never decoded.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(RowError, match=r"20000x20000 = 400.0 MP, over the 100 MP limit"):
        decode_photo(bomb, LIMIT)


def test_truncated_image_is_refused():
    data = encoded(photos.coffee(), "JPEG")
    with pytest.raises(RowError, match="unreadable or truncated"):
        decode_photo(data[: len(data) // 2], LIMIT)


def test_not_an_image():
    with pytest.raises(RowError, match="not a readable image"):
        decode_photo(b"hello, world" * 10, LIMIT)


def test_sixteen_bit_is_refused_not_truncated():
    grey16 = (photos.camera().astype(np.uint16) * 257)
    with pytest.raises(RowError, match="16-bit"):
        decode_photo(encoded(grey16, "PNG"), LIMIT)
    ok, rgb48 = cv2.imencode(".png", (photos.astronaut().astype(np.uint16) * 257))
    assert ok
    with pytest.raises(RowError, match="16-bit PNG"):  # Pillow alone would silently read 8 bits
        decode_photo(rgb48.tobytes(), LIMIT)


def test_cmyk_is_refused_with_advice():
    buffer = io.BytesIO()
    Image.fromarray(photos.coffee()).convert("CMYK").save(buffer, format="JPEG")
    with pytest.raises(RowError, match=r"CMYK .* ICC profile"):
        decode_photo(buffer.getvalue(), LIMIT)


def test_mask_conventions():
    size = (4, 3)
    grey = np.array([[0, 1, 0, 0], [0, 0, 0, 255], [0, 0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(decode_mask(encoded(grey), size, LIMIT), grey > 0)
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # painted
    rgba[1, 1] = (255, 255, 255, 0)  # transparent: not an edit
    expected = np.zeros((3, 4), bool)
    expected[0, 0] = True
    np.testing.assert_array_equal(decode_mask(encoded(rgba), size, LIMIT), expected)


def test_mask_of_another_size_is_refused():
    with pytest.raises(RowError, match="mask is 5x3 but the image is 4x3"):
        decode_mask(encoded(np.zeros((3, 5), np.uint8)), (4, 3), LIMIT)
