/* libFuzzer: simclr_dataset_open_cifar on arbitrary bytes. The first byte
 * picks CIFAR-10 (even) or CIFAR-100 (odd) and whether the file is given
 * once or twice (bit 1: two batches); the rest is the file. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static simclr_context *ctx;
    if (!ctx) FUZZ_OK(simclr_context_create("ref", 1, NULL, &ctx));
    if (size < 1) return 0;
    const char *path = fuzz_path("cifar");
    fuzz_write(path, data + 1, size - 1);
    const char *paths[2] = {path, path};
    simclr_dataset *ds = NULL;
    simclr_status st = simclr_dataset_open_cifar(ctx, paths, (data[0] & 2) ? 2 : 1, data[0] & 1, &ds);
    fuzz_expect_load_status(st);
    if (st == SIMCLR_OK) {
        int64_t n = simclr_dataset_count(ds), shape[4] = {1, 32, 32, 3}, idx[1] = {n - 1};
        const int32_t *labels = simclr_dataset_labels(ds);
        int classes = simclr_dataset_class_count(ds);
        for (int64_t i = 0; i < n; i++)
            if (!labels || labels[i] < 0 || labels[i] >= classes || classes > 100) abort();
        simclr_tensor *t;
        FUZZ_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &t));
        FUZZ_OK(simclr_dataset_batch(ds, idx, 1, t));
        simclr_tensor_destroy(t);
        simclr_dataset_destroy(ds);
    }
    return 0;
}
