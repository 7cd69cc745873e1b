"""Python bindings over the library's layers (modules, augmentation, loss,
optimizers, trainer, data sets, checkpoints, evaluation).

A test whose C functions the loaded library does not export yet is skipped
(the check is hasattr on the CDLL, so it runs as soon as the layer lands)."""
import gc
import math
import os

import numpy as np
import pytest

import libsimclr as simclr
from libsimclr import _lib

FMNIST = "/usr/share/datasets/fashion-mnist"


def needs(*names):
    missing = [n for n in names if not hasattr(_lib.cdll, "simclr_" + n)]
    return pytest.mark.skipif(bool(missing), reason="not in the library yet: " + ", ".join(missing))


@pytest.fixture
def ctx():
    with simclr.Context("cpu", 1) as c:
        yield c


def small_resnet(ctx, in_channels=1, seed=0):
    return simclr.ResNet(ctx, depth=18, width=4, in_channels=in_channels, stem="cifar", seed=seed)


# --------------------------------------------------------------- modules --

@needs("resnet_create", "module_forward")
def test_resnet_forward_shapes_and_dtypes(ctx):
    enc = small_resnet(ctx)
    assert enc.output_dim == 32 and "resnet18" in enc.arch
    x = np.random.default_rng(0).random((3, 1, 16, 16))        # float64: converted
    y = enc.forward(x)
    assert y.shape == (3, 32) and y.dtype == np.float32 and np.isfinite(y).all()
    y2 = enc(x.astype(np.float32), mode="eval")
    np.testing.assert_array_equal(y, y2)                        # EVAL is deterministic
    out = np.empty((3, 32), np.float32)
    assert enc.forward(x, out=out) is out
    with pytest.raises(simclr.ShapeError):
        enc.forward(x, out=np.empty((3, 31), np.float32))
    with pytest.raises(simclr.ShapeError):                      # a wrong dtype is SIMCLR_E_SHAPE's kind
        enc.forward(x, out=np.empty((3, 32), np.float64))
    with pytest.raises(simclr.ShapeError):                      # 3 channels into a 1-channel stem
        enc.forward(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(TypeError):
        enc.forward(None)
    with pytest.raises(TypeError):
        enc.forward(np.array([["a"]]))
    with pytest.raises(simclr.InvalidArgument):
        enc.forward(x, mode="sideways")


@needs("resnet_create")
def test_resnet_bad_arguments(ctx):
    with pytest.raises(simclr.InvalidArgument):
        simclr.ResNet(ctx, depth=17)
    with pytest.raises(TypeError):
        simclr.ResNet(ctx, depth="18")
    with pytest.raises(simclr.InvalidArgument):
        simclr.ResNet(ctx, stem="mnist")
    with pytest.raises(simclr.InvalidArgument):
        simclr.ResNet(ctx, seed=-1)
    with pytest.raises(TypeError):
        simclr.ResNet(None)


@needs("resnet_create", "module_param")
def test_params_are_dict_like_views_into_the_model(ctx):
    enc = small_resnet(ctx)
    params = enc.params
    assert "conv1.weight" in params and "bn1.running_mean" in params
    assert params["conv1.weight"].shape == (4, 1, 3, 3)
    assert params["bn1.weight"].no_decay and not params["conv1.weight"].no_decay
    assert params["bn1.running_var"].is_buffer and params["bn1.running_var"].grad is None
    assert params["conv1.weight"].grad is not None
    n_trainable = sum(int(np.prod(p.shape)) for p in params.values() if not p.is_buffer)
    assert n_trainable == enc.param_scalars
    x = np.random.default_rng(1).random((2, 1, 8, 8)).astype(np.float32)
    y0 = enc.forward(x)
    state = enc.state_dict()
    w = params["conv1.weight"].value.numpy(copy=False)
    w *= 0                                                      # writes into the model
    assert not np.allclose(enc.forward(x), y0)
    enc.load_state_dict(state)
    np.testing.assert_array_equal(enc.forward(x), y0)
    with pytest.raises(simclr.InvalidArgument):
        enc.load_state_dict({"nope": np.zeros(1)})
    bad = dict(state)
    bad["conv1.weight"] = np.zeros((1, 1))
    with pytest.raises(simclr.ShapeError):
        enc.load_state_dict(bad)


@needs("mlp_head_create", "module_forward", "module_param")
def test_linear_head_matches_numpy(ctx):
    # One linear layer: y = x W^T + b, computed here from the module's own
    # parameters read through the bindings (the check is that params, forward
    # and the NumPy round trip agree). float32 sums of 16 products: 1e-5.
    head = simclr.MLPHead(ctx, 16, 16, 5, n_layers=1, batch_norm=False, seed=3)
    params = head.params
    w = next(p for n, p in params.items() if n.endswith("weight")).value.numpy()
    b = next(p for n, p in params.items() if n.endswith("bias")).value.numpy()
    x = np.random.default_rng(2).standard_normal((7, 16)).astype(np.float32)
    np.testing.assert_allclose(head.forward(x), x @ w.T + b, rtol=1e-5, atol=1e-5)


@needs("resnet_create", "module_backward")
def test_backward_state_and_gradients(ctx):
    enc = small_resnet(ctx)
    x = np.random.default_rng(3).random((2, 1, 8, 8)).astype(np.float32)
    with pytest.raises(simclr.StateError):                      # no TRAIN forward yet (C check)
        _lib.fn.module_backward(enc._ptr, simclr.Tensor(ctx, (2, 32))._ptr, None)
    enc.forward(x, mode="eval")
    with pytest.raises(simclr.StateError):
        enc.backward(np.ones((2, 32), np.float32))
    y = enc.forward(x, mode="train")
    enc.zero_grad()
    dx = enc.backward(np.ones_like(y), want_dx=True)
    assert dx.shape == x.shape and np.isfinite(dx).all()
    g = enc.params["conv1.weight"].grad.numpy()
    assert np.abs(g).sum() > 0
    enc.zero_grad()
    assert not enc.params["conv1.weight"].grad.numpy().any()


@needs("resnet_create", "module_param")
def test_param_views_outlive_a_closed_module(ctx):
    enc = small_resnet(ctx)
    w = enc.params["conv1.weight"].value.numpy(copy=False)
    expected = w.copy()
    enc.close()
    gc.collect()
    np.testing.assert_array_equal(w, expected)                  # memory pinned by the view
    with pytest.raises(simclr.StateError):
        enc.forward(np.zeros((1, 1, 8, 8), np.float32))


@needs("resnet_create", "module_save", "module_load")
def test_module_checkpoint_roundtrip_and_errors(ctx, tmp_path):
    a, b = small_resnet(ctx, seed=1), small_resnet(ctx, seed=2)
    path = tmp_path / "enc.ckpt"
    a.save(path)
    b.load(str(path))
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
    with pytest.raises(simclr.SimclrIOError):
        b.load(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(simclr.FormatError):
        b.load(tmp_path / "junk.ckpt")
    with pytest.raises(simclr.InvalidArgument):
        b.load("bad\0path")
    with pytest.raises(TypeError):
        b.load(42)


@needs("resnet_create", "module_export_safetensors")
def test_safetensors_export_header_uses_torchvision_names(ctx, tmp_path):
    import json
    import struct
    enc = small_resnet(ctx)
    path = tmp_path / "enc.safetensors"
    enc.export_safetensors(path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert header["conv1.weight"]["shape"] == [4, 1, 3, 3]
    assert set(enc.params) <= set(header)


# ---------------------------------------------------------- augmentation --

@needs("augment_create", "augment_apply", "augment_pair", "augment_set", "augment_get")
def test_augment_views(ctx):
    imgs = np.random.default_rng(4).integers(0, 256, (5, 20, 24, 3), dtype=np.uint8)
    aug = simclr.Augment(ctx, "cifar", 16, 16, flip_p=0.5)
    v = aug.apply(imgs, seed=7)
    assert v.shape == (5, 3, 16, 16) and v.dtype == np.float32
    assert v.min() >= 0 and v.max() <= 1
    np.testing.assert_array_equal(v, aug(imgs, seed=7, view=0))  # pure function of (seed, i, view)
    v0, v1 = aug.pair(imgs, seed=7)
    np.testing.assert_array_equal(v0, v)
    assert not np.array_equal(v0, v1)
    aug["flip_p"] = 0.25
    assert aug["flip_p"] == 0.25 and aug.get(simclr.AugParam.FLIP_P) == 0.25
    with pytest.raises(simclr.InvalidArgument):
        aug["flip_p"] = 1.5
    assert aug["flip_p"] == 0.25                                  # unchanged on error
    with pytest.raises(simclr.InvalidArgument):
        aug.set(99999, 0.0)
    with pytest.raises(simclr.InvalidArgument):
        aug.set("no_such_key", 0.0)
    with pytest.raises(TypeError):
        aug.apply(imgs.astype(np.float32))                        # images must be uint8
    with pytest.raises(simclr.ShapeError):
        aug.apply(imgs[0])                                        # 3-D
    with pytest.raises(simclr.InvalidArgument):
        aug.apply(imgs, seed=-1)


@needs("augment_bounds")
def test_augment_bounds():
    lo, hi = simclr.augment_bounds("flip_p")
    assert (lo, hi) == (0.0, 1.0)
    with pytest.raises(simclr.InvalidArgument):
        simclr.augment_bounds(12345)


# ------------------------------------------------------------------- loss --

@needs("ntxent_create", "loss_forward", "loss_backward")
def test_ntxent_loss_and_errors(ctx):
    n, d = 16, 8
    z = np.random.default_rng(5).standard_normal((2 * n, d)).astype(np.float32)
    loss = simclr.NTXent(ctx, temperature=1.0)
    value, acc = loss(z)
    # Random directions: the loss is near ln(2N - 1) at temperature 1 (cosines are
    # small); 0.5 leaves room for the spread of 32 random vectors in 8 dims.
    assert abs(value - math.log(2 * n - 1)) < 0.5 and 0 <= acc <= 1
    dz = loss.backward()
    assert dz.shape == z.shape and np.isfinite(dz).all()
    # Finite difference along dz itself (float32 loss, step 1e-2: agreement to ~5%).
    eps = 1e-2
    u = dz / np.linalg.norm(dz)
    lp, _ = loss(z + eps * u)
    lm, _ = loss(z - eps * u)
    assert abs((lp - lm) / (2 * eps) - float((dz * u).sum())) < 0.05 * float(np.linalg.norm(dz)) + 1e-4
    bad = z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(simclr.NumericError):
        loss(bad)
    fresh = simclr.NTXent(ctx, 0.5)
    with pytest.raises(simclr.StateError):                        # C-level: backward before forward
        _lib.fn.loss_backward(fresh._ptr, simclr.Tensor(ctx, (2 * n, d))._ptr)
    with pytest.raises(simclr.InvalidArgument):
        simclr.NTXent(ctx, temperature=0.0)
    with pytest.raises(TypeError):
        simclr.NTXent(ctx, temperature="hot")


# ------------------------------------------------------------- optimizer --

@needs("mlp_head_create", "optimizer_create", "optimizer_step", "optimizer_set", "optimizer_lr")
def test_sgd_step_is_w_minus_lr_grad(ctx):
    head = simclr.MLPHead(ctx, 4, 4, 3, n_layers=1, seed=0)
    opt = simclr.Optimizer(ctx, "sgd", [head], lr=0.5, momentum=0.0, weight_decay=0.0)
    assert opt.lr == pytest.approx(0.5) and opt["momentum"] == 0.0
    before = head.state_dict()
    rng = np.random.default_rng(6)
    grads = {}
    for name, p in head.params.items():
        if p.grad is not None:
            grads[name] = rng.standard_normal(p.shape).astype(np.float32)
            p.grad.copy_from(grads[name])
    opt.step()
    after = head.state_dict()
    for name, g in grads.items():
        np.testing.assert_allclose(after[name], before[name] - 0.5 * g, rtol=1e-6, atol=1e-6)
    with pytest.raises(simclr.InvalidArgument):
        opt["momentum"] = 2.0
    with pytest.raises(simclr.InvalidArgument):
        simclr.Optimizer(ctx, "adam", [head])
    with pytest.raises(TypeError):
        simclr.Optimizer(ctx, "sgd", [head, "not a module"])


@needs("mlp_head_create", "optimizer_create", "optimizer_step")
def test_optimizer_rejects_nan_gradients_without_change(ctx):
    head = simclr.MLPHead(ctx, 4, 4, 3, n_layers=1, seed=0)
    opt = simclr.Optimizer(ctx, "lars", [head], lr=0.1)
    before = head.state_dict()
    p = next(p for p in head.params.values() if p.grad is not None)
    g = np.zeros(p.shape, np.float32)
    g.flat[0] = np.inf
    p.grad.copy_from(g)
    with pytest.raises(simclr.NumericError):
        opt.step()
    for k, v in head.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_lr_scaling():
    if not simclr.has("lr_linear_scaling"):
        pytest.skip("not in the library yet")
    assert simclr.lr_linear_scaling(0.3, 512) == pytest.approx(0.6)
    assert simclr.lr_sqrt_scaling(0.075, 256) == pytest.approx(1.2)
    assert simclr.lr_linear_scaling(0.3, 0) == 0


# --------------------------------------------------------------- trainer --

def _pieces(ctx, steps=4):
    enc = small_resnet(ctx)
    head = simclr.MLPHead(ctx, enc.output_dim, 32, 16, n_layers=2, seed=1)
    aug = simclr.Augment(ctx, "grayscale", 16, 16)
    loss = simclr.NTXent(ctx, 0.5)
    opt = simclr.Optimizer(ctx, "lars", [enc, head], lr=0.3, warmup_steps=1, total_steps=steps)
    return enc, head, aug, loss, opt


@needs("trainer_create", "trainer_step", "trainer_stat", "resnet_create", "augment_create",
       "ntxent_create", "optimizer_create")
def test_short_training_run(ctx):
    imgs = np.random.default_rng(7).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    pieces = _pieces(ctx)
    tr = simclr.Trainer(ctx, *pieces)
    losses = [tr.step(imgs, seed=s) for s in range(4)]
    assert all(np.isfinite(losses))
    stats = tr.stats()
    assert stats["step"] == 4 and stats["loss"] == pytest.approx(losses[-1], rel=1e-6)
    with pytest.raises(TypeError):
        tr.step(imgs.astype(np.float32), seed=0)
    with pytest.raises(TypeError):
        simclr.Trainer(ctx, pieces[0], pieces[1], pieces[2], pieces[3], "opt")


@needs("trainer_create", "trainer_step")
def test_trainer_keeps_its_pieces_alive(ctx):
    imgs = np.random.default_rng(8).integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)
    tr = simclr.Trainer(ctx, *_pieces(ctx))                     # no other reference to the pieces
    gc.collect()
    assert np.isfinite(tr.step(imgs, seed=1))
    enc = tr.encoder
    enc.close()                                                   # closing a piece closes the trainer
    assert tr.closed
    with pytest.raises(simclr.StateError):
        tr.step(imgs, seed=2)


@needs("trainer_create", "trainer_step", "trainer_save", "trainer_load")
def test_trainer_resume_is_bit_identical(ctx, tmp_path):
    imgs = np.random.default_rng(9).integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)
    a = simclr.Trainer(ctx, *_pieces(ctx, 6))
    for s in range(2):
        a.step(imgs, seed=s)
    a.save(tmp_path / "tr.ckpt")
    ref = [a.step(imgs, seed=s) for s in (2, 3)]
    b = simclr.Trainer(ctx, *_pieces(ctx, 6))
    b.load(tmp_path / "tr.ckpt")
    assert [b.step(imgs, seed=s) for s in (2, 3)] == ref


# ------------------------------------------------------------- data sets --

@needs("dataset_open_idx", "dataset_batch", "dataset_labels")
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="no Fashion-MNIST")
def test_fashion_mnist_dataset(ctx):
    ds = simclr.Dataset.open_idx(ctx, FMNIST + "/t10k-images-idx3-ubyte.gz",
                                 FMNIST + "/t10k-labels-idx1-ubyte.gz")
    assert len(ds) == 10000 and ds.shape == (28, 28, 1) and ds.n_classes == 10
    labels = ds.labels
    assert labels.dtype == np.int32 and labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10
    b = ds.batch([0, 9999, 5])
    assert b.shape == (3, 28, 28, 1) and b.dtype == np.uint8 and b.any()
    with pytest.raises(simclr.InvalidArgument):
        ds.batch([10000])
    with pytest.raises(simclr.InvalidArgument):
        ds.batch([-1])
    with pytest.raises(TypeError):
        ds.batch([0.5])
    with pytest.raises(simclr.InvalidArgument):
        ds.batch([])


@needs("dataset_open_idx")
def test_dataset_errors(ctx, tmp_path):
    with pytest.raises(simclr.SimclrIOError) as ei:
        simclr.Dataset.open_idx(ctx, tmp_path / "missing.gz")
    assert "missing.gz" in str(ei.value)
    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"\x00\x00\x08\x03" + b"\xff" * 12)       # IDX magic, absurd sizes, no data
    with pytest.raises(simclr.FormatError):
        simclr.Dataset.open_idx(ctx, junk)
    with pytest.raises(TypeError):
        simclr.Dataset.open_idx(ctx, None)
    with pytest.raises(TypeError):
        simclr.Dataset(ctx)


# ------------------------------------------------------------ evaluation --

@needs("knn_eval", "linear_probe")
def test_knn_and_probe_on_separable_features(ctx):
    rng = np.random.default_rng(10)
    centers = rng.standard_normal((3, 8)) * 5
    ytr, yte = rng.integers(0, 3, 60), rng.integers(0, 3, 30)
    xtr = (centers[ytr] + 0.1 * rng.standard_normal((60, 8))).astype(np.float32)
    xte = (centers[yte] + 0.1 * rng.standard_normal((30, 8))).astype(np.float32)
    assert simclr.knn_eval(ctx, xtr, ytr, xte, yte, k=5) == 1.0
    assert simclr.linear_probe(ctx, xtr, ytr, xte, yte, epochs=200) == 1.0
    with pytest.raises(simclr.ShapeError):                        # label count != rows: caught in Python
        simclr.knn_eval(ctx, xtr, ytr[:-1], xte, yte)
    with pytest.raises(TypeError):
        simclr.knn_eval(ctx, xtr, ytr.astype(np.float32), xte, yte)
    with pytest.raises(simclr.InvalidArgument):                   # label out of [0, n_classes)
        simclr.knn_eval(ctx, xtr, ytr, xte, yte, n_classes=2)
    with pytest.raises(simclr.ShapeError):
        simclr.knn_eval(ctx, xtr[:, :4], ytr, xte, yte)           # D differs


@needs("linear_probe_select", "linear_probe")
def test_linear_probe_select_matches_selection_by_hand(ctx):
    # a noisy linear rule: decays score differently on the validation fifth
    rng = np.random.default_rng(3)
    w = rng.standard_normal((20, 3))
    xtr = rng.standard_normal((103, 20)).astype(np.float32)
    xte = rng.standard_normal((60, 20)).astype(np.float32)
    ytr, yte = (xtr @ w).argmax(1), (xte @ w).argmax(1)
    flip = rng.random(103) < 0.3
    ytr[flip] = rng.integers(0, 3, flip.sum())
    grid = [30.0, 0.0, 0.3, 3.0]
    cut = 103 * 4 // 5
    acc = [simclr.linear_probe(ctx, xtr[:cut], ytr[:cut], xtr[cut:], ytr[cut:], n_classes=3, epochs=60,
                               weight_decay=g) for g in grid]
    assert len(set(acc)) > 1
    best = grid[int(np.argmax(acc))]                               # argmax: the first of ties
    assert best != grid[0]                                         # "always the first" would fail
    top1, chosen = simclr.linear_probe_select(ctx, xtr, ytr, xte, yte, n_classes=3, epochs=60, decays=grid)
    assert chosen == best
    assert top1 == simclr.linear_probe(ctx, xtr, ytr, xte, yte, n_classes=3, epochs=60, weight_decay=best)
    top1, chosen = simclr.linear_probe_select(ctx, xtr, ytr, xte, yte, epochs=20)   # the library's grid
    assert chosen in (1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1) and 0 <= top1 <= 1
    with pytest.raises(simclr.InvalidArgument, match=r"decays\[1\] = -1 must be finite and >= 0"):
        simclr.linear_probe_select(ctx, xtr, ytr, xte, yte, decays=[0.1, -1.0])
    with pytest.raises(simclr.InvalidArgument):
        simclr.linear_probe_select(ctx, xtr, ytr, xte, yte, decays=[])
    with pytest.raises(TypeError):
        simclr.linear_probe_select(ctx, xtr, ytr, xte, yte, decays="0.1")
    with pytest.raises(simclr.ShapeError, match="1 train rows cannot be split"):
        simclr.linear_probe_select(ctx, xtr[:1], ytr[:1], xte, yte, n_classes=3)
    with pytest.raises(simclr.InvalidArgument, match="epochs 0 out of range"):
        simclr.linear_probe_select(ctx, xtr, ytr, xte, yte, epochs=0)


@needs("extract_features", "dataset_open_idx", "resnet_create")
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="no Fashion-MNIST")
def test_extract_features(ctx):
    ds = simclr.Dataset.open_idx(ctx, FMNIST + "/t10k-images-idx3-ubyte.gz")
    enc = small_resnet(ctx)
    calls = []
    ctx.set_progress(lambda what, done, total: calls.append((what, done, total)))
    # A 10000-image pass at width 4 is quick; the progress callback must report it.
    f = simclr.extract_features(enc, ds, batch_size=1000)
    assert f.shape == (10000, 32) and np.isfinite(f).all()
    assert calls and calls[-1][1] == calls[-1][2]
    np.testing.assert_allclose(f[:3], enc.forward(ds.batch([0, 1, 2]).transpose(0, 3, 1, 2) / 255.0),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError):
        simclr.extract_features(enc, "ds")
