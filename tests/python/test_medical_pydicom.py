"""libsimclr_medical against independent decoders (issue 28).

DICOM: files written with pydicom in every transfer syntax it writes without
extra encoders (implicit/explicit VR little endian, explicit big endian,
deflated, RLE Lossless through pydicom's own encoder), 8/12/16/32-bit,
signed/unsigned, MONOCHROME1/2, RGB planar 0/1, multi-frame, rescale
slope/intercept; the same files compressed by GDCM's gdcmconv (JPEG lossless,
JPEG-LS, JPEG 2000 lossless, RLE: an encoder from another library than the
decoder's DCMTK/OpenJPEG); the sample files Debian ships (pydicom's test files,
GDCM's example). Lossless: the companion's float32 must equal pydicom's
pixel_array with the rescale applied in float64, then rounded to float32,
exactly. Lossy JPEG: within a small tolerance of pydicom + Pillow.
TIFF: tifffile, PIL and libtiff's tiffcp write; compared exactly.
Malformed files: refused with a message naming the file, never the
Patient ID."""
import ctypes
import os
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixel_data_handlers.util import apply_modality_lut, convert_color_space
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, RLELossless, generate_uid)

from conftest import ROOT

LIB = os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so"))
MED_LIB = os.environ.get("SIMCLR_MEDICAL_LIBRARY", os.path.join(os.path.dirname(LIB), "libsimclr_medical.so"))
# make test sets SIMCLR_MEDICAL_LIBRARY: then a missing library fails; run alone, it skips.
pytestmark = pytest.mark.skipif("SIMCLR_MEDICAL_LIBRARY" not in os.environ and not os.path.exists(MED_LIB),
                                reason="libsimclr_medical not built (make medical)")
SAMPLES = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
GDCM_EXAMPLE = "/usr/share/doc/libgdcm3.0/examples/00191113.dcm"
SECRET = "SECRET-PATIENT-42"


@pytest.fixture(scope="module")
def lib():
    ctypes.CDLL(LIB, mode=ctypes.RTLD_GLOBAL)  # the companion's dependency, by soname
    med = ctypes.CDLL(MED_LIB)
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    med.simclr_medical_decode_file.argtypes = [ctypes.c_char_p, i64, i64, ctypes.POINTER(vp)]
    med.simclr_medical_decode_memory.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, i64, i64,
                                                 ctypes.POINTER(vp)]
    for f in ("height", "width", "frames", "frame"):
        getattr(med, "simclr_medical_image_" + f).restype = i64
        getattr(med, "simclr_medical_image_" + f).argtypes = [vp]
    for f in ("channels", "inverted", "bits_stored", "is_signed", "format"):
        getattr(med, "simclr_medical_image_" + f).argtypes = [vp]
    for f in ("photometric", "sop_instance_uid", "group_id"):
        getattr(med, "simclr_medical_image_" + f).restype = ctypes.c_char_p
        getattr(med, "simclr_medical_image_" + f).argtypes = [vp]
    med.simclr_medical_image_data.restype = ctypes.POINTER(ctypes.c_float)
    med.simclr_medical_image_data.argtypes = [vp]
    med.simclr_medical_image_window.argtypes = [vp, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]
    med.simclr_medical_image_rescale.argtypes = [vp, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]
    med.simclr_medical_image_destroy.argtypes = [vp]
    med.simclr_medical_window_f32.argtypes = [ctypes.c_void_p, i64, ctypes.c_double, ctypes.c_double, ctypes.c_int,
                                              ctypes.c_void_p]
    core = ctypes.CDLL(LIB)
    core.simclr_last_error.restype = ctypes.c_char_p
    med.last_error = core.simclr_last_error
    return med


def decode(lib, path, frame=0, max_pixels=0):
    """(float32 [H, W, C], info dict) or raises AssertionError with the message."""
    img = ctypes.c_void_p()
    st = lib.simclr_medical_decode_file(path.encode(), frame, max_pixels, ctypes.byref(img))
    assert st == 0, lib.last_error().decode()
    try:
        h, w, c = (lib.simclr_medical_image_height(img), lib.simclr_medical_image_width(img),
                   lib.simclr_medical_image_channels(img))
        arr = np.ctypeslib.as_array(lib.simclr_medical_image_data(img), shape=(h * w * c,)).reshape(h, w, c).copy()
        center, width = ctypes.c_double(), ctypes.c_double()
        slope, intercept = ctypes.c_double(), ctypes.c_double()
        has_window = lib.simclr_medical_image_window(img, ctypes.byref(center), ctypes.byref(width))
        lib.simclr_medical_image_rescale(img, ctypes.byref(slope), ctypes.byref(intercept))
        info = dict(frames=lib.simclr_medical_image_frames(img), frame=lib.simclr_medical_image_frame(img),
                    photometric=lib.simclr_medical_image_photometric(img).decode(),
                    inverted=lib.simclr_medical_image_inverted(img), bits=lib.simclr_medical_image_bits_stored(img),
                    signed=lib.simclr_medical_image_is_signed(img),
                    sop=lib.simclr_medical_image_sop_instance_uid(img).decode(),
                    group=lib.simclr_medical_image_group_id(img).decode(),
                    window=(center.value, width.value) if has_window else None,
                    rescale=(slope.value, intercept.value))
        return arr, info
    finally:
        lib.simclr_medical_image_destroy(img)


def refusal(lib, path, frame=0, max_pixels=0):
    img = ctypes.c_void_p()
    st = lib.simclr_medical_decode_file(path.encode(), frame, max_pixels, ctypes.byref(img))
    assert st != 0 and not img.value, path
    msg = lib.last_error().decode()
    assert msg.startswith("medical: ") and path in msg, msg
    return st, msg


def reference(path, frame):
    """pydicom's pixel_array of one frame, rescaled in float64, as float32 [H, W, C]."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[frame]
    if ds.SamplesPerPixel == 1:
        arr = apply_modality_lut(arr, ds).astype(np.float64)
        arr = arr[..., None]
    return arr.astype(np.float64).astype(np.float32)


def assert_same(ours, ref, what):
    assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
    bad = np.argwhere(ours != ref)
    assert bad.size == 0, f"{what}: {len(bad)} values differ, first at {tuple(bad[0])}: " \
                          f"{ours[tuple(bad[0])]} vs {ref[tuple(bad[0])]}"


# ---- DICOM written with pydicom ----

def write_dicom(path, pixels, ts, bits_stored=None, signed=False, pi=None, planar=0, slope=None, intercept=None,
                window=None):
    """pixels: [frames, rows, cols, spp] integers; stored as given."""
    frames, rows, cols, spp = pixels.shape
    bits_alloc = {1: 8, 2: 16, 4: 32}[pixels.dtype.itemsize]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if ts == RLELossless else ts
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID = SECRET
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, spp
    ds.PhotometricInterpretation = pi or ("MONOCHROME2" if spp == 1 else "RGB")
    if spp == 3:
        ds.PlanarConfiguration = planar
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = bits_alloc
    ds.BitsStored = bits_stored or bits_alloc
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    big = ts == ExplicitVRBigEndian
    ds.is_little_endian = not big
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    data = pixels if planar == 0 or spp == 1 else pixels.transpose(0, 3, 1, 2)
    data = np.ascontiguousarray(data).astype(data.dtype.newbyteorder(">" if big else "<"))
    ds.PixelData = data.tobytes()
    ds["PixelData"].VR = "OW" if bits_alloc > 8 else "OB"
    if ts == RLELossless:
        arr = pixels[0] if frames == 1 else pixels
        ds.compress(RLELossless, arr[..., 0] if spp == 1 else arr)
    ds.save_as(path, write_like_original=False)


def pattern(shape, lo, hi, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
    a.flat[0], a.flat[1] = lo, hi  # the extremes
    return a


DEPTHS = [  # (dtype, bits stored, signed, slope, intercept)
    (np.uint8, 8, False, "1", "0"),
    (np.uint16, 12, False, "1", "-1024"),   # a CT's unsigned 12 bits, Hounsfield units
    (np.int16, 12, True, "2.5", "-10"),
    (np.int16, 16, True, "1", "-1024"),
    (np.uint16, 16, False, "0.125", "3.5"),
    (np.int32, 32, True, "1e-3", "0"),
]
SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
            RLELossless]


@pytest.mark.parametrize("ts", SYNTAXES, ids=lambda t: t.name.replace(" ", "_"))
@pytest.mark.parametrize("depth", DEPTHS, ids=lambda d: f"{np.dtype(d[0]).name}_{d[1]}")
def test_pydicom_gray_syntaxes(lib, tmp_path, ts, depth):
    dtype, bits, signed, slope, intercept = depth
    if ts == RLELossless and bits == 32:
        pytest.skip("pydicom 2.3's RLE encoder profiles stop at 16 bits (32-bit RLE: rtdose_rle.dcm, SC_rgb_rle_32bit)")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    px = pattern((3, 9, 7, 1), lo, hi, bits).astype(dtype)
    path = str(tmp_path / "gray.dcm")
    write_dicom(path, px, ts, bits, signed, slope=slope, intercept=intercept, window=("40", "400"))
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == ts
    for f in range(3):
        ours, info = decode(lib, path, f)
        ref = reference(path, f)
        assert_same(ours, ref, f"{ts.name} frame {f}")
        # and the stored values really are the ones written (pydicom agrees with the source)
        want = (px[f].astype(np.float64) * float(slope) + float(intercept)).astype(np.float32)
        assert_same(ours, want, "source")
        assert info["frames"] == 3 and info["frame"] == f and info["bits"] == bits and info["signed"] == signed
        assert info["window"] == (40.0, 400.0) and info["rescale"] == (float(slope), float(intercept))
        assert info["group"] == SECRET and info["sop"] == str(pydicom.dcmread(path).SOPInstanceUID)
    st, msg = refusal(lib, path, 3)
    assert "frame 3 is out of range (the file has 3)" in msg and SECRET not in msg


@pytest.mark.parametrize("ts", SYNTAXES, ids=lambda t: t.name.replace(" ", "_"))
@pytest.mark.parametrize("planar", [0, 1])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pydicom_rgb(lib, tmp_path, ts, planar, dtype):
    if ts == RLELossless and planar == 1:
        pytest.skip("pydicom's RLE encoder writes planar configuration 0 only")
    px = pattern((2, 6, 5, 3), 0, np.iinfo(dtype).max, 3).astype(dtype)
    path = str(tmp_path / "rgb.dcm")
    write_dicom(path, px, ts, planar=planar)
    for f in range(2):
        ours, info = decode(lib, path, f)
        assert info["photometric"] == "RGB"
        assert_same(ours, reference(path, f), f"rgb {ts.name} planar {planar} frame {f}")
        assert_same(ours, px[f].astype(np.float32), "source")


def test_pydicom_monochrome1(lib, tmp_path):
    px = pattern((1, 8, 8, 1), 0, 4095, 5).astype(np.uint16)
    path = str(tmp_path / "m1.dcm")
    write_dicom(path, px, ExplicitVRLittleEndian, 12, pi="MONOCHROME1", window=("2048", "4096"))
    ours, info = decode(lib, path)
    assert info["photometric"] == "MONOCHROME1" and info["inverted"] == 1
    assert_same(ours, reference(path, 0), "MONOCHROME1")


# ---- the same files compressed by GDCM (another library than the decoder's) ----

GDCMCONV = [("--jpeg", "1.2.840.10008.1.2.4.70"), ("--jpegls", "1.2.840.10008.1.2.4.80"),
            ("--j2k", "1.2.840.10008.1.2.4.90"), ("--rle", "1.2.840.10008.1.2.5")]


@pytest.mark.parametrize("opt,uid", GDCMCONV, ids=[o for o, _ in GDCMCONV])
@pytest.mark.parametrize("depth", [(np.uint8, 8, False), (np.uint16, 12, False), (np.int16, 16, True),
                                   (np.uint16, 16, False)], ids=["u8", "u12", "s16", "u16"])
@pytest.mark.parametrize("spp", [1, 3])
def test_gdcmconv_lossless(lib, tmp_path, opt, uid, depth, spp):
    dtype, bits, signed = depth
    if spp == 3 and dtype != np.uint8:
        pytest.skip("RGB is 8-bit here")
    assert shutil.which("gdcmconv"), "gdcmconv missing: tools/deps.sh installs libgdcm-tools"
    if opt == "--j2k" and dtype == np.uint8:
        pytest.skip("gdcmconv --j2k (GDCM 3.0.21) crashes on 8-bit input; 8-bit J2K: SC_rgb_gdcm_KY.dcm")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    px = pattern((2, 12, 10, spp), lo, hi, 7).astype(dtype)
    src, dst = str(tmp_path / "src.dcm"), str(tmp_path / "dst.dcm")
    write_dicom(src, px, ExplicitVRLittleEndian, bits, signed, slope="1" if spp == 1 else None,
                intercept="-1024" if spp == 1 else None)
    subprocess.run(["gdcmconv", opt, src, dst], check=True, capture_output=True)
    assert pydicom.dcmread(dst).file_meta.TransferSyntaxUID == uid
    for f in range(2):
        ours, _ = decode(lib, dst, f)
        assert_same(ours, reference(src, f), f"gdcmconv {opt} frame {f}")


def test_gdcmconv_jpeg_baseline_lossy(lib, tmp_path):
    """8-bit lossy JPEG (GDCM writes it RGB-labelled with YCbCr components,
    IDs 1, 2, 3 and 4:2:0 chroma): against the source, and against Pillow
    (libjpeg-turbo) decoding the same JPEG stream with its own colour
    conversion: IJG 6b's and turbo's DCTs may differ in the last bit."""
    import io
    from PIL import Image
    from pydicom.encaps import generate_pixel_data_frame
    y, x = np.mgrid[0:48, 0:40]
    px = np.stack([(x * 6) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1)[None].astype(np.uint8)
    src, dst = str(tmp_path / "src.dcm"), str(tmp_path / "dst.dcm")
    write_dicom(src, px, ExplicitVRLittleEndian)
    subprocess.run(["gdcmconv", "--jpeg", "--lossy", "-q", "95", src, dst], check=True, capture_output=True)
    ds = pydicom.dcmread(dst)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    ours, info = decode(lib, dst)
    assert info["photometric"] == "RGB"
    pil = np.asarray(Image.open(io.BytesIO(next(generate_pixel_data_frame(ds.PixelData)))).convert("RGB"))
    diff = np.abs(ours - pil.astype(np.float32))
    assert diff.max() <= 4 and diff.mean() < 0.5, (diff.max(), diff.mean())
    assert np.abs(ours - px[0]).mean() < 4


# ---- the sample files Debian ships ----

def sample(name):
    return os.path.join(SAMPLES, name)


# (file, reference file for pydicom or None for itself): lossless pairs
SAMPLE_EXACT = [
    ("CT_small.dcm", None),  # its preamble holds a TIFF header: still DICOM
    ("MR_small.dcm", None), ("MR_small_implicit.dcm", "MR_small.dcm"), ("MR_small_bigendian.dcm", "MR_small.dcm"),
    ("MR_small_expb.dcm", "MR_small.dcm"), ("MR_small_padded.dcm", "MR_small.dcm"),
    ("MR_small_RLE.dcm", "MR_small.dcm"), ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("ExplVR_BigEnd.dcm", None), ("SC_rgb_small_odd.dcm", None), ("image_dfl.dcm", None),
    ("SC_rgb_rle.dcm", None), ("SC_rgb_rle_2frame.dcm", None), ("SC_rgb_rle_16bit.dcm", None),
    ("SC_rgb_rle_16bit_2frame.dcm", None), ("SC_rgb_rle_32bit.dcm", None), ("SC_rgb_rle_32bit_2frame.dcm", None),
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG lossless of the same picture
    ("rtdose.dcm", None), ("rtdose_1frame.dcm", None), ("rtdose_expb.dcm", None), ("rtdose_rle.dcm", None),
    # JPEG 2000 through pydicom's Pillow (OpenJPEG too: equal, not independent)
    ("JPEG2000.dcm", None), ("693_J2KI.dcm", None), ("SC_rgb_gdcm_KY.dcm", None),
]


@pytest.mark.parametrize("name,ref", SAMPLE_EXACT, ids=[n for n, _ in SAMPLE_EXACT])
def test_debian_samples_exact(lib, name, ref):
    path = sample(name)
    refpath = sample(ref) if ref else path
    frames = int(pydicom.dcmread(path).get("NumberOfFrames", 1) or 1)
    for f in range(frames):
        ours, info = decode(lib, path, f)
        assert info["frames"] == frames
        assert_same(ours, reference(refpath, f), f"{name} frame {f}")


# Lossy JPEG samples of one picture (its lossless original: SC_rgb_rle.dcm):
# YBR_FULL, YBR_FULL_422 (4:2:2 and 4:2:0 chroma), RGB-labelled YCbCr (GDCM),
# RGB components (DCMTK +cr); the poorest (n1, np: 2.8 mean error) as pydicom
# + Pillow decodes them too.
@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+n2.dcm",
                                  "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm",
                                  "SC_rgb_dcmtk_+eb+cy+s4.dcm", "SC_rgb_dcmtk_+eb+cr.dcm",
                                  "SC_rgb_jpeg_lossy_gdcm.dcm"])
def test_debian_samples_jpeg_lossy(lib, name):
    ours, info = decode(lib, sample(name))
    assert info["photometric"] == "RGB"
    source = pydicom.dcmread(sample("SC_rgb_rle.dcm")).pixel_array.astype(np.float32)
    diff = np.abs(ours - source)
    assert diff.mean() < 3, (name, diff.max(), diff.mean())
    ds = pydicom.dcmread(sample(name))
    if ds.PhotometricInterpretation != "RGB":  # pydicom returns the YBR components: convert them
        ref = convert_color_space(ds.pixel_array, ds.PhotometricInterpretation, "RGB").astype(np.float32)
        assert np.abs(ref - source).mean() < 3


# RGB-labelled JPEGs whose components are RGB (IDs 0, 1, 2; an Adobe marker
# with transform 0): as stored, as pydicom + Pillow decodes them.
@pytest.mark.parametrize("name", ["SC_jpeg_no_color_transform.dcm", "SC_jpeg_no_color_transform_2.dcm",
                                  "SC_rgb_jpeg_dcmd.dcm", "SC_rgb_jpeg_app14_dcmd.dcm"])
def test_debian_samples_jpeg_rgb_components(lib, name):
    ours, _ = decode(lib, sample(name))
    diff = np.abs(ours - pydicom.dcmread(sample(name)).pixel_array.astype(np.float32))
    assert diff.max() <= 4 and diff.mean() < 0.5, (name, diff.max(), diff.mean())


def test_debian_gdcm_example_multiframe_jpeg_lossless(lib, tmp_path):
    """GDCM's example (libgdcm3.0's docs): 4 frames of JPEG lossless; the
    reference is gdcmconv --raw read by pydicom."""
    if not os.path.exists(GDCM_EXAMPLE):
        pytest.skip("libgdcm3.0's example not installed")
    raw = str(tmp_path / "raw.dcm")
    subprocess.run(["gdcmconv", "--raw", GDCM_EXAMPLE, raw], check=True, capture_output=True)
    frames = int(pydicom.dcmread(raw).NumberOfFrames)
    assert frames == 4
    for f in range(frames):
        ours, _ = decode(lib, GDCM_EXAMPLE, f)
        assert_same(ours, reference(raw, f), f"00191113.dcm frame {f}")


@pytest.mark.parametrize("name,status,needle", [
    ("liver_1frame.dcm", "UNSUPPORTED", "1-bit"),
    ("MR_truncated.dcm", "FORMAT", ""),
    ("SC_ybr_full_422_uncompressed.dcm", "UNSUPPORTED", "YBR_FULL_422"),
    ("reportsi.dcm", "FORMAT", "without pixel data"),
    ("rtplan_truncated.dcm", "FORMAT", ""),
])
def test_debian_samples_refused(lib, name, status, needle):
    st, msg = refusal(lib, sample(name))
    assert st == {"FORMAT": 5, "UNSUPPORTED": 7}[status] or needle in msg, msg
    assert needle in msg, msg
    pid = str(pydicom.dcmread(sample(name), force=True).get("PatientID", ""))
    assert not pid or pid not in msg, msg


# ---- malformed files made from a good one ----

def test_malformed_dicom(lib, tmp_path):
    px = pattern((1, 32, 32, 1), 0, 4095, 11).astype(np.uint16)
    good = str(tmp_path / "good.dcm")
    write_dicom(good, px, ExplicitVRLittleEndian, 12, slope="1", intercept="-1024")
    data = open(good, "rb").read()
    decode(lib, good)
    cases = {}
    cases["truncated.dcm"] = data[:-200]
    ds = pydicom.dcmread(good)
    ds.Rows = 33  # more rows than the pixel data holds
    p = str(tmp_path / "rows.dcm")
    ds.save_as(p)
    cases["rows.dcm"] = open(p, "rb").read()
    ds = pydicom.dcmread(good)
    ds.Rows, ds.Columns = 65535, 65535  # huge: refused by max_pixels
    p = str(tmp_path / "huge.dcm")
    ds.save_as(p)
    cases["huge.dcm"] = open(p, "rb").read()
    ds = pydicom.dcmread(good)
    ds.file_meta.TransferSyntaxUID = "1.2.3.999.1"
    p = str(tmp_path / "unknown_ts.dcm")
    ds.save_as(p)
    cases["unknown_ts.dcm"] = open(p, "rb").read()
    # the Pixel Data length field made larger than the file
    i = data.rfind(b"\xe0\x7f\x10\x00OW\x00\x00")
    assert i > 0
    cases["vl.dcm"] = data[:i + 8] + (0x7ffffff0).to_bytes(4, "little") + data[i + 12:]
    want = {"truncated.dcm": ("", 5), "rows.dcm": ("truncated pixel data", 5),
            "huge.dcm": ("65535 rows x 65535 columns exceed max_pixels", 5),
            "unknown_ts.dcm": ("unknown transfer syntax 1.2.3.999.1", 7), "vl.dcm": ("", 5)}
    for name, blob in cases.items():
        p = str(tmp_path / name)
        with open(p, "wb") as f:
            f.write(blob)
        st, msg = refusal(lib, p)
        needle, code = want[name]
        assert st == code and needle in msg and SECRET not in msg, (name, st, msg)


# ---- TIFF ----

tifffile = pytest.importorskip("tifffile")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.uint32])
@pytest.mark.parametrize("spp", [1, 3])
@pytest.mark.parametrize("layout", ["strips", "tiles", "separate", "zlib"])
def test_tifffile(lib, tmp_path, dtype, spp, layout):
    if dtype == np.float32:
        px = (pattern((3, 40, 35, spp), -100000, 100000, 13) / 64.0).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        px = pattern((3, 40, 35, spp), int(info.min), int(info.max), 13).astype(dtype)
    path = str(tmp_path / "t.tif")
    kw = dict(photometric="minisblack" if spp == 1 else "rgb")
    if layout == "tiles":
        kw["tile"] = (16, 16)
    if layout == "separate" and spp == 3:
        kw["planarconfig"] = "separate"
    if layout == "zlib":
        kw["compression"] = "zlib"
    else:
        kw["rowsperstrip"] = 7
    with tifffile.TiffWriter(path) as tw:
        for page in px:
            data = page[..., 0] if spp == 1 else page
            if kw.get("planarconfig") == "separate":
                data = np.ascontiguousarray(page.transpose(2, 0, 1))
            tw.write(data, **kw)
    for pg in range(3):
        ours, info = decode(lib, path, pg)
        assert info["frames"] == 3 and info["photometric"] == ("MONOCHROME2" if spp == 1 else "RGB")
        assert_same(ours, px[pg].astype(np.float32), f"tifffile {layout} page {pg}")
        back = tifffile.imread(path, key=pg)  # tifffile's own reading agrees
        back = back if spp == 1 or back.shape[-1] == 3 else back.transpose(1, 2, 0)
        assert_same(ours, back.reshape(ours.shape).astype(np.float32), "tifffile read")


@pytest.mark.parametrize("mode,compression", [("L", None), ("L", "tiff_lzw"), ("RGB", "tiff_adobe_deflate"),
                                              ("RGB", "packbits"), ("I;16", None), ("I;16", "tiff_lzw")])
def test_pil_tiff(lib, tmp_path, mode, compression):
    from PIL import Image
    dtype = np.uint16 if mode == "I;16" else np.uint8
    shape = (30, 41, 3) if mode == "RGB" else (30, 41)
    px = pattern(shape, 0, int(np.iinfo(dtype).max), 17).astype(dtype)
    path = str(tmp_path / "p.tif")
    Image.fromarray(px, mode).save(path, compression=compression) if compression else Image.fromarray(px, mode).save(path)
    ours, _ = decode(lib, path)
    assert_same(ours, px.reshape(ours.shape).astype(np.float32), f"PIL {mode} {compression}")


def test_tiffcp_tiled_lzw_and_miniswhite(lib, tmp_path):
    """libtiff's tiffcp rewrites a tifffile page as LZW tiles."""
    if not shutil.which("tiffcp"):
        pytest.fail("tiffcp missing: tools/deps.sh installs libtiff-tools")
    px = pattern((45, 33), 0, 65535, 19).astype(np.uint16)
    src, dst = str(tmp_path / "s.tif"), str(tmp_path / "d.tif")
    tifffile.imwrite(src, px, photometric="miniswhite")
    subprocess.run(["tiffcp", "-c", "lzw", "-t", "-w", "16", "-l", "16", src, dst], check=True, capture_output=True)
    ours, info = decode(lib, dst)
    assert info["photometric"] == "MONOCHROME1" and info["inverted"] == 1
    assert_same(ours, px[..., None].astype(np.float32), "tiffcp lzw tiles")


def test_malformed_tiff(lib, tmp_path):
    px = pattern((64, 64), 0, 65535, 23).astype(np.uint16)
    path = str(tmp_path / "good.tif")
    tifffile.imwrite(path, px, compression="zlib", rowsperstrip=8)
    data = open(path, "rb").read()
    decode(lib, path)
    for name, blob, needle in [("cut.tif", data[: len(data) // 2], ""), ("empty.tif", b"", "the file is empty")]:
        p = str(tmp_path / name)
        with open(p, "wb") as f:
            f.write(blob)
        st, msg = refusal(lib, p)
        assert st == 5 and needle in msg, msg
    st, msg = refusal(lib, path, 0, 64 * 64 - 1)
    assert "64 x 64 pixels exceed max_pixels 4095" in msg
    st, msg = refusal(lib, path, 1)
    assert st == 1 and "page 1 is out of range (the file has 1)" in msg


# ---- the window against pydicom's ----

def test_window_matches_pydicom(lib, tmp_path):
    from pydicom.pixel_data_handlers.util import apply_voi_lut
    px = pattern((1, 16, 16, 1), 0, 4095, 29).astype(np.uint16)
    path = str(tmp_path / "w.dcm")
    write_dicom(path, px, ExplicitVRLittleEndian, 12, slope="1", intercept="-1024", window=("40", "400"))
    ours, info = decode(lib, path)
    out = np.empty_like(ours)
    assert lib.simclr_medical_window_f32(ours.ctypes.data, ours.size, 40.0, 400.0, 0, out.ctypes.data) == 0
    ds = pydicom.dcmread(path)
    hu = apply_modality_lut(ds.pixel_array, ds)
    # pydicom's LINEAR VOI maps to the rescaled range of the stored values,
    # [0 - 1024, 4095 - 1024]: scaled to [0, 1]
    ref = (apply_voi_lut(hu, ds) + 1024) / 4095.0
    assert np.abs(out[..., 0] - ref).max() < 1e-6
