"""libsimclr.Embedder: features of uint8 images of any size, concurrently
from Python threads (each with its own Context) over one encoder."""
import threading

import numpy as np
import pytest

import libsimclr as simclr


@pytest.fixture(scope="module")
def setup():
    ctx = simclr.Context("cpu", 1)
    enc = simclr.ResNet(ctx, depth=18, width=4, in_channels=3, stem="cifar", seed=3)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(16, 16), (40, 25), (9, 70), (33, 33)]]
    yield ctx, enc, images
    ctx.close()


def test_identity_transform_is_the_encoder(setup):
    ctx, enc, images = setup
    emb = simclr.Embedder(ctx, enc, 16, resize=16)
    assert emb.get(simclr.EmbedParam.RESIZE) == 16
    ours = emb([images[0]])
    x = images[0].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
    ref = enc.forward(x, mode="eval")
    np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-5, atol=1e-6)


def test_threads_equal_sequential(setup):
    ctx, enc, images = setup
    seq = simclr.Embedder(ctx, enc, 16)(images)
    assert seq.shape == (4, enc.output_dim) and np.isfinite(seq).all()
    results, errors = {}, []

    def work(k):
        try:
            with simclr.Context("cpu", 1) as c:
                e = simclr.Embedder(c, enc, 16)
                for _ in range(3):
                    results[k] = e(images)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(3):
        np.testing.assert_array_equal(results[k], seq)


def test_bad_input(setup):
    ctx, enc, images = setup
    emb = simclr.Embedder(ctx, enc, 16)
    with pytest.raises(TypeError):
        emb([images[0].astype(np.float32)])
    with pytest.raises(ValueError):
        emb([])
    with pytest.raises(simclr.ShapeError):
        emb([images[0][:, :, 0]])  # 1 channel into a 3-channel encoder
    with pytest.raises(simclr.InvalidArgument):
        emb.set(simclr.EmbedParam.RESIZE, 3)  # below the crop
