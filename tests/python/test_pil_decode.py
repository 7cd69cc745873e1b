"""libsimclr_image's decoders against PIL (python3-pil) on files PIL writes.

Both link Debian's libjpeg-turbo, so JPEG pixels must agree exactly; PNG is
lossless; EXIF orientation must equal ImageOps.exif_transpose; CMYK JPEGs
follow PIL's CMYK -> RGB conversion."""
import ctypes
import io
import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import ROOT

LIB = os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so"))
IMG_LIB = os.path.join(os.path.dirname(LIB), "libsimclr_image.so")
pytestmark = pytest.mark.skipif(not os.path.exists(IMG_LIB), reason="libsimclr_image not built (make image)")


@pytest.fixture(scope="module")
def lib():
    ctypes.CDLL(LIB, mode=ctypes.RTLD_GLOBAL)  # the companion's dependency, by soname
    img = ctypes.CDLL(IMG_LIB)
    img.simclr_image_decode_memory.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int,
                                               ctypes.c_int64, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                               ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64)]
    img.simclr_image_free.argtypes = [ctypes.c_void_p]
    core = ctypes.CDLL(LIB)
    core.simclr_last_error.restype = ctypes.c_char_p
    img.last_error = core.simclr_last_error
    return img


def decode(lib, data, channels=3):
    px = ctypes.c_void_p()
    h, w = ctypes.c_int64(), ctypes.c_int64()
    st = lib.simclr_image_decode_memory(data, len(data), b"test", channels, 0, 0, ctypes.byref(px),
                                        ctypes.byref(h), ctypes.byref(w))
    assert st == 0, lib.last_error().decode()
    n = h.value * w.value * channels
    arr = np.ctypeslib.as_array(ctypes.cast(px, ctypes.POINTER(ctypes.c_uint8)), shape=(n,)).copy()
    lib.simclr_image_free(px)
    return arr.reshape(h.value, w.value, channels) if channels == 3 else arr.reshape(h.value, w.value)


def picture(mode, w=67, h=45, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (w + h - 2)], -1)
    noise = rng.integers(-20, 21, size=base.shape)
    rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode)


def saved(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def pil_rgb(data, mode="RGB"):
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert(mode))


@pytest.mark.parametrize("mode,kw", [("RGB", {}), ("RGB", {"progressive": True}), ("L", {}),
                                     ("RGB", {"subsampling": 0}), ("CMYK", {})])
def test_jpeg_matches_pil(lib, mode, kw):
    data = saved(picture(mode), "JPEG", quality=90, **kw)
    ours, theirs = decode(lib, data), pil_rgb(data)
    assert ours.shape == theirs.shape
    diff = np.abs(ours.astype(int) - theirs.astype(int)).max()
    assert diff == 0, f"max difference {diff}"


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1"])
def test_png_matches_pil(lib, mode):
    data = saved(picture(mode), "PNG")
    np.testing.assert_array_equal(decode(lib, data), pil_rgb(data))
    np.testing.assert_array_equal(decode(lib, data, 1), pil_rgb(data, "L"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_matches_pil(lib, orientation, fmt):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = saved(picture("RGB", 40, 24), fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    ours, theirs = decode(lib, data), pil_rgb(data)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_palette_png_with_transparency_matches_pil(lib):
    """A palette PNG with a tRNS chunk (GIF-style transparency): alpha dropped
    as PIL's convert does; it was refused ('unexpected 4 channels')."""
    img = picture("P")
    data = saved(img, "PNG", transparency=bytes(range(0, 256, 16)))
    assert b"tRNS" in data
    np.testing.assert_array_equal(decode(lib, data), pil_rgb(data))
    np.testing.assert_array_equal(decode(lib, data, 1), pil_rgb(data, "L"))
