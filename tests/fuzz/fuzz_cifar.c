/* libFuzzer: simclr_dataset_open_cifar on arbitrary bytes. The first byte
 * picks CIFAR-10 (even) or CIFAR-100 (odd) and whether the file is given
 * once or twice (bit 1: two batches); the rest is the file. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    simclr_context *ctx = fuzz_context();
    if (size < 1) return 0;
    const char *path = fuzz_path("cifar");
    fuzz_write(path, data + 1, size - 1);
    const char *paths[2] = {path, path};
    simclr_dataset *ds = NULL;
    simclr_status st = simclr_dataset_open_cifar(ctx, paths, (data[0] & 2) ? 2 : 1, data[0] & 1, &ds);
    fuzz_expect_load_status(st);
    if (st == SIMCLR_OK) {
        int64_t n = simclr_dataset_count(ds);
        const int32_t *labels = simclr_dataset_labels(ds);
        int classes = simclr_dataset_class_count(ds);
        for (int64_t i = 0; i < n; i++)
            if (!labels || labels[i] < 0 || labels[i] >= classes || classes > 100) abort();
        fuzz_read_image(ctx, ds, n - 1, 32, 32, 3);
        simclr_dataset_destroy(ds);
    }
    return 0;
}
