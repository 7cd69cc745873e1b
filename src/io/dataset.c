/* Image data sets in memory: IDX (MNIST family, raw or gzip) and CIFAR
 * binary batches. Every header field is checked against the real data
 * length before it is used. */
#include <string.h>

#include "../core/tensor.h"
#include "dataset.h"
#include "file.h"

struct simclr_dataset {
    simclr_context *ctx;
    int64_t n, h, w, c;
    unsigned char *pixels; /* [n, h, w, c] */
    void *pixels_block;    /* the allocation pixels points into */
    int32_t *labels;       /* [n] or NULL */
    int n_classes;
};

void simclr_dataset_destroy(simclr_dataset *ds)
{
    if (!ds) return;
    simclr__free(ds->ctx, ds->pixels_block);
    simclr__free(ds->ctx, ds->labels);
    simclr__free(ds->ctx, ds);
}

/* Parses an IDX header of `want_dims` dims with type byte 0x08 (unsigned
 * byte) and checks that the file holds exactly the data it announces. */
static simclr_status idx_header(const char *fn, const char *path, const char *kind, const unsigned char *d,
                                size_t len, int want_dims, int64_t *dims)
{
    size_t head = 4 + 4 * (size_t)want_dims;
    if (len < 4)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %s file too short for the magic (%zu bytes)", fn, path,
                            kind, len);
    uint32_t magic = simclr__get_be32(d), want = 0x0800u | (uint32_t)want_dims;
    if (magic != want)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': magic 0x%08x, an IDX %s file has 0x%08x", fn, path,
                            (unsigned)magic, kind, (unsigned)want);
    if (len < head)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %s file too short for its %d dimensions (%zu bytes)", fn,
                            path, kind, want_dims, len);
    uint64_t total = 1;
    for (int i = 0; i < want_dims; i++) {
        uint32_t v = simclr__get_be32(d + 4 + 4 * i);
        if (v == 0 || v > 0x7fffffffu)
            return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %s dimension %d is %u", fn, path, kind, i, (unsigned)v);
        dims[i] = v;
        total *= v; /* at most 3 factors below 2^31: no overflow before the check */
        if (total > (uint64_t)len)
            return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %s dimensions announce more data than the %zu-byte file holds",
                                fn, path, kind, len);
    }
    if (len - head != total)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': %s data is %zu bytes, the header announces %llu", fn, path,
                            kind, len - head, (unsigned long long)total);
    return SIMCLR_OK;
}

static void count_classes(simclr_dataset *ds)
{
    int32_t mx = -1;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] > mx) mx = ds->labels[i];
    ds->n_classes = (int)(mx + 1);
}

simclr_status simclr_dataset_open_idx(simclr_context *ctx, const char *images_path, const char *labels_path,
                                      simclr_dataset **out)
{
    static const char fn[] = "simclr_dataset_open_idx";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(images_path, fn, "images_path is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    unsigned char *img = NULL, *lab = NULL;
    size_t img_len = 0, lab_len = 0;
    int64_t idims[3], ldims[1];
    simclr_dataset *ds = NULL;
    simclr_status st = simclr__read_file(ctx, fn, images_path, 1, &img, &img_len);
    if (st == SIMCLR_OK) st = idx_header(fn, images_path, "image", img, img_len, 3, idims);
    if (st == SIMCLR_OK && labels_path) {
        st = simclr__read_file(ctx, fn, labels_path, 1, &lab, &lab_len);
        if (st == SIMCLR_OK) st = idx_header(fn, labels_path, "label", lab, lab_len, 1, ldims);
        if (st == SIMCLR_OK && ldims[0] != idims[0])
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' holds %lld labels but '%s' holds %lld images", fn,
                              labels_path, (long long)ldims[0], images_path, (long long)idims[0]);
    }
    if (st == SIMCLR_OK) {
        ds = simclr__calloc(ctx, 1, sizeof *ds);
        if (!ds) st = simclr__nomem(fn, sizeof *ds);
    }
    if (st == SIMCLR_OK && lab) {
        ds->labels = simclr__malloc(ctx, (size_t)idims[0] * sizeof(int32_t));
        if (!ds->labels) st = simclr__nomem(fn, (size_t)idims[0] * sizeof(int32_t));
    }
    if (st != SIMCLR_OK) {
        simclr__free(ctx, img);
        simclr__free(ctx, lab);
        simclr__free(ctx, ds);
        return st;
    }
    ds->ctx = ctx;
    ds->n = idims[0];
    ds->h = idims[1];
    ds->w = idims[2];
    ds->c = 1;
    ds->pixels_block = img;
    ds->pixels = img + 16;
    if (lab) {
        for (int64_t i = 0; i < ds->n; i++) ds->labels[i] = lab[8 + i];
        simclr__free(ctx, lab);
        count_classes(ds);
    }
    *out = ds;
    return SIMCLR_OK;
}

simclr_status simclr_dataset_open_cifar(simclr_context *ctx, const char *const *paths, int n_paths, int cifar100,
                                        simclr_dataset **out)
{
    static const char fn[] = "simclr_dataset_open_cifar";
    enum { side = 32, plane = 32 * 32, pixels = 3 * 32 * 32 };
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(paths, fn, "paths is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (n_paths < 1 || n_paths > 1024)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_paths %d out of range 1..1024", fn, n_paths);
    if (cifar100 != 0 && cifar100 != 1)
        return simclr__fail(SIMCLR_E_INVALID, "%s: cifar100 is %d, must be 0 or 1", fn, cifar100);
    for (int i = 0; i < n_paths; i++)
        if (!paths[i]) return simclr__fail(SIMCLR_E_INVALID, "%s: paths[%d] is NULL", fn, i);
    size_t label_bytes = cifar100 ? 2 : 1, rec = label_bytes + pixels;
    int max_label = cifar100 ? 100 : 10;

    simclr_dataset *ds = simclr__calloc(ctx, 1, sizeof *ds);
    if (!ds) return simclr__nomem(fn, sizeof *ds);
    ds->ctx = ctx;
    ds->h = ds->w = side;
    ds->c = 3;
    simclr_status st = SIMCLR_OK;
    for (int p = 0; p < n_paths && st == SIMCLR_OK; p++) {
        unsigned char *d = NULL;
        size_t len = 0;
        st = simclr__read_file(ctx, fn, paths[p], 1, &d, &len);
        if (st != SIMCLR_OK) break;
        if (len == 0 || len % rec != 0) {
            st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': length %zu is not a positive multiple of the %zu-byte CIFAR-%d record",
                              fn, paths[p], len, rec, cifar100 ? 100 : 10);
            simclr__free(ctx, d);
            break;
        }
        int64_t add = (int64_t)(len / rec), n = ds->n + add;
        unsigned char *px = simclr__malloc(ctx, (size_t)n * pixels);
        int32_t *lb = px ? simclr__malloc(ctx, (size_t)n * sizeof(int32_t)) : NULL;
        if (!lb) {
            st = simclr__nomem(fn, (size_t)n * pixels);
            simclr__free(ctx, px);
            simclr__free(ctx, d);
            break;
        }
        for (int64_t r = 0; r < add && st == SIMCLR_OK; r++) {
            const unsigned char *s = d + (size_t)r * rec;
            int label = s[label_bytes - 1];
            if (cifar100 && s[0] >= 20)
                st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': record %lld has coarse label %d (CIFAR-100 has 20)", fn,
                                  paths[p], (long long)r, s[0]);
            else if (label >= max_label)
                st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s': record %lld has label %d (CIFAR-%d has %d classes)", fn,
                                  paths[p], (long long)r, label, max_label, max_label);
            lb[ds->n + r] = label;
            /* The file stores planes R, G, B; images are [H, W, C]. */
            unsigned char *dst = px + (size_t)(ds->n + r) * pixels;
            for (int i = 0; i < plane; i++)
                for (int ch = 0; ch < 3; ch++) dst[3 * i + ch] = s[label_bytes + (size_t)ch * plane + i];
        }
        simclr__free(ctx, d);
        if (st != SIMCLR_OK) {
            simclr__free(ctx, px);
            simclr__free(ctx, lb);
            break;
        }
        if (ds->n) {
            memcpy(px, ds->pixels, (size_t)ds->n * pixels);
            memcpy(lb, ds->labels, (size_t)ds->n * sizeof(int32_t));
        }
        simclr__free(ctx, ds->pixels_block);
        simclr__free(ctx, ds->labels);
        ds->pixels_block = ds->pixels = px;
        ds->labels = lb;
        ds->n = n;
    }
    if (st != SIMCLR_OK) {
        simclr_dataset_destroy(ds);
        return st;
    }
    count_classes(ds);
    *out = ds;
    return SIMCLR_OK;
}

int64_t simclr_dataset_count(const simclr_dataset *ds) { return ds ? ds->n : 0; }

simclr_status simclr_dataset_shape(const simclr_dataset *ds, int64_t *height, int64_t *width, int64_t *channels)
{
    SIMCLR__CHECK_ARG(ds, "simclr_dataset_shape", "data set is NULL");
    if (height) *height = ds->h;
    if (width) *width = ds->w;
    if (channels) *channels = ds->c;
    return SIMCLR_OK;
}

const int32_t *simclr_dataset_labels(const simclr_dataset *ds) { return ds ? ds->labels : NULL; }

int simclr_dataset_class_count(const simclr_dataset *ds) { return ds && ds->labels ? ds->n_classes : 0; }

simclr_status simclr_dataset_batch(const simclr_dataset *ds, const int64_t *indices, int64_t n, simclr_tensor *out)
{
    static const char fn[] = "simclr_dataset_batch";
    SIMCLR__CHECK_ARG(ds, fn, "data set is NULL");
    SIMCLR__CHECK_ARG(indices, fn, "indices is NULL");
    if (n < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: n is %lld, must be >= 1", fn, (long long)n);
    int64_t dims[4] = {n, ds->h, ds->w, ds->c};
    SIMCLR__TRY(simclr__tensor_expect(out, fn, "out", SIMCLR_U8, 4, dims));
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return simclr__fail(SIMCLR_E_INVALID, "%s: indices[%lld] = %lld out of range 0..%lld", fn, (long long)i,
                                (long long)indices[i], (long long)ds->n - 1);
    size_t img = (size_t)(ds->h * ds->w * ds->c);
    unsigned char *dst = out->data;
    for (int64_t i = 0; i < n; i++) memcpy(dst + (size_t)i * img, ds->pixels + (size_t)indices[i] * img, img);
    return SIMCLR_OK;
}

const unsigned char *simclr__dataset_image(const simclr_dataset *ds, int64_t i)
{
    return ds->pixels + (size_t)i * (size_t)(ds->h * ds->w * ds->c);
}
