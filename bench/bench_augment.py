"""torchvision's SimCLR transforms on the same workload as bench_augment.c.

    bench_augment.py PRESET SRC_SIDE OUT_SIDE N ITERS THREADS PATH

PATH "tensor": transforms on float CHW tensors (what libsimclr computes);
PATH "pil": the usual PIL pipeline (PIL image -> transforms -> ToTensor).
Two views per image per iteration, one image at a time as a Dataset does, in
this process (no DataLoader workers). Prints "views_per_s <value>"."""
import sys
import time

import numpy as np
import torch
import torchvision.transforms as T


def pipeline(preset, out, path):
    s = 0.5 if preset == "cifar" else 1.0
    ops = [T.RandomResizedCrop(out, antialias=False) if path == "tensor" else T.RandomResizedCrop(out),
           T.RandomHorizontalFlip(),
           T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
           T.RandomGrayscale(p=0.2)]
    if preset == "v1":
        k = int(0.1 * out) // 2 * 2 + 1
        ops.append(T.RandomApply([T.GaussianBlur(k, (0.1, 2.0))], p=0.5))
    if path == "tensor":
        return T.Compose([T.ConvertImageDtype(torch.float32)] + ops)
    return T.Compose(ops + [T.ToTensor()])


def main():
    preset, side, out, n, iters, threads, path = sys.argv[1:8]
    side, out, n, iters, threads = int(side), int(out), int(n), int(iters), int(threads)
    torch.set_num_threads(threads)
    i, y, x, c = np.meshgrid(np.arange(n), np.arange(side), np.arange(side), np.arange(3), indexing="ij")
    images = ((i * 7 + y * 3 + x * 5 + c * 11) % 256).astype(np.uint8)
    if path == "tensor":
        data = [torch.from_numpy(im).permute(2, 0, 1).contiguous() for im in images]
    else:
        from PIL import Image
        data = [Image.fromarray(im) for im in images]
    tf = pipeline(preset, out, path)
    torch.manual_seed(0)
    for im in data[: min(n, 8)]:  # warm-up
        tf(im)
    t0 = time.perf_counter()
    for _ in range(iters):
        for im in data:
            tf(im)
            tf(im)
    dt = time.perf_counter() - t0
    print("views_per_s %.1f" % (2.0 * n * iters / dt))


if __name__ == "__main__":
    main()
