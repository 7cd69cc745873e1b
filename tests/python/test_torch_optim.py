"""SGD (with/without nesterov), AdamW and LARS against torch.optim / the
official SimCLR LARS formula written in PyTorch, over several scheduled steps,
with and without the BN/bias exclusion. The library runs through
tests/tool_optim (a dummy module: no model is public yet)."""
import math
import os
import subprocess
import tempfile

import numpy as np
import pytest
import torch

SGD, ADAMW, LARS = 0, 1, 2
LR, MOMENTUM, NESTEROV, WD, EXCLUDE = 100, 101, 102, 103, 104
BETA1, BETA2, EPS, ETA, WARMUP, TOTAL = 200, 201, 202, 300, 400, 401
NO_DECAY = 1
SHAPES = [(6 * 5, 0), (6, NO_DECAY), (5, NO_DECAY), (12, 0)]
STEPS, WARMUP_STEPS, TOTAL_STEPS = 6, 2, 9


def tool():
    path = os.path.join(os.environ.get("SIMCLR_BUILD", "build/main"), "tests", "tool_optim")
    if not os.path.exists(path):
        pytest.skip("tool_optim not built")
    return path


def schedule(base, step):
    """The official tf2 WarmUpAndCosineDecay (the library's documented form)."""
    if step >= TOTAL_STEPS:
        return 0.0
    if step < WARMUP_STEPS:
        return base * step / WARMUP_STEPS
    return base * 0.5 * (1 + math.cos(math.pi * (step - WARMUP_STEPS) / (TOTAL_STEPS - WARMUP_STEPS)))


def run_library(kind, settings, init, grads):
    blob = [kind, STEPS, len(SHAPES), len(settings)]
    for k, v in settings.items():
        blob += [k, v]
    for n, f in SHAPES:
        blob += [n, f]
    blob += list(np.concatenate(init))
    for g in grads:
        blob += list(np.concatenate(g))
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in"), os.path.join(d, "out")
        np.asarray(blob, dtype="<f8").tofile(fin)
        subprocess.run([tool(), fin, fout, str(THREADS[0])], check=True)
        out = np.fromfile(fout, dtype="<f8")
    total = sum(n for n, _ in SHAPES)
    return out.reshape(STEPS, 2 + total)


def lars_torch(params, no_decay, lr, mom, wd, eta, exclude, nesterov, bufs):
    """tf2/lars_optimizer.py, classic momentum, in PyTorch."""
    with torch.no_grad():
        for p, nd, v in zip(params, no_decay, bufs):
            excluded = exclude and nd
            g = p.grad.clone()
            if wd and not excluded:
                g += wd * p
            ratio = 1.0
            if not excluded:
                wn, gn = torch.norm(p), torch.norm(g)
                ratio = float(eta * wn / gn) if wn > 0 and gn > 0 else 1.0
            scaled = lr * ratio
            v.mul_(mom).add_(scaled * g)
            p.sub_(mom * v + scaled * g if nesterov else v)


CASES = [
    (SGD, dict(lr=0.5, momentum=0.9, nesterov=0, wd=0.05)),
    (SGD, dict(lr=0.5, momentum=0.9, nesterov=1, wd=0.05)),
    (ADAMW, dict(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6, wd=0.1)),
    (LARS, dict(lr=2.0, momentum=0.9, nesterov=0, wd=1e-2, eta=0.02)),
    (LARS, dict(lr=2.0, momentum=0.9, nesterov=1, wd=1e-4, eta=0.001)),
]


THREADS = [2]  # the thread count of the library run in progress


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("exclude", [0, 1])
@pytest.mark.parametrize("kind,hp", CASES)
def test_matches_torch(kind, hp, exclude, threads):
    THREADS[0] = threads
    rng = np.random.default_rng(1234 + kind)
    init = [rng.standard_normal(n).astype(np.float32) for n, _ in SHAPES]
    init[1][:] = 0  # a bias at zero: LARS's ||w|| = 0 branch
    grads = [[rng.standard_normal(n).astype(np.float32) for n, _ in SHAPES] for _ in range(STEPS)]
    grads[3][2][:] = 0  # a zero gradient: LARS's ||g|| = 0 branch (without decay)

    settings = {LR: hp["lr"], WD: hp["wd"], EXCLUDE: exclude, WARMUP: WARMUP_STEPS, TOTAL: TOTAL_STEPS}
    if kind != ADAMW:
        settings.update({MOMENTUM: hp["momentum"], NESTEROV: hp["nesterov"]})
    else:
        settings.update({BETA1: hp["beta1"], BETA2: hp["beta2"], EPS: hp["eps"]})
    if kind == LARS:
        settings[ETA] = hp["eta"]
    got = run_library(kind, settings, init, grads)

    params = [torch.tensor(x.copy(), requires_grad=True) for x in init]
    no_decay = [f & NO_DECAY != 0 for _, f in SHAPES]
    wd_of = [0.0 if (exclude and nd) else hp["wd"] for nd in no_decay]
    groups = [{"params": [p], "weight_decay": w} for p, w in zip(params, wd_of)]
    if kind == SGD:
        opt = torch.optim.SGD(groups, lr=hp["lr"], momentum=hp["momentum"], nesterov=bool(hp["nesterov"]))
    elif kind == ADAMW:
        opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    bufs = [torch.zeros_like(p) for p in params]
    for step in range(STEPS):
        lr = schedule(hp["lr"], step)
        for p, g in zip(params, grads[step]):
            p.grad = torch.tensor(g)
        if kind == LARS:
            lars_torch(params, no_decay, lr, hp["momentum"], hp["wd"], hp["eta"], exclude, hp["nesterov"], bufs)
        else:
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
        want = torch.cat([p.detach().flatten() for p in params]).double().numpy()
        norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)))
        assert got[step, 0] == pytest.approx(lr, rel=1e-12, abs=1e-15)
        assert got[step, 1] == pytest.approx(norm, rel=1e-9)
        # Both sides compute in float32 with different operation orders:
        # ~1e-7 per op over a few steps. Normalized by the largest parameter.
        err = np.max(np.abs(got[step, 2:] - want)) / max(np.max(np.abs(want)), 1e-3)
        print("kind %d exclude %d step %d: param err %.2e" % (kind, exclude, step, err))
        assert err < 1e-5, (step, err)
