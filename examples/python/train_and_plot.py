#!/usr/bin/env python3
"""SimCLR pre-training on Fashion-MNIST through the Python bindings, then a plot.

Trains a small ResNet-18 + projection head for a few hundred steps on the
Fashion-MNIST training images (read by the library's Dataset from
/usr/share/datasets/fashion-mnist/*.gz), extracts encoder features of test
images, reports the kNN and linear-probe accuracies, and writes a PNG with
the loss curve and a 2-D projection of the test embeddings colored by class
(PCA with NumPy; t-SNE too when scikit-learn is installed).

    SIMCLR_LIBRARY=lib/libsimclr.so.0 /usr/bin/python3 examples/python/train_and_plot.py \
        --steps 300 --out simclr_fmnist.png

Hyperparameters follow docs/simclr-primer.md for small grayscale data: the
"grayscale" augmentation preset (crop, flip, brightness, contrast), NT-Xent at
temperature 0.5, LARS with square-root learning-rate scaling, warmup then
cosine decay.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))  # run from a checkout

import libsimclr as simclr  # noqa: E402

CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Boot"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=16, help="ResNet stem width (64 = torchvision)")
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--test-images", type=int, default=2000, help="test images embedded and plotted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="simclr_fmnist.png")
    return p.parse_args()


def pca_2d(x):
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def tsne_2d(x, seed):
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return None
    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=30).fit_transform(x)


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    with simclr.Context("cpu", args.threads) as ctx:
        train = simclr.Dataset.open_idx(ctx, os.path.join(args.data, "train-images-idx3-ubyte.gz"),
                                        os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
        test = simclr.Dataset.open_idx(ctx, os.path.join(args.data, "t10k-images-idx3-ubyte.gz"),
                                       os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))
        h, w, c = train.shape
        print("libsimclr %s: %d train / %d test images of %dx%dx%d" % (
            simclr.version_string(), len(train), len(test), h, w, c))

        encoder = simclr.ResNet(ctx, depth=18, width=args.width, in_channels=c, stem="cifar",
                                seed=args.seed)
        head = simclr.MLPHead(ctx, encoder.output_dim, encoder.output_dim, 64, n_layers=2,
                              batch_norm=False, seed=args.seed + 1)
        augment = simclr.Augment(ctx, "grayscale", h, w)
        loss = simclr.NTXent(ctx, temperature=args.temperature)
        optimizer = simclr.Optimizer(
            ctx, "lars", [encoder, head], lr=simclr.lr_sqrt_scaling(0.075, args.batch),
            momentum=0.9, weight_decay=1e-6, warmup_steps=max(1, args.steps // 10),
            total_steps=args.steps)
        trainer = simclr.Trainer(ctx, encoder, head, augment, loss, optimizer)
        print("%s + head, %d trainable scalars" % (encoder.arch, encoder.param_scalars + head.param_scalars))

        losses = []
        t0 = time.time()
        for step in range(args.steps):
            idx = rng.integers(0, len(train), args.batch)
            losses.append(trainer.step(train.batch(idx), seed=args.seed * 1000003 + step))
            if step % 25 == 0 or step == args.steps - 1:
                s = trainer.stats()
                print("step %4d  loss %.4f  acc %.3f  lr %.4f  %.0f img/s" % (
                    step, losses[-1], s["accuracy"], s["lr"], s["images_per_sec"]), flush=True)
        print("trained %d steps in %.0f s (loss at start ln(2N-1) = %.2f)" % (
            args.steps, time.time() - t0, np.log(2 * args.batch - 1)))

        # Features of a train subset (kNN / probe reference) and of the plotted test subset.
        eval_aug = None  # native 28x28, pixels / 255
        feats_test = simclr.extract_features(encoder, test, eval_aug, batch_size=256)
        feats_train = simclr.extract_features(encoder, train, eval_aug, batch_size=256)
        ytr, yte = train.labels, test.labels
        knn = simclr.knn_eval(ctx, feats_train, ytr, feats_test, yte, n_classes=10, k=200,
                              temperature=0.1)
        sub = rng.choice(len(train), 10000, replace=False)
        probe = simclr.linear_probe(ctx, feats_train[sub], ytr[sub], feats_test, yte, n_classes=10,
                                    epochs=300, weight_decay=1e-4)
        print("kNN top-1 %.2f%%, linear probe top-1 %.2f%%" % (100 * knn, 100 * probe))

    pick = rng.choice(len(yte), min(args.test_images, len(yte)), replace=False)
    emb, lab = feats_test[pick], yte[pick]
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    projections = [("PCA of test embeddings", pca_2d(emb))]
    t = tsne_2d(emb, args.seed)
    if t is not None:
        projections.append(("t-SNE of test embeddings", t))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 1 + len(projections), figsize=(6 * (1 + len(projections)), 5))
    axes[0].plot(losses, lw=0.8, color="0.6", label="step")
    k = max(1, len(losses) // 30)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    axes[0].plot(np.arange(len(smooth)) + k - 1, smooth, color="C0", label="mean of %d" % k)
    axes[0].axhline(np.log(2 * args.batch - 1), color="C3", ls="--", lw=0.8, label="ln(2N-1)")
    axes[0].set(title="NT-Xent loss (batch %d, T=%g)" % (args.batch, args.temperature),
                xlabel="step", ylabel="loss")
    axes[0].legend()
    for ax, (title, xy) in zip(axes[1:], projections):
        for cls in range(10):
            m = lab == cls
            ax.scatter(xy[m, 0], xy[m, 1], s=4, color=plt.cm.tab10(cls), label=CLASSES[cls])
        ax.set(title="%s (kNN %.1f%%, probe %.1f%%)" % (title, 100 * knn, 100 * probe),
               xticks=[], yticks=[])
    axes[-1].legend(markerscale=3, fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
