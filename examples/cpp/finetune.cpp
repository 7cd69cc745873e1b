// The fine-tuning pieces through the C++ wrapper: a class-balanced label
// subset and its file, the cross-entropy and distillation losses, a linear
// head on a small ResNet, a classifier over host images of several sizes
// (probabilities, top-k, evaluation) and the torchvision export. Prints
// "cpp finetune: ok" when every check passes; exits 1 with a message otherwise.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "simclr.hpp"

static int fail(const char *what)
{
    std::fprintf(stderr, "cpp finetune: FAILED: %s\n", what);
    return 1;
}

int main()
{
    try {
        simclr::check_version();
        simclr::Context ctx("cpu", 2);

        // 1% / N per class of a labelled set, reproducible from the seed.
        std::vector<int32_t> labels;
        for (int i = 0; i < 300; i++) labels.push_back(i % 3);
        auto subset = simclr::label_subset_fraction(ctx, labels, 3, 0.1, 7);
        if (subset.size() != 30 || subset != simclr::label_subset_fraction(ctx, labels, 3, 0.1, 7))
            return fail("label subset");
        const std::string path = "/tmp/simclr_cpp_finetune_subset.txt";
        simclr::label_subset_save(ctx, path, subset, 300, 0.1, 0, 7);
        uint64_t seed = 0;
        if (simclr::label_subset_load(ctx, path, 300, &seed) != subset || seed != 7) return fail("subset file");
        std::remove(path.c_str());
        try {
            simclr::label_subset_per_class(ctx, labels, 3, 101, 1);
            return fail("101 per class of 100 did not throw");
        } catch (const simclr::Error &e) {
            if (e.status() != SIMCLR_E_INVALID) return fail("refusal status");
        }

        // Losses: uniform logits cost log(classes); their gradient sums to zero per row.
        simclr::CrossEntropy ce(ctx, 4, 0.1);
        auto logits = simclr::Tensor::zeros(ctx, SIMCLR_F32, {2, 4});
        auto grad = simclr::Tensor::zeros(ctx, SIMCLR_F32, {2, 4});
        float acc = 0;
        float v = ce.forward(logits, {1, 3}, &acc);
        if (std::fabs(v - std::log(4.0f)) > 1e-6f) return fail("cross-entropy of uniform logits");
        ce.backward(grad);
        float row = 0;
        for (int k = 0; k < 4; k++) row += grad.data<float>()[k];
        if (std::fabs(row) > 1e-7f) return fail("cross-entropy gradient");
        simclr::Distill kd(ctx, 4, 2.0);
        float agree = 0;
        kd.forward(logits, logits, {}, &agree);
        if (agree != 1.0f || kd.get(SIMCLR_LOSS_TEMPERATURE_SCALE) != 1.0) return fail("distillation");

        // A classifier over host images of any size.
        auto enc = simclr::Module::resnet(ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 1);
        auto head = simclr::Module::linear_head(ctx, enc.output_dim(), 4, 2);
        if (head.param(0).name != "fc.weight" || head.param(1).name != "fc.bias") return fail("head names");
        std::vector<uint8_t> a(20 * 30 * 3), b(17 * 9 * 3);
        for (std::size_t i = 0; i < a.size(); i++) a[i] = static_cast<uint8_t>(i * 31);
        for (std::size_t i = 0; i < b.size(); i++) b[i] = static_cast<uint8_t>(i * 17);
        simclr::ImageList images(ctx, 3);
        images.add(a.data(), 20, 30).add(b.data(), 17, 9);
        simclr::Classifier clf(ctx, enc, head, 16, 16);
        auto probs = simclr::Tensor::zeros(ctx, SIMCLR_F32, {2, clf.classes()});
        clf.run(images, probs);
        std::vector<int32_t> top;
        std::vector<float> topp;
        clf.topk(images, 2, top, topp);
        if (topp[0] != probs.data<float>()[top[0]] || topp[1] > topp[0]) return fail("top-k");
        auto m = clf.evaluate(images, {top[0], top[2]});
        if (m.accuracy != 1.0 || m.confusion.size() != 16) return fail("evaluation");
        auto m2 = simclr::classification_metrics({top[0], top[2]}, {top[0], top[2]}, 4);
        if (m2.confusion != m.confusion) return fail("metrics");
        simclr::export_classifier_safetensors(enc, head, "/tmp/simclr_cpp_finetune.safetensors");
        std::remove("/tmp/simclr_cpp_finetune.safetensors");
    } catch (const simclr::Error &e) {
        std::fprintf(stderr, "cpp finetune: %s (%s)\n", e.what(), e.status_string());
        return 1;
    }
    std::printf("cpp finetune: ok\n");
    return 0;
}
