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
