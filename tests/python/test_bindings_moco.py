"""Python bindings of MoCo v2: MocoTrainer through the Trainer interface, its
settings, queue and key order, checkpoints, and Module.momentum_update."""
import gc

import numpy as np
import pytest

import libsimclr as simclr


@pytest.fixture
def ctx():
    with simclr.Context("cpu", 1) as c:
        yield c


def pieces(ctx, seed=0):
    enc = simclr.ResNet(ctx, depth=18, width=2, in_channels=1, stem="cifar", seed=seed)
    kenc = simclr.ResNet(ctx, depth=18, width=2, in_channels=1, stem="cifar", seed=seed + 100)
    head = simclr.MLPHead(ctx, enc.output_dim, 16, 8, n_layers=2, batch_norm=True, seed=seed + 1)
    khead = simclr.MLPHead(ctx, enc.output_dim, 16, 8, n_layers=2, batch_norm=True, seed=seed + 101)
    aug = simclr.Augment(ctx, "grayscale", 12, 12)
    opt = simclr.Optimizer(ctx, "sgd", [enc, head], lr=0.05)
    return enc, head, kenc, khead, aug, opt


def images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 12, 12, 1), dtype=np.uint8)


def test_moco_trainer_steps_and_settings(ctx):
    tr = simclr.MocoTrainer(ctx, *pieces(ctx), queue_size=16, seed=3, key_splits=2, momentum=0.99)
    assert isinstance(tr, simclr.Trainer)
    assert tr["momentum"] == 0.99 and tr["key_splits"] == 2 and tr["temperature"] == 0.2
    assert tr.get(simclr.MocoParam.QUEUE_SIZE) == 16 and tr["queue_pos"] == 0
    q = tr.queue.numpy(copy=False)
    assert q.shape == (16, 8) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    loss = tr.step(images(8, 1), seed=1)
    assert np.isfinite(loss) and tr.stat("loss") == pytest.approx(loss, rel=1e-6)
    assert tr.stats()["step"] == 1 and tr["queue_pos"] == 8
    assert sorted(tr.key_order(8).tolist()) == list(range(8))
    tr["temperature"] = 0.1
    assert tr["temperature"] == 0.1
    with pytest.raises(simclr.InvalidArgument, match="read-only"):
        tr["queue_size"] = 32
    with pytest.raises(simclr.InvalidArgument):
        tr["momentum"] = 2
    with pytest.raises(simclr.InvalidArgument):
        tr["no_such_key"] = 1
    with pytest.raises(simclr.ShapeError, match="queue size"):
        tr.step(images(3, 2), seed=2)
    with pytest.raises(simclr.ShapeError):
        tr.key_order(4)


def test_moco_trainer_takes_trainer_settings(ctx):
    # The one pipeline runs MoCo with micro-batches and BN modes: the
    # binding routes the trainer's own keys, by name or TrainerParam.
    a = simclr.MocoTrainer(ctx, *pieces(ctx), queue_size=16, seed=3, key_splits=2)
    b = simclr.MocoTrainer(ctx, *pieces(ctx), queue_size=16, seed=3, key_splits=2)
    b["micro_batch"] = 2
    b.set(simclr.TrainerParam.BN_MODE, simclr.BnMode.FROZEN)
    a.set("bn_mode", simclr.BnMode.FROZEN)
    assert b["micro_batch"] == 2 and b.get("bn_mode") == int(simclr.BnMode.FROZEN)
    assert a["micro_batch"] == 0 and a["key_splits"] == 2
    la, lb = a.step(images(8, 1), seed=1), b.step(images(8, 1), seed=1)
    assert lb == pytest.approx(la, rel=1e-5) and b.stat("micro_batches") == 4
    with pytest.raises(simclr.InvalidArgument):
        b["micro_batch"] = -1


def test_moco_trainer_bad_pieces(ctx):
    enc, head, kenc, khead, aug, opt = pieces(ctx)
    with pytest.raises(simclr.InvalidArgument, match="distinct"):
        simclr.MocoTrainer(ctx, enc, head, enc, khead, aug, opt, queue_size=16)
    with pytest.raises(simclr.ShapeError):
        simclr.MocoTrainer(ctx, enc, head, khead, kenc, aug, opt, queue_size=16)
    with pytest.raises(TypeError):
        simclr.MocoTrainer(ctx, enc, head, kenc, None, aug, opt)
    with pytest.raises(simclr.InvalidArgument):
        simclr.MocoTrainer(ctx, enc, head, kenc, khead, aug, opt, queue_size=0)
    # A SimCLR trainer has no MoCo settings.
    plain = simclr.Trainer(ctx, enc, head, aug, simclr.NTXent(ctx, 0.5), opt)
    with pytest.raises(simclr.InvalidArgument, match="not a MoCo trainer"):
        simclr._lib.fn.moco_set(plain._ptr, int(simclr.MocoParam.MOMENTUM), 0.5)


def test_moco_trainer_keeps_its_pieces_alive(ctx):
    tr = simclr.MocoTrainer(ctx, *pieces(ctx), queue_size=16, key_splits=2)
    gc.collect()
    assert np.isfinite(tr.step(images(8, 4), seed=1))
    tr.key_head.close()  # closing a borrowed piece closes the trainer
    assert tr.closed


def test_moco_resume_is_bit_identical(ctx, tmp_path):
    a = simclr.MocoTrainer(ctx, *pieces(ctx, 6), queue_size=16, seed=1, key_splits=2)
    for s in range(2):
        a.step(images(8, s), seed=s)
    a.save(tmp_path / "moco.ckpt")
    ref = [a.step(images(8, s), seed=s) for s in (2, 3, 4)]
    b = simclr.MocoTrainer(ctx, *pieces(ctx, 7), queue_size=16, seed=2, key_splits=2)
    b.load(tmp_path / "moco.ckpt")
    assert [b.step(images(8, s), seed=s) for s in (2, 3, 4)] == ref
    assert np.array_equal(a.queue.numpy(), b.queue.numpy()) and a["queue_pos"] == b["queue_pos"]
    for n, p in a.key_encoder.params.items():
        assert np.array_equal(p.value.numpy(), b.key_encoder.params[n].value.numpy()), n


def test_module_momentum_update(ctx):
    a = simclr.MLPHead(ctx, 6, 5, 4, 2, True, seed=1)
    b = simclr.MLPHead(ctx, 6, 5, 4, 2, True, seed=2)
    wa, wb = a.state_dict(), b.state_dict()
    a.momentum_update(b, 0.75)
    for n, v in a.state_dict().items():
        want = wa[n] if n.endswith("num_batches_tracked") else (0.75 * wa[n].astype(np.float64) + 0.25 * wb[n])
        assert np.array_equal(v, np.asarray(want, dtype=np.float32)), n
    with pytest.raises(simclr.InvalidArgument):
        a.momentum_update(a, 0.5)
    with pytest.raises(simclr.InvalidArgument):
        a.momentum_update(b, -0.1)
    with pytest.raises(simclr.ShapeError):
        a.momentum_update(simclr.MLPHead(ctx, 6, 5, 3, 2, True), 0.5)
    with pytest.raises(TypeError):
        a.momentum_update(None, 0.5)
