// Core of the C++ wrapper: version check, context, tensors (owned and
// zero-copy), and errors as exceptions. Exits 0 and prints "cpp tensors: ok"
// when every check passes; any mismatch exits 1 with a message.
#include <cstdio>
#include <vector>

#include "simclr.hpp"

static int fail(const char *what)
{
    std::fprintf(stderr, "cpp tensors: FAILED: %s\n", what);
    return 1;
}

int main()
{
    try {
        simclr::check_version();
        simclr::Context ctx("ref", 1);
        std::printf("libsimclr %s, backend %s, %d thread(s)\n", simclr_version_string(),
                    ctx.backend().c_str(), ctx.threads());

        auto t = simclr::Tensor::zeros(ctx, SIMCLR_F32, {2, 3});
        t.copy_from(std::vector<float>{1, 2, 3, 4, 5, 6});
        float sum = 0;
        for (float v : t.to_vector<float>()) sum += v;
        if (sum != 21.0f || t.shape() != std::vector<int64_t>{2, 3}) return fail("owned tensor round trip");

        std::vector<unsigned char> pixels(4 * 4 * 3, 7);
        auto img = simclr::Tensor::wrap(ctx, SIMCLR_U8, {1, 4, 4, 3}, pixels.data());
        if (img.data<unsigned char>() != pixels.data()) return fail("wrap is not zero-copy");

        t.reshape({3, 2});
        if (t.dim(0) != 3) return fail("reshape");

        // Errors become exceptions carrying the status and the library's message.
        try {
            t.reshape({4, 2});
            return fail("reshape to 8 elements did not throw");
        } catch (const simclr::Error &e) {
            if (e.status() != SIMCLR_E_SHAPE) return fail("wrong status for a bad reshape");
            std::printf("caught as expected: [%s] %s\n", e.status_string(), e.what());
        }
        try {
            simclr::Context bad("no-such-backend");
            return fail("unknown backend did not throw");
        } catch (const simclr::Error &e) {
            if (e.status() != SIMCLR_E_UNSUPPORTED) return fail("wrong status for an unknown backend");
        }
        // A ViT encoder through the wrapper; a bad configuration throws.
        auto vit = simclr::Module::vit(ctx, 8, 4, 3, 8, 1, 2, 16, SIMCLR_VIT_POOL_CLS, 1);
        if (vit.output_dim() != 8) return fail("vit output_dim");
        try {
            (void)simclr::Module::vit(ctx, 30, 4, 3, 8, 1, 2, 16, SIMCLR_VIT_POOL_CLS, 1);
            return fail("image 30 with patch 4 did not throw");
        } catch (const simclr::Error &e) {
            if (e.status() != SIMCLR_E_INVALID) return fail("wrong status for a bad ViT");
        }
        try {
            (void)t.data<unsigned char>();
            return fail("data<uint8> on an F32 tensor did not throw");
        } catch (const simclr::Error &) {
        }
    } catch (const simclr::Error &e) {
        std::fprintf(stderr, "cpp tensors: unexpected error [%s] %s\n", e.status_string(), e.what());
        return 1;
    }
    std::printf("cpp tensors: ok\n");
    return 0;
}
