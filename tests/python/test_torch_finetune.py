"""Fine-tuning and distillation pieces (issue 25) against PyTorch, through the
public C API (ctypes on SIMCLR_LIBRARY):

 - the cross-entropy loss with label smoothing and its gradient:
   F.cross_entropy(z, y, label_smoothing=eps) and autograd;
 - the distillation loss and its gradient at tau = 0.1, 1 and 4:
   (1 - w) * tau^2 * F.cross_entropy(s / tau, softmax(t / tau)) (soft
   targets) + w * F.cross_entropy on the labelled rows; and with the tau^2
   scaling off;
 - a classifier exported with simclr_export_classifier_safetensors loads into
   torchvision's ResNet (ImageNet stem; CIFAR stem with conv1 and maxpool
   rebuilt) and ViT with their classifier heads, strict=True, and gives the
   same logits;
 - the classifier's probabilities on host uint8 images of several sizes
   against torchvision's evaluation transform (F.resize antialias=True, then
   F.center_crop) and the same model in eval mode, softmax.

References are computed in float64 from the same float32 inputs; the bound
is max(TOL, 3 x torch float32's own error against it), as the other
cross-checks do. The losses have no ReLU; the networks are compared in
forward only, where ReLU and max pooling are continuous (a value within
rounding of a kink moves the output by rounding only), so no ReLU margin is
needed there (test_torch_eval.py's argument). What is discontinuous here is
the ranking: the top-k classes are compared only where the float64
reference's consecutive probabilities are further apart than the
tolerance, and that margin is asserted."""
import ctypes
import json
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.transforms.functional as TF

from test_torch_model import EVAL, P, Ctx, lib, ok, params, rel_err

TOL = 1e-5  # losses: a few float32 roundings of O(1) values
NET_TOL = 1e-4  # networks: as test_torch_model.py (18 layers of float32 sums in other orders)

i32p = ctypes.POINTER(ctypes.c_int32)
lib.simclr_cross_entropy_create.argtypes = [P, ctypes.c_int, ctypes.POINTER(P)]
lib.simclr_distill_create.argtypes = [P, ctypes.c_int, ctypes.c_double, ctypes.POINTER(P)]
lib.simclr_loss_set.argtypes = [P, ctypes.c_int, ctypes.c_double]
lib.simclr_loss_destroy.argtypes = [P]
lib.simclr_loss_forward_labels.argtypes = [P, P, P, ctypes.c_int64, ctypes.POINTER(ctypes.c_float),
                                           ctypes.POINTER(ctypes.c_float)]
lib.simclr_loss_forward_distill.argtypes = [P, P, P, P, ctypes.c_int64, ctypes.POINTER(ctypes.c_float),
                                            ctypes.POINTER(ctypes.c_float)]
lib.simclr_loss_backward.argtypes = [P, P]
lib.simclr_resnet_create_v2.argtypes = [P, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int,
                                        ctypes.c_uint64, ctypes.POINTER(P)]
lib.simclr_vit_create.argtypes = [P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_uint64, ctypes.POINTER(P)]
lib.simclr_linear_head_create.argtypes = [P, ctypes.c_int64, ctypes.c_int, ctypes.c_uint64, ctypes.POINTER(P)]
lib.simclr_export_classifier_safetensors.argtypes = [P, P, ctypes.c_char_p]
lib.simclr_classifier_create.argtypes = [P, P, P, ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(P)]
lib.simclr_classifier_destroy.argtypes = [P]
lib.simclr_classifier_set.argtypes = [P, ctypes.c_int, ctypes.c_double]
lib.simclr_classifier_run.argtypes = [P, P, P]
lib.simclr_classifier_topk.argtypes = [P, P, ctypes.c_int, P, P, ctypes.c_int64]
lib.simclr_image_list_create.argtypes = [P, ctypes.c_int64, ctypes.POINTER(P)]
lib.simclr_image_list_destroy.argtypes = [P]
lib.simclr_image_list_add.argtypes = [P, P, ctypes.c_int64, ctypes.c_int64]

LABEL_SMOOTHING, LABEL_WEIGHT, TEMPERATURE_SCALE = 201, 300, 301
CLASSIFIER_RESIZE = 100
STEM_CIFAR, STEM_IMAGENET = 0, 1


def cross_bound(ours, ref64, ref32):
    """max(TOL, 3 x torch float32's error); asserts ours within it."""
    floor = rel_err(ref32, ref64)
    tol = max(TOL, 3 * floor)
    err = rel_err(ours, ref64)
    assert err <= tol, "error %g above %g (torch float32: %g)" % (err, tol, floor)
    return err


# ---- losses ------------------------------------------------------------------

def run_loss(make, forward_args, shape):
    """(value, accuracy, gradient) of a loss made by make(ctx) on the "cpu" backend."""
    c = Ctx()
    loss = P()
    try:
        ok(make(c.h, loss))
        g, g_np = c.wrap(np.zeros(shape, np.float32))
        value, acc = ctypes.c_float(), ctypes.c_float()
        ok(forward_args(c, loss, value, acc))
        ok(lib.simclr_loss_backward(loss, g))
        return value.value, acc.value, g_np.copy()
    finally:
        lib.simclr_loss_destroy(loss)
        c.close()


def torch_ce(z, y, eps, dtype):
    zt = torch.tensor(z, dtype=dtype, requires_grad=True)
    loss = F.cross_entropy(zt, torch.tensor(y, dtype=torch.long), label_smoothing=eps)
    loss.backward()
    return loss.item(), zt.grad.numpy()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_cross_entropy_matches_torch(eps, scale):
    g = np.random.default_rng(int(eps * 10) + int(scale))
    n, k = 37, 10
    z = (g.standard_normal((n, k)) * scale).astype(np.float32)
    y = g.integers(0, k, n).astype(np.int32)

    def make(ctx, loss):
        st = lib.simclr_cross_entropy_create(ctx, k, ctypes.byref(loss))
        return st or lib.simclr_loss_set(loss, LABEL_SMOOTHING, eps)

    def fwd(c, loss, value, acc):
        zt, _ = c.wrap(z)
        return lib.simclr_loss_forward_labels(loss, zt, y.ctypes.data, n, ctypes.byref(value), ctypes.byref(acc))

    value, acc, grad = run_loss(make, fwd, z.shape)
    v64, g64 = torch_ce(z.astype(np.float64), y, eps, torch.float64)
    v32, g32 = torch_ce(z, y, eps, torch.float32)
    cross_bound(np.array([value]), np.array([v64]), np.array([v32]))
    cross_bound(grad, g64, g32)
    assert acc == pytest.approx(float(np.mean(np.argmax(z, 1) == y)), abs=1e-7)


def torch_distill(s, t, y, tau, w, eps, t2, dtype):
    st = torch.tensor(s, dtype=dtype, requires_grad=True)
    tt = torch.tensor(t, dtype=dtype)
    target = F.softmax(tt / tau, dim=1)
    loss = (1 - w) * (tau * tau if t2 else 1.0) * F.cross_entropy(st / tau, target)
    lab = y >= 0 if y is not None else np.zeros(len(s), bool)
    if w > 0 and lab.any():
        idx = torch.tensor(np.nonzero(lab)[0])
        loss = loss + w * F.cross_entropy(st[idx], torch.tensor(y[lab], dtype=torch.long), label_smoothing=eps)
    loss.backward()
    return loss.item(), st.grad.numpy()


@pytest.mark.parametrize("tau", [0.1, 1.0, 4.0])
@pytest.mark.parametrize("t2,w,eps,labelled", [(1, 0.0, 0.0, False), (0, 0.0, 0.0, False), (1, 0.3, 0.1, True),
                                               (0, 0.5, 0.0, True)])
def test_distillation_matches_torch(tau, t2, w, eps, labelled):
    g = np.random.default_rng(int(tau * 10) + 7 * t2 + int(w * 10))
    n, k = 29, 10
    s = (g.standard_normal((n, k)) * 3).astype(np.float32)
    t = (g.standard_normal((n, k)) * 3).astype(np.float32)
    y = np.where(g.random(n) < 0.4, g.integers(0, k, n), -1).astype(np.int32) if labelled else None

    def make(ctx, loss):
        st = lib.simclr_distill_create(ctx, k, tau, ctypes.byref(loss))
        for key, v in ((TEMPERATURE_SCALE, t2), (LABEL_WEIGHT, w), (LABEL_SMOOTHING, eps)):
            st = st or lib.simclr_loss_set(loss, key, v)
        return st

    def fwd(c, loss, value, acc):
        sv, _ = c.wrap(s)
        tv, _ = c.wrap(t)
        lab = y.ctypes.data if labelled else None
        return lib.simclr_loss_forward_distill(loss, sv, tv, lab, n if labelled else 0, ctypes.byref(value),
                                               ctypes.byref(acc))

    value, acc, grad = run_loss(make, fwd, s.shape)
    v64, g64 = torch_distill(s.astype(np.float64), t.astype(np.float64), y, tau, w, eps, t2, torch.float64)
    v32, g32 = torch_distill(s, t, y, tau, w, eps, t2, torch.float32)
    cross_bound(np.array([value]), np.array([v64]), np.array([v32]))
    cross_bound(grad, g64, g32)
    assert acc == pytest.approx(float(np.mean(np.argmax(s, 1) == np.argmax(t, 1))), abs=1e-7)


# ---- the classifier: export and probabilities ---------------------------------------

def read_safetensors(path):
    """An independent reader of the format (8-byte LE length, JSON, data)."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    buf = data[8 + n:]
    dt = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(buf[b:e], dtype=dt[info["dtype"]]).reshape(info["shape"]).copy())
    return header["__metadata__"], out


def perturb(mine, rng):
    """Non-trivial BN statistics and affine parameters, and a head that
    spreads the classes (softmax far from uniform, not saturated)."""
    for name, (v, _, _) in mine.items():
        if name.endswith("running_mean"):
            v[:] = rng.normal(0, 0.1, v.shape)
        elif name.endswith("running_var"):
            v[:] = rng.uniform(0.5, 2.0, v.shape)
        elif name.endswith(".bias") and ("bn" in name or "downsample.1" in name):
            v[:] = rng.normal(0, 0.1, v.shape)


class Model:
    """An encoder and a linear head of ours, exported as a classifier."""

    def __init__(self, c, kind, classes, seed):
        self.enc, self.head = P(), P()
        if kind == "resnet-imagenet":
            ok(lib.simclr_resnet_create_v2(c.h, 18, 64, 3, STEM_IMAGENET, seed, ctypes.byref(self.enc)))
        elif kind == "resnet-cifar":
            ok(lib.simclr_resnet_create_v2(c.h, 18, 64, 1, STEM_CIFAR, seed, ctypes.byref(self.enc)))
        else:  # a small ViT: 32x32 images, patch 4, hidden 32, 2 layers, 2 heads, MLP 64, class token
            ok(lib.simclr_vit_create(c.h, 32, 4, 3, 32, 2, 2, 64, 0, seed, ctypes.byref(self.enc)))
        self.d = lib.simclr_module_output_dim(self.enc)
        ok(lib.simclr_linear_head_create(c.h, self.d, classes, seed + 1, ctypes.byref(self.head)))
        perturb(params(self.enc), np.random.default_rng(seed))
        w = params(self.head)["fc.weight"][0]
        w *= 4  # wider logits than nn.Linear's init: probabilities from ~0.01 to ~0.9

    def logits(self, c, x):
        xt, _ = c.wrap(x)
        f, f_np = c.wrap(np.zeros((x.shape[0], self.d), np.float32))
        ok(lib.simclr_module_forward(self.enc, xt, EVAL, f))
        y, y_np = c.wrap(np.zeros((x.shape[0], lib.simclr_module_output_dim(self.head)), np.float32))
        ok(lib.simclr_module_forward(self.head, f, EVAL, y))
        return y_np.copy()

    def close(self):
        lib.simclr_module_destroy(self.head)
        lib.simclr_module_destroy(self.enc)


def torchvision_model(kind, classes):
    if kind == "resnet-imagenet":
        return torchvision.models.resnet18(num_classes=classes)
    if kind == "resnet-cifar":
        m = torchvision.models.resnet18(num_classes=classes)
        m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
        return m
    return torchvision.models.VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=2,
                                                hidden_dim=32, mlp_dim=64, num_classes=classes)


KINDS = [("resnet-imagenet", 3, 64), ("resnet-cifar", 1, 32), ("vit", 3, 32)]


@pytest.mark.parametrize("kind,channels,side", KINDS)
def test_exported_classifier_loads_strict_and_gives_the_same_logits(kind, channels, side, tmp_path):
    classes = 7
    c = Ctx()
    m = Model(c, kind, classes, 11)
    try:
        path = str(tmp_path / "clf.safetensors")
        ok(lib.simclr_export_classifier_safetensors(m.enc, m.head, path.encode()))
        meta, tensors = read_safetensors(path)
        assert meta["simclr.classes"] == str(classes)
        assert meta["simclr.head"] == "linear_head in=%d out=%d" % (m.d, classes)
        assert meta["simclr.arch"] == ("vit" if kind == "vit" else "resnet18")
        head = "heads.head" if kind == "vit" else "fc"
        assert tensors[head + ".weight"].shape == (classes, m.d) and tensors[head + ".bias"].shape == (classes,)
        tv = torchvision_model(kind, classes)
        tv.load_state_dict(tensors, strict=True)
        tv.eval()
        x = np.random.default_rng(2).uniform(0, 1, (3, channels, side, side)).astype(np.float32)
        ours = m.logits(c, x)
        with torch.no_grad():
            theirs64 = copy_model(tv, torch.float64)(torch.tensor(x, dtype=torch.float64)).numpy()
            theirs32 = tv(torch.from_numpy(x)).numpy()
        floor = rel_err(theirs32, theirs64)
        err = rel_err(ours, theirs64)
        assert err <= max(NET_TOL, 3 * floor), (err, floor)
        assert rel_err(ours, theirs32) < NET_TOL  # the brief's 1e-4 against the float32 model itself
        assert np.std(theirs64) > 0.1  # the logits differ between classes and images
    finally:
        m.close()
        c.close()


def copy_model(model, dtype):
    import copy
    return copy.deepcopy(model).to(dtype).eval()


def host_images(channels, sizes, seed):
    g = np.random.default_rng(seed)
    return [g.integers(0, 256, (h, w, channels), dtype=np.uint8) for h, w in sizes]


def torch_eval_transform(img, resize, out, dtype):
    """torchvision's evaluation transform on a uint8 [H, W, C] image."""
    t = torch.tensor(img, dtype=dtype).permute(2, 0, 1) / 255.0
    t = TF.resize(t, [resize], antialias=True)
    return TF.center_crop(t, [out, out])


@pytest.mark.parametrize("kind,channels,side", KINDS)
def test_classifier_probabilities_match_torchvision(kind, channels, side, tmp_path):
    classes = 7
    c = Ctx()
    m = Model(c, kind, classes, 5)
    clf, lst = P(), P()
    sizes = [(side, side), (side + 13, side + 5), (2 * side + 3, side + 20), (side + 1, 3 * side)]
    imgs = host_images(channels, sizes, 3)
    resize = int(np.floor(side / 0.875 + 0.5))  # the default, set explicitly
    try:
        ok(lib.simclr_classifier_create(c.h, m.enc, m.head, side, side, ctypes.byref(clf)))
        ok(lib.simclr_classifier_set(clf, CLASSIFIER_RESIZE, resize))
        ok(lib.simclr_image_list_create(c.h, channels, ctypes.byref(lst)))
        for a in imgs:
            ok(lib.simclr_image_list_add(lst, a.ctypes.data, a.shape[0], a.shape[1]))
        probs_t, probs = c.wrap(np.zeros((len(imgs), classes), np.float32))
        ok(lib.simclr_classifier_run(clf, lst, probs_t))

        tv = torchvision_model(kind, classes)
        path = str(tmp_path / "clf.safetensors")
        ok(lib.simclr_export_classifier_safetensors(m.enc, m.head, path.encode()))
        tv.load_state_dict(read_safetensors(path)[1], strict=True)
        ref = {}
        for dtype in (torch.float64, torch.float32):
            model = copy_model(tv, dtype)
            x = torch.stack([torch_eval_transform(a, resize, side, dtype) for a in imgs])
            with torch.no_grad():
                ref[dtype] = F.softmax(model(x), dim=1).double().numpy()
        floor = rel_err(ref[torch.float32], ref[torch.float64])
        err = rel_err(probs, ref[torch.float64])
        assert err <= max(NET_TOL, 3 * floor), (err, floor)
        assert np.allclose(probs.sum(1), 1, atol=1e-6)
        p64 = ref[torch.float64]
        assert p64.max() > 0.3 and p64.min() < 0.1  # not uniform: the comparison means something

        # top-k where the ranking is decided beyond the tolerance (asserted)
        k = 3
        cls = np.zeros(len(imgs) * k, np.int32)
        tp = np.zeros(len(imgs) * k, np.float32)
        ok(lib.simclr_classifier_topk(clf, lst, k, cls.ctypes.data, tp.ctypes.data, len(imgs) * k))
        tol = max(NET_TOL, 3 * floor) * p64.max()
        checked = 0
        for i in range(len(imgs)):
            order = np.argsort(-p64[i], kind="stable")
            gaps = -np.diff(p64[i][order])[:k]
            for j in range(k):
                if gaps[j] > 2 * tol and (j == 0 or gaps[j - 1] > 2 * tol):
                    assert cls[i * k + j] == order[j], (i, j)
                    checked += 1
        assert checked >= len(imgs)  # the ranking margin holds for most of the places compared
        assert np.array_equal(tp, probs[np.repeat(np.arange(len(imgs)), k), cls])
    finally:
        lib.simclr_classifier_destroy(clf)
        lib.simclr_image_list_destroy(lst)
        m.close()
        c.close()
