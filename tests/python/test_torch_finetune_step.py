"""Whole fine-tuning steps (simclr_trainer_step_labels) against PyTorch.

The reference is written here from SimCLR's fine-tuning recipe, in float64:

    logits = fc(encoder(view));  loss = F.cross_entropy(logits, labels)
    loss.backward();  SGD step (momentum 0.9, weight decay 1e-4)

with the encoder in TRAIN mode (batch statistics, running statistics
updated), or, when the optimizer covers the head only, frozen: EVAL mode and
no gradient. The views are the library's own (view 0 of the fine-tuning
policy, SIMCLR_AUG_PRESET_FINETUNE: crop + flip, read back with
Augment.pair), so both sides see identical inputs. Each of the STEPS steps
starts the references from the library's state (weights, BN buffers, SGD
momentum) and compares the loss, every gradient, and every parameter and BN
buffer after the step.

The network is test_torch_moco's ResNet-18 (width 4, CIFAR stem), whose BN
parameters keep every ReLU input at least MARGIN from zero in every
reference forward (asserted with the same Margins hooks): float32 and
float64 then take the same branch everywhere and the comparison measures
rounding only.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import libsimclr as simclr
from test_torch_moco import IMG, N, WIDTH, Margins, load_into, reference_models, rel_err, update_err

CLASSES = 5
STEPS = 3
MARGIN = 0.02
TOL = 1e-4
LR = 0.01


class FC(torch.nn.Module):
    """The linear head under torchvision's classifier name."""

    def __init__(self, d, classes):
        super().__init__()
        self.fc = torch.nn.Linear(d, classes)

    def forward(self, x):
        return self.fc(x)


class Reference:
    def __init__(self, enc_t, head_t, dtype, frozen):
        self.dtype, self.frozen = dtype, frozen
        self.enc = copy.deepcopy(enc_t).to(dtype)
        self.head = copy.deepcopy(head_t).to(dtype).train()
        if frozen:
            self.enc.eval()
            for p in self.enc.parameters():
                p.requires_grad_(False)
        else:
            self.enc.train()
        named = list(self.enc.named_parameters()) + list(self.head.named_parameters())
        self.by_name = {n: p for n, p in named if p.requires_grad}
        self.sgd = torch.optim.SGD(list(self.by_name.values()), lr=LR, momentum=0.9, weight_decay=1e-4)
        self.margins = Margins(self.enc)

    def load(self, enc, head, opt):
        with torch.no_grad():
            for ref, mine in ((self.enc, enc), (self.head, head)):
                sd = ref.state_dict()
                for n, p in mine.params.items():
                    sd[n].copy_(torch.tensor(p.value.numpy(copy=True)).reshape(sd[n].shape))
            for n, buf in opt.state().items():  # "[<module index>.]momentum.<name>"
                if n[0].isdigit():
                    n = n.split(".", 1)[1]  # the index prefix of an optimizer over several modules
                kind, name = n.split(".", 1)
                assert kind == "momentum"
                self.sgd.state[self.by_name[name]]["momentum_buffer"] = torch.tensor(
                    buf.numpy(copy=True), dtype=self.dtype)

    def step(self, x, labels):
        x = torch.tensor(x, dtype=self.dtype)
        loss = F.cross_entropy(self.head(self.enc(x)), torch.tensor(labels, dtype=torch.long))
        self.sgd.zero_grad()
        loss.backward()
        grads = {n: p.grad.double().clone() for n, p in self.by_name.items()}
        self.sgd.step()
        return float(loss), grads

    def state(self):
        out = {}
        for mod in (self.enc, self.head):
            for n, v in mod.state_dict().items():
                out[n] = v.double().numpy()
        return out


def compare(loss_ours, grads_ours, state_ours, start, loss_ref, grads_ref, state_ref):
    errs = {"loss": rel_err(loss_ours, loss_ref)}
    for part in ("enc", "head"):
        names = [n for n in grads_ref if n.startswith("fc.") == (part == "head")]
        if not names:
            continue
        scale = max(float(grads_ref[n].abs().max()) for n in names)
        for n in names:
            errs["grad " + n] = rel_err(grads_ours[n], grads_ref[n].numpy(), 1e-2 * scale)
    for part in ("enc", "head"):
        keys = [k for k in start if k.startswith("fc.") == (part == "head")]
        biggest = max(float(np.max(np.abs(state_ref[k].reshape(start[k].shape) - start[k]))) for k in keys)
        for k in keys:
            errs["tensor " + k] = update_err(state_ours[k], state_ref[k], start[k], 1e-2 * max(biggest, 1e-30))
    return errs


@pytest.mark.parametrize("frozen", [False, True])
def test_finetune_steps_match_torch(frozen):
    enc_t, _ = reference_models()
    torch.manual_seed(5)
    head_t = FC(8 * WIDTH, CLASSES)
    with simclr.Context("cpu", 2) as ctx:
        enc = simclr.ResNet(ctx, 18, WIDTH, 1, "cifar", seed=1)
        head = simclr.LinearHead(ctx, enc.output_dim, CLASSES, seed=2)
        load_into(enc, enc_t)
        head.load_state_dict({k: v.detach().double().numpy() for k, v in head_t.state_dict().items()})
        aug = simclr.Augment(ctx, "finetune", IMG, IMG)
        loss_fn = simclr.CrossEntropy(ctx, CLASSES)
        trained = [head] if frozen else [enc, head]
        opt = simclr.Optimizer(ctx, "sgd", trained, lr=LR, momentum=0.9, weight_decay=1e-4, exclude_no_decay=0)
        tr = simclr.FinetuneTrainer(ctx, enc, head, aug, loss_fn, opt)
        assert tr.get("freeze_encoder") == (1.0 if frozen else 0.0)

        def lib_state():
            return {n: p.value.numpy(copy=True).astype(np.float64) for mod in (enc, head)
                    for n, p in mod.params.items()}

        ref64 = Reference(enc_t, head_t, torch.float64, frozen)
        ref32 = Reference(enc_t, head_t, torch.float32, frozen)
        rng = np.random.default_rng(3)
        worst, worst32 = {}, {}
        for t in range(STEPS):
            ref64.load(enc, head, opt)
            ref32.load(enc, head, opt)
            start = lib_state()
            images = rng.integers(0, 256, (N, IMG, IMG, 1), dtype=np.uint8)
            labels = rng.integers(0, CLASSES, N).astype(np.int32)
            seed = 500 + t
            loss = tr.step(images, labels, seed)
            grads = {n: mod.params[n].grad.numpy(copy=True) for mod in trained
                     for n, p in mod.params.items() if p.grad is not None}
            assert set(grads) == set(ref64.by_name)
            x, _ = aug.pair(images, seed)  # view 0: the one the step trained on
            l64, g64 = ref64.step(x, labels)
            l32, g32 = ref32.step(x, labels)
            s64 = ref64.state()
            errs = compare(loss, grads, lib_state(), start, l64, g64, s64)
            errs32 = compare(l32, {n: g.numpy() for n, g in g32.items()}, ref32.state(), start, l64, g64, s64)
            for key in errs:
                worst[key] = max(worst.get(key, 0.0), errs[key])
                worst32[key] = max(worst32.get(key, 0.0), errs32[key])
            if frozen:  # the encoder's parameters and BN statistics did not move
                for n in start:
                    if not n.startswith("fc."):
                        assert np.array_equal(start[n], lib_state()[n]), n

        low = min(ref64.margins.low, ref32.margins.low)
        assert low > MARGIN, "a ReLU input came within %g of zero (%g)" % (MARGIN, low)
        # Tolerance as test_torch_moco: TOL, or three times torch's own
        # float32 error over the same family of quantities.
        def family(key):
            return key.split(" ")[0]

        floor = {}
        for k, v in worst32.items():
            floor[family(k)] = max(floor.get(family(k), 0.0), v)
        tol = {k: max(TOL, 3 * floor[family(k)]) for k in worst}
        summary = {f: (max(v for k, v in worst.items() if family(k) == f), floor[f]) for f in floor}
        print("\nfinetune frozen=%s: min |ReLU input| %.3f; worst error per family, ours (torch float32): %s"
              % (frozen, low, ", ".join("%s %.1e (%.1e)" % (f, a, b) for f, (a, b) in summary.items())))
        bad = {k: (v, tol[k]) for k, v in worst.items() if not v <= tol[k]}
        assert not bad, "errors above tolerance: %s" % bad


def test_distill_step_binding_and_teacher_untouched():
    """FinetuneTrainer.step_distill: a student learns its teacher through the
    bindings, the teacher's tensors stay bit for bit, and bad labels are
    refused naming the row."""
    with simclr.Context("cpu", 1) as ctx:
        t_enc = simclr.ResNet(ctx, 18, WIDTH, 1, "cifar", seed=7)
        t_head = simclr.LinearHead(ctx, t_enc.output_dim, CLASSES, seed=8)
        enc = simclr.ResNet(ctx, 18, WIDTH, 1, "cifar", seed=1)
        head = simclr.LinearHead(ctx, enc.output_dim, CLASSES, seed=2)
        aug = simclr.Augment(ctx, "finetune", IMG, IMG)
        loss_fn = simclr.Distill(ctx, CLASSES, temperature=1.0)
        opt = simclr.Optimizer(ctx, "sgd", [enc, head], lr=0.05, momentum=0.9)
        tr = simclr.FinetuneTrainer(ctx, enc, head, aug, loss_fn, opt)
        before = {n: p.value.numpy(copy=True) for m in (t_enc, t_head) for n, p in m.params.items()}
        rng = np.random.default_rng(4)
        images = rng.integers(0, 256, (N, IMG, IMG, 1), dtype=np.uint8)
        labels = np.array([0, -1, 2, -1, 4, -1, 1, -1], dtype=np.int32)
        losses = [tr.step_distill(images, t_enc, t_head, labels if t % 2 else None, seed=t) for t in range(4)]
        assert all(np.isfinite(losses))
        assert tr.stat("step") == 4
        for m in (t_enc, t_head):
            for n, p in m.params.items():
                assert np.array_equal(before[n], p.value.numpy()), n
        bad = labels.copy()
        bad[5] = CLASSES
        with pytest.raises(simclr.InvalidArgument, match=r"labels\[5\]"):
            tr.step_distill(images, t_enc, t_head, bad, seed=9)
        with pytest.raises(simclr.InvalidArgument):
            tr.step(images, labels.clip(0), 1)  # a distillation student takes a teacher
        assert tr.stat("step") == 4
