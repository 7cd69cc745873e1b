"""PIL's JPEG decode throughput on the files bench/bench_decode.sh wrote
(Image.open + convert("RGB") + numpy array, as torchvision's ImageFolder
loader does), and a writer for those files.

  python3 bench_decode.py write DIR N SIZE   # N JPEGs of SIZE x SIZE, quality 90
  python3 bench_decode.py run DIR [REPEATS]
"""
import os
import sys
import time

import numpy as np
from PIL import Image


def write(d, n, size):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        base = np.stack([(xx * (i % 7 + 1)) % 256, (yy * (i % 5 + 1)) % 256, (xx + yy + i) % 256], -1)
        img = np.clip(base + rng.integers(-12, 13, size=base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img, "RGB").save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


def run(d, repeats):
    files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".jpg"))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p in files:
            with open(p, "rb") as fh:
                np.asarray(Image.open(fh).convert("RGB"))
        best = min(best, time.perf_counter() - t0)
    print(f"PIL {Image.__version__} decode, 1 thread: {len(files) / best:.0f} images/s "
          f"({len(files)} files, best of {repeats})")
    return len(files) / best


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        run(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
