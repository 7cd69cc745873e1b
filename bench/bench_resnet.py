"""PyTorch side of bench_resnet.sh: the same workload as bench_resnet.c.

    bench_resnet.py batch threads iters width size layout(nchw|channels_last)

ResNet-18 as torchvision's with the CIFAR stem (3x3 stride-1 conv1, no max
pool, no fc); forward in train mode + backward of y against a fixed dy, no
input gradient. torch.set_num_threads is set explicitly. Prints images/s
(median after a warm-up step), peak RSS of this process and the CPU kernels."""
import resource
import sys
import time

import torch
import torch.nn as nn
import torchvision


def main():
    batch, threads, iters, width, size = (int(a) for a in sys.argv[1:6])
    layout = sys.argv[6]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    if width != 64:
        raise SystemExit("bench_resnet.py: torchvision fixes width 64")
    model.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    model.train()
    x = torch.rand(batch, 3, size, size)
    dy = torch.rand(batch, 8 * width) * 2 - 1
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for it in range(iters + 1):
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=False)
        model(x).backward(dy)
        if it > 0:
            times.append(time.perf_counter() - t0)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "n/a")()
    print("images_per_sec=%.2f maxrss_mb=%.0f torch=%s mkldnn=%s cpu_capability=%s" % (
        batch / times[len(times) // 2], rss, torch.__version__, torch.backends.mkldnn.is_available(), cap))


if __name__ == "__main__":
    main()
