/* libFuzzer: simclr_dataset_open_idx on arbitrary bytes. The input is
 * [u16 LE k][k bytes: the image file][rest: the label file, if any], so one
 * corpus covers the image parser, gzip, the label parser and their
 * agreement. A data set that opens is read end to end. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    simclr_context *ctx = fuzz_context();
    if (size < 2) return 0;
    size_t k = (size_t)data[0] | ((size_t)data[1] << 8);
    if (k > size - 2) k = size - 2;
    const char *img = fuzz_path("idx_images"), *lbl = fuzz_path("idx_labels");
    fuzz_write(img, data + 2, k);
    int with_labels = size - 2 - k > 0;
    if (with_labels) fuzz_write(lbl, data + 2 + k, size - 2 - k);
    simclr_dataset *ds = NULL;
    simclr_status st = simclr_dataset_open_idx(ctx, img, with_labels ? lbl : NULL, &ds);
    fuzz_expect_load_status(st);
    if (st == SIMCLR_OK) {
        int64_t n = simclr_dataset_count(ds), h, w, c;
        FUZZ_OK(simclr_dataset_shape(ds, &h, &w, &c));
        const int32_t *labels = simclr_dataset_labels(ds);
        int classes = simclr_dataset_class_count(ds);
        for (int64_t i = 0; labels && i < n; i++)
            if (labels[i] < 0 || labels[i] >= classes) abort();
        fuzz_read_image(ctx, ds, n - 1, h, w, c);
        simclr_dataset_destroy(ds);
    }
    return 0;
}
