"""The shared object loads through ctypes and reports the header's version."""
import ctypes
import os
import re

from conftest import ROOT


def test_version_matches_header():
    lib = ctypes.CDLL(os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so.0")))
    lib.simclr_version_string.restype = ctypes.c_char_p
    header = open(os.path.join(ROOT, "include", "simclr.h")).read()
    parts = [re.search(r"#define SIMCLR_VERSION_%s (\d+)" % k, header).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    assert lib.simclr_version_string().decode() == ".".join(parts)
    assert lib.simclr_version_number() == int(parts[0]) * 10000 + int(parts[1]) * 100 + int(parts[2])
