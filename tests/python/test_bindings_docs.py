"""The first programs of docs/getting-started.md compile (and run, once the
layers they use are in the library): documentation that cannot rot silently."""
import ctypes
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

LIBRARY = os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so.0"))
DOC = open(os.path.join(ROOT, "docs", "getting-started.md")).read()
CC = os.environ.get("CC", "cc")


def code_blocks(lang):
    return re.findall(r"```%s\n(.*?)```" % lang, DOC, flags=re.S)


@pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")
def test_first_c_program_compiles_and_runs(tmp_path):
    src = next(b for b in code_blocks("c") if "int main" in b)
    (tmp_path / "embed.c").write_text(src)
    exe = tmp_path / "embed"
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I" + os.path.join(ROOT, "include")]
    r = subprocess.run([CC] + flags + ["-c", str(tmp_path / "embed.c"), "-o", str(tmp_path / "embed.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib = ctypes.CDLL(LIBRARY)
    needed = set(re.findall(r"\b(simclr_[a-z_]+)\(", src))
    missing = sorted(n for n in needed if not hasattr(lib, n))
    if missing:
        pytest.skip("not in the library yet: " + ", ".join(missing))
    r = subprocess.run([CC, str(tmp_path / "embed.o"), "-o", str(exe), LIBRARY,
                        "-Wl,-rpath," + os.path.dirname(os.path.abspath(LIBRARY))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "embedding of image 0 starts" in r.stdout
