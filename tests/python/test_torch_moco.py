"""MoCo v2 steps against PyTorch on identical weights, views and queue.

The reference is written here from the paper's pseudocode (He et al. 2020,
Algorithm 1, with MoCo v2's MLP head), in float64:

    q = normalize(f_q(x_q));  k = normalize(f_k(x_k)).detach()
    l_pos = q . k;  l_neg = q queue^T;  logits = [l_pos, l_neg] / T
    loss = CrossEntropy(logits, 0);  loss.backward();  SGD step on f_q
    f_k = m f_k + (1 - m) f_q;  enqueue k, dequeue the oldest N

with shuffling BN as MoCo's single-GPU code does it: the key batch is
permuted (by the library's permutation, read back with key_order), run
through f_k in consecutive sub-batches, and un-permuted. Each step compares
the loss, every query gradient, the parameters and BN buffers of all four
modules, the queue and its position.

The network is a ResNet-18 (width 4, CIFAR stem) with a SimCLR-v2-style
head (BN, as MoCo's split-BN demo needs sub-batch statistics in the head
too). Its BN parameters are chosen so that no ReLU input comes within MARGIN
of zero in any reference forward (asserted): then float32 and float64 take
the same branch everywhere and the comparison measures rounding only.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

import libsimclr as simclr
from test_torch_model import Head, small_resnet

N, K, IMG, WIDTH, P = 8, 32, 4, 4, 8
STEPS = 6  # K / N = 4: the queue wraps around at step 5
MARGIN = 0.02
TOL = 1e-4
LR = 0.001


def reference_models():
    torch.manual_seed(0)
    enc = small_resnet(BasicBlock, [2, 2, 2, 2], WIDTH, 1, True)
    # A batch-normalized value lies at most sqrt(m - 1) standard deviations
    # from its channel's mean (m values per channel: N x H x W of that layer
    # at batch N; fewer in key sub-batches, which only tightens the bound).
    # gamma = c / sqrt(m - 1) therefore keeps every BN output within c of
    # its beta whatever the data: betas of +-1 with c = 0.8 keep ReLU inputs
    # at least 0.2 from zero. Where a ReLU follows a residual sum (bn2 plus a
    # shortcut that is either a ReLU output >= 0 or a downsample BN with beta
    # 0) both take c = 0.4 and bn2 beta 1. Signs alternate elsewhere so that
    # half the channels stay active and the network is not linear. gamma as
    # large as the bound allows keeps the features' spread across samples
    # large against their mean: float32 rounding then stays ~1e-6 (a tiny
    # gamma, spread 1e-3 of the mean, costs torch itself 2e-4 at the output).
    side = {"bn1": IMG, "layer1": IMG, "layer2": IMG // 2, "layer3": 1, "layer4": 1}
    with torch.no_grad():
        for name, mod in enc.named_modules():
            if not isinstance(mod, torch.nn.BatchNorm2d):
                continue
            c = mod.num_features
            m = N * side[name.split(".")[0]] ** 2
            if name.endswith("bn2") or name.endswith("downsample.1"):
                mod.weight.fill_(0.4 / np.sqrt(m - 1))
                mod.bias.fill_(1.0 if name.endswith("bn2") else 0.0)
            else:
                mod.weight.fill_(0.8 / np.sqrt(m - 1))
                mod.bias.copy_(torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(c)]))
    d = 8 * WIDTH
    head = Head(d, 16, P, 2, 1)
    with torch.no_grad():
        bn = head.layers[1]
        bn.weight.fill_(0.8 / np.sqrt(N - 1))
        bn.bias.copy_(torch.tensor([1.0 if i % 3 else -1.0 for i in range(16)]))
    return enc, head


def load_into(module, torch_model, skip=()):
    state = {}
    for k, v in torch_model.state_dict().items():
        if k in skip or k.startswith("fc."):
            continue
        a = v.detach().double().numpy()
        state[k] = a.reshape(1) if k.endswith("num_batches_tracked") else a
    module.load_state_dict(state, strict=True)


def rel_err(ours, ref, floor=1e-12):
    ref = np.asarray(ref, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64).reshape(ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), floor))


def update_err(ours, ref, start, floor):
    """Error of a tensor that moved from start, relative to how far it moved.

    A step changes weights by small updates, so an error relative to the
    weights themselves would hide a wrong update: this measures
    max|ours - ref| against max|ref - start|, with two floors: our side
    stores float32, so half an ulp of rounding is allowed; and a tensor that
    barely moves (a BN bias that later batch norms cancel, whose gradient is
    zero in exact arithmetic) is judged against `floor`, a fraction of the
    largest move among the tensors of its module."""
    ref = np.asarray(ref, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64).reshape(ref.shape)
    moved = np.max(np.abs(ref - start.reshape(ref.shape)))
    rounding = np.max(np.abs(ref)) * 2.0 ** -24 / TOL
    return float(np.max(np.abs(ours - ref)) / max(moved, rounding, floor, 1e-30))


class Margins:
    """Smallest |ReLU input| seen by forward pre-hooks."""

    def __init__(self, *models):
        self.low = float("inf")
        for m in models:
            for mod in m.modules():
                if isinstance(mod, torch.nn.ReLU):
                    mod.register_forward_pre_hook(self.hook)

    def hook(self, mod, inputs):
        self.low = min(self.low, float(inputs[0].detach().abs().min()))


def momentum_at(m, steps, t):
    """BYOL's schedule from m to 1 over `steps` steps (0: constant m)."""
    if steps == 0:
        return m
    if t >= steps:
        return 1.0
    return 1 - (1 - m) * (np.cos(np.pi * t / steps) + 1) / 2


class Reference:
    """MoCo v2 in PyTorch at one dtype: f_q, f_k, SGD, the queue."""

    def __init__(self, enc_t, head_t, dtype):
        self.dtype = dtype
        self.q_enc = copy.deepcopy(enc_t).to(dtype).train()
        self.q_head = copy.deepcopy(head_t).to(dtype).train()
        self.k_enc, self.k_head = copy.deepcopy(self.q_enc), copy.deepcopy(self.q_head)
        for p in list(self.k_enc.parameters()) + list(self.k_head.parameters()):
            p.requires_grad_(False)
        named = list(self.q_enc.named_parameters()) + list(self.q_head.named_parameters())
        self.by_name = {n: p for n, p in named if p.requires_grad}
        self.sgd = torch.optim.SGD(list(self.by_name.values()), lr=LR, momentum=0.9, weight_decay=1e-4)
        self.margins = Margins(self.q_enc, self.q_head, self.k_enc, self.k_head)

    def modules(self):
        return (("q", self.q_enc), ("q", self.q_head), ("k", self.k_enc), ("k", self.k_head))

    def load(self, lib_modules, opt, tr):
        """Takes the library's state: weights, BN buffers, SGD momentum, queue."""
        with torch.no_grad():
            for (_, ref), mine in zip(self.modules(), lib_modules):
                sd = ref.state_dict()
                for n, p in mine.params.items():
                    sd[n].copy_(torch.tensor(p.value.numpy(copy=True)).reshape(sd[n].shape))
            for n, buf in opt.state().items():  # "<module index>.momentum.<name>"
                _, kind, name = n.split(".", 2)
                assert kind == "momentum"
                self.sgd.state[self.by_name[name]]["momentum_buffer"] = torch.tensor(
                    buf.numpy(copy=True), dtype=self.dtype)
            self.queue = torch.tensor(tr.queue.numpy(copy=True), dtype=self.dtype)  # [K, C]
        self.ptr = int(tr["queue_pos"])

    def step(self, x_q, x_k, order, splits, m):
        """Algorithm 1 of the paper, with the key batch shuffled and split."""
        x_q = torch.tensor(x_q, dtype=self.dtype)
        x_k = torch.tensor(x_k, dtype=self.dtype)
        q = F.normalize(self.q_head(self.q_enc(x_q)), dim=1)
        with torch.no_grad():
            idx = torch.tensor(order)
            k_shuf = torch.cat([self.k_head(self.k_enc(c)) for c in torch.chunk(x_k[idx], splits)])
            k = torch.empty_like(k_shuf)
            k[idx] = k_shuf  # unshuffle
            k = F.normalize(k, dim=1)
        l_pos = (q * k).sum(1, keepdim=True)
        l_neg = q @ self.queue.t()
        logits = torch.cat([l_pos, l_neg], 1) / 0.2
        loss = F.cross_entropy(logits, torch.zeros(N, dtype=torch.long))
        self.sgd.zero_grad()
        loss.backward()
        grads = {n: p.grad.double().clone() for n, p in self.by_name.items()}
        self.sgd.step()
        with torch.no_grad():
            for fk, fq in ((self.k_enc, self.q_enc), (self.k_head, self.q_head)):
                qs = fq.state_dict()
                for name, v in fk.state_dict().items():
                    if not name.endswith("num_batches_tracked"):
                        v.copy_(m * v + (1 - m) * qs[name])
            self.queue[self.ptr:self.ptr + N] = k  # enqueue the newest, dequeue the oldest
            self.ptr = (self.ptr + N) % K
        return float(loss), grads

    def state(self):
        out = {}
        for tag, mod in self.modules():
            for n, v in mod.state_dict().items():
                out["%s %s" % (tag, n)] = v.double().numpy()
        out["queue"] = self.queue.double().numpy()
        return out


def compare(loss_ours, grads_ours, state_ours, start, loss_ref, grads_ref, state_ref):
    """Per-quantity errors of one step (see rel_err / update_err for the scales)."""
    errs = {"loss": rel_err(loss_ours, loss_ref), "queue": rel_err(state_ours["queue"], state_ref["queue"])}
    for part in ("enc", "head"):
        # A gradient is judged against the largest of its module: some are
        # zero in exact arithmetic (a BN bias that a later BN cancels), and
        # their float32 value is rounding noise of the large terms that cancel.
        names = [n for n in grads_ref if (n.startswith("layers.")) == (part == "head")]
        scale = max(float(grads_ref[n].abs().max()) for n in names)
        for n in names:
            errs["grad " + n] = rel_err(grads_ours[n], grads_ref[n].numpy(), 1e-2 * scale)
    for tag in ("q", "k"):
        keys = [k for k in start if k.startswith(tag + " ")]
        biggest = max(float(np.max(np.abs(state_ref[k].reshape(start[k].shape) - start[k]))) for k in keys)
        for k in keys:
            errs[k] = update_err(state_ours[k], state_ref[k], start[k], 1e-2 * biggest)
    return errs


@pytest.mark.parametrize("m,m_steps,splits", [(0.9, 0, 2), (0.5, 4, 4), (0.99, 0, 1)])
def test_moco_steps_match_torch(m, m_steps, splits):
    enc_t, head_t = reference_models()
    skip = ("layers.4.bias",)  # the v2 head's last BN has no bias
    with simclr.Context("cpu", 2) as ctx:
        enc = simclr.ResNet(ctx, 18, WIDTH, 1, "cifar", seed=1)
        kenc = simclr.ResNet(ctx, 18, WIDTH, 1, "cifar", seed=2)
        head = simclr.MLPHead(ctx, enc.output_dim, 16, P, 2, True, seed=3)
        khead = simclr.MLPHead(ctx, enc.output_dim, 16, P, 2, True, seed=4)
        load_into(enc, enc_t)
        load_into(head, head_t, skip)
        aug = simclr.Augment(ctx, "grayscale", IMG, IMG)
        opt = simclr.Optimizer(ctx, "sgd", [enc, head], lr=LR, momentum=0.9, weight_decay=1e-4,
                               exclude_no_decay=0)
        tr = simclr.MocoTrainer(ctx, enc, head, kenc, khead, aug, opt, queue_size=K, seed=9,
                                momentum=m, momentum_steps=m_steps, key_splits=splits)
        assert tr["temperature"] == 0.2
        lib_modules = (enc, head, kenc, khead)
        tags = ("q", "q", "k", "k")
        # Creation copied the query weights into the key modules.
        for n, p in enc.params.items():
            assert np.array_equal(p.value.numpy(), kenc.params[n].value.numpy()), n

        def lib_state():
            out = {"%s %s" % (tag, n): p.value.numpy(copy=True).astype(np.float64)
                   for tag, mod in zip(tags, lib_modules) for n, p in mod.params.items()}
            out["queue"] = tr.queue.numpy(copy=True).astype(np.float64)
            return out

        ref64 = Reference(enc_t, head_t, torch.float64)
        ref32 = Reference(enc_t, head_t, torch.float32)
        rng = np.random.default_rng(1)
        worst, worst32 = {}, {}
        for t in range(STEPS):
            # Each step starts from the library's state on both references,
            # so every step is measured on its own (in a network this small
            # and this sensitive, repeated steps would amplify rounding).
            ref64.load(lib_modules, opt, tr)
            ref32.load(lib_modules, opt, tr)
            start = {k: v for k, v in lib_state().items() if k != "queue"}
            images = rng.integers(0, 256, (N, IMG, IMG, 1), dtype=np.uint8)
            seed = 1000 + t
            loss = tr.step(images, seed)
            grads = {n: mod.params[n].grad.numpy(copy=True) for mod in (enc, head)
                     for n, p in mod.params.items() if p.grad is not None}
            assert set(grads) == set(ref64.by_name)
            order = tr.key_order(N)
            assert sorted(order.tolist()) == list(range(N))
            if splits == 1:
                assert order.tolist() == list(range(N))
            x_q, x_k = aug.pair(images, seed)
            mt = momentum_at(m, m_steps, t)
            l64, g64 = ref64.step(x_q, x_k, order, splits, mt)
            l32, g32 = ref32.step(x_q, x_k, order, splits, mt)
            assert tr["queue_pos"] == ref64.ptr
            s64 = ref64.state()
            errs = compare(loss, grads, lib_state(), start, l64, g64, s64)
            errs32 = compare(l32, {n: g.numpy() for n, g in g32.items()}, ref32.state(), start, l64, g64, s64)
            for key in errs:
                worst[key] = max(worst.get(key, 0.0), errs[key])
                worst32[key] = max(worst32.get(key, 0.0), errs32[key])

        low = min(ref64.margins.low, ref32.margins.low)
        assert low > MARGIN, "a ReLU input came within %g of zero (%g)" % (MARGIN, low)
        # Tolerance: TOL, or three times torch's own float32 error over the
        # same family of quantities (gradients, module tensors after the step,
        # loss, queue) where the problem's conditioning makes that larger:
        # "no worse than torch". Families, not single tensors, because two
        # float32 programs summing in different orders put their rounding on
        # different tensors; a real mistake (an index, a sign, a missing term,
        # the wrong momentum) shows up at 1e-1 or more.
        def family(key):
            head = key.split(" ")[0]
            return "tensors" if head in ("q", "k") else head

        floor = {}
        for k, v in worst32.items():
            floor[family(k)] = max(floor.get(family(k), 0.0), v)
        tol = {k: max(TOL, 3 * floor[family(k)]) for k in worst}
        summary = {f: (max(v for k, v in worst.items() if family(k) == f), floor[f]) for f in floor}
        print("\nmoco m=%g T=%d splits=%d: min |ReLU input| %.3f; worst error per family, ours "
              "(torch float32): %s" % (m, m_steps, splits, low,
                                       ", ".join("%s %.1e (%.1e)" % (f, a, b) for f, (a, b) in summary.items())))
        bad = {k: (v, tol[k]) for k, v in worst.items() if not v <= tol[k]}
        assert not bad, "errors above tolerance: %s" % bad
