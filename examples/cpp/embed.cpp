// Embeddings of a few Fashion-MNIST images through a (randomly initialized)
// ResNet-18, using the C++ wrapper: data set, augmentation policy for
// evaluation, encoder forward in EVAL mode, parameter listing.
// Usage: embed [images.idx.gz]   (default: Debian's Fashion-MNIST test set)
// Exits 0 and prints "cpp embed: ok" when the embeddings are finite and distinct.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "simclr.hpp"

int main(int argc, char **argv)
{
    const std::string path = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    try {
        simclr::check_version();
        simclr::Context ctx("cpu", 0);
        auto ds = simclr::Dataset::open_idx(ctx, path);
        const auto hwc = ds.shape();
        std::printf("%lld images of %lldx%lldx%lld\n", (long long)ds.count(), (long long)hwc[0],
                    (long long)hwc[1], (long long)hwc[2]);

        auto enc = simclr::Module::resnet(ctx, 18, 8, static_cast<int>(hwc[2]), SIMCLR_STEM_CIFAR, 1234);
        std::printf("%s: %lld trainable scalars in %d tensors, D = %lld\n", enc.arch().c_str(),
                    (long long)enc.param_scalars(), enc.param_count(), (long long)enc.output_dim());

        const std::vector<int64_t> idx = {0, 1, 2, 3};
        const int64_t n = static_cast<int64_t>(idx.size());
        auto images = simclr::Tensor::zeros(ctx, SIMCLR_U8, {n, hwc[0], hwc[1], hwc[2]});
        ds.batch(idx, images);

        simclr::Augment eval_view(ctx, SIMCLR_AUG_PRESET_NONE, 32, 32); // resize 28 -> 32
        auto x = simclr::Tensor::zeros(ctx, SIMCLR_F32, {n, hwc[2], 32, 32});
        eval_view.apply(images, 0, 0, x);

        auto y = simclr::Tensor::zeros(ctx, SIMCLR_F32, {n, enc.output_dim()});
        enc.forward(x, SIMCLR_EVAL, y);

        const float *e = y.data<float>();
        const int64_t d = enc.output_dim();
        for (int64_t i = 0; i < n; i++) {
            double norm = 0;
            for (int64_t j = 0; j < d; j++) {
                if (!std::isfinite(e[i * d + j])) {
                    std::fprintf(stderr, "cpp embed: non-finite embedding\n");
                    return 1;
                }
                norm += (double)e[i * d + j] * e[i * d + j];
            }
            std::printf("image %lld: |embedding| = %.4f, first = %.4f\n", (long long)idx[i], std::sqrt(norm), e[i * d]);
        }
        bool distinct = false;
        for (int64_t j = 0; j < d; j++) distinct |= e[j] != e[d + j];
        if (!distinct) {
            std::fprintf(stderr, "cpp embed: two different images gave the same embedding\n");
            return 1;
        }
    } catch (const simclr::Error &ex) {
        std::fprintf(stderr, "cpp embed: [%s] %s\n", ex.status_string(), ex.what());
        return 1;
    }
    std::printf("cpp embed: ok\n");
    return 0;
}
