"""NT-Xent through the public API (ctypes) against PyTorch: F.normalize +
cosine / T + self masked + F.cross_entropy for V = 2, and the mean of
-log_softmax over the positives for V > 2 (SupCon L_out); loss and gradient
(autograd, float64) for several (V, N, D, T)."""
import ctypes
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT

F32 = 0


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so.0")))
    vp = ctypes.c_void_p
    lib.simclr_context_create.argtypes = [ctypes.c_char_p, ctypes.c_int, vp, ctypes.POINTER(vp)]
    lib.simclr_context_destroy.argtypes = [vp]
    lib.simclr_tensor_wrap.argtypes = [vp, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64), vp,
                                       ctypes.POINTER(vp)]
    lib.simclr_tensor_destroy.argtypes = [vp]
    lib.simclr_ntxent_create.argtypes = [vp, ctypes.c_double, ctypes.c_int, ctypes.POINTER(vp)]
    lib.simclr_loss_destroy.argtypes = [vp]
    lib.simclr_loss_forward.argtypes = [vp, vp, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.simclr_loss_backward.argtypes = [vp, vp]
    lib.simclr_last_error.restype = ctypes.c_char_p
    return lib


def check(lib, status):
    assert status == 0, lib.simclr_last_error().decode()


def run_library(lib, z, views, temperature, backend=b"cpu", threads=2):
    vp = ctypes.c_void_p
    ctx, loss, zt, gt = vp(), vp(), vp(), vp()
    check(lib, lib.simclr_context_create(backend, threads, None, ctypes.byref(ctx)))
    z = np.ascontiguousarray(z, dtype=np.float32)
    dz = np.zeros_like(z)
    shape = (ctypes.c_int64 * 2)(*z.shape)
    check(lib, lib.simclr_tensor_wrap(ctx, F32, 2, shape, z.ctypes.data, ctypes.byref(zt)))
    check(lib, lib.simclr_tensor_wrap(ctx, F32, 2, shape, dz.ctypes.data, ctypes.byref(gt)))
    check(lib, lib.simclr_ntxent_create(ctx, temperature, views, ctypes.byref(loss)))
    value, acc = ctypes.c_float(), ctypes.c_float()
    check(lib, lib.simclr_loss_forward(loss, zt, ctypes.byref(value), ctypes.byref(acc)))
    check(lib, lib.simclr_loss_backward(loss, gt))
    lib.simclr_loss_destroy(loss)
    lib.simclr_tensor_destroy(zt)
    lib.simclr_tensor_destroy(gt)
    lib.simclr_context_destroy(ctx)
    return value.value, acc.value, dz


def torch_ntxent(z, views, temperature):
    """The usual PyTorch formulation, written independently of the library."""
    m = z.shape[0]
    n = m // views
    u = F.normalize(z, dim=1, eps=1e-12)
    logits = u @ u.t() / temperature
    self_mask = torch.eye(m, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))
    sample = torch.arange(m) % n
    if views == 2:
        target = (torch.arange(m) + n) % m  # the other view
        loss = F.cross_entropy(logits, target)
    else:
        logp = F.log_softmax(logits, dim=1)
        pos = (sample[:, None] == sample[None, :]) & ~self_mask
        loss = -(logp.masked_fill(~pos, 0).sum(1) / (views - 1)).mean()
    nearest = logits.argmax(dim=1)
    acc = (sample[nearest] == sample).double().mean()
    return loss, acc


CASES = [  # views, N, D, temperature
    (2, 8, 16, 0.5),
    (2, 1, 7, 0.1),
    (3, 1, 5, 0.1),
    (3, 4, 10, 0.05),
    (2, 32, 128, 0.05),
    (4, 5, 9, 0.2),
    (2, 64, 256, 0.1),
    (2, 4, 8192, 0.01),
]


@pytest.mark.parametrize("backend,threads", [(b"cpu", 1), (b"cpu", 2), (b"cpu", 3), (b"ref", 1)])
@pytest.mark.parametrize("views,n,d,temperature", CASES)
def test_loss_and_grad_match_torch(lib, backend, threads, views, n, d, temperature):
    rng = np.random.default_rng(views * 1000 + n * 10 + d)
    z = rng.standard_normal((views * n, d)).astype(np.float32)
    value, acc, dz = run_library(lib, z, views, temperature, backend, threads)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    loss, want_acc = torch_ntxent(zt, views, temperature)
    loss.backward()
    want_grad = zt.grad.numpy()
    # float32 logits: ~1e-7 relative x |logit| <= 1/T; 1e-5 relative holds down to T = 0.05
    # (measured ~1e-7); at T = 0.01 logits reach 100, so 1e-5 relative + 1e-5 absolute.
    assert abs(value - loss.item()) <= 1e-5 * abs(loss.item()) + (1e-5 if temperature < 0.05 else 0)
    # N = 1, V = 2: the only other row is the positive, loss and gradient are 0.
    gerr = np.max(np.abs(dz - want_grad)) / max(np.max(np.abs(want_grad)), 1e-6)
    print("V=%d N=%d D=%d T=%g %s: loss rel err %.2e grad norm err %.2e" % (
        views, n, d, temperature, backend.decode(), abs(value - loss.item()) / max(abs(loss.item()), 1e-30), gerr))
    assert gerr < 1e-4, gerr
    assert acc == pytest.approx(want_acc.item(), abs=1e-6)


def test_zero_row_matches_normalize_clamp(lib):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 4)).astype(np.float32)
    z[2] = 0
    value, _, dz = run_library(lib, z, 2, 0.5)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    loss, _ = torch_ntxent(zt, 2, 0.5)
    loss.backward()
    assert value == pytest.approx(loss.item(), rel=1e-5)
    g = zt.grad.numpy()
    assert np.max(np.abs(dz - g)) / np.max(np.abs(g)) < 1e-4


def test_random_embeddings_near_log_2n_minus_1(lib):
    n = 64
    z = np.random.default_rng(7).standard_normal((2 * n, 4096)).astype(np.float32)
    value, _, _ = run_library(lib, z, 2, 1.0)
    assert abs(value - math.log(2 * n - 1)) < 0.05
