"""Winograd convolution (SIMCLR_CTX_CONV_ALGO = SIMCLR_CONV_WINOGRAD: every 3x3
stride-1 layer runs F(2x2,3x3) or F(4x4,3x3)) against PyTorch, through the
same cross-check as test_torch_model.py: forward, input gradient, every
parameter gradient and running statistic, EVAL forward.

The default setting (AUTO) is what test_torch_model.py checks at its own
tolerances, and SIMCLR_CONV_DIRECT keeps the exact path. Here the tolerance
and the ReLU margin are both WINOGRAD_FACTOR = 10 times the strict ones: the
ratio of Winograd's documented per-layer error bound (1e-4 normalized) to the
direct path's (1e-5), docs/architecture.md "Winograd". Measured on a width-16
ResNet-18 (tests/test_winograd.c): 1.5e-5 under WINOGRAD against 3.8e-6
direct, so the factor has room while a real mistake (1e-2 or more) fails."""
import ctypes

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

import relu_margin
from test_torch_model import Ctx, cross_check, lib, ok, small_resnet

WINOGRAD_FACTOR = 10
CTX_CONV_ALGO, CONV_DIRECT, CONV_WINOGRAD = 100, 1, 2
P = ctypes.c_void_p
lib.simclr_context_set.argtypes = [P, ctypes.c_int, ctypes.c_double]
lib.simclr_context_get.argtypes = [P, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]


def winograd_ctx(threads):
    c = Ctx(threads=threads)
    ok(lib.simclr_context_set(c.h, CTX_CONV_ALGO, CONV_WINOGRAD))
    v = ctypes.c_double()
    ok(lib.simclr_context_get(c.h, CTX_CONV_ALGO, ctypes.byref(v)))
    assert v.value == CONV_WINOGRAD
    return c


def run(c, model, depth, width, in_ch, stem, x, float64_reference=False):
    m = P()
    ok(lib.simclr_resnet_create(c.h, depth, width, in_ch, stem, 1, ctypes.byref(m)))
    try:
        return cross_check(m, model, x, backend_ctx=c, float64_reference=float64_reference,
                           sites=relu_margin.resnet_sites(model), tol_scale=WINOGRAD_FACTOR,
                           margin=relu_margin.MARGIN * WINOGRAD_FACTOR)
    finally:
        lib.simclr_module_destroy(m)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_resnet18_imagenet_torchvision_winograd(threads):
    """64..512 channels, maps 16x16 down to 2x2 (F(2x2) there, F(4x4) above)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.fc = nn.Identity()
    c = winograd_ctx(threads)
    try:
        x = np.random.default_rng(1).random((2, 3, 64, 64), dtype=np.float32)
        run(c, model, 18, 64, 3, 1, x)
    finally:
        c.close()


@pytest.mark.parametrize("depth,block,layers,in_ch,size,batch", [
    (18, BasicBlock, [2, 2, 2, 2], 3, (16, 12), 3),
    (18, BasicBlock, [2, 2, 2, 2], 1, (28, 28), 4),
    (50, Bottleneck, [3, 4, 6, 3], 3, (32, 32), 3),
])
def test_resnet_cifar_stem_winograd(depth, block, layers, in_ch, size, batch):
    torch.manual_seed(depth)
    model = small_resnet(block, layers, 8, in_ch, cifar=True)
    c = winograd_ctx(2)
    try:
        x = np.random.default_rng(depth + 100).random((batch, in_ch) + size, dtype=np.float32)
        run(c, model, depth, 8, in_ch, 0, x, float64_reference=depth >= 50)
    finally:
        c.close()


def test_direct_setting_is_the_strict_path():
    """SIMCLR_CONV_DIRECT passes the strict tolerance on the same network."""
    torch.manual_seed(18)
    model = small_resnet(BasicBlock, [2, 2, 2, 2], 16, 3, cifar=True)
    c = Ctx(threads=2)
    ok(lib.simclr_context_set(c.h, CTX_CONV_ALGO, CONV_DIRECT))
    m = P()
    ok(lib.simclr_resnet_create(c.h, 18, 16, 3, 0, 1, ctypes.byref(m)))
    try:
        x = np.random.default_rng(118).random((3, 3, 16, 16), dtype=np.float32)
        cross_check(m, model, x, backend_ctx=c, sites=relu_margin.resnet_sites(model))
    finally:
        lib.simclr_module_destroy(m)
        c.close()
