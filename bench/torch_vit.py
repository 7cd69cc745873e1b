"""The PyTorch side of bench/bench_vit.c: torchvision's VisionTransformer
(image 32, patch 4, 12 layers, 3 heads, hidden 192, MLP 768, heads replaced
by Identity), the same 192-192-128 head, NT-Xent (T 0.5) and AdamW on the
same fixed inputs. Prints views/s (step) or images/s (eval) per repeat.
    torch_vit.py step|eval THREADS REPEATS BATCH(pairs for step)"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer

mode, threads, repeats, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
step = mode == "step"
n = 2 * batch if step else batch
enc = VisionTransformer(image_size=32, patch_size=4, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768)
enc.heads = nn.Identity()
head = nn.Sequential(nn.Linear(192, 192), nn.ReLU(), nn.Linear(192, 128))
x = torch.randn(n, 3, 32, 32)
no_decay = lambda name, p: p.ndim == 1 or name in ("class_token", "encoder.pos_embedding")
named = list(enc.named_parameters()) + [("head." + k, p) for k, p in head.named_parameters()]
opt = torch.optim.AdamW([{"params": [p for k, p in named if not no_decay(k, p)], "weight_decay": 0.05},
                         {"params": [p for k, p in named if no_decay(k, p)], "weight_decay": 0.0}], lr=1e-4)


def ntxent(z, t=0.5):
    z = F.normalize(z, dim=1)
    n2 = z.shape[0]
    sim = z @ z.t() / t
    sim.fill_diagonal_(float("-inf"))
    target = (torch.arange(n2) + n2 // 2) % n2
    return F.cross_entropy(sim, target)


if not step:
    enc.eval()
for r in range(-1, repeats):
    t0 = time.perf_counter()
    if step:
        opt.zero_grad(set_to_none=False)
        ntxent(head(enc(x))).backward()
        opt.step()
    else:
        with torch.inference_mode():
            enc(x)
    if r >= 0:
        print("%.2f" % (n / (time.perf_counter() - t0)), flush=True)
