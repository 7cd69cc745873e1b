"""The same SimCLR step in PyTorch: the CIFAR augmentation recipe (s = 0.5)
batched on tensors (per-sample random resized crops through
torchvision.ops.roi_align, per-sample flips and colour jitter as broadcast
arithmetic: what a practitioner writes instead of per-image PIL transforms),
ResNet-18 CIFAR stem width 64, 512-512-128 head, NT-Xent
(T = 0.5), LARS written as in the official SimCLR code. Prints views/s per
repeat. MODEL fmnist16 is the Fashion-MNIST demo's model instead: width 16,
1 channel, 28x28, 128-128-128 head, the GRAYSCALE augmentations.
    torch_step.py THREADS REPEATS [PAIRS] [channels_last 0|1] [cifar64|fmnist16]"""
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import roi_align

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# The step's memory: peak resident size minus what the process held before
# the model existed (the interpreter and torch's own libraries excluded).
rss_base = rss_mb()
threads, repeats = int(sys.argv[1]), int(sys.argv[2])
pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 128
channels_last = len(sys.argv) > 4 and sys.argv[4] == "1"
fmnist = len(sys.argv) > 5 and sys.argv[5] == "fmnist16"
torch.set_num_threads(threads)
torch.manual_seed(0)

width, channels, size = (16, 1, 28) if fmnist else (64, 3, 32)
if fmnist:  # torchvision's blocks at width 16, as bench/torch_fashion_mnist.py builds them
    B = torchvision.models.resnet.BasicBlock
    enc = torchvision.models.resnet.ResNet(B, [2, 2, 2, 2])
    enc.inplanes = width
    enc.layer1 = enc._make_layer(B, width, 2)
    enc.layer2 = enc._make_layer(B, 2 * width, 2, stride=2)
    enc.layer3 = enc._make_layer(B, 4 * width, 2, stride=2)
    enc.layer4 = enc._make_layer(B, 8 * width, 2, stride=2)
    enc.bn1 = nn.BatchNorm2d(width)
else:
    enc = torchvision.models.resnet18()
enc.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
enc.maxpool = nn.Identity()
enc.fc = nn.Identity()
d = 8 * width
head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 128))
model = nn.Sequential(enc, head)
if channels_last:
    model = model.to(memory_format=torch.channels_last)

s = 0.5  # colour-jitter strength of the recipe


def ntxent(z, t=0.5):
    z = F.normalize(z, dim=1)
    n2 = z.shape[0]
    sim = z @ z.t() / t
    sim.fill_diagonal_(float("-inf"))
    target = torch.arange(n2)
    target = (target + n2 // 2) % n2
    return F.cross_entropy(sim, target)


params = list(model.parameters())
momentum = [torch.zeros_like(p) for p in params]
no_decay = [p.ndim == 1 for p in params]


def lars_step(lr=0.3, wd=1e-6, eta=0.001, m=0.9):
    with torch.no_grad():
        for p, v, nd in zip(params, momentum, no_decay):
            g = p.grad
            if not nd:
                g = g + wd * p
                wn, gn = p.norm(), g.norm()
                ratio = torch.where((wn > 0) & (gn > 0), eta * wn / gn, torch.ones_like(wn))
            else:
                ratio = 1.0
            v.mul_(m).add_(g * (lr * ratio))
            p.sub_(v)


images = torch.randint(0, 256, (pairs, channels, size, size), dtype=torch.uint8)


def gray(x):
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def batched_aug(u8):
    """RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3), flip, ColorJitter
    (p 0.8) and, for RGB, RandomGrayscale (p 0.2), with per-sample
    parameters, on the whole batch at once."""
    n, c, h, w = u8.shape
    x = u8.float() / 255
    area = torch.empty(n).uniform_(0.08, 1.0) * h * w
    logr = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3))
    r = torch.exp(logr)
    cw = torch.sqrt(area * r).clamp(1, w)
    ch = torch.sqrt(area / r).clamp(1, h)
    x0 = torch.rand(n) * (w - cw)
    y0 = torch.rand(n) * (h - ch)
    boxes = torch.stack([torch.arange(n, dtype=torch.float), x0, y0, x0 + cw, y0 + ch], 1)
    x = roi_align(x, boxes, (size, size), 1.0, 2, True)
    flip = torch.rand(n) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    jit = (torch.rand(n) < 0.8)[:, None, None, None]
    b = torch.empty(n, 1, 1, 1).uniform_(1 - 0.8 * s, 1 + 0.8 * s)
    y = x * b
    cf = torch.empty(n, 1, 1, 1).uniform_(1 - 0.8 * s, 1 + 0.8 * s)
    m = gray(y).mean(dim=(1, 2, 3), keepdim=True)
    y = (y - m) * cf + m
    if c == 3:
        sf = torch.empty(n, 1, 1, 1).uniform_(1 - 0.8 * s, 1 + 0.8 * s)
        g = gray(y)
        y = (y - g) * sf + g
        # Hue: a rotation of the chroma plane (YIQ), per sample.
        th = torch.empty(n).uniform_(-0.2 * s, 0.2 * s) * 2 * math.pi
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        q = torch.einsum("ij,njhw->nihw", yiq, y)
        cs, sn = torch.cos(th)[:, None, None], torch.sin(th)[:, None, None]
        i2 = q[:, 1] * cs - q[:, 2] * sn
        q2 = q[:, 1] * sn + q[:, 2] * cs
        q = torch.stack([q[:, 0], i2, q2], 1)
        y = torch.einsum("ij,njhw->nihw", torch.linalg.inv(yiq), q)
    x = torch.where(jit, y.clamp(0, 1), x)
    if c == 3:
        gmask = (torch.rand(n) < 0.2)[:, None, None, None]
        x = torch.where(gmask, gray(x).expand(-1, 3, -1, -1), x)
    return x


def step():
    v0 = batched_aug(images)
    v1 = batched_aug(images)
    x = torch.cat([v0, v1])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    loss = ntxent(model(x))
    model.zero_grad(set_to_none=False)
    loss.backward()
    lars_step()


step()
for _ in range(repeats):
    t0 = time.perf_counter()
    step()
    print("%.2f" % (2 * pairs / (time.perf_counter() - t0)), flush=True)
print("# step_mem_mb=%.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_base))
