/* Data sets: IDX (raw and gzip) and CIFAR loaders on small generated files,
 * every truncation and single-bit corruption of them, allocation failures,
 * and the real Fashion-MNIST files when installed. */
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_util.h"

static char dir[64];

static const char *tpath(const char *name)
{
    /* A ring of slots: a returned path stays valid for the next 63 calls. */
    static char buf[64][256];
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void write_gz(const char *path, const void *d, size_t n)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, d, (unsigned)n), (int)n);
    gzclose(g);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(*n ? *n : 1);
    assert_int_equal(fread(d, 1, *n, f), *n);
    fclose(f);
    return d;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* An IDX image file of n images h x w with pixel (i, y, x) = 7i + 3y + x. */
static size_t make_idx_images(unsigned char *buf, int n, int h, int w)
{
    be32(buf, 0x803);
    be32(buf + 4, (uint32_t)n);
    be32(buf + 8, (uint32_t)h);
    be32(buf + 12, (uint32_t)w);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) buf[16 + (i * h + y) * w + x] = (unsigned char)(7 * i + 3 * y + x);
    return 16 + (size_t)(n * h * w);
}

static size_t make_idx_labels(unsigned char *buf, int n)
{
    be32(buf, 0x801);
    be32(buf + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) buf[8 + i] = (unsigned char)((i * 3) % 5);
    return 8 + (size_t)n;
}

static simclr_context *make_ctx(void)
{
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    return ctx;
}

static void check_small_idx(simclr_dataset *ds, int n, int h, int w)
{
    int64_t hh, ww, cc;
    assert_int_equal(simclr_dataset_count(ds), n);
    CHECK_OK(simclr_dataset_shape(ds, &hh, &ww, &cc));
    assert_int_equal(hh, h);
    assert_int_equal(ww, w);
    assert_int_equal(cc, 1);
    CHECK_OK(simclr_dataset_shape(ds, NULL, NULL, NULL));
    const int32_t *lab = simclr_dataset_labels(ds);
    assert_non_null(lab);
    for (int i = 0; i < n; i++) assert_int_equal(lab[i], (i * 3) % 5);
    assert_int_equal(simclr_dataset_class_count(ds), 5);
}

static void test_idx_raw_and_gzip(void **state)
{
    (void)state;
    enum { N = 6, H = 4, W = 3 };
    unsigned char img[16 + N * H * W], lab[8 + N];
    size_t ni = make_idx_images(img, N, H, W), nl = make_idx_labels(lab, N);
    write_bytes(tpath("img"), img, ni);
    write_bytes(tpath("lab"), lab, nl);
    write_gz(tpath("img.gz"), img, ni);
    write_gz(tpath("lab.gz"), lab, nl);
    simclr_context *ctx = make_ctx();
    const char *pairs[4][2] = {{"img", "lab"}, {"img.gz", "lab.gz"}, {"img", "lab.gz"}, {"img.gz", "lab"}};
    for (int p = 0; p < 4; p++) {
        simclr_dataset *ds = NULL;
        CHECK_OK(simclr_dataset_open_idx(ctx, tpath(pairs[p][0]), tpath(pairs[p][1]), &ds));
        check_small_idx(ds, N, H, W);
        /* batch: images 5, 0, 5 in this order */
        int64_t idx[3] = {5, 0, 5}, shape[4] = {3, H, W, 1};
        simclr_tensor *t;
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &t));
        CHECK_OK(simclr_dataset_batch(ds, idx, 3, t));
        const unsigned char *px = simclr_tensor_data(t);
        for (int b = 0; b < 3; b++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    assert_int_equal(px[(b * H + y) * W + x], (unsigned char)(7 * idx[b] + 3 * y + x));
        int64_t bad_idx[2] = {0, N};
        CHECK_STATUS(simclr_dataset_batch(ds, bad_idx, 2, t), SIMCLR_E_SHAPE); /* n=2 vs 3 rows */
        int64_t bad3[3] = {0, -1, 1};
        CHECK_STATUS(simclr_dataset_batch(ds, bad3, 3, t), SIMCLR_E_INVALID);
        assert_non_null(strstr(simclr_last_error(), "out of range"));
        CHECK_STATUS(simclr_dataset_batch(ds, NULL, 3, t), SIMCLR_E_INVALID);
        CHECK_STATUS(simclr_dataset_batch(ds, idx, 0, t), SIMCLR_E_INVALID);
        CHECK_STATUS(simclr_dataset_batch(NULL, idx, 3, t), SIMCLR_E_INVALID);
        simclr_tensor_destroy(t);
        int64_t fshape[4] = {3, H, W, 1};
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, fshape, &t));
        CHECK_STATUS(simclr_dataset_batch(ds, idx, 3, t), SIMCLR_E_SHAPE);
        simclr_tensor_destroy(t);
        simclr_dataset_destroy(ds);
    }
    /* without labels */
    simclr_dataset *ds = NULL;
    CHECK_OK(simclr_dataset_open_idx(ctx, tpath("img.gz"), NULL, &ds));
    assert_null(simclr_dataset_labels(ds));
    assert_int_equal(simclr_dataset_class_count(ds), 0);
    simclr_dataset_destroy(ds);
    simclr_dataset_destroy(NULL);
    assert_int_equal(simclr_dataset_count(NULL), 0);
    assert_null(simclr_dataset_labels(NULL));
    CHECK_STATUS(simclr_dataset_shape(NULL, NULL, NULL, NULL), SIMCLR_E_INVALID);
    simclr_context_destroy(ctx);
}

static void test_idx_errors(void **state)
{
    (void)state;
    enum { N = 6, H = 4, W = 3 };
    unsigned char img[16 + N * H * W + 1], lab[8 + N + 1]; /* one spare byte for the trailing-data case */
    size_t ni = make_idx_images(img, N, H, W), nl = make_idx_labels(lab, N);
    write_bytes(tpath("img"), img, ni);
    simclr_context *ctx = make_ctx();
    simclr_dataset *ds = (simclr_dataset *)0x1;
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("missing"), NULL, &ds), SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), "missing"));
    CHECK_STATUS(simclr_dataset_open_idx(ctx, dir, NULL, &ds), SIMCLR_E_IO); /* a directory */
    CHECK_STATUS(simclr_dataset_open_idx(NULL, tpath("img"), NULL, &ds), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, NULL, NULL, &ds), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("img"), NULL, NULL), SIMCLR_E_INVALID);
    /* the label file given as images and vice versa: magic names the field */
    write_bytes(tpath("lab"), lab, nl);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("lab"), NULL, &ds), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "magic"));
    assert_non_null(strstr(simclr_last_error(), "lab"));
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("img"), tpath("img"), &ds), SIMCLR_E_FORMAT);
    /* label count differs from image count */
    make_idx_labels(lab, N - 1);
    write_bytes(tpath("lab5"), lab, 8 + N - 1);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("img"), tpath("lab5"), &ds), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "labels"));
    /* one trailing byte */
    img[ni] = 0;
    write_bytes(tpath("img+1"), img, ni + 1);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("img+1"), NULL, &ds), SIMCLR_E_FORMAT);
    /* a zero dimension, and dimensions announcing far more than the file */
    be32(img + 8, 0);
    write_bytes(tpath("img0"), img, ni);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("img0"), NULL, &ds), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "dimension 1"));
    be32(img + 4, 0x7fffffff);
    be32(img + 8, 0x7fffffff);
    be32(img + 12, 0x7fffffff);
    write_bytes(tpath("imgbig"), img, ni);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("imgbig"), NULL, &ds), SIMCLR_E_FORMAT);
    write_gz(tpath("imgbig.gz"), img, ni);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("imgbig.gz"), NULL, &ds), SIMCLR_E_FORMAT);
    /* gzip with garbage after the stream */
    write_gz(tpath("g.gz"), lab, 8);
    size_t gn;
    unsigned char *g = read_bytes(tpath("g.gz"), &gn);
    g = realloc(g, gn + 3);
    memcpy(g + gn, "xyz", 3);
    write_bytes(tpath("g2.gz"), g, gn + 3);
    free(g);
    CHECK_STATUS(simclr_dataset_open_idx(ctx, tpath("g2.gz"), NULL, &ds), SIMCLR_E_FORMAT);
    assert_ptr_equal(ds, (simclr_dataset *)0x1);
    simclr_context_destroy(ctx);
}

/* Every truncation must fail with FORMAT; every single-bit flip must either
 * load (and then be a consistent data set) or fail with FORMAT. ASan in
 * `make SAN=1 unit` turns any out-of-bounds read into a failure. */
static void corrupt_sweep(simclr_context *ctx, const unsigned char *file, size_t n, int is_label, int gz)
{
    unsigned char img[16 + 6 * 4 * 3];
    size_t ni = make_idx_images(img, 6, 4, 3);
    char good[256], p[256];
    snprintf(good, sizeof good, "%s", tpath("good_img"));
    snprintf(p, sizeof p, "%s", tpath("victim"));
    write_bytes(good, img, ni);
    unsigned char *buf = malloc(n);
    for (size_t len = 0; len < n; len++) {
        write_bytes(p, file, len);
        simclr_dataset *ds = NULL;
        simclr_status st = is_label ? simclr_dataset_open_idx(ctx, good, p, &ds)
                                    : simclr_dataset_open_idx(ctx, p, NULL, &ds);
        if (st != SIMCLR_E_FORMAT)
            fail_msg("truncated to %zu of %zu (gz %d): %s %s", len, n, gz, simclr_status_string(st), simclr_last_error());
    }
    int formats = 0, oks = 0;
    for (size_t pos = 0; pos < n; pos++)
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(buf, file, n);
            buf[pos] ^= (unsigned char)(1u << bit);
            write_bytes(p, buf, n);
            simclr_dataset *ds = NULL;
            simclr_status st = is_label ? simclr_dataset_open_idx(ctx, good, p, &ds)
                                        : simclr_dataset_open_idx(ctx, p, NULL, &ds);
            if (st == SIMCLR_OK) {
                oks++;
                assert_true(simclr_dataset_count(ds) >= 1);
                int64_t h, w, c;
                CHECK_OK(simclr_dataset_shape(ds, &h, &w, &c));
                simclr_tensor *t;
                int64_t idx = simclr_dataset_count(ds) - 1, shape[4] = {1, h, w, c};
                CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &t));
                CHECK_OK(simclr_dataset_batch(ds, &idx, 1, t));
                simclr_tensor_destroy(t);
                simclr_dataset_destroy(ds);
            } else if (st == SIMCLR_E_FORMAT) {
                formats++;
            } else {
                fail_msg("bit %d of byte %zu (gz %d): %s %s", bit, pos, gz, simclr_status_string(st), simclr_last_error());
            }
        }
    free(buf);
    /* Raw pixel flips load; header flips fail: both kinds must have happened. */
    if (!(formats > 0 && oks > 0)) fail_msg("label %d gz %d: %d loads, %d format errors", is_label, gz, oks, formats);
}

static void test_idx_corruption(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx();
    unsigned char img[16 + 6 * 4 * 3], lab[8 + 6];
    size_t ni = make_idx_images(img, 6, 4, 3), nl = make_idx_labels(lab, 6);
    corrupt_sweep(ctx, img, ni, 0, 0);
    corrupt_sweep(ctx, lab, nl, 1, 0);
    for (int is_label = 0; is_label < 2; is_label++) {
        write_gz(tpath("z.gz"), is_label ? lab : img, is_label ? nl : ni);
        size_t gn;
        unsigned char *g = read_bytes(tpath("z.gz"), &gn);
        corrupt_sweep(ctx, g, gn, is_label, 1);
        free(g);
    }
    simclr_context_destroy(ctx);
}

/* CIFAR record: label byte(s), then planes R, G, B of 32x32. */
static void make_cifar_record(unsigned char *r, int cifar100, int coarse, int label, int seed)
{
    int lb = cifar100 ? 2 : 1;
    if (cifar100) r[0] = (unsigned char)coarse;
    r[lb - 1] = (unsigned char)label;
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 1024; i++) r[lb + ch * 1024 + i] = (unsigned char)(seed * 31 + ch * 100 + i);
}

static void test_cifar(void **state)
{
    (void)state;
    simclr_context *ctx = make_ctx();
    unsigned char a[3 * 3073], b[2 * 3073];
    for (int i = 0; i < 3; i++) make_cifar_record(a + i * 3073, 0, 0, i + 7, i);
    for (int i = 0; i < 2; i++) make_cifar_record(b + i * 3073, 0, 0, i, 10 + i);
    write_bytes(tpath("c1.bin"), a, sizeof a);
    write_bytes(tpath("c2.bin"), b, sizeof b);
    const char *paths[2] = {tpath("c1.bin"), tpath("c2.bin")};
    simclr_dataset *ds;
    CHECK_OK(simclr_dataset_open_cifar(ctx, paths, 2, 0, &ds));
    assert_int_equal(simclr_dataset_count(ds), 5);
    int64_t h, w, c;
    CHECK_OK(simclr_dataset_shape(ds, &h, &w, &c));
    assert_true(h == 32 && w == 32 && c == 3);
    const int32_t *lab = simclr_dataset_labels(ds);
    int want[5] = {7, 8, 9, 0, 1}, seeds[5] = {0, 1, 2, 10, 11};
    for (int i = 0; i < 5; i++) assert_int_equal(lab[i], want[i]);
    assert_int_equal(simclr_dataset_class_count(ds), 10);
    int64_t idx[2] = {3, 1}, shape[4] = {2, 32, 32, 3};
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, shape, &t));
    CHECK_OK(simclr_dataset_batch(ds, idx, 2, t));
    const unsigned char *px = simclr_tensor_data(t);
    for (int k = 0; k < 2; k++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int ch = 0; ch < 3; ch++)
                    assert_int_equal(px[((k * 32 + y) * 32 + x) * 3 + ch],
                                     (unsigned char)(seeds[idx[k]] * 31 + ch * 100 + y * 32 + x));
    simclr_tensor_destroy(t);
    simclr_dataset_destroy(ds);

    /* CIFAR-100: the fine label is used; coarse >= 20 or fine >= 100 is corrupt */
    unsigned char h100[2 * 3074];
    make_cifar_record(h100, 1, 19, 99, 1);
    make_cifar_record(h100 + 3074, 1, 3, 42, 2);
    write_bytes(tpath("c100.bin"), h100, sizeof h100);
    const char *p100 = tpath("c100.bin");
    CHECK_OK(simclr_dataset_open_cifar(ctx, &p100, 1, 1, &ds));
    assert_int_equal(simclr_dataset_labels(ds)[0], 99);
    assert_int_equal(simclr_dataset_labels(ds)[1], 42);
    assert_int_equal(simclr_dataset_class_count(ds), 100);
    simclr_dataset_destroy(ds);
    /* the same bytes read as CIFAR-10 have the wrong record length */
    CHECK_STATUS(simclr_dataset_open_cifar(ctx, &p100, 1, 0, &ds), SIMCLR_E_FORMAT);
    h100[3074] = 20;
    write_bytes(p100, h100, sizeof h100);
    CHECK_STATUS(simclr_dataset_open_cifar(ctx, &p100, 1, 1, &ds), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "coarse"));
    a[3073] = 10;
    write_bytes(paths[0], a, sizeof a);
    CHECK_STATUS(simclr_dataset_open_cifar(ctx, paths, 2, 0, &ds), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "record 1"));

    CHECK_STATUS(simclr_dataset_open_cifar(ctx, paths, 0, 0, &ds), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_dataset_open_cifar(ctx, paths, 2, 2, &ds), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_dataset_open_cifar(ctx, NULL, 2, 0, &ds), SIMCLR_E_INVALID);
    const char *with_null[2] = {paths[1], NULL};
    CHECK_STATUS(simclr_dataset_open_cifar(ctx, with_null, 2, 0, &ds), SIMCLR_E_INVALID);
    const char *missing = tpath("nope.bin");
    CHECK_STATUS(simclr_dataset_open_cifar(ctx, &missing, 1, 0, &ds), SIMCLR_E_IO);

    /* every truncation of a one-record file fails; byte flips load or fail with FORMAT */
    const char *v = tpath("cv.bin");
    for (size_t len = 0; len < 3073; len += 1) {
        write_bytes(v, b, len);
        CHECK_STATUS(simclr_dataset_open_cifar(ctx, &v, 1, 0, &ds), SIMCLR_E_FORMAT);
    }
    for (int lbl = 0; lbl < 256; lbl++) {
        b[0] = (unsigned char)lbl;
        write_bytes(v, b, 3073);
        simclr_status st = simclr_dataset_open_cifar(ctx, &v, 1, 0, &ds);
        if (lbl < 10) {
            CHECK_OK(st);
            simclr_dataset_destroy(ds);
        } else {
            assert_int_equal(st, SIMCLR_E_FORMAT);
        }
    }
    simclr_context_destroy(ctx);
}

/* Every allocation failure is a clean SIMCLR_E_NOMEM with nothing leaked. */
static void test_alloc_failures(void **state)
{
    (void)state;
    unsigned char img[16 + 6 * 4 * 3], lab[8 + 6], cif[2 * 3073];
    size_t ni = make_idx_images(img, 6, 4, 3), nl = make_idx_labels(lab, 6);
    write_gz(tpath("ai.gz"), img, ni);
    write_bytes(tpath("al"), lab, nl);
    for (int i = 0; i < 2; i++) make_cifar_record(cif + i * 3073, 0, 0, i, i);
    write_bytes(tpath("ac.bin"), cif, sizeof cif);
    char ai[256], al[256], ac[256];
    snprintf(ai, sizeof ai, "%s", tpath("ai.gz"));
    snprintf(al, sizeof al, "%s", tpath("al"));
    snprintf(ac, sizeof ac, "%s", tpath("ac.bin"));
    const char *cp[2] = {ac, ac};
    for (int which = 0; which < 2; which++) {
        int succeeded = 0;
        for (long fail = 1; fail < 200 && !succeeded; fail++) {
            test_alloc a = {0, 0, 0, 0};
            simclr_allocator hooks = test_allocator(&a);
            simclr_context *ctx;
            CHECK_OK(simclr_context_create("ref", 1, &hooks, &ctx));
            a.fail_at = a.allocs + fail;
            simclr_dataset *ds = NULL;
            simclr_status st = which == 0 ? simclr_dataset_open_idx(ctx, ai, al, &ds)
                                          : simclr_dataset_open_cifar(ctx, cp, 2, 0, &ds);
            if (st == SIMCLR_OK) {
                succeeded = 1;
                assert_int_equal(simclr_dataset_count(ds), which == 0 ? 6 : 4);
                simclr_dataset_destroy(ds);
            } else {
                if (st != SIMCLR_E_NOMEM) fail_msg("fail_at %ld: %s", fail, simclr_last_error());
                assert_null(ds);
            }
            simclr_context_destroy(ctx);
            assert_int_equal(a.live, 0);
        }
        assert_true(succeeded);
    }
}

static void test_fashion_mnist(void **state)
{
    (void)state;
    const char *base = "/usr/share/datasets/fashion-mnist";
    char ti[256], tl[256], vi[256], vl[256];
    snprintf(ti, sizeof ti, "%s/train-images-idx3-ubyte.gz", base);
    snprintf(tl, sizeof tl, "%s/train-labels-idx1-ubyte.gz", base);
    snprintf(vi, sizeof vi, "%s/t10k-images-idx3-ubyte.gz", base);
    snprintf(vl, sizeof vl, "%s/t10k-labels-idx1-ubyte.gz", base);
    if (access(ti, R_OK) != 0) skip();
    simclr_context *ctx = make_ctx();
    simclr_dataset *tr, *te;
    CHECK_OK(simclr_dataset_open_idx(ctx, ti, tl, &tr));
    CHECK_OK(simclr_dataset_open_idx(ctx, vi, vl, &te));
    int64_t h, w, c;
    CHECK_OK(simclr_dataset_shape(tr, &h, &w, &c));
    assert_int_equal(simclr_dataset_count(tr), 60000);
    assert_int_equal(simclr_dataset_count(te), 10000);
    assert_true(h == 28 && w == 28 && c == 1);
    assert_int_equal(simclr_dataset_class_count(tr), 10);
    assert_int_equal(simclr_dataset_class_count(te), 10);
    /* Fashion-MNIST is balanced: 6000 per class in train, 1000 in test. */
    int counts[10] = {0}, tcounts[10] = {0};
    for (int i = 0; i < 60000; i++) counts[simclr_dataset_labels(tr)[i]]++;
    for (int i = 0; i < 10000; i++) tcounts[simclr_dataset_labels(te)[i]]++;
    for (int k = 0; k < 10; k++) assert_true(counts[k] == 6000 && tcounts[k] == 1000);
    simclr_dataset_destroy(tr);
    simclr_dataset_destroy(te);
    simclr_context_destroy(ctx);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "ds");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_raw_and_gzip), cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_idx_corruption),   cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_alloc_failures),   cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests_name("dataset", tests, setup, teardown);
}
