/* Evaluation: feature extraction through a tiny linear module built with the
 * internal module API, the weighted kNN monitor against a brute-force
 * reference, the linear probe on separable, linearly labelled and random
 * data, and the probe whose weight decay is chosen on a validation split
 * against the same selection done by hand. */
#include <unistd.h>

#include "test_util.h"
#include "model/module.h"

/* ---- a dummy encoder: y = W flatten(x) + b ------------------------------ */

static simclr_status lin_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y)
{
    (void)mode;
    const simclr_tensor *w = m->params[0].value, *b = m->params[1].value;
    int64_t n = x->dims[0], in = x->numel / n, d = w->dims[0];
    if (in != w->dims[1] || y->ndim != 2 || y->dims[0] != n || y->dims[1] != d)
        return simclr__fail(SIMCLR_E_SHAPE, "dummy: bad shapes");
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < d; o++) {
            double s = simclr__f32(b)[o];
            for (int64_t k = 0; k < in; k++) s += (double)simclr__f32(w)[o * in + k] * simclr__f32(x)[i * in + k];
            simclr__f32(y)[i * d + o] = (float)s;
        }
    return SIMCLR_OK;
}

static const simclr__module_ops lin_ops = {"dummy_linear", lin_forward, NULL, NULL};

static simclr_module *linear_module(simclr_context *ctx, int64_t in, int64_t d)
{
    simclr_module *m;
    CHECK_OK(simclr__module_new(ctx, &lin_ops, "dummy_linear", &m));
    int64_t ws[2] = {d, in}, bs[1] = {d};
    simclr_tensor *w, *b;
    CHECK_OK(simclr__module_new_param(m, "fc.weight", 2, ws, 0, &w));
    CHECK_OK(simclr__module_new_param(m, "fc.bias", 1, bs, SIMCLR_PARAM_NO_DECAY, &b));
    test_fill(simclr__f32(w), w->numel, 5);
    test_fill(simclr__f32(b), b->numel, 6);
    simclr__module_finalize(m);
    m->in_dim = 1;
    m->out_dim = d;
    return m;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

typedef struct progress_log {
    int calls;
    int64_t last_done, last_total;
    int monotone;
    char what[16];
} progress_log;

static void on_progress(void *user, const char *what, int64_t done, int64_t total)
{
    progress_log *p = user;
    if (done < p->last_done) p->monotone = 0;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    snprintf(p->what, sizeof p->what, "%s", what);
}

/* simclr_extract_features under the allocation-failure sweep: the encoder
 * lives on the sweep's context. */
typedef struct extract_run {
    simclr_dataset *ds;
    simclr_tensor *out;
    int64_t in, d;
    simclr_module *m;
} extract_run;

static void extract_prepare(simclr_context *ctx, void *user)
{
    extract_run *r = user;
    r->m = linear_module(ctx, r->in, r->d);
}

static simclr_status extract_call(simclr_context *ctx, void *user)
{
    (void)ctx;
    extract_run *r = user;
    return simclr_extract_features(r->m, r->ds, NULL, 3, r->out);
}

static void extract_finish(simclr_context *ctx, simclr_status st, void *user)
{
    (void)ctx, (void)st;
    simclr_module_destroy(((extract_run *)user)->m);
}

static void test_extract_features(void **state)
{
    (void)state;
    enum { N = 7, H = 4, W = 3, D = 5 };
    char dir[] = "/tmp/simclr_ev_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/img", dir);
    unsigned char img[16 + N * H * W];
    be32(img, 0x803), be32(img + 4, N), be32(img + 8, H), be32(img + 12, W);
    for (int i = 0; i < N * H * W; i++) img[16 + i] = (unsigned char)(i * 37 + 11);
    FILE *f = fopen(path, "wb");
    fwrite(img, 1, sizeof img, f);
    fclose(f);

    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    progress_log log = {0, 0, 0, 1, ""};
    CHECK_OK(simclr_context_set_progress(ctx, on_progress, &log));
    simclr_dataset *ds;
    CHECK_OK(simclr_dataset_open_idx(ctx, path, NULL, &ds));
    simclr_module *m = linear_module(ctx, H * W, D);
    /* reference: pixels / 255 through W, b in double */
    float want[N * D];
    const float *w = simclr__f32(m->params[0].value), *b = simclr__f32(m->params[1].value);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < D; o++) {
            double s = b[o];
            for (int k = 0; k < H * W; k++) s += (double)w[o * H * W + k] * (float)(img[16 + i * H * W + k] * (1.0f / 255.0f));
            want[i * D + o] = (float)s;
        }
    int64_t os[2] = {N, D};
    simclr_tensor *out;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, os, &out));
    int64_t sizes[5] = {1, 2, 3, N, 1000};
    for (int s = 0; s < 5; s++) {
        memset(simclr_tensor_data(out), 0, simclr_tensor_bytes(out));
        log.calls = 0, log.last_done = 0;
        CHECK_OK(simclr_extract_features(m, ds, NULL, sizes[s], out));
        /* the same float operations whatever the batching: bit-identical */
        assert_memory_equal(simclr_tensor_data(out), want, sizeof want);
        assert_string_equal(log.what, "extract");
        assert_true(log.monotone && log.last_done == N && log.last_total == N);
        int64_t batches = (N + (sizes[s] < N ? sizes[s] : N) - 1) / (sizes[s] < N ? sizes[s] : N);
        assert_int_equal(log.calls, batches + 1);
    }
    /* through an evaluation policy at the native size: resize is the
     * identity, so the features equal the aug = NULL path */
    simclr_augment *aug;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_NONE, H, W, &aug));
    memset(simclr_tensor_data(out), 0, simclr_tensor_bytes(out));
    CHECK_OK(simclr_extract_features(m, ds, aug, 3, out));
    assert_true(test_norm_err(simclr__f32(out), want, N * D) < 1e-6); /* pixel/255 either way; 1e-6 allows a different rounding of v/255 */
    simclr_augment_destroy(aug);
    /* another view size reaches the encoder, which rejects it */
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_NONE, H + 1, W, &aug));
    CHECK_STATUS(simclr_extract_features(m, ds, aug, 3, out), SIMCLR_E_SHAPE);
    simclr_augment_destroy(aug);
    CHECK_STATUS(simclr_extract_features(m, ds, NULL, 0, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_extract_features(NULL, ds, NULL, 2, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_extract_features(m, NULL, NULL, 2, out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_extract_features(m, ds, NULL, 2, NULL), SIMCLR_E_INVALID);
    simclr_tensor *bad;
    int64_t bs[2] = {N, D + 1};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, bs, &bad));
    CHECK_STATUS(simclr_extract_features(m, ds, NULL, 2, bad), SIMCLR_E_SHAPE);
    simclr_tensor_destroy(bad);
    /* an encoder that rejects the input shape: its error comes through */
    simclr_module *m2 = linear_module(ctx, H * W + 1, D);
    CHECK_STATUS(simclr_extract_features(m2, ds, NULL, 2, out), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "dummy"));
    simclr_module_destroy(m2);

    /* allocation failures: clean NOMEM, no leak */
    extract_run run = {ds, out, H * W, D, NULL};
    test_alloc_sweep sweep = {extract_prepare, extract_call, extract_finish, &run};
    test_sweep_alloc_failures(50, &sweep);
    simclr_tensor_destroy(out);
    simclr_module_destroy(m);
    simclr_dataset_destroy(ds);
    simclr_context_destroy(ctx);
    unlink(path);
    rmdir(dir);
}

/* ---- synthetic features --------------------------------------------------- */

typedef struct feats {
    simclr_tensor *train, *test;
    int32_t *ytr, *yte;
} feats;

enum { GAUSS_BLOBS = 0, RANDOM_LABELS = 1, LINEAR_RULE = 2, LINEAR_PLAIN = 3 };

/* kind GAUSS_BLOBS: well separated class centres plus small noise;
 * RANDOM_LABELS: random features and labels (nothing to learn);
 * LINEAR_RULE: label = argmax of a random linear map of random features,
 * with some features shifted and scaled wildly (standardization needed);
 * LINEAR_PLAIN: the same rule without the rescaling. */
static feats make_feats(simclr_context *ctx, int kind, int64_t ntr, int64_t nte, int64_t d, int k, uint64_t seed)
{
    feats f;
    int64_t s1[2] = {ntr, d}, s2[2] = {nte, d};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, s1, &f.train));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, s2, &f.test));
    f.ytr = malloc((size_t)ntr * sizeof(int32_t));
    f.yte = malloc((size_t)nte * sizeof(int32_t));
    uint64_t r = seed * 7919 + 1;
    float *centres = malloc((size_t)(k * d) * sizeof(float)), *map = malloc((size_t)(k * d) * sizeof(float));
    test_fill(centres, k * d, seed + 100);
    test_fill(map, k * d, seed + 200);
    for (int part = 0; part < 2; part++) {
        int64_t n = part ? nte : ntr;
        float *x = simclr__f32(part ? f.test : f.train);
        int32_t *y = part ? f.yte : f.ytr;
        for (int64_t i = 0; i < n; i++) {
            y[i] = (int32_t)(test_rand_next(&r) % (uint64_t)k);
            for (int64_t j = 0; j < d; j++) {
                float noise = test_randf(&r);
                x[i * d + j] = kind == GAUSS_BLOBS ? 3.0f * centres[y[i] * d + j] + 0.3f * noise : noise;
            }
            if (kind == LINEAR_RULE || kind == LINEAR_PLAIN) {
                int best = 0;
                double bv = -1e30;
                for (int c = 0; c < k; c++) {
                    double v = 0;
                    for (int64_t j = 0; j < d; j++) v += (double)map[c * d + j] * x[i * d + j];
                    if (v > bv) bv = v, best = c;
                }
                y[i] = best;
                /* x_j' = 100 + 0.01 x_j for odd j: a pure rescaling, same rule */
                for (int64_t j = 1; kind == LINEAR_RULE && j < d; j += 2) x[i * d + j] = 100.0f + 0.01f * x[i * d + j];
            }
        }
    }
    free(centres);
    free(map);
    return f;
}

static void free_feats(feats *f)
{
    simclr_tensor_destroy(f->train);
    simclr_tensor_destroy(f->test);
    free(f->ytr);
    free(f->yte);
}

/* Brute-force weighted kNN in double with the same tie rule (higher
 * similarity first, then lower train index), an independent oracle. */
static double knn_reference(const feats *f, int k_classes, int k, double t)
{
    int64_t ntr = f->train->dims[0], nte = f->test->dims[0], d = f->train->dims[1];
    const float *a = simclr__f32(f->test), *b = simclr__f32(f->train);
    double *sim = malloc((size_t)ntr * sizeof(double));
    char *used = malloc((size_t)ntr);
    double *score = malloc((size_t)k_classes * sizeof(double));
    int64_t correct = 0;
    for (int64_t i = 0; i < nte; i++) {
        double na = 0;
        for (int64_t q = 0; q < d; q++) na += (double)a[i * d + q] * a[i * d + q];
        for (int64_t j = 0; j < ntr; j++) {
            double dot = 0, nb = 0;
            for (int64_t q = 0; q < d; q++) dot += (double)a[i * d + q] * b[j * d + q], nb += (double)b[j * d + q] * b[j * d + q];
            sim[j] = dot / sqrt(na * nb);
        }
        memset(used, 0, (size_t)ntr);
        memset(score, 0, (size_t)k_classes * sizeof(double));
        for (int r = 0; r < k; r++) {
            int64_t best = -1;
            for (int64_t j = 0; j < ntr; j++)
                if (!used[j] && (best < 0 || sim[j] > sim[best])) best = j;
            used[best] = 1;
            score[f->ytr[best]] += exp(sim[best] / t);
        }
        int pred = 0;
        for (int c = 1; c < k_classes; c++)
            if (score[c] > score[pred]) pred = c;
        correct += pred == f->yte[i];
    }
    free(sim);
    free(used);
    free(score);
    return (double)correct / (double)nte;
}

/* A failing extraction leaves out as it was: every allocation of the call
 * fails in turn (with 5 images in batches of 2 the last batch is smaller and
 * re-sizes the buffers after two batches are done), out holding a sentinel. */
static void test_extract_failure_leaves_out(void **state)
{
    (void)state;
    enum { N = 5, H = 4, W = 3, D = 5 };
    char dir[] = "/tmp/simclr_ev_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/img", dir);
    unsigned char img[16 + N * H * W];
    be32(img, 0x803), be32(img + 4, N), be32(img + 8, H), be32(img + 12, W);
    for (int i = 0; i < N * H * W; i++) img[16 + i] = (unsigned char)(i * 29 + 3);
    FILE *f = fopen(path, "wb");
    fwrite(img, 1, sizeof img, f);
    fclose(f);
    test_alloc ta = {0, 0, 0, 0};
    simclr_allocator al = test_allocator(&ta);
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, &al, &ctx));
    simclr_dataset *ds;
    CHECK_OK(simclr_dataset_open_idx(ctx, path, NULL, &ds));
    simclr_module *m = linear_module(ctx, H * W, D);
    int64_t os[2] = {N, D};
    simclr_tensor *out;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, os, &out));
    float sentinel[N * D];
    for (int i = 0; i < N * D; i++) sentinel[i] = -7.25f;
    int failures = 0;
    for (long k = 1;; k++) {
        memcpy(simclr_tensor_data(out), sentinel, sizeof sentinel);
        long live = ta.live;
        ta.allocs = 0, ta.fail_at = k;
        simclr_status st = simclr_extract_features(m, ds, NULL, 2, out);
        ta.fail_at = 0;
        assert_int_equal(ta.live, live); /* nothing leaked */
        if (st == SIMCLR_OK) break;
        assert_int_equal(st, SIMCLR_E_NOMEM);
        assert_memory_equal(simclr_tensor_data(out), sentinel, sizeof sentinel);
        failures++;
        assert_true(k < 100);
    }
    assert_true(failures >= 4); /* the buffers of the first and the last batch */
    simclr_tensor_destroy(out);
    simclr_module_destroy(m);
    simclr_dataset_destroy(ds);
    simclr_context_destroy(ctx);
    assert_int_equal(ta.live, 0);
    remove(path);
    rmdir(dir);
}

/* The length-checked variants refuse a label array of the wrong length
 * before reading it, and otherwise equal the unchecked functions. */
static void test_length_checked_labels(void **state)
{
    (void)state;
    simclr_context *ref;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ref));
    feats f = make_feats(ref, GAUSS_BLOBS, 200, 100, 8, 4, 9);
    double a, b;
    CHECK_OK(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 4, 10, 0.1, &a));
    CHECK_OK(simclr_knn_eval_n(ref, f.train, f.ytr, 200, f.test, f.yte, 100, 4, 10, 0.1, &b));
    assert_true(a == b);
    CHECK_STATUS(simclr_knn_eval_n(ref, f.train, f.ytr, 199, f.test, f.yte, 100, 4, 10, 0.1, &b), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "199 train labels for 200"));
    CHECK_STATUS(simclr_knn_eval_n(ref, f.train, f.ytr, 200, f.test, f.yte, 101, 4, 10, 0.1, &b), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_knn_eval_n(ref, NULL, f.ytr, 200, f.test, f.yte, 100, 4, 10, 0.1, &b), SIMCLR_E_INVALID);
    CHECK_OK(simclr_linear_probe(ref, f.train, f.ytr, f.test, f.yte, 4, 20, 1e-4, &a));
    CHECK_OK(simclr_linear_probe_n(ref, f.train, f.ytr, 200, f.test, f.yte, 100, 4, 20, 1e-4, &b));
    assert_true(a == b);
    CHECK_STATUS(simclr_linear_probe_n(ref, f.train, f.ytr, 200, f.test, f.yte, 99, 4, 20, 1e-4, &b), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "simclr_linear_probe_n: 99 test labels for 100"));
    CHECK_STATUS(simclr_linear_probe_n(ref, f.train, f.ytr, -1, f.test, f.yte, 100, 4, 20, 1e-4, &b), SIMCLR_E_SHAPE);
    free_feats(&f);
    simclr_context_destroy(ref);
}

static void test_knn(void **state)
{
    (void)state;
    simclr_context *ref, *cpu;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ref));
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &cpu));
    double top1;
    feats f = make_feats(ref, GAUSS_BLOBS, 1000, 500, 16, 10, 1);
    CHECK_OK(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 10, 200, 0.1, &top1));
    assert_true(top1 >= 0.99);
    free_feats(&f);

    f = make_feats(ref, RANDOM_LABELS, 2000, 2000, 16, 10, 2);
    CHECK_OK(simclr_knn_eval(cpu, f.train, f.ytr, f.test, f.yte, 10, 50, 0.1, &top1));
    /* chance is 0.1; the standard error over 2000 test points is 0.007 */
    assert_true(top1 > 0.06 && top1 < 0.14);
    free_feats(&f);

    /* against the oracle, with a 3000-row train set so the similarity matrix
     * (6M entries) is split into blocks; a linear rule gives an accuracy
     * strictly between chance and 1 so mistakes show */
    f = make_feats(ref, LINEAR_PLAIN, 3000, 2000, 8, 5, 3);
    double want = knn_reference(&f, 5, 7, 0.07), got_ref, got_cpu;
    CHECK_OK(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 7, 0.07, &got_ref));
    CHECK_OK(simclr_knn_eval(cpu, f.train, f.ytr, f.test, f.yte, 5, 7, 0.07, &got_cpu));
    /* float vs double similarities may swap neighbours at near-ties: allow 2 of 2000 test points */
    assert_true(fabs(got_ref - want) <= 2.0 / 2000 + 1e-12);
    assert_true(fabs(got_cpu - want) <= 2.0 / 2000 + 1e-12);
    assert_true(want > 0.3 && want < 0.99);
    /* k = 1 with a tiny temperature: plain nearest neighbour, no overflow */
    CHECK_OK(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 1, 0.001, &got_ref));
    assert_true(fabs(got_ref - knn_reference(&f, 5, 1, 1.0)) <= 2.0 / 2000 + 1e-12);

    /* bad arguments */
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 0, 0.1, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 3001, 0.1, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 5, 0.0, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 5, NAN, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 4, 5, 0.1, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(ref, f.train, NULL, f.test, f.yte, 5, 5, 0.1, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, NULL, 5, 5, 0.1, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 5, 0.1, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_knn_eval(NULL, f.train, f.ytr, f.test, f.yte, 5, 5, 0.1, &top1), SIMCLR_E_INVALID);
    simclr__f32(f.test)[17] = INFINITY;
    CHECK_STATUS(simclr_knn_eval(ref, f.train, f.ytr, f.test, f.yte, 5, 5, 0.1, &top1), SIMCLR_E_NUMERIC);
    free_feats(&f);
    feats g = make_feats(ref, GAUSS_BLOBS, 10, 10, 4, 2, 4), h = make_feats(ref, GAUSS_BLOBS, 10, 10, 5, 2, 4);
    CHECK_STATUS(simclr_knn_eval(ref, g.train, g.ytr, h.test, h.yte, 2, 5, 0.1, &top1), SIMCLR_E_SHAPE);
    free_feats(&g);
    free_feats(&h);
    simclr_context_destroy(ref);
    simclr_context_destroy(cpu);
}

static void test_linear_probe(void **state)
{
    (void)state;
    simclr_context *ref, *cpu;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ref));
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &cpu));
    progress_log log = {0, 0, 0, 1, ""};
    CHECK_OK(simclr_context_set_progress(cpu, on_progress, &log));
    double top1, again;

    feats f = make_feats(ref, GAUSS_BLOBS, 1000, 500, 16, 10, 11);
    CHECK_OK(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 100, 1e-4, &top1));
    assert_true(top1 >= 0.99);
    assert_string_equal(log.what, "probe");
    assert_true(log.monotone && log.last_done == 100 && log.last_total == 100 && log.calls == 100);
    free_feats(&f);

    /* a linear rule through badly scaled features: needs the standardization
     * and a converged optimizer; logistic regression reaches ~97% here */
    f = make_feats(ref, LINEAR_RULE, 4000, 1000, 20, 5, 12);
    CHECK_OK(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 5, 500, 0.0, &top1));
    assert_true(top1 >= 0.93);
    CHECK_OK(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 5, 500, 0.0, &again));
    assert_true(top1 == again); /* deterministic */
    CHECK_OK(simclr_linear_probe(ref, f.train, f.ytr, f.test, f.yte, 5, 500, 0.0, &again));
    assert_true(fabs(top1 - again) <= 0.005); /* other summation order: a few margin cases may flip */
    /* a strong weight decay shrinks the classifier: accuracy drops but stays sane */
    CHECK_OK(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 5, 200, 10.0, &again));
    assert_true(again > 0.2 && again <= top1);
    free_feats(&f);

    f = make_feats(ref, RANDOM_LABELS, 2000, 2000, 16, 10, 13);
    CHECK_OK(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 200, 1e-3, &top1));
    assert_true(top1 > 0.06 && top1 < 0.14);

    CHECK_STATUS(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 0, 0, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 100001, 0, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 10, -1, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 1, 10, 0, &top1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 10, 0, NULL), SIMCLR_E_INVALID);
    f.ytr[5] = 10;
    CHECK_STATUS(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 10, 0, &top1), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "train_labels[5]"));
    f.ytr[5] = 0;
    simclr__f32(f.train)[3] = NAN;
    CHECK_STATUS(simclr_linear_probe(cpu, f.train, f.ytr, f.test, f.yte, 10, 10, 0, &top1), SIMCLR_E_NUMERIC);
    simclr__f32(f.train)[3] = 0;

    /* allocation failure: clean NOMEM, no leak */
    int ok = 0;
    for (long fail = 1; fail < 20 && !ok; fail++) {
        test_alloc a = {0, 0, 0, 0};
        simclr_allocator hooks = test_allocator(&a);
        simclr_context *c2;
        CHECK_OK(simclr_context_create("ref", 1, &hooks, &c2));
        a.fail_at = a.allocs + fail;
        simclr_status s1 = simclr_linear_probe(c2, f.train, f.ytr, f.test, f.yte, 10, 2, 0, &top1);
        a.fail_at = a.allocs + 1;
        simclr_status s2 = simclr_knn_eval(c2, f.train, f.ytr, f.test, f.yte, 10, 5, 0.1, &top1);
        a.fail_at = 0;
        if (s1 == SIMCLR_OK) ok = 1;
        else assert_int_equal(s1, SIMCLR_E_NOMEM);
        assert_int_equal(s2, SIMCLR_E_NOMEM);
        simclr_context_destroy(c2);
        assert_int_equal(a.live, 0);
    }
    assert_true(ok);
    free_feats(&f);
    simclr_context_destroy(ref);
    simclr_context_destroy(cpu);
}

/* ---- the linear probe with a validation-chosen weight decay --------------- */

/* Rows [from, to) of a feature tensor, copied: the test builds the split
 * itself instead of trusting the library's. */
static simclr_tensor *rows_copy(simclr_context *ctx, const simclr_tensor *f, int64_t from, int64_t to)
{
    int64_t d = simclr_tensor_dim(f, 1), s[2] = {to - from, d};
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, s, &t));
    memcpy(simclr_tensor_data(t), simclr__f32(f) + from * d, (size_t)((to - from) * d) * sizeof(float));
    return t;
}

/* What simclr_linear_probe_select should do, done by hand with
 * simclr_linear_probe_n: validation accuracies acc[i] of the grid on the
 * split train rows [0, cut) / [cut, n), the first best decay, and the test
 * accuracy of the refit on all rows with it. */
static double select_by_hand(simclr_context *ctx, const feats *f, int k, int epochs, const double *grid, int n_grid,
                             double *acc, double *top1)
{
    int64_t n = simclr_tensor_dim(f->train, 0), nte = simclr_tensor_dim(f->test, 0), cut = n * 4 / 5;
    simclr_tensor *fit = rows_copy(ctx, f->train, 0, cut), *val = rows_copy(ctx, f->train, cut, n);
    int best = 0;
    for (int i = 0; i < n_grid; i++) {
        CHECK_OK(simclr_linear_probe_n(ctx, fit, f->ytr, cut, val, f->ytr + cut, n - cut, k, epochs, grid[i], &acc[i]));
        if (acc[i] > acc[best]) best = i;
    }
    CHECK_OK(simclr_linear_probe_n(ctx, f->train, f->ytr, n, f->test, f->yte, nte, k, epochs, grid[best], top1));
    simclr_tensor_destroy(fit);
    simclr_tensor_destroy(val);
    return grid[best];
}

/* A bad call: the status, a message starting with the function's name and
 * containing `want`, outputs and progress untouched. */
#define SELECT_FAILS(call, status, want)                                                      \
    do {                                                                                      \
        top1 = -5, chosen = -7;                                                               \
        int calls_ = log.calls;                                                               \
        CHECK_STATUS(call, status);                                                           \
        assert_true(strncmp(simclr_last_error(), "simclr_linear_probe_select: ", 28) == 0);  \
        if (!strstr(simclr_last_error(), want)) fail_msg("message \"%s\" lacks \"%s\"", simclr_last_error(), want); \
        assert_true(top1 == -5 && chosen == -7);                                              \
        assert_int_equal(log.calls, calls_);                                                  \
    } while (0)

/* simclr_linear_probe_select under the allocation-failure sweep: outputs
 * preset before each call, untouched by a failed one. */
typedef struct select_run {
    const feats *f;
    int64_t ntr, nte;
    int k;
    const double *grid;
    double top1, chosen;
} select_run;

static simclr_status select_call(simclr_context *ctx, void *user)
{
    select_run *r = user;
    r->top1 = -5, r->chosen = -7;
    return simclr_linear_probe_select(ctx, r->f->train, r->f->ytr, r->ntr, r->f->test, r->f->yte, r->nte, r->k, 3,
                                      r->grid, 2, &r->top1, &r->chosen);
}

static void select_finish(simclr_context *ctx, simclr_status st, void *user)
{
    (void)ctx;
    const select_run *r = user;
    if (st != SIMCLR_OK) assert_true(r->top1 == -5 && r->chosen == -7);
}

static void test_linear_probe_select(void **state)
{
    (void)state;
    enum { NTR = 153, NTE = 150, D = 40, K = 4, EPOCHS = 100 };
    simclr_context *ctxs[2];
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctxs[0]));
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &ctxs[1]));
    /* a linear rule in 40 features, 122 rows to fit (4/5 of 153: the split's
     * floor) and a third of the train labels replaced by random ones: the
     * probe overfits without decay, and a moderate one validates best */
    feats f = make_feats(ctxs[0], LINEAR_PLAIN, NTR, NTE, D, K, 21);
    uint64_t r = 77;
    for (int i = 0; i < NTR; i++)
        if (test_rand_next(&r) % 3 == 0) f.ytr[i] = (int32_t)(test_rand_next(&r) % K);
    const double grid[] = {0.0, 1e-2, 0.3, 3.0, 30.0};
    const double dflt[] = {1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1};
    double acc[6], want_top1, top1, chosen;
    progress_log log = {0, 0, 0, 1, ""};
    for (int c = 0; c < 2; c++) {
        simclr_context *ctx = ctxs[c];
        double want = select_by_hand(ctx, &f, K, EPOCHS, grid, 5, acc, &want_top1);
        int distinct = 0;
        for (int i = 1; i < 5; i++) distinct += acc[i] != acc[0];
        assert_true(distinct > 0); /* the choice matters: not every decay scores the same */
        assert_true(want != grid[0]); /* and "always the first" would be wrong */
        log = (progress_log){0, 0, 0, 1, ""};
        CHECK_OK(simclr_context_set_progress(ctx, on_progress, &log));
        top1 = chosen = -1;
        CHECK_OK(simclr_linear_probe_select(ctx, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, EPOCHS, grid, 5, &top1,
                                            &chosen));
        assert_true(chosen == want);
        assert_true(top1 == want_top1); /* exactly the refit of simclr_linear_probe_n */
        assert_string_equal(log.what, "probe_select");
        assert_true(log.monotone && log.calls == 6 * EPOCHS && log.last_done == 6 * EPOCHS &&
                    log.last_total == 6 * EPOCHS);
        /* again: deterministic; chosen_decay may be NULL */
        double again = -1;
        CHECK_OK(simclr_linear_probe_select(ctx, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, EPOCHS, grid, 5, &again,
                                            NULL));
        assert_true(again == top1);

        /* the default grid: decays NULL (or ignored) with n_decays 0 */
        want = select_by_hand(ctx, &f, K, EPOCHS, dflt, 6, acc, &want_top1);
        log = (progress_log){0, 0, 0, 1, ""};
        CHECK_OK(simclr_linear_probe_select(ctx, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, EPOCHS, NULL, 0, &top1,
                                            &chosen));
        assert_true(chosen == want && top1 == want_top1);
        assert_true(log.last_done == 7 * EPOCHS && log.last_total == 7 * EPOCHS);
        CHECK_OK(simclr_linear_probe_select(ctx, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, EPOCHS, grid, 0, &top1,
                                            &chosen));
        assert_true(chosen == want && top1 == want_top1);

        /* ties go to the first decay in grid order, whichever order that is */
        const double tie[] = {1e-7, 1e-6}, tie_rev[] = {1e-6, 1e-7};
        select_by_hand(ctx, &f, K, EPOCHS, tie, 2, acc, &want_top1);
        assert_true(acc[0] == acc[1]);
        CHECK_OK(simclr_linear_probe_select(ctx, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, EPOCHS, tie, 2, &top1,
                                            &chosen));
        assert_true(chosen == 1e-7 && top1 == want_top1);
        select_by_hand(ctx, &f, K, EPOCHS, tie_rev, 2, acc, &want_top1);
        CHECK_OK(simclr_linear_probe_select(ctx, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, EPOCHS, tie_rev, 2,
                                            &top1, &chosen));
        assert_true(chosen == 1e-6 && top1 == want_top1);
        CHECK_OK(simclr_context_set_progress(ctx, NULL, NULL));
    }

    /* the smallest train set that splits: 2 rows, one to fit and one to validate */
    simclr_context *ref = ctxs[0];
    simclr_tensor *two = rows_copy(ref, f.train, 0, 2), *one = rows_copy(ref, f.train, 0, 1);
    CHECK_OK(simclr_linear_probe_select(ref, two, f.ytr, 2, f.test, f.yte, NTE, K, 5, grid, 2, &top1, &chosen));
    assert_true(chosen == grid[0] || chosen == grid[1]);

    /* bad input: found before any fit (no progress report), outputs untouched */
    log = (progress_log){0, 0, 0, 1, ""};
    CHECK_OK(simclr_context_set_progress(ref, on_progress, &log));
    const double neg[] = {1e-3, -1e-3}, with_nan[] = {0, 1e-3, NAN}, with_inf[] = {INFINITY};
    SELECT_FAILS(simclr_linear_probe_select(NULL, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "ctx is NULL");
    SELECT_FAILS(simclr_linear_probe_select(ref, NULL, f.ytr, NTR, f.test, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "train is NULL");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, NULL, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "test is NULL");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, NULL, NTR, f.test, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "train_labels is NULL");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, NULL, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "test_labels is NULL");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, grid, 5, NULL, &chosen),
                 SIMCLR_E_INVALID, "top1 is NULL");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR - 1, f.test, f.yte, NTE, K, 5, grid, 5, &top1,
                                            &chosen),
                 SIMCLR_E_SHAPE, "152 train labels for 153 train rows");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE + 1, K, 5, grid, 5, &top1,
                                            &chosen),
                 SIMCLR_E_SHAPE, "151 test labels for 150 test rows");
    SELECT_FAILS(simclr_linear_probe_select(ref, one, f.ytr, 1, f.test, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_SHAPE, "1 train rows cannot be split into fit and validation rows (need at least 2)");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, neg, 2, &top1, &chosen),
                 SIMCLR_E_INVALID, "decays[1] = -0.001 must be finite and >= 0");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, with_nan, 3, &top1,
                                            &chosen),
                 SIMCLR_E_INVALID, "decays[2] = nan must be finite and >= 0");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, with_inf, 1, &top1,
                                            &chosen),
                 SIMCLR_E_INVALID, "decays[0] = inf must be finite and >= 0");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, grid, -1, &top1, &chosen),
                 SIMCLR_E_INVALID, "n_decays -1 out of range 0..1000");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, grid, 1001, &top1,
                                            &chosen),
                 SIMCLR_E_INVALID, "n_decays 1001 out of range 0..1000");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, NULL, 3, &top1, &chosen),
                 SIMCLR_E_INVALID, "decays is NULL with n_decays 3");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 0, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "epochs 0 out of range 1..100000");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 100001, grid, 5, &top1,
                                            &chosen),
                 SIMCLR_E_INVALID, "epochs 100001 out of range 1..100000");
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, 1, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "n_classes 1 out of range 2..1000000");
    int32_t keep = f.ytr[5];
    f.ytr[5] = K;
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_INVALID, "train_labels[5] = 4 out of range 0..3");
    f.ytr[5] = keep;
    simclr__f32(f.test)[3 * D + 1] = NAN;
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, f.test, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_NUMERIC, "test holds a non-finite value at row 3");
    simclr__f32(f.test)[3 * D + 1] = 0;
    simclr_tensor *narrow = NULL;
    int64_t ns[2] = {NTE, D - 1};
    CHECK_OK(simclr_tensor_create(ref, SIMCLR_F32, 2, ns, &narrow));
    SELECT_FAILS(simclr_linear_probe_select(ref, f.train, f.ytr, NTR, narrow, f.yte, NTE, K, 5, grid, 5, &top1, &chosen),
                 SIMCLR_E_SHAPE, "test has shape");
    assert_int_equal(log.calls, 0);
    simclr_tensor_destroy(narrow);
    simclr_tensor_destroy(two);
    simclr_tensor_destroy(one);

    /* allocation failure: clean NOMEM, no leak, outputs untouched */
    select_run run = {&f, NTR, NTE, K, grid, -5, -7};
    test_alloc_sweep sweep = {NULL, select_call, select_finish, &run};
    test_sweep_alloc_failures(20, &sweep);
    free_feats(&f);
    simclr_context_destroy(ctxs[0]);
    simclr_context_destroy(ctxs[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract_features),
        cmocka_unit_test(test_extract_failure_leaves_out),
        cmocka_unit_test(test_length_checked_labels),
        cmocka_unit_test(test_knn),
        cmocka_unit_test(test_linear_probe),
        cmocka_unit_test(test_linear_probe_select),
    };
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
