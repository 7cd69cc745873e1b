"""The demo's recipe in PyTorch, for the quality comparison in the README.

Same data (Debian's Fashion-MNIST), same model (ResNet-18, CIFAR stem, width W,
1 input channel, 2-layer 8W-8W-128 head), same augmentations (GRAYSCALE preset:
RandomResizedCrop(28, crop-min..1, bilinear), flip 0.5, brightness/contrast 0.4
with p 0.8), NT-Xent T, LARS (official formula) at 0.075*sqrt(B) with 10%
warmup and cosine decay (the official tf2 schedule), and the same probes
written out in torch: kNN (cosine, k 200, exp(sim/0.1) votes) and the
standardized logistic regression trained by full-batch Nesterov/FISTA with
step 1/L, as src/eval/probe.c does.

    torch_fashion_mnist.py [--epochs E] [--train-images N] [--width W]
        [--batch B] [--threads T] [--eval-train N] [--probe-epochs N]
"""
import argparse
import gzip
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--train-images", type=int, default=51200)
ap.add_argument("--width", type=int, default=16)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--temperature", type=float, default=0.2)
ap.add_argument("--crop-min", type=float, default=0.2)
ap.add_argument("--weight-decay", type=float, default=1e-6)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--eval-train", type=int, default=10000)
ap.add_argument("--eval-test", type=int, default=0)
ap.add_argument("--probe-epochs", type=int, default=300)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)


def idx(name):
    with gzip.open(os.path.join(a.data, name)) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


xtr, ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
xte, yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")

w = a.width


def make_narrow(width):
    """A width-w ResNet-18 from torchvision's blocks: w, 2w, 4w, 8w planes, CIFAR stem, 1 channel."""
    m = torchvision.models.resnet.ResNet.__new__(torchvision.models.resnet.ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes, m.dilation, m.groups, m.base_width = width, 1, 1, 64
    m.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False)
    m.bn1 = nn.BatchNorm2d(width)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.Identity()
    B = torchvision.models.resnet.BasicBlock
    m.layer1 = m._make_layer(B, width, 2)
    m.layer2 = m._make_layer(B, 2 * width, 2, stride=2)
    m.layer3 = m._make_layer(B, 4 * width, 2, stride=2)
    m.layer4 = m._make_layer(B, 8 * width, 2, stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.fc = nn.Identity()
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.constant_(mod.weight, 1)
            nn.init.constant_(mod.bias, 0)
    return m


enc = make_narrow(w)
d = 8 * w
head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 128))
model = nn.Sequential(enc, head)

aug = T.Compose([
    T.RandomResizedCrop(28, scale=(a.crop_min, 1.0)),
    T.RandomHorizontalFlip(),
    T.RandomApply([T.ColorJitter(0.4, 0.4)], p=0.8),
])

params = list(model.parameters())
mom = [torch.zeros_like(p) for p in params]
no_decay = [p.ndim == 1 for p in params]
base_lr = 0.075 * math.sqrt(a.batch)
n_train = min(a.train_images, len(xtr)) if a.train_images > 0 else len(xtr)
steps_per_epoch = n_train // a.batch
total = steps_per_epoch * a.epochs
warmup = total // 10


def lr_at(step):
    if total and step >= total:
        return 0.0
    if step < warmup:
        return base_lr * step / warmup
    return base_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def lars(lr, wd=a.weight_decay, eta=0.001, m=0.9):
    with torch.no_grad():
        for p, v, nd in zip(params, mom, no_decay):
            g = p.grad
            ratio = 1.0
            if not nd:
                g = g + wd * p
                wn, gn = p.norm(), g.norm()
                ratio = float(eta * wn / gn) if wn > 0 and gn > 0 else 1.0
            v.mul_(m).add_(g, alpha=lr * ratio)
            p.sub_(v)


def ntxent(z, t):
    z = F.normalize(z, dim=1)
    n2 = z.shape[0]
    sim = z @ z.t() / t
    sim.fill_diagonal_(float("-inf"))
    tgt = (torch.arange(n2) + n2 // 2) % n2
    return F.cross_entropy(sim, tgt)


x_all = torch.from_numpy(xtr.copy()).unsqueeze(1)  # [N, 1, 28, 28] uint8
t0 = time.time()
rng = np.random.default_rng(a.seed)
model.train()
for step in range(total):
    if step % steps_per_epoch == 0:
        order = rng.permutation(len(xtr))
    b = order[(step % steps_per_epoch) * a.batch:(step % steps_per_epoch + 1) * a.batch]
    imgs = x_all[b]
    v0 = torch.stack([aug(im) for im in imgs]).float() / 255
    v1 = torch.stack([aug(im) for im in imgs]).float() / 255
    loss = ntxent(model(torch.cat([v0, v1])), a.temperature)
    model.zero_grad(set_to_none=False)
    loss.backward()
    lars(lr_at(step))
    if step % 10 == 0 or step == total - 1:
        el = time.time() - t0
        print("\rstep %d/%d loss %.4f %.0f img/s" % (step + 1, total, loss.item(), 2 * a.batch * (step + 1) / el),
              end="", flush=True)
train_seconds = time.time() - t0
print("\npre-training: %d steps in %.1f s" % (total, train_seconds))


def subset(n, count):
    n = count if n <= 0 or n > count else n
    return (np.arange(n) * count // n).astype(np.int64)


itr, ite = subset(a.eval_train, len(xtr)), subset(a.eval_test, len(xte))


@torch.no_grad()
def embed(m, x):
    m.eval()
    out = [m(torch.from_numpy(x[i:i + 500].copy()).unsqueeze(1).float() / 255) for i in range(0, len(x), 500)]
    return torch.cat(out)


def knn(ftr, ltr, fte, lte, k=200, t=0.1, classes=10):
    ftr, fte = F.normalize(ftr, dim=1), F.normalize(fte, dim=1)
    correct = 0
    for i in range(0, len(fte), 1000):
        sim = fte[i:i + 1000] @ ftr.t()
        s, j = sim.topk(k, dim=1)
        votes = torch.zeros(len(s), classes, dtype=torch.float64)
        votes.scatter_add_(1, ltr[j], (s / t).exp().double())
        correct += (votes.argmax(1) == lte[i:i + 1000]).sum().item()
    return correct / len(fte)


def probe(ftr, ltr, fte, lte, epochs, wd=1e-4, classes=10):
    mu, sd = ftr.mean(0), ftr.std(0, unbiased=False)
    inv = torch.where(sd > 1e-12, 1 / sd, torch.zeros_like(sd))
    xs, xt = (ftr - mu) * inv, (fte - mu) * inv
    a_ = torch.cat([xs, torch.ones(len(xs), 1)], 1)
    v = torch.ones(a_.shape[1])
    for _ in range(50):  # power iteration for lambda_max(A^T A / n)
        v = v / v.norm()
        nv = a_.t() @ (a_ @ v) / len(a_)
        lam = float(nv @ v)
        v = nv
    step = 1.0 / (0.5 * lam * 1.1 + wd)
    W = torch.zeros(xs.shape[1], classes); c = torch.zeros(classes)
    Wy, cy, t = W.clone(), c.clone(), 1.0
    onehot = F.one_hot(ltr, classes).float()
    for _ in range(epochs):
        g = (torch.softmax(xs @ Wy + cy, 1) - onehot) / len(xs)
        gW, gc = xs.t() @ g + wd * Wy, g.sum(0)
        Wn, cn = Wy - step * gW, cy - step * gc
        tn = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        Wy, cy = Wn + (t - 1) / tn * (Wn - W), cn + (t - 1) / tn * (cn - c)
        W, c, t = Wn, cn, tn
    return ((xt @ W + c).argmax(1) == lte).float().mean().item()


ltr, lte = torch.from_numpy(ytr[itr].astype(np.int64)), torch.from_numpy(yte[ite].astype(np.int64))
rows = []
raw_tr = torch.from_numpy(xtr[itr].reshape(len(itr), -1).astype(np.float32) / 255)
raw_te = torch.from_numpy(xte[ite].reshape(len(ite), -1).astype(np.float32) / 255)
rows.append(("raw pixels", raw_tr, raw_te))
torch.manual_seed(a.seed + 7)
rnd = make_narrow(w)
rows.append(("random ResNet-18", embed(rnd, xtr[itr]), embed(rnd, xte[ite])))
rows.append(("SimCLR ResNet-18 (PyTorch)", embed(enc, xtr[itr]), embed(enc, xte[ite])))
print("\n%-28s %12s %14s" % ("representation (test set)", "kNN top-1", "linear top-1"))
for name, ftr, fte in rows:
    print("%-28s %11.2f%% %13.2f%%" % (name, 100 * knn(ftr, ltr, fte, lte), 100 * probe(ftr, ltr, fte, lte, a.probe_epochs)))
print("\ntotal %.1f s (pre-training %.1f s)" % (time.time() - t0, train_seconds))
