"""The context setting SIMCLR_CTX_CONV_ALGO through the Python bindings:
set/get by member, value or name, the conv_algo property, errors for bad
keys and values (the setting unchanged), and that DIRECT and WINOGRAD give
the same network output within Winograd's bound."""
import numpy as np
import pytest

import libsimclr as simclr
from libsimclr import ConvAlgo, CtxParam


def test_default_set_get_and_property():
    with simclr.Context("cpu", 1) as ctx:
        assert ctx.conv_algo == ConvAlgo.AUTO
        assert ctx.get(CtxParam.CONV_ALGO) == ConvAlgo.AUTO
        ctx.set("conv_algo", "direct")
        assert ctx.get("conv_algo") == ConvAlgo.DIRECT
        ctx.set(CtxParam.CONV_ALGO, int(ConvAlgo.WINOGRAD))
        assert ctx.conv_algo is ConvAlgo.WINOGRAD
        ctx.conv_algo = ConvAlgo.AUTO
        assert ctx.conv_algo == ConvAlgo.AUTO


def test_bad_key_and_value_leave_the_setting():
    with simclr.Context("cpu", 1) as ctx:
        ctx.conv_algo = "winograd"
        with pytest.raises(simclr.InvalidArgument, match="SIMCLR_CTX_CONV_ALGO"):
            ctx.set(CtxParam.CONV_ALGO, 3)
        with pytest.raises(simclr.InvalidArgument, match="unknown key 101"):
            ctx.set(101, 0)
        with pytest.raises(simclr.InvalidArgument):
            ctx.get(7)
        with pytest.raises(simclr.InvalidArgument):
            ctx.conv_algo = "fastest"
        assert ctx.conv_algo == ConvAlgo.WINOGRAD


def test_ref_backend_accepts_and_ignores_it():
    x = np.random.default_rng(0).random((2, 3, 12, 12), dtype=np.float32)
    out = []
    for algo in ("direct", "winograd"):
        with simclr.Context("ref", 1) as ctx:
            ctx.conv_algo = algo
            enc = simclr.ResNet(ctx, depth=18, width=8, in_channels=3, stem="cifar", seed=3)
            out.append(enc.forward(x))
    assert np.array_equal(out[0], out[1])


def test_direct_and_winograd_agree_within_the_bound():
    x = np.random.default_rng(1).random((2, 3, 16, 16), dtype=np.float32)
    out = []
    for algo in ("direct", "winograd"):
        with simclr.Context("cpu", 2) as ctx:
            ctx.conv_algo = algo
            enc = simclr.ResNet(ctx, depth=18, width=16, in_channels=3, stem="cifar", seed=3)
            out.append(enc.forward(x, mode="eval"))
    err = np.abs(out[0] - out[1]).max() / np.abs(out[0]).max()
    assert 0 < err < 1e-4  # different rounding, same function
