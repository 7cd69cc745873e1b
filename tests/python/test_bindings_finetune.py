"""The Python bindings of the fine-tuning pieces (issue 25): CrossEntropy and
Distill against a NumPy reference, LinearHead's names, label_subset and its
file, Classifier (probabilities, top-k, evaluation, 4-D arrays and lists),
classification_metrics, export_classifier_safetensors; errors raise with the
library's message."""
import numpy as np
import pytest

import libsimclr as simclr


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture()
def ctx():
    with simclr.Context("cpu", 2) as c:
        yield c


def test_cross_entropy_and_distill(ctx):
    g = np.random.default_rng(0)
    z = g.standard_normal((8, 5)).astype(np.float32)
    y = g.integers(0, 5, 8)
    ce = simclr.CrossEntropy(ctx, 5, label_smoothing=0.2)
    value, acc = ce(z, y)
    p = softmax(z.astype(np.float64))
    q = np.full((8, 5), 0.2 / 5)
    q[np.arange(8), y] += 0.8
    assert value == pytest.approx(float(-(q * np.log(p)).sum(1).mean()), rel=1e-6)
    assert acc == pytest.approx(float(np.mean(z.argmax(1) == y)))
    assert np.allclose(ce.backward(), (p - q) / 8, atol=1e-7)
    assert ce.get(simclr.LossParam.LABEL_SMOOTHING) == pytest.approx(0.2)
    with pytest.raises(simclr.InvalidArgument, match="labels\\[0\\] = 7 out of range"):
        ce(z, np.full(8, 7))
    with pytest.raises(simclr.ShapeError):
        ce(z, y[:7])

    t = g.standard_normal((8, 5)).astype(np.float32)
    kd = simclr.Distill(ctx, 5, temperature=2.0)
    value, agree = kd(z, t)
    pt, ps = softmax(t / 2.0), softmax(z / 2.0)
    assert value == pytest.approx(float(4 * -(pt * np.log(ps)).sum(1).mean()), rel=1e-6)
    assert np.allclose(kd.backward(), 4 * (ps - pt) / (2 * 8), atol=1e-7)
    assert agree == pytest.approx(float(np.mean(z.argmax(1) == t.argmax(1))))
    plain = simclr.Distill(ctx, 5, temperature=2.0, scale_t2=False, label_weight=0.5)
    lab = np.array([-1, 2, -1, -1, 0, -1, -1, -1])
    value, _ = plain(z, t, lab)
    ce_lab = -np.log(p[[1, 4], [2, 0]]).mean()
    assert value == pytest.approx(float(0.5 * -(pt * np.log(ps)).sum(1).mean() + 0.5 * ce_lab), rel=1e-6)
    with pytest.raises(simclr.InvalidArgument, match="read-only"):
        kd.set(simclr.LossParam.TEMPERATURE, 3)


def test_label_subsets_and_their_file(ctx, tmp_path):
    labels = np.repeat(np.arange(3), [50, 30, 20])
    idx = simclr.label_subset(ctx, labels, fraction=0.1, seed=4)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [5, 3, 2]
    assert np.array_equal(idx, simclr.label_subset(ctx, labels, fraction=0.1, seed=4))
    six = simclr.label_subset(ctx, labels, per_class=6, seed=4)
    assert np.bincount(labels[six]).tolist() == [6, 6, 6]
    with pytest.raises(simclr.InvalidArgument, match="class 2 has 20 labelled images, 21 requested"):
        simclr.label_subset(ctx, labels, per_class=21)
    path = tmp_path / "subset.txt"
    simclr.save_label_subset(ctx, path, idx, len(labels), fraction=0.1, seed=4)
    back, seed, fraction, per_class = simclr.load_label_subset(ctx, path, len(labels))
    assert np.array_equal(back, idx) and seed == 4 and fraction == 0.1 and per_class == 0
    with pytest.raises(simclr.ShapeError, match="this one has 99"):
        simclr.load_label_subset(ctx, path, 99)


def test_classifier(ctx, tmp_path):
    enc = simclr.ResNet(ctx, 18, width=4, in_channels=3, stem="cifar", seed=1)
    head = simclr.LinearHead(ctx, enc.output_dim, 4, seed=2)
    assert list(head.params) == ["fc.weight", "fc.bias"]
    head.params["fc.weight"].value.numpy(copy=False)[...] *= 20
    g = np.random.default_rng(1)
    batch = g.integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)
    clf = simclr.Classifier(ctx, enc, head, 16)
    assert clf.n_classes == 4
    probs = clf(batch)
    assert probs.shape == (5, 4) and np.allclose(probs.sum(1), 1, atol=1e-6)
    assert np.array_equal(probs, clf([batch[i] for i in range(5)]))  # a list of the same images
    cls, p = clf.topk(batch, 2)
    assert np.array_equal(cls[:, 0], probs.argmax(1)) and np.array_equal(p[:, 0], probs.max(1))
    acc, conf, recall = clf.evaluate(batch, probs.argmax(1))
    assert acc == 1.0 and conf.trace() == 5
    acc2, conf2, recall2 = simclr.classification_metrics(probs.argmax(1), probs.argmax(1), 4)
    assert acc2 == 1.0 and np.array_equal(conf, conf2)
    with pytest.raises(simclr.InvalidArgument, match="out of range 0..3"):
        clf.evaluate(batch, np.full(5, 4))
    with pytest.raises(simclr.InvalidArgument, match="not a linear head"):
        simclr.Classifier(ctx, enc, simclr.MLPHead(ctx, enc.output_dim, 8, 4), 16)
    path = tmp_path / "clf.safetensors"
    simclr.export_classifier_safetensors(enc, head, path)
    head2 = simclr.LinearHead(ctx, enc.output_dim, 4, seed=9)
    head2.import_safetensors(path)
    assert np.array_equal(head2.params["fc.weight"].value.numpy(), head.params["fc.weight"].value.numpy())
    clf.close()
