"""Full-resolution crops and the evaluation transform against torchvision 0.14.

The C side is tests/tool_images.c (built by `make tools`):
 - crop boxes: torchvision's RandomResizedCrop.get_params, fed the same
   uniform draws the library makes, must return the library's box exactly
   (the attempts, the rounding, the acceptance test, the center-crop fallback);
 - the antialiased resize of a box: F.resized_crop(..., antialias=True);
 - the embedder's transform: F.center_crop(F.resize(img, S, antialias=True)).
"""
import os
import subprocess
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F

from conftest import ROOT

BUILD = os.environ.get("SIMCLR_BUILD", os.path.join(ROOT, "build", "main"))
TOOL = os.path.join(BUILD, "tests", "tool_images")
pytestmark = pytest.mark.skipif(not os.path.exists(TOOL), reason="tool_images not built (make tools)")

torch.set_num_threads(1)


def tool(args, data=None):
    res = subprocess.run([TOOL] + [str(a) for a in args], input=data, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=False)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def torchvision_box(h, w, scale, ratio, draws, top_left):
    """get_params with torch's random draws replaced by the library's."""
    values = iter(draws)
    positions = iter(top_left)

    class Uniform:
        def uniform_(self, lo, hi):
            v = next(values)
            assert lo <= v < hi or lo == hi
            return torch.tensor([v], dtype=torch.float64)

    def fake_randint(low, high, size):
        v = next(positions)
        assert low <= v < high, (v, low, high)
        return torch.tensor([v])

    with mock.patch.object(torch, "empty", lambda *a, **k: Uniform()), \
            mock.patch.object(torch, "randint", fake_randint):
        return T.RandomResizedCrop.get_params(torch.zeros(3, h, w), scale, ratio)


CASES = [(32, 32, (0.08, 1.0), (3 / 4, 4 / 3)), (480, 640, (0.08, 1.0), (3 / 4, 4 / 3)),
         (37, 1000, (0.2, 1.0), (3 / 4, 4 / 3)), (1000, 37, (0.5, 1.0), (3 / 4, 4 / 3)),
         (100, 100, (0.9, 1.0), (2.0, 3.0)), (5, 3, (0.08, 1.0), (3 / 4, 4 / 3))]


@pytest.mark.parametrize("h,w,scale,ratio", CASES)
def test_crop_boxes_are_torchvision_get_params(h, w, scale, ratio):
    fallbacks = 0
    for index in range(60):
        out = tool(["cropbox", h, w, scale[0], scale[1], ratio[0], ratio[1], 10, 7, index]).decode().split("\n")
        draws = [float(v) for v in out[0].split()[1:]]
        top, left, ch, cw = (int(v) for v in out[1].split()[1:])
        i, j, th, tw = torchvision_box(h, w, scale, ratio, draws, [top, left])
        assert (i, j, th, tw) == (top, left, ch, cw), (index, (i, j, th, tw), (top, left, ch, cw))
        fallbacks += (ch, cw) == (h, w) or top == (h - ch) // 2 and left == (w - cw) // 2
    print(f"{h}x{w}: {fallbacks} of 60 boxes central")


def image(rng, c, h, w):
    return rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)


def as_float(img):
    return torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("c,h,w,box,out", [
    (3, 480, 640, (13, 40, 300, 410), (32, 32)),     # strong downscale: the antialias matters
    (3, 100, 120, (0, 0, 100, 120), (224, 200)),     # upscale: plain half-pixel bilinear
    (1, 57, 91, (5, 9, 40, 31), (24, 24)),
    (3, 2000, 30, (100, 2, 1500, 27), (16, 16)),     # very tall crop
])
def test_antialiased_crop_resize(c, h, w, box, out):
    img = image(np.random.default_rng(1), c, h, w)
    top, left, ch, cw = box
    ours = np.frombuffer(tool(["resample", c, h, w, top, left, ch, cw, out[0], out[1]], img.tobytes()),
                         dtype=np.float32)
    theirs = F.resized_crop(as_float(img), top, left, ch, cw, list(out), antialias=True).clamp(0, 1)
    err = float(np.max(np.abs(ours - theirs.numpy().ravel())))
    print(f"max abs error {err:.3g}")
    assert err < 2e-5


@pytest.mark.parametrize("c,h,w,s,out", [
    (3, 480, 640, 256, (224, 224)), (3, 333, 500, 36, (32, 32)), (1, 28, 28, 32, (28, 28)),
    (3, 640, 427, 73, (64, 64)), (3, 10, 7, 18, (16, 16)), (3, 31, 33, 36, (32, 30)),
])
def test_eval_transform_is_resize_then_center_crop(c, h, w, s, out):
    img = image(np.random.default_rng(2), c, h, w)
    ours = np.frombuffer(tool(["eval", c, h, w, s, out[0], out[1]], img.tobytes()), dtype=np.float32)
    resized = F.resize(as_float(img), [s], antialias=True)
    theirs = F.center_crop(resized, list(out)).clamp(0, 1)
    assert ours.size == theirs.numel()
    err = float(np.max(np.abs(ours - theirs.numpy().ravel())))
    print(f"max abs error {err:.3g}")
    assert err < 2e-5
