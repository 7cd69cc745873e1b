"""Test data whose ReLU inputs stay clear of zero, and the assertion of it.

Why: a ReLU's derivative jumps at zero. When the float64 reference puts a
ReLU input at -5e-7 (typical magnitude 1), a float32 implementation lands on
either side of the kink depending on its summation order (thread split, BLAS
kernel, ISA), and the one flipped mask element moves every later gradient by
up to 1e-1. A cross-check that passes then passes by luck.

How: every ReLU in these networks is fed by a bias it can be shifted with (a
batch norm's beta, or a linear layer's bias when there is no batch norm), and
adding d to that bias adds exactly d to the ReLU input of that channel without
changing any statistic of the layer. Walking the ReLU sites in execution
order, each channel's bias is moved by the smallest shift that leaves no
input within `margin` (relative to the site's largest |input|) of zero, in
the float64 training-mode forward; later sites are measured after earlier
repairs. Max pooling gets the analogous check (the best and second-best
positive values of a window apart), asserted, not repaired.

The precondition is then asserted against the float32 noise actually
measured: at every site, the smallest |input| must exceed NOISE_FACTOR times
the largest difference between torch's float32 and float64 forward there."""
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MARGIN = 1e-4       # smallest |ReLU input| / largest |ReLU input| at a site, after repair
NOISE_FACTOR = 20   # the margin must also exceed 20x the float32 noise measured there
# Max pooling (the ImageNet stem) sits one convolution deep, where the noise
# is single-layer rounding, and the bound compares a window's gap with the
# largest error anywhere in the tensor (a flip needs the errors of those two
# elements to differ by the gap): 10x is as safe there as 20x deeper down.
POOL_NOISE_FACTOR = 10


def resnet_sites(model):
    """(ReLU site name, module whose bias shifts that ReLU's input) in execution order."""
    sites = [("stem", model.bn1)]
    for li in range(1, 5):
        for bi, block in enumerate(getattr(model, "layer%d" % li)):
            bns = [block.bn1, block.bn2] + ([block.bn3] if hasattr(block, "bn3") else [])
            for k, bn in enumerate(bns):
                sites.append(("layer%d.%d.relu%d" % (li, bi, k + 1), bn))
    return sites


def head_sites(seq):
    """The MLP head's ReLU sites: Linear [-> BatchNorm1d] -> ReLU."""
    sites, feeder = [], None
    for i, mod in enumerate(seq):
        if isinstance(mod, (nn.Linear, nn.BatchNorm1d)):
            feeder = mod
        elif isinstance(mod, nn.ReLU):
            sites.append(("layers.%d" % i, feeder))
    return sites


class _Recorder:
    """Forward pre-hooks on every nn.ReLU and nn.MaxPool2d: their inputs, in call order."""

    def __init__(self, model):
        self.relu, self.pool, self.handles = [], [], []
        for mod in model.modules():
            if isinstance(mod, nn.ReLU):
                self.handles.append(mod.register_forward_pre_hook(
                    lambda m, inp: self.relu.append(inp[0].detach().clone())))
            elif isinstance(mod, nn.MaxPool2d):
                self.handles.append(mod.register_forward_pre_hook(
                    lambda m, inp, mod=mod: self.pool.append((mod, inp[0].detach().clone()))))

    def close(self):
        for h in self.handles:
            h.remove()


def record(model, x_np, dtype):
    """ReLU and max-pool inputs of one training-mode forward (on a copy: BN's
    running statistics of `model` are not touched)."""
    m = copy.deepcopy(model).to(dtype).train()
    rec = _Recorder(m)
    with torch.no_grad():
        m(torch.tensor(x_np, dtype=dtype))
    rec.close()
    return rec.relu, rec.pool


def _per_channel(t):
    """[N, C, ...] -> [C, N*...] float64 numpy."""
    a = t.double().numpy()
    return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)


def _smallest_shift(v, gap):
    """The d of least |d| such that min |v + d| >= gap."""
    if np.min(np.abs(v)) >= gap:
        return 0.0
    # t = -d must avoid every [v_i - gap, v_i + gap]: allowed are the gaps
    # between neighbours more than 2*gap apart, and the two outer rays.
    s = np.sort(v)
    lo = np.concatenate([[-np.inf], s + gap])
    hi = np.concatenate([s - gap, [np.inf]])
    open_ = lo <= hi
    t = np.clip(0.0, lo[open_], hi[open_])  # per allowed interval, its point nearest 0
    return float(-t[np.argmin(np.abs(t))])


def repair(model, x_np, sites, margin=MARGIN):
    """Shifts each site's bias so every ReLU input of the float64 training
    forward on x_np is at least margin * max|input of the site|, and
    NOISE_FACTOR times torch's float32 error there, away from zero.
    Changes `model` in place; returns the per-site shifts (for reports)."""
    shifts = []
    for k, (name, feeder) in enumerate(sites):
        relu_in, _ = record(model, x_np, torch.float64)
        relu32, _ = record(model, x_np, torch.float32)
        assert len(relu_in) == len(sites), "%d ReLU calls for %d sites" % (len(relu_in), len(sites))
        v = _per_channel(relu_in[k])
        noise = float(np.max(np.abs(v - _per_channel(relu32[k]))))
        # 1.5: headroom for the site's largest |input| growing by the shifts
        # themselves, and for our float32 noise differing from torch's.
        gap = 1.5 * max(margin * float(np.max(np.abs(v))), NOISE_FACTOR * noise)
        d = np.array([_smallest_shift(v[c], gap) for c in range(v.shape[0])])
        with torch.no_grad():
            feeder.bias.add_(torch.tensor(d, dtype=feeder.bias.dtype))
        shifts.append((name, float(np.max(np.abs(d)))))
    return shifts


_CACHE = {}


def repair_cached(model, x_np, sites, margin=MARGIN):
    """repair(), memoized on the model's initial weights and the input: the
    same case at another thread count reuses the repaired biases."""
    import hashlib
    h = hashlib.sha1(x_np.tobytes())
    h.update(repr(margin).encode())  # a wider margin needs its own repair
    for v in model.state_dict().values():
        h.update(v.detach().cpu().numpy().tobytes())
    key = h.hexdigest()
    if key not in _CACHE:
        repair(model, x_np, sites, margin)
        _CACHE[key] = [feeder.bias.detach().clone() for _, feeder in sites]
    else:
        with torch.no_grad():
            for (_, feeder), b in zip(sites, _CACHE[key]):
                feeder.bias.copy_(b)


def _pool_gap(x, mod):
    """Per window: best minus second-best input, over windows whose best is
    positive (ties among zeros route the gradient to a ReLU that blocks it)."""
    k, s, p = mod.kernel_size, mod.stride, mod.padding
    cols = F.unfold(x.double(), k, padding=p, stride=s)  # zero padding: only matters where the best <= 0
    n, c = x.shape[0], x.shape[1]
    cols = cols.reshape(n, c, k * k, -1)
    top2 = torch.topk(cols, 2, dim=2).values
    best, second = top2[:, :, 0], top2[:, :, 1]
    gaps = (best - second)[best > 0]
    return float(gaps.min()) if gaps.numel() else float("inf")


def check(model, x_np, sites, margin=MARGIN):
    """Asserts the precondition; returns a report dict with the measured
    margin, the float32 noise per depth and the max-pool gaps."""
    r64, p64 = record(model, x_np, torch.float64)
    r32, p32 = record(model, x_np, torch.float32)
    assert len(r64) == len(sites)
    worst_ratio, noise = float("inf"), []
    for k, (name, _) in enumerate(sites):
        a64, a32 = r64[k].double(), r32[k].double()
        scale = float(a64.abs().max())
        smallest = float(a64.abs().min())
        f32_noise = float((a64 - a32).abs().max())
        noise.append((name, f32_noise / scale))
        ratio = smallest / scale
        worst_ratio = min(worst_ratio, ratio)
        assert ratio >= margin, (
            "precondition: ReLU inputs must stay clear of zero in the float64 reference, but at %s "
            "min|input| / max|input| = %.3g < %.3g (repair the data first)" % (name, ratio, margin))
        assert smallest >= NOISE_FACTOR * f32_noise, (
            "precondition: at %s the smallest |ReLU input| %.3g is not %dx the float32 noise %.3g"
            % (name, smallest, NOISE_FACTOR, f32_noise))
    pool = []
    for (mod, x64), (_, x32) in zip(p64, p32):
        gap = _pool_gap(x64, mod)
        f32_noise = float((x64.double() - x32.double()).abs().max())
        assert gap >= POOL_NOISE_FACTOR * f32_noise, (
            "precondition: a max-pool window's best and second-best inputs are %.3g apart, "
            "within %dx the float32 noise %.3g" % (gap, POOL_NOISE_FACTOR, f32_noise))
        pool.append(gap / float(x64.abs().max()))
    return {"margin": worst_ratio, "noise": noise, "pool_gap": pool}
