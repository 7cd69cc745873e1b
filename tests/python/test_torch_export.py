"""safetensors export/import against torchvision: a libsimclr ResNet-18
(ImageNet stem) exported with simclr_module_export_safetensors loads into
torchvision.models.resnet18() (fc removed) with strict=True and gives the
same features; a torchvision ResNet-18 written by an independent Python
safetensors writer (with its fc.* tensors as extras) imports into libsimclr
and gives the same features too. Driven through ctypes on SIMCLR_LIBRARY."""
import ctypes
import json
import os
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from conftest import ROOT

LIB_PATH = os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so.0"))
F32, STEM_IMAGENET, EVAL = 0, 1, 0


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(LIB_PATH)
    if not hasattr(lib, "simclr_resnet_create"):
        pytest.skip("this build has no ResNet yet")
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.simclr_last_error.restype = ctypes.c_char_p
    lib.simclr_context_create.argtypes = [ctypes.c_char_p, ctypes.c_int, vp, ctypes.POINTER(vp)]
    lib.simclr_context_destroy.argtypes = [vp]
    lib.simclr_resnet_create.argtypes = [vp, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                         ctypes.c_uint64, ctypes.POINTER(vp)]
    lib.simclr_module_destroy.argtypes = [vp]
    lib.simclr_module_param_count.argtypes = [vp]
    lib.simclr_module_param.argtypes = [vp, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(vp),
                                        ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_int)]
    lib.simclr_module_forward.argtypes = [vp, vp, ctypes.c_int, vp]
    lib.simclr_module_export_safetensors.argtypes = [vp, ctypes.c_char_p]
    lib.simclr_module_import_safetensors.argtypes = [vp, ctypes.c_char_p]
    lib.simclr_tensor_wrap.argtypes = [vp, ctypes.c_int, ctypes.c_int, ctypes.POINTER(i64), vp, ctypes.POINTER(vp)]
    lib.simclr_tensor_destroy.argtypes = [vp]
    lib.simclr_tensor_data.argtypes = [vp]
    lib.simclr_tensor_data.restype = vp
    lib.simclr_tensor_numel.argtypes = [vp]
    lib.simclr_tensor_numel.restype = i64
    return lib


def ok(lib, status):
    assert status == 0, lib.simclr_last_error().decode()


@pytest.fixture(scope="module")
def ctx(lib):
    c = ctypes.c_void_p()
    ok(lib, lib.simclr_context_create(b"cpu", 2, None, ctypes.byref(c)))
    yield c
    lib.simclr_context_destroy(c)


def resnet18(lib, ctx, seed):
    m = ctypes.c_void_p()
    ok(lib, lib.simclr_resnet_create(ctx, 18, 64, 3, STEM_IMAGENET, seed, ctypes.byref(m)))
    return m


def params(lib, m):
    """name -> numpy view of the module's tensor (writes change the model)."""
    out = {}
    for i in range(lib.simclr_module_param_count(m)):
        name, value = ctypes.c_char_p(), ctypes.c_void_p()
        ok(lib, lib.simclr_module_param(m, i, ctypes.byref(name), ctypes.byref(value), None, None))
        n = lib.simclr_tensor_numel(value)
        ptr = ctypes.cast(lib.simclr_tensor_data(value), ctypes.POINTER(ctypes.c_float))
        out[name.value.decode()] = np.ctypeslib.as_array(ptr, shape=(n,))
    return out


def forward(lib, ctx, m, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.zeros((x.shape[0], 512), dtype=np.float32)
    tx, ty = ctypes.c_void_p(), ctypes.c_void_p()
    xs, ys = (ctypes.c_int64 * 4)(*x.shape), (ctypes.c_int64 * 2)(*y.shape)
    ok(lib, lib.simclr_tensor_wrap(ctx, F32, 4, xs, x.ctypes.data, ctypes.byref(tx)))
    ok(lib, lib.simclr_tensor_wrap(ctx, F32, 2, ys, y.ctypes.data, ctypes.byref(ty)))
    try:
        ok(lib, lib.simclr_module_forward(m, tx, EVAL, ty))
    finally:
        lib.simclr_tensor_destroy(tx)
        lib.simclr_tensor_destroy(ty)
    return y


def read_safetensors(path):
    """An independent reader of the format (spec: 8-byte LE length, JSON, data)."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 8 == 0, "data buffer not 8-byte aligned"
    header = json.loads(data[8:8 + n])
    buf = data[8 + n:]
    dt = {"F32": np.float32, "I64": np.int64}
    out, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        spans.append((b, e))
        arr = np.frombuffer(buf[b:e], dtype=dt[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], torch.from_numpy(arr.copy()))
    spans.sort()
    assert spans[0][0] == 0 and spans[-1][1] == len(buf)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "holes between tensors"
    return header.get("__metadata__", {}), out


def write_safetensors(path, tensors, metadata):
    """An independent writer following the spec (as the safetensors package does)."""
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, off, blobs = {"__metadata__": metadata}, 0, []
    for name, t in items:
        arr = t.detach().contiguous().numpy()
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - (8 + len(js)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))


def torch_features(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(1e-6, np.max(np.abs(b))))


# 18 layers of float32 convolutions summed in other orders (im2col+BLAS vs
# oneDNN): a few 1e-6 relative per layer; 1e-4 leaves room and still catches
# any wrong tensor, layout or BN statistic (those give errors of order 1).
TOL = 1e-4


def perturb_buffers(named, rng):
    for name, v in named.items():
        if name.endswith("running_mean"):
            v[:] = rng.normal(0, 0.1, v.shape)
        elif name.endswith("running_var"):
            v[:] = rng.uniform(0.5, 2.0, v.shape)
        elif name.endswith(".bias") and "bn" in name or "downsample.1.bias" in name:
            v[:] = rng.normal(0, 0.1, v.shape)


def test_export_loads_into_torchvision(lib, ctx, tmp_path):
    m = resnet18(lib, ctx, 7)
    try:
        named = params(lib, m)
        perturb_buffers(named, np.random.default_rng(0))
        named["bn1.num_batches_tracked"][:] = 1234
        path = str(tmp_path / "r18.safetensors")
        ok(lib, lib.simclr_module_export_safetensors(m, path.encode()))
        meta, tensors = read_safetensors(path)
        assert meta["format"] == "pt"
        dtype, nbt = tensors["bn1.num_batches_tracked"]
        assert dtype == "I64" and nbt.shape == () and int(nbt) == 1234
        assert all(d == "F32" for k, (d, _) in tensors.items() if not k.endswith("num_batches_tracked"))

        tv = torchvision.models.resnet18()
        tv.fc = torch.nn.Identity()
        tv.load_state_dict({k: t for k, (_, t) in tensors.items()}, strict=True)
        tv.eval()
        x = np.random.default_rng(1).uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)
        err = rel_err(forward(lib, ctx, m, x), torch_features(tv, x))
        assert err < TOL, err
    finally:
        lib.simclr_module_destroy(m)


def test_import_from_torchvision(lib, ctx, tmp_path):
    torch.manual_seed(3)
    tv = torchvision.models.resnet18()
    rng = np.random.default_rng(4)
    with torch.no_grad():
        for name, b in tv.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.from_numpy(rng.normal(0, 0.1, b.shape).astype(np.float32)))
            elif name.endswith("running_var"):
                b.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, b.shape).astype(np.float32)))
        for name, p in tv.named_parameters():
            if "bn" in name or "downsample.1" in name:
                p.add_(torch.from_numpy(rng.normal(0, 0.1, p.shape).astype(np.float32)))
    sd = tv.state_dict()  # includes fc.weight / fc.bias: extras the import ignores
    assert "fc.weight" in sd
    path = str(tmp_path / "tv.safetensors")
    write_safetensors(path, sd, {"format": "pt"})

    m = resnet18(lib, ctx, 99)
    try:
        ok(lib, lib.simclr_module_import_safetensors(m, path.encode()))
        named = params(lib, m)
        for k, v in named.items():
            want = sd[k].float().numpy().ravel()
            assert np.array_equal(v, want), k  # bit-exact copy
        tv.fc = torch.nn.Identity()
        tv.eval()
        x = np.random.default_rng(5).uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)
        err = rel_err(forward(lib, ctx, m, x), torch_features(tv, x))
        assert err < TOL, err
    finally:
        lib.simclr_module_destroy(m)


# ---- `simclr export`: the printed PyTorch code loads the CLI's model ---------
# The CLI's default encoder (width 32, CIFAR stem) is not
# torchvision.models.resnet18(): `simclr export` writes the architecture into
# the file's metadata and prints the code that builds the matching model.
# These tests execute exactly that printed code. Where the safetensors
# package is not installed (Debian does not package it), its
# safetensors.torch.load_file is stood in for by read_safetensors above, an
# independent reader of the format.
import subprocess
import sys
import types

CLI = os.environ.get("SIMCLR_CLI") or os.path.join(
    os.environ.get("SIMCLR_BUILD", os.path.join(ROOT, "build", "main")), "bin", "simclr")
SNIPPET_START = "# PyTorch:"


@pytest.fixture(scope="module")
def cli():
    if not os.access(CLI, os.X_OK):
        pytest.fail("no simclr command at %s (make cli; or set SIMCLR_CLI)" % CLI)
    return CLI


@pytest.fixture(scope="module")
def load_file_available():
    try:
        import safetensors.torch  # noqa: F401
        yield
        return
    except ImportError:
        pass
    pkg, sub = types.ModuleType("safetensors"), types.ModuleType("safetensors.torch")
    sub.load_file = lambda path: {k: t for k, (_, t) in read_safetensors(path)[1].items()}
    pkg.torch = sub
    sys.modules["safetensors"], sys.modules["safetensors.torch"] = pkg, sub
    yield
    del sys.modules["safetensors"], sys.modules["safetensors.torch"]


def run_cli(*args, cwd):
    r = subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, "simclr %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr)
    return r.stdout


def export_and_build(model_dir, out, cwd):
    """Runs `simclr export`, executes the Python code it printed, returns (model, metadata)."""
    stdout = run_cli("export", "--model", model_dir, "-o", out, cwd=cwd)
    lines = stdout.splitlines()
    starts = [i for i, l in enumerate(lines) if l.startswith(SNIPPET_START)]
    assert starts, "simclr export printed no PyTorch code:\n" + stdout
    code = "\n".join(lines[starts[0]:]) + "\n"
    scope = {}
    old = os.getcwd()
    os.chdir(cwd)  # the snippet names the file as given to -o
    try:
        exec(compile(code, "<simclr export output>", "exec"), scope)
    finally:
        os.chdir(old)
    model = scope["model"]
    assert not model.training, "the snippet should leave the model in eval()"
    meta, _ = read_safetensors(os.path.join(cwd, out))
    return model, meta, code


def make_model_dir(lib, ctx, path, depth, width, channels, stem, size, seed):
    """A CLI model folder (simclr.cfg + encoder.simclr) of an initialized
    encoder whose BN statistics and affine terms are moved off their
    defaults, so a wrongly mapped BN tensor changes the output."""
    os.makedirs(path)
    m = ctypes.c_void_p()
    ok(lib, lib.simclr_resnet_create(ctx, depth, width, channels, STEM_IMAGENET if stem == "imagenet" else 0,
                                     seed, ctypes.byref(m)))
    try:
        perturb_buffers(params(lib, m), np.random.default_rng(seed))
        ok(lib, lib.simclr_module_save(m, os.path.join(path, "encoder.simclr").encode()))
    finally:
        lib.simclr_module_destroy(m)
    with open(os.path.join(path, "simclr.cfg"), "w") as f:
        f.write("depth %d\nwidth %d\nchannels %d\nsize %d\nstem %s\nhead_hidden %d\nhead_out 128\n"
                % (depth, width, channels, size, stem, width * 8))


def library_features(lib, ctx, model_dir, depth, width, channels, stem, x):
    """The encoder of a CLI model folder, loaded by libsimclr, on x."""
    m = ctypes.c_void_p()
    ok(lib, lib.simclr_resnet_create(ctx, depth, width, channels, STEM_IMAGENET if stem == "imagenet" else 0, 0,
                                     ctypes.byref(m)))
    try:
        ok(lib, lib.simclr_module_load(m, os.path.join(model_dir, "encoder.simclr").encode()))
        d = lib.simclr_module_output_dim(m)
        return forward_d(lib, ctx, m, x, d)
    finally:
        lib.simclr_module_destroy(m)


def forward_d(lib, ctx, m, x, d):
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.zeros((x.shape[0], d), dtype=np.float32)
    tx, ty = ctypes.c_void_p(), ctypes.c_void_p()
    xs, ys = (ctypes.c_int64 * 4)(*x.shape), (ctypes.c_int64 * 2)(*y.shape)
    ok(lib, lib.simclr_tensor_wrap(ctx, F32, 4, xs, x.ctypes.data, ctypes.byref(tx)))
    ok(lib, lib.simclr_tensor_wrap(ctx, F32, 2, ys, y.ctypes.data, ctypes.byref(ty)))
    try:
        ok(lib, lib.simclr_module_forward(m, tx, EVAL, ty))
    finally:
        lib.simclr_tensor_destroy(tx)
        lib.simclr_tensor_destroy(ty)
    return y


@pytest.fixture(scope="module")
def lib_io(lib):
    vp = ctypes.c_void_p
    lib.simclr_module_save.argtypes = [vp, ctypes.c_char_p]
    lib.simclr_module_load.argtypes = [vp, ctypes.c_char_p]
    lib.simclr_module_output_dim.argtypes = [vp]
    lib.simclr_module_output_dim.restype = ctypes.c_int64
    lib.simclr_version_string.restype = ctypes.c_char_p
    return lib


def man_page_export_blocks():
    """The code blocks (.nf ... .fi) of docs/simclr.1's export section."""
    text = open(os.path.join(ROOT, "docs", "simclr.1")).read()
    section = text.split(".SS simclr export", 1)[1].split("\n.SS ", 1)[0]
    blocks = []
    for part in section.split("\n.nf\n")[1:]:
        lines = part.split("\n.fi\n", 1)[0].splitlines()
        blocks.append("\n".join(l for l in lines if not l.startswith(".ft")) + "\n")
    return blocks


def check_metadata(lib, meta, depth, width, channels, stem):
    want = {"format": "pt", "simclr.arch": "resnet%d" % depth, "simclr.depth": str(depth),
            "simclr.width": str(width), "simclr.in_channels": str(channels), "simclr.stem": stem,
            "simclr.version": lib.simclr_version_string().decode()}
    for k, v in want.items():
        assert meta.get(k) == v, (k, meta)
    assert all(isinstance(v, str) for v in meta.values()), meta  # the format allows string values only


def test_cli_default_model_loads_with_printed_code(lib_io, ctx, cli, load_file_available, tmp_path):
    """The case users hit: `simclr train` with its defaults (ResNet-18,
    width 32, CIFAR stem, 32x32), then the printed code, strict=True, and
    the same features as libsimclr and as `simclr embed`."""
    from PIL import Image
    lib = lib_io
    rng = np.random.default_rng(11)
    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)).save(data / cls / ("%d.png" % i))
    run_cli("train", "data", "--out", "run", "--epochs", "1", "--batch", "8", "--threads", "2", "--quiet",
            cwd=tmp_path)
    cfg = open(tmp_path / "run" / "simclr.cfg").read()
    assert "width 32" in cfg and "stem cifar" in cfg and "size 32" in cfg, cfg  # the defaults this test is about
    model, meta, code = export_and_build("run", "encoder.safetensors", str(tmp_path))
    assert "torchvision.models.resnet18()" not in code  # width 32 cannot be the stock constructor
    check_metadata(lib, meta, 18, 32, 3, "cifar")
    assert man_page_export_blocks()[0] == code, "docs/simclr.1's export example differs from what simclr export prints"

    x = rng.uniform(0, 1, (3, 3, 32, 32)).astype(np.float32)
    err = rel_err(torch_features(model, x), library_features(lib, ctx, str(tmp_path / "run"), 18, 32, 3, "cifar", x))
    assert err < TOL, err

    # `simclr embed` end to end on a constant image (any resize and crop of it
    # is the same constant, so torch sees the same input).
    rgb = (200, 90, 30)
    Image.fromarray(np.full((40, 56, 3), rgb, np.uint8)).save(tmp_path / "flat.png")
    run_cli("embed", "flat.png", "--model", "run", "-o", "flat.npy", "--quiet", cwd=tmp_path)
    emb = np.load(tmp_path / "flat.npy")
    xf = np.broadcast_to(np.array(rgb, np.float32)[None, :, None, None] / 255, (1, 3, 32, 32))
    err = rel_err(torch_features(model, np.ascontiguousarray(xf)), emb)
    assert err < TOL, err


@pytest.mark.parametrize("depth,width,channels,stem,size", [
    (18, 64, 3, "cifar", 32),     # torchvision.models.resnet18() with the CIFAR stem swapped in
    (18, 64, 1, "imagenet", 112),  # resnet18() with a 1-channel conv1
    (18, 64, 3, "imagenet", 112),  # resnet18() as it is
    (34, 16, 1, "cifar", 32),     # rebuilt at width 16
    (50, 8, 3, "imagenet", 112),  # Bottleneck layers rebuilt at width 8
])
def test_export_code_for_other_architectures(lib_io, ctx, cli, load_file_available, tmp_path, depth, width,
                                             channels, stem, size):
    lib = lib_io
    model_dir = str(tmp_path / "run")
    make_model_dir(lib, ctx, model_dir, depth, width, channels, stem, size, seed=depth + width)
    model, meta, code = export_and_build("run", "out dir encoder.safetensors", str(tmp_path))
    check_metadata(lib, meta, depth, width, channels, stem)
    if width == 64:  # the recipe users try first, with at most the stem changed
        assert "torchvision.models.resnet%d()" % depth in code
    if (depth, width, channels, stem) == (18, 64, 3, "cifar"):
        assert man_page_export_blocks()[1] in code, "docs/simclr.1's width-64 example differs from simclr export's"
    x = np.random.default_rng(depth).uniform(0, 1, (2, channels, 40, 40)).astype(np.float32)
    err = rel_err(torch_features(model, x), library_features(lib, ctx, model_dir, depth, width, channels, stem, x))
    assert err < TOL, err
