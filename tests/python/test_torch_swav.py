"""SwAV steps against PyTorch on identical weights, views and prototypes.

The reference is written here from the paper's pseudocode (Caron et al.
2020, Algorithm 1 and the sinkhorn function of its appendix), in float64:

    z = normalize(head(encoder(cat(x_s, x_t))))       # one batch, 2N rows
    scores = z @ C^T;  scores_s, scores_t = scores[:N], scores[N:]
    with no_grad: q_s = sinkhorn(scores_s); q_t = sinkhorn(scores_t)
    p_s = softmax(scores_s / T); p_t = softmax(scores_t / T)
    loss = -0.5 * mean(sum(q_s * log p_t, 1) + sum(q_t * log p_s, 1))
    loss.backward();  C.grad = None while frozen;  SGD step
    C = normalize(C, dim=1)

Each step starts both references from the library's state (weights, BN
buffers, SGD momentum, prototypes) and compares the loss, every gradient
(the prototypes' included: zero while frozen), every parameter and buffer
after the step and the prototypes' normalization. The codes are compared
with the paper's sinkhorn in tests/test_swav.c (they are not exposed here).

The network is test_torch_moco's ResNet-18 (width 4, CIFAR stem) and
SimCLR-v2-style head, with its BN parameters chosen for a batch of 2N (the
two views go through the encoder as one batch) so that no ReLU input comes
within MARGIN of zero in any reference forward (asserted, as there): float32
and float64 then take the same branch everywhere.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import libsimclr as simclr
import test_torch_moco as tm

N, KP, IMG, WIDTH, P = 8, 10, 4, 4, 8
STEPS = 4
MARGIN = 0.02
TOL = 1e-4
LR = 0.001
TEMP, EPS, ITERS = 0.1, 0.05, 3


def reference_models():
    """test_torch_moco's models, their BN bounds computed for 2N images per batch."""
    keep = tm.N
    tm.N = 2 * N
    try:
        return tm.reference_models()
    finally:
        tm.N = keep


def sinkhorn(scores, eps, niters):
    """The appendix's sinkhorn: codes [B, K] of scores [B, K]."""
    Q = torch.exp(scores / eps).T
    Q /= torch.sum(Q)
    K, B = Q.shape
    r = torch.ones(K, dtype=Q.dtype) / K
    c = torch.ones(B, dtype=Q.dtype) / B
    for _ in range(niters):
        u = torch.sum(Q, dim=1)
        Q *= (r / u).unsqueeze(1)
        Q *= (c / torch.sum(Q, dim=0)).unsqueeze(0)
    return (Q / torch.sum(Q, dim=0, keepdim=True)).T


class Reference:
    """SwAV in PyTorch at one dtype: encoder, head, prototypes, SGD."""

    def __init__(self, enc_t, head_t, dtype, wd):
        self.dtype = dtype
        self.enc = copy.deepcopy(enc_t).to(dtype).train()
        self.head = copy.deepcopy(head_t).to(dtype).train()
        self.protos = torch.nn.Linear(P, KP, bias=False).to(dtype)
        named = list(self.enc.named_parameters()) + list(self.head.named_parameters())
        self.by_name = {n: p for n, p in named if p.requires_grad}
        self.by_name["weight"] = self.protos.weight
        self.sgd = torch.optim.SGD(list(self.by_name.values()), lr=LR, momentum=0.9, weight_decay=wd)
        self.margins = tm.Margins(self.enc, self.head)

    def modules(self):
        return (("enc", self.enc), ("head", self.head), ("protos", self.protos))

    def load(self, lib_modules, opt):
        with torch.no_grad():
            for (_, ref), mine in zip(self.modules(), lib_modules):
                sd = ref.state_dict()
                for n, p in mine.params.items():
                    sd[n].copy_(torch.tensor(p.value.numpy(copy=True)).reshape(sd[n].shape))
            for n, buf in opt.state().items():  # "<module index>.momentum.<name>"
                _, kind, name = n.split(".", 2)
                assert kind == "momentum"
                self.sgd.state[self.by_name[name]]["momentum_buffer"] = torch.tensor(
                    buf.numpy(copy=True), dtype=self.dtype).reshape(self.by_name[name].shape)

    def step(self, x_s, x_t, frozen):
        x = torch.cat([torch.tensor(x_s, dtype=self.dtype), torch.tensor(x_t, dtype=self.dtype)])
        z = F.normalize(self.head(self.enc(x)), dim=1, p=2)
        scores = self.protos(z)
        scores_s, scores_t = scores[:N], scores[N:]
        with torch.no_grad():
            q_s = sinkhorn(scores_s.detach(), EPS, ITERS)
            q_t = sinkhorn(scores_t.detach(), EPS, ITERS)
        loss = -0.5 * torch.mean(torch.sum(q_s * F.log_softmax(scores_t / TEMP, dim=1), dim=1)
                                 + torch.sum(q_t * F.log_softmax(scores_s / TEMP, dim=1), dim=1))
        self.sgd.zero_grad()
        loss.backward()
        if frozen:
            self.protos.weight.grad = None
        grads = {n: (p.grad.double().clone() if p.grad is not None else torch.zeros_like(p, dtype=torch.float64))
                 for n, p in self.by_name.items()}
        self.sgd.step()
        with torch.no_grad():
            self.protos.weight.copy_(F.normalize(self.protos.weight, dim=1, p=2))
        return float(loss), grads

    def state(self):
        return {"%s %s" % (tag, n): v.double().numpy()
                for tag, mod in self.modules() for n, v in mod.state_dict().items()}


def compare(loss_ours, grads_ours, state_ours, start, loss_ref, grads_ref, state_ref):
    """Per-quantity errors of one step (test_torch_moco's scales)."""
    errs = {"loss": tm.rel_err(loss_ours, loss_ref)}
    parts = {"enc": lambda n: not n.startswith("layers.") and n != "weight",
             "head": lambda n: n.startswith("layers."), "protos": lambda n: n == "weight"}
    for part, has in parts.items():
        names = [n for n in grads_ref if has(n)]
        scale = max(float(grads_ref[n].abs().max()) for n in names)
        for n in names:
            errs["grad " + n] = tm.rel_err(grads_ours[n], grads_ref[n].numpy(), max(1e-2 * scale, 1e-30))
    for tag in ("enc", "head", "protos"):
        keys = [k for k in start if k.startswith(tag + " ")]
        biggest = max(float(np.max(np.abs(state_ref[k].reshape(start[k].shape) - start[k]))) for k in keys)
        for k in keys:
            errs[k] = tm.update_err(state_ours[k], state_ref[k], start[k], 1e-2 * biggest)
    return errs


@pytest.mark.parametrize("freeze,wd", [(0, 1e-4), (2, 0.0)])
def test_swav_steps_match_torch(freeze, wd):
    enc_t, head_t = reference_models()
    skip = ("layers.4.bias",)  # the v2 head's last BN has no bias
    with simclr.Context("cpu", 2) as ctx:
        enc = simclr.ResNet(ctx, 18, WIDTH, 1, "cifar", seed=1)
        head = simclr.MLPHead(ctx, enc.output_dim, 16, P, 2, True, seed=3)
        protos = simclr.SwavPrototypes(ctx, P, KP, seed=5)
        tm.load_into(enc, enc_t)
        tm.load_into(head, head_t, skip)
        aug = simclr.Augment(ctx, "grayscale", IMG, IMG)
        opt = simclr.Optimizer(ctx, "sgd", [enc, head, protos], lr=LR, momentum=0.9, weight_decay=wd,
                               exclude_no_decay=0)
        tr = simclr.SwavTrainer(ctx, enc, head, protos, aug, opt, freeze_prototypes_steps=freeze)
        assert tr["temperature"] == TEMP and tr["epsilon"] == EPS and tr["sinkhorn_iterations"] == ITERS
        assert tr["prototypes"] == KP
        lib_modules = (enc, head, protos)
        tags = ("enc", "head", "protos")

        def lib_state():
            return {"%s %s" % (tag, n): p.value.numpy(copy=True).astype(np.float64)
                    for tag, mod in zip(tags, lib_modules) for n, p in mod.params.items()}

        w0 = protos.params["weight"].value.numpy(copy=True).astype(np.float64)
        assert np.allclose(np.linalg.norm(w0, axis=1), 1, atol=1e-6)
        ref64 = Reference(enc_t, head_t, torch.float64, wd)
        ref32 = Reference(enc_t, head_t, torch.float32, wd)
        rng = np.random.default_rng(2)
        worst, worst32 = {}, {}
        for t in range(STEPS):
            ref64.load(lib_modules, opt)
            ref32.load(lib_modules, opt)
            start = lib_state()
            images = rng.integers(0, 256, (N, IMG, IMG, 1), dtype=np.uint8)
            seed = 2000 + t
            loss = tr.step(images, seed)
            grads = {n: mod.params[n].grad.numpy(copy=True) for mod in lib_modules
                     for n, p in mod.params.items() if p.grad is not None}
            assert set(grads) == set(ref64.by_name)
            frozen = t < freeze
            if frozen:
                assert not np.any(grads["weight"])
            else:
                assert np.any(grads["weight"])
            x_s, x_t = aug.pair(images, seed)
            l64, g64 = ref64.step(x_s, x_t, frozen)
            l32, g32 = ref32.step(x_s, x_t, frozen)
            ours = lib_state()
            w = ours["protos weight"]
            assert np.allclose(np.linalg.norm(w, axis=1), 1, atol=1e-6), "prototypes not normalized"
            s64 = ref64.state()
            errs = compare(loss, grads, ours, start, l64, g64, s64)
            errs32 = compare(l32, {n: g.numpy() for n, g in g32.items()}, ref32.state(), start, l64, g64, s64)
            for key in errs:
                worst[key] = max(worst.get(key, 0.0), errs[key])
                worst32[key] = max(worst32.get(key, 0.0), errs32[key])

        low = min(ref64.margins.low, ref32.margins.low)
        assert low > MARGIN, "a ReLU input came within %g of zero (%g)" % (MARGIN, low)

        # Tolerance as test_torch_moco: TOL, or three times torch's own
        # float32 error over the same family where conditioning makes that larger.
        def family(key):
            head_word = key.split(" ")[0]
            return "tensors" if head_word in tags else head_word

        floor = {}
        for k, v in worst32.items():
            floor[family(k)] = max(floor.get(family(k), 0.0), v)
        tol = {k: max(TOL, 3 * floor[family(k)]) for k in worst}
        summary = {f: (max(v for k, v in worst.items() if family(k) == f), floor[f]) for f in floor}
        print("\nswav freeze=%d wd=%g: min |ReLU input| %.3f; worst error per family, ours (torch float32): %s"
              % (freeze, wd, low, ", ".join("%s %.1e (%.1e)" % (f, a, b) for f, (a, b) in summary.items())))
        bad = {k: (v, tol[k]) for k, v in worst.items() if not v <= tol[k]}
        assert not bad, "errors above tolerance: %s" % bad
