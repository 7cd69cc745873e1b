"""Embedding extraction in PyTorch: EVAL forward of torchvision's ResNet-18
(CIFAR stem, chosen width), under torch.inference_mode, in the chosen memory
layout. Prints images/s (median of ITERS after a warm-up) and the peak
resident memory.
    torch_eval.py THREADS ITERS BATCH WIDTH SIZE CHANNELS CHANNELS_LAST(0|1)"""
import resource
import sys
import time

import torch
import torch.nn as nn
import torchvision

threads, iters, batch, width, size, channels, cl = (int(a) for a in sys.argv[1:8])
torch.set_num_threads(threads)
torch.manual_seed(0)
B = torchvision.models.resnet.BasicBlock
enc = torchvision.models.resnet.ResNet(B, [2, 2, 2, 2])
enc.inplanes = width
enc.layer1 = enc._make_layer(B, width, 2)
enc.layer2 = enc._make_layer(B, 2 * width, 2, stride=2)
enc.layer3 = enc._make_layer(B, 4 * width, 2, stride=2)
enc.layer4 = enc._make_layer(B, 8 * width, 2, stride=2)
enc.bn1 = nn.BatchNorm2d(width)
enc.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
enc.maxpool = nn.Identity()
enc.fc = nn.Identity()
enc.eval()
x = torch.rand(batch, channels, size, size)
if cl:
    enc = enc.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
reps = 1 if batch >= 32 else 32 // batch
times = []
with torch.inference_mode():
    for it in range(iters + 1):
        t0 = time.perf_counter()
        for _ in range(reps):
            enc(x)
        if it:
            times.append((time.perf_counter() - t0) / reps)
times.sort()
print("%.2f" % (batch / times[len(times) // 2]))
print("# maxrss_mb=%.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), file=sys.stderr)
