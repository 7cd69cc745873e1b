"""Trainer settings from Python (gradient caching, BN mode): the binding
reaches them, errors map to exceptions, and a micro-batched step with frozen
BN gives the whole-batch loss (the C tests check the gradients)."""
import numpy as np
import pytest

import libsimclr as simclr


@pytest.fixture
def ctx():
    with simclr.Context("cpu", 1) as c:
        yield c


def _trainer(ctx):
    enc = simclr.ResNet(ctx, depth=18, width=4, in_channels=1, stem="cifar", seed=0)
    head = simclr.MLPHead(ctx, enc.output_dim, 32, 16, n_layers=2, seed=1)
    aug = simclr.Augment(ctx, "grayscale", 16, 16)
    loss = simclr.NTXent(ctx, 0.5)
    opt = simclr.Optimizer(ctx, "sgd", [enc, head], lr=0.01)
    return simclr.Trainer(ctx, enc, head, aug, loss, opt)


def test_settings_round_trip_and_errors(ctx):
    tr = _trainer(ctx)
    assert tr.get("micro_batch") == 0 and tr.get(simclr.TrainerParam.BN_MODE) == simclr.BnMode.LOCAL
    tr.set("micro_batch", 2)
    tr.set("bn_mode", simclr.BnMode.FROZEN)
    assert tr.get("micro_batch") == 2 and tr.get("bn_mode") == simclr.BnMode.FROZEN
    with pytest.raises(simclr.InvalidArgument):
        tr.set("bn_mode", 7)
    with pytest.raises(simclr.InvalidArgument):
        tr.set("bucket_bytes", 10)
    assert tr.get("bn_mode") == simclr.BnMode.FROZEN


def test_frozen_micro_batches_give_the_whole_batch_loss(ctx):
    imgs = np.random.default_rng(3).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    whole, split = _trainer(ctx), _trainer(ctx)
    whole.set("bn_mode", simclr.BnMode.FROZEN)
    split.set("bn_mode", simclr.BnMode.FROZEN)
    split.set("micro_batch", 2)
    a, b = whole.step(imgs, seed=1), split.step(imgs, seed=1)
    assert b == pytest.approx(a, abs=1e-6)
    assert split.stat("micro_batches") == 4 and whole.stat("micro_batches") == 1
