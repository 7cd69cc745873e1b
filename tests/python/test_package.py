"""The Python package as users get it: `pip install ./bindings/python` builds
and bundles libsimclr.so (no `make install`), under a name that collides
with nothing on PyPI; NumPy sees tensors without copies."""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import libsimclr as simclr
from conftest import ROOT


def _has_pip():
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_pip(), reason="pip not installed (Debian: python3-pip)")
def test_pip_install_bundles_the_library():
    target = tempfile.mkdtemp(prefix="simclr_pip_")
    src = tempfile.mkdtemp(prefix="simclr_pysrc_")
    try:
        env = dict(os.environ)
        env.pop("SIMCLR_LIBRARY", None)
        env["PIP_NO_INDEX"] = "1"  # nothing from PyPI
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--quiet",
                            "--target", target, os.path.join(ROOT, "bindings", "python")],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        bundled = os.path.join(target, "libsimclr", "libsimclr.so.0")
        assert os.path.exists(bundled), os.listdir(os.path.join(target, "libsimclr"))
        # a fresh interpreter elsewhere, no SIMCLR_LIBRARY, no checkout on the path
        code = ("import libsimclr as s, os; ctx = s.Context('cpu', 1); "
                "print(os.path.realpath(s.library_path)); print(s.version_string())")
        env["PYTHONPATH"] = target
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=src)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == os.path.realpath(bundled)
    finally:
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(os.path.join(ROOT, "bindings", "python", "build"), ignore_errors=True)
        for d in os.listdir(os.path.join(ROOT, "bindings", "python")):
            if d.endswith(".egg-info"):
                shutil.rmtree(os.path.join(ROOT, "bindings", "python", d), ignore_errors=True)


def test_distribution_and_import_name():
    text = open(os.path.join(ROOT, "bindings", "python", "pyproject.toml")).read()
    assert 'name = "libsimclr"' in text
    assert simclr.__name__ == "libsimclr"


def test_asarray_is_zero_copy():
    with simclr.Context("cpu", 1) as ctx:
        t = simclr.Tensor(ctx, (3, 4), "float32")
        a = np.asarray(t)
        assert a.shape == (3, 4) and a.dtype == np.float32
        assert a.__array_interface__["data"][0] == t.data_ptr
        a[1, 2] = 7.5
        assert t.numpy()[1, 2] == 7.5  # the library's memory itself
        u = simclr.Tensor(ctx, (2, 5), "uint8")
        assert np.asarray(u).dtype == np.uint8 and np.asarray(u).__array_interface__["data"][0] == u.data_ptr
        ro = np.arange(6, dtype=np.float32).reshape(2, 3)
        ro.flags.writeable = False
        w = simclr.Tensor.from_numpy(ctx, ro)
        assert not np.asarray(w).flags.writeable


def test_array_accepts_numpy2_copy_keyword():
    with simclr.Context("cpu", 1) as ctx:
        t = simclr.Tensor(ctx, (2, 2), "float32")
        t.copy_from(np.array([[1, 2], [3, 4]], np.float32))
        view = t.__array__(copy=False)
        assert view.__array_interface__["data"][0] == t.data_ptr
        c = t.__array__(copy=True)
        assert c.__array_interface__["data"][0] != t.data_ptr
        c[0, 0] = 9
        assert t.numpy()[0, 0] == 1
        assert t.__array__(np.float64).dtype == np.float64
        assert t.__array__(np.float64, copy=None).dtype == np.float64
        with pytest.raises(ValueError):
            t.__array__(np.float64, copy=False)
        np.testing.assert_array_equal(np.array(t), [[1, 2], [3, 4]])
