"""Whole-network gradients: the library against finite differences of its
own float32 loss, and the "ref" backend against every instruction-set copy
of "cpu" at 1, 2 and 3 threads, on a ResNet-18 (CIFAR stem, width 4) with a
3-layer BN head: the wiring between layers, which the per-layer checks
(tests/test_nn.c) and the torch cross-checks do not isolate.

Both need the ReLU inputs clear of zero (relu_margin.py): a kink inside a
finite-difference step, or on either side of zero depending on summation
order, makes a correct gradient look wrong. The data are repaired for it
and the precondition asserted; each finite-difference step is used only
where the float64 model shows that it flips no ReLU mask and leaves every
input clear of the float32 noise."""
import copy
import ctypes
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock

import relu_margin
from test_torch_model import (EVAL, TRAIN, Ctx, Head, P, lib, load_torch_weights, ok, params, rel_err,
                              small_resnet, view)

WIDTH, SIZE, BATCH = 4, 16, 4
# A wider margin than the cross-checks' (relu_margin.MARGIN): a step of h in
# one weight moves the ReLU inputs after it by ~h, so the steps below fit
# inside it.
FD_MARGIN = 2e-3


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(11)
        self.enc = small_resnet(BasicBlock, [2, 2, 2, 2], WIDTH, 3, cifar=True)
        self.head = Head(8 * WIDTH, 8, 4, 3, 1)

    def forward(self, x):
        return self.head(self.enc(x))


def repaired_net():
    net = Net()
    x = np.random.default_rng(12).random((BATCH, 3, SIZE, SIZE), dtype=np.float32)
    sites = relu_margin.resnet_sites(net.enc) + relu_margin.head_sites(net.head.layers)
    relu_margin.repair_cached(net, x, sites, FD_MARGIN)
    report = relu_margin.check(net, x, sites, FD_MARGIN)
    return net, x, sites, report


class Lib:
    """The same network in the library, weights copied from torch."""

    def __init__(self, ctx, net):
        self.ctx = ctx
        self.enc, self.head = P(), P()
        ok(lib.simclr_resnet_create(ctx.h, 18, WIDTH, 3, 0, 1, ctypes.byref(self.enc)))
        ok(lib.simclr_mlp_head_create(ctx.h, 8 * WIDTH, 8, 4, 3, 1, 1, ctypes.byref(self.head)))
        self.penc, self.phead = params(self.enc), params(self.head)
        load_torch_weights(self.penc, net.enc)
        load_torch_weights(self.phead, net.head, skip=("layers.%d.bias" % (len(net.head.layers) - 1),))

    def close(self):
        lib.simclr_module_destroy(self.enc)
        lib.simclr_module_destroy(self.head)

    def run(self, x_np, r_np, backward=False):
        c = self.ctx
        x, _ = c.wrap(x_np)
        feat, feat_np = c.wrap(np.zeros((BATCH, 8 * WIDTH), np.float32))
        z, z_np = c.wrap(np.zeros((BATCH, 4), np.float32))
        ok(lib.simclr_module_forward(self.enc, x, TRAIN, feat))
        ok(lib.simclr_module_forward(self.head, feat, TRAIN, z))
        loss = float(np.sum(z_np.astype(np.float64) * r_np))
        if not backward:
            return loss, None
        ok(lib.simclr_module_zero_grad(self.enc))
        ok(lib.simclr_module_zero_grad(self.head))
        dz, _ = c.wrap(r_np)
        dfeat, _ = c.wrap(np.zeros((BATCH, 8 * WIDTH), np.float32))
        dx, dx_np = c.wrap(np.zeros_like(x_np))
        ok(lib.simclr_module_backward(self.head, dz, dfeat))
        ok(lib.simclr_module_backward(self.enc, dfeat, dx))
        grads = {"input": dx_np.copy()}
        for prefix, ps in (("enc.", self.penc), ("head.", self.phead)):
            for k, (_, g, _) in ps.items():
                if g is not None:
                    grads[prefix + k] = g.copy()
        return loss, grads


class MaskGuard:
    """The float64 torch model: is a perturbed point still on the same side
    of every ReLU kink, clear of the float32 noise?"""

    def __init__(self, net, x_np, sites):
        self.net = copy.deepcopy(net).double().train()
        self.x = torch.tensor(x_np, dtype=torch.float64)
        self.inputs = []
        for mod in self.net.modules():
            if isinstance(mod, nn.ReLU):
                mod.register_forward_pre_hook(lambda m, inp: self.inputs.append(inp[0].detach().clone()))
        base = self._run()
        self.signs = [t > 0 for t in base]
        r32, _ = relu_margin.record(net, x_np, torch.float32)
        self.floor = [relu_margin.NOISE_FACTOR * float((b - a.double()).abs().max()) for b, a in zip(base, r32)]
        self.params = dict(self.net.named_parameters())

    def _run(self):
        self.inputs = []
        with torch.no_grad():
            self.net(self.x)
        return self.inputs

    def stable(self, name, index, value):
        """Sets entry `index` of parameter `name` ("input" for x) to value and
        checks every ReLU; restores the entry."""
        t = self.x if name == "input" else self.params[name]
        flat = t.data.view(-1)
        old = float(flat[index])
        flat[index] = value
        try:
            got = self._run()
        finally:
            flat[index] = old
        return all(bool(torch.equal(g > 0, s)) and float(g.abs().min()) >= f
                   for g, s, f in zip(got, self.signs, self.floor))


def test_whole_network_finite_differences():
    net, x_np, sites, report = repaired_net()
    guard = MaskGuard(net, x_np, sites)
    ctx = Ctx(b"cpu", 2)
    model = Lib(ctx, net)
    try:
        r_np = np.random.default_rng(13).standard_normal((BATCH, 4)).astype(np.float32)
        _, grads = model.run(x_np, r_np, backward=True)
        values = {"input": x_np}
        for prefix, ps in (("enc.", model.penc), ("head.", model.phead)):
            for k, (v, g, _) in ps.items():
                if g is not None:
                    values[prefix + k] = v
        checked = skipped_steps = 0
        for name, an_all in grads.items():
            v = values[name].reshape(-1)
            an_all = an_all.reshape(-1)
            scale = max(1.0, float(np.max(np.abs(an_all))))
            # Three entries per tensor: the first, the middle, the last.
            for i in sorted({0, v.size // 2, v.size - 1}):
                an, old = float(an_all[i]), float(v[i])
                tol = 1e-2 * scale + 5e-2 * abs(an)
                fds, okay, usable = [], False, 0
                for h in (1e-2, 2e-3, 5e-4, 1e-4):
                    hi, lo = np.float32(old + h), np.float32(old - h)
                    if not (guard.stable(name, i, float(hi)) and guard.stable(name, i, float(lo))):
                        skipped_steps += 1
                        continue
                    usable += 1
                    v[i] = hi
                    l_hi, _ = model.run(x_np, r_np)
                    v[i] = lo
                    l_lo, _ = model.run(x_np, r_np)
                    v[i] = old
                    fd = (l_hi - l_lo) / (float(hi) - float(lo))
                    fds.append(fd)
                    if abs(fd - an) <= tol:
                        okay = True
                        break
                assert usable, "%s[%d]: every step size crosses a ReLU kink" % (name, i)
                assert okay, "%s[%d]: analytic %.6g, finite differences %s (tol %.3g)" % (name, i, an, fds, tol)
                checked += 1
        assert checked >= 3 * 40
        print("\nfinite differences: %d entries, %d steps skipped for a kink, relu margin %.3g"
              % (checked, skipped_steps, report["margin"]))
    finally:
        model.close()
        ctx.close()


def _isas():
    lib.simclr_isa_supported.argtypes = [ctypes.c_char_p]
    return [i for i in ("avx512", "avx2", "portable") if lib.simclr_isa_supported(i.encode())]


def _run_backend(backend, threads, isa, net, x_np, r_np):
    if isa:
        os.environ["SIMCLR_ISA"] = isa
    try:
        ctx = Ctx(backend, threads)
    finally:
        os.environ.pop("SIMCLR_ISA", None)
    lib.simclr_context_isa.restype = ctypes.c_char_p
    lib.simclr_context_isa.argtypes = [P]
    if isa:
        assert lib.simclr_context_isa(ctx.h).decode() == isa
    model = Lib(ctx, net)
    try:
        _, grads = model.run(x_np, r_np, backward=True)
        return grads
    finally:
        model.close()
        ctx.close()


def test_ref_vs_every_cpu_copy_and_thread_count():
    """Every instruction-set copy at 1, 2, 3 threads against "ref" at 1e-4
    (float32 summation order differs; ~1e-6 per layer, measured), and every
    copy at every thread count against each other byte for byte (the header
    promises the same bytes for any thread count and instruction set)."""
    net, x_np, sites, _ = repaired_net()
    r_np = np.random.default_rng(13).standard_normal((BATCH, 4)).astype(np.float32)
    ref = _run_backend(b"ref", 1, None, net, x_np, r_np)
    isas = _isas()
    assert "portable" in isas
    first = None
    for threads in (1, 2, 3):
        for isa in isas:
            got = _run_backend(b"cpu", threads, isa, net, x_np, r_np)
            errs = {k: rel_err(got[k], ref[k]) for k in ref}
            bad = {k: e for k, e in errs.items() if not e <= 1e-4}
            assert not bad, "%s, %d threads, vs ref: %s" % (isa, threads, bad)
            if first is None:
                first = (isa, threads, got)
            else:
                for k in got:
                    assert np.array_equal(got[k], first[2][k]), \
                        "%s at %d threads differs from %s at %d threads in %s" % (
                            isa, threads, first[0], first[1], k)
