/* SwAV: Sinkhorn-Knopp codes against the paper's algorithm written out in
 * double, the swapped prediction loss and its gradient at the embeddings
 * and the prototypes by finite differences, the prototypes module, the
 * trainer's prototype normalization and freezing, bad arguments and
 * refusals, all-or-nothing steps (the step_faults.h sweep) and bit-identical
 * resume from a checkpoint. The PyTorch cross-check of whole steps is
 * tests/python/test_torch_swav.py. */
#include "test_util.h"

#include "loss/swav_loss.h"
#include "step_faults.h"

#define IMG 12
#define CH 1

static char tmpdir[256];

static int group_setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "swav");
}

static int group_teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* ------------------------------------------------------------ the loss -- */

/* The appendix's sinkhorn(scores, eps, niters), transposed as there:
 * Q = exp(scores / eps)^T [k, b]; Q /= sum(Q); then per iteration
 * Q /= row sums, Q /= k, Q /= column sums, Q /= b; return (b Q)^T. */
static void ref_codes(const double *s, int64_t b, int64_t k, double eps, int iters, double *q)
{
    double *t = malloc((size_t)(b * k) * sizeof *t), total = 0;
    for (int64_t j = 0; j < k; j++)
        for (int64_t i = 0; i < b; i++) total += t[j * b + i] = exp(s[i * k + j] / eps);
    for (int64_t x = 0; x < b * k; x++) t[x] /= total;
    for (int it = 0; it < iters; it++) {
        for (int64_t j = 0; j < k; j++) {
            double r = 0;
            for (int64_t i = 0; i < b; i++) r += t[j * b + i];
            for (int64_t i = 0; i < b; i++) t[j * b + i] = t[j * b + i] / r / (double)k;
        }
        for (int64_t i = 0; i < b; i++) {
            double c = 0;
            for (int64_t j = 0; j < k; j++) c += t[j * b + i];
            for (int64_t j = 0; j < k; j++) t[j * b + i] = t[j * b + i] / c / (double)b;
        }
    }
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < k; j++) q[i * k + j] = t[j * b + i] * (double)b;
    free(t);
}

/* Scores of two views: u = z / ||z||, s = u c^T ([2b, k]). */
static void ref_scores(const double *z, const double *c, int64_t b, int64_t d, int64_t k, double *s)
{
    for (int64_t r = 0; r < 2 * b; r++) {
        double n = 0;
        for (int64_t e = 0; e < d; e++) n += z[r * d + e] * z[r * d + e];
        n = sqrt(n);
        for (int64_t j = 0; j < k; j++) {
            double dot = 0;
            for (int64_t e = 0; e < d; e++) dot += z[r * d + e] / n * c[j * d + e];
            s[r * k + j] = dot;
        }
    }
}

/* Algorithm 1's loss at fixed codes q ([2b, k]): 1/2 (l(q0, s1) + l(q1, s0)),
 * l(q, s) = -1/b sum_i sum_j q[i,j] log softmax(s[i] / t)_j. */
static double ref_loss(const double *z, const double *c, const double *q, int64_t b, int64_t d, int64_t k, double t)
{
    double *s = malloc((size_t)(2 * b * k) * sizeof *s), total = 0;
    ref_scores(z, c, b, d, k, s);
    for (int v = 0; v < 2; v++)
        for (int64_t i = 0; i < b; i++) {
            const double *st = s + ((1 - v) * b + i) * k, *qs = q + (v * b + i) * k;
            double sum = 0;
            for (int64_t j = 0; j < k; j++) sum += exp(st[j] / t);
            for (int64_t j = 0; j < k; j++) total -= qs[j] * (st[j] / t - log(sum));
        }
    free(s);
    return total / (2.0 * (double)b);
}

static void test_sinkhorn_matches_the_paper(void **state)
{
    (void)state;
    enum { B = 7, K = 5 };
    float s[B * K], q[B * K];
    double sd[B * K], want[B * K], work[B * K + K];
    test_fill(s, B * K, 3);
    for (int x = 0; x < B * K; x++) sd[x] = s[x];
    for (int iters = 1; iters <= 5; iters += 2) {
        assert_int_equal(simclr__sinkhorn(B, K, s, K, 0.05, iters, work, q, K), 0);
        ref_codes(sd, B, K, 0.05, iters, want);
        for (int x = 0; x < B * K; x++)
            if (fabs(q[x] - want[x]) > 1e-5 * (1 + fabs(want[x])))
                fail_msg("iters %d: q[%d] = %.9g, want %.9g", iters, x, q[x], want[x]);
    }
    /* Many iterations: each sample's codes sum to 1, each prototype gets b/k. */
    assert_int_equal(simclr__sinkhorn(B, K, s, K, 0.05, 500, work, q, K), 0);
    for (int i = 0; i < B; i++) {
        double r = 0;
        for (int j = 0; j < K; j++) r += q[i * K + j];
        assert_true(fabs(r - 1) < 1e-5);
    }
    for (int j = 0; j < K; j++) {
        double c = 0;
        for (int i = 0; i < B; i++) c += q[i * K + j];
        assert_true(fabs(c - (double)B / K) < 1e-4);
    }
    /* A score far above the others (exp(-1200) for the rest of its prototype): still finite codes. */
    s[0] = 60;
    assert_int_equal(simclr__sinkhorn(B, K, s, K, 0.05, 3, work, q, K), 0);
    for (int x = 0; x < B * K; x++) assert_true(isfinite(q[x]));
}

/* The loss against Algorithm 1 written out, and its gradient at z and at
 * the prototypes against central differences of that loss at fixed codes
 * (the codes carry no gradient). */
static void test_loss_value_and_gradient(void **state)
{
    (void)state;
    enum { B = 6, D = 5, K = 4 };
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &ctx));
    float z[2 * B * D], c[K * D], dz[2 * B * D], dc[K * D];
    test_fill(z, 2 * B * D, 11);
    test_fill(c, K * D, 12);
    for (int j = 0; j < K; j++) {
        double n = 0;
        for (int e = 0; e < D; e++) n += (double)c[j * D + e] * c[j * D + e];
        for (int e = 0; e < D; e++) c[j * D + e] = (float)(c[j * D + e] / sqrt(n));
    }
    double zd[2 * B * D], cd[K * D], s[2 * B * K], q[2 * B * K];
    for (int x = 0; x < 2 * B * D; x++) zd[x] = z[x];
    for (int x = 0; x < K * D; x++) cd[x] = c[x];
    const double tau = 0.1, eps = 0.05;
    ref_scores(zd, cd, B, D, K, s);
    for (int v = 0; v < 2; v++) ref_codes(s + v * B * K, B, K, eps, 3, q + v * B * K);

    simclr__swav_scratch scr;
    CHECK_OK(simclr__swav_scratch_new(ctx, "test", 2, B, D, K, &scr));
    const simclr__swav_params p = {tau, eps, 3};
    double loss, acc;
    memset(dc, 0, sizeof dc);
    CHECK_OK(simclr__swav_loss(ctx, "test", &p, 2, B, D, K, z, c, &scr, &loss, &acc, dz, dc, 1.0f));
    const double want = ref_loss(zd, cd, q, B, D, K, tau);
    if (fabs(loss - want) > 1e-5 * (1 + fabs(want))) fail_msg("loss %.9g, want %.9g", loss, want);
    for (int x = 0; x < 2 * B * K; x++) assert_true(fabs(scr.q[x] - q[x]) < 1e-5);
    assert_true(acc >= 0 && acc <= 1);

    const double h = 1e-5;
    float fz[2 * B * D], fc[K * D];
    for (int x = 0; x < 2 * B * D; x++) {
        double keep = zd[x];
        zd[x] = keep + h;
        double up = ref_loss(zd, cd, q, B, D, K, tau);
        zd[x] = keep - h;
        double down = ref_loss(zd, cd, q, B, D, K, tau);
        zd[x] = keep;
        fz[x] = (float)((up - down) / (2 * h));
    }
    for (int x = 0; x < K * D; x++) {
        double keep = cd[x];
        cd[x] = keep + h;
        double up = ref_loss(zd, cd, q, B, D, K, tau);
        cd[x] = keep - h;
        double down = ref_loss(zd, cd, q, B, D, K, tau);
        cd[x] = keep;
        fc[x] = (float)((up - down) / (2 * h));
    }
    double ez = test_norm_err(dz, fz, 2 * B * D), ec = test_norm_err(dc, fc, K * D);
    print_message("swav loss %.6f; gradient error at z %.2e, at the prototypes %.2e\n", loss, ez, ec);
    assert_true(ez < 1e-4);
    assert_true(ec < 1e-4);

    /* dc accumulates, scaled (the trainer writes 1/ranks of it on each rank). */
    float dc2[K * D];
    for (int x = 0; x < K * D; x++) dc2[x] = 1.0f;
    CHECK_OK(simclr__swav_loss(ctx, "test", &p, 2, B, D, K, z, c, &scr, &loss, NULL, dz, dc2, 0.5f));
    for (int x = 0; x < K * D; x++) assert_true(fabsf(dc2[x] - (1.0f + 0.5f * dc[x])) < 1e-6f);

    /* A NaN embedding or prototype: SIMCLR_E_NUMERIC, nothing written. */
    float keep = z[3];
    z[3] = NAN;
    memcpy(dc2, dc, sizeof dc);
    CHECK_STATUS(simclr__swav_loss(ctx, "test", &p, 2, B, D, K, z, c, &scr, &loss, NULL, dz, dc2, 1.0f),
                 SIMCLR_E_NUMERIC);
    assert_memory_equal(dc, dc2, sizeof dc);
    z[3] = keep;
    c[2] = INFINITY;
    CHECK_STATUS(simclr__swav_loss(ctx, "test", &p, 2, B, D, K, z, c, &scr, &loss, NULL, dz, dc2, 1.0f),
                 SIMCLR_E_NUMERIC);
    assert_non_null(strstr(simclr_last_error(), "prototype"));
    simclr__swav_scratch_free(ctx, &scr);
    simclr_context_destroy(ctx);
}

/* The prototypes module: unit rows, forward x W^T, backward into W's gradient. */
static void test_prototypes_module(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    simclr_module *m;
    CHECK_STATUS(simclr_swav_prototypes_create(ctx, 0, 4, 1, &m), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_prototypes_create(ctx, 4, 0, 1, &m), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_prototypes_create(NULL, 4, 4, 1, &m), SIMCLR_E_INVALID);
    CHECK_OK(simclr_swav_prototypes_create(ctx, 3, 5, 1, &m));
    assert_int_equal(simclr_module_param_count(m), 1);
    const char *name;
    simclr_tensor *w, *g;
    CHECK_OK(simclr_module_param(m, 0, &name, &w, &g, NULL));
    assert_string_equal(name, "weight");
    assert_int_equal(simclr_tensor_dim(w, 0), 5);
    assert_int_equal(simclr_tensor_dim(w, 1), 3);
    const float *wd = simclr_tensor_data(w);
    for (int j = 0; j < 5; j++)
        assert_true(fabs(wd[j * 3] * wd[j * 3] + wd[j * 3 + 1] * wd[j * 3 + 1] + wd[j * 3 + 2] * wd[j * 3 + 2] - 1) <
                    1e-6);
    simclr_tensor *x, *y, *dy, *dx;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, (const int64_t[]){2, 3}, &x));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, (const int64_t[]){2, 5}, &y));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, (const int64_t[]){2, 5}, &dy));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, (const int64_t[]){2, 3}, &dx));
    float *xd = simclr_tensor_data(x), *yd = simclr_tensor_data(y), *dyd = simclr_tensor_data(dy),
          *dxd = simclr_tensor_data(dx), *gd = simclr_tensor_data(g);
    test_fill(xd, 6, 4);
    test_fill(dyd, 10, 5);
    CHECK_OK(simclr_module_zero_grad(m));
    CHECK_OK(simclr_module_forward(m, x, SIMCLR_TRAIN, y));
    CHECK_OK(simclr_module_backward(m, dy, dx));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++) {
            double want = 0;
            for (int e = 0; e < 3; e++) want += (double)xd[i * 3 + e] * wd[j * 3 + e];
            assert_true(fabs(yd[i * 5 + j] - want) < 1e-6);
        }
    for (int j = 0; j < 5; j++)
        for (int e = 0; e < 3; e++) {
            double want = 0;
            for (int i = 0; i < 2; i++) want += (double)dyd[i * 5 + j] * xd[i * 3 + e];
            assert_true(fabs(gd[j * 3 + e] - want) < 1e-6);
        }
    for (int i = 0; i < 2; i++)
        for (int e = 0; e < 3; e++) {
            double want = 0;
            for (int j = 0; j < 5; j++) want += (double)dyd[i * 5 + j] * wd[j * 3 + e];
            assert_true(fabs(dxd[i * 3 + e] - want) < 1e-6);
        }
    CHECK_STATUS(simclr_module_forward(m, dy, SIMCLR_EVAL, y), SIMCLR_E_SHAPE);
    simclr_tensor_destroy(x), simclr_tensor_destroy(y), simclr_tensor_destroy(dy), simclr_tensor_destroy(dx);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

/* ------------------------------------------------------------ the trainer -- */

typedef struct {
    simclr_context *ctx;
    simclr_module *enc, *head, *protos;
    simclr_augment *aug;
    simclr_optimizer *opt;
    simclr_trainer *tr;
} rig;

static simclr_status rig_try(rig *r, const simclr_allocator *alloc, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    simclr_status st = simclr_context_create("cpu", 2, alloc, &r->ctx);
    if (st) return st;
    if ((st = simclr_resnet_create(r->ctx, 18, 2, CH, SIMCLR_STEM_CIFAR, 3 + seed, &r->enc))) return st;
    int d = (int)simclr_module_output_dim(r->enc);
    if ((st = simclr_mlp_head_create(r->ctx, d, 16, 8, 2, 1, 4 + seed, &r->head))) return st;
    if ((st = simclr_swav_prototypes_create(r->ctx, 8, 6, 5 + seed, &r->protos))) return st;
    if ((st = simclr_augment_create(r->ctx, SIMCLR_AUG_PRESET_GRAYSCALE, IMG, IMG, &r->aug))) return st;
    simclr_module *mods[3] = {r->enc, r->head, r->protos};
    if ((st = simclr_optimizer_create(r->ctx, SIMCLR_OPT_SGD, mods, 3, &r->opt))) return st;
    if ((st = simclr_optimizer_set(r->opt, SIMCLR_OPT_LR, 0.1))) return st;
    if ((st = simclr_optimizer_set(r->opt, SIMCLR_OPT_MOMENTUM, 0.9))) return st;
    if ((st = simclr_swav_trainer_create(r->ctx, r->enc, r->head, r->protos, r->aug, r->opt, &r->tr))) return st;
    return simclr_swav_set(r->tr, SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS, 1);
}

static void rig_free(rig *r)
{
    simclr_trainer_destroy(r->tr);
    simclr_optimizer_destroy(r->opt);
    simclr_augment_destroy(r->aug);
    simclr_module_destroy(r->protos);
    simclr_module_destroy(r->head);
    simclr_module_destroy(r->enc);
    simclr_context_destroy(r->ctx);
}

static simclr_tensor *images(simclr_context *ctx, int n, uint64_t seed)
{
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, (const int64_t[]){n, IMG, IMG, CH}, &t));
    uint8_t *px = simclr_tensor_data(t);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < simclr_tensor_numel(t); i++) px[i] = (uint8_t)(test_rand_next(&s) >> 56);
    return t;
}

static float *weight(rig *r, float **grad)
{
    simclr_tensor *w, *g;
    CHECK_OK(simclr_module_param(r->protos, 0, NULL, &w, &g, NULL));
    if (grad) *grad = simclr_tensor_data(g);
    return simclr_tensor_data(w);
}

static void assert_unit_rows(const float *w, int k, int d)
{
    for (int j = 0; j < k; j++) {
        double n = 0;
        for (int e = 0; e < d; e++) n += (double)w[j * d + e] * w[j * d + e];
        if (fabs(n - 1) > 1e-6) fail_msg("prototype %d has squared norm %.9g", j, n);
    }
}

/* Defaults; creation normalizes; frozen for the first F steps (gradient
 * zero, prototypes as they were), then trained and normalized after every
 * commit. */
static void test_freeze_and_normalization(void **state)
{
    (void)state;
    rig r;
    CHECK_OK(rig_try(&r, NULL, 0));
    double v;
    CHECK_OK(simclr_swav_get(r.tr, SIMCLR_SWAV_TEMPERATURE, &v));
    assert_true(v == 0.1);
    CHECK_OK(simclr_swav_get(r.tr, SIMCLR_SWAV_EPSILON, &v));
    assert_true(v == 0.05);
    CHECK_OK(simclr_swav_get(r.tr, SIMCLR_SWAV_SINKHORN_ITERATIONS, &v));
    assert_true(v == 3);
    CHECK_OK(simclr_swav_get(r.tr, SIMCLR_SWAV_PROTOTYPES, &v));
    assert_true(v == 6);
    CHECK_OK(simclr_swav_set(r.tr, SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS, 2));
    float *g, *w = weight(&r, &g), before[48];
    test_fill(w, 48, 9); /* rows of any length: used as given until a commit */
    memcpy(before, w, sizeof before);
    simclr_tensor *img = images(r.ctx, 4, 1);
    float loss;
    for (int s = 0; s < 2; s++) {
        CHECK_OK(simclr_trainer_step(r.tr, img, (uint64_t)s, &loss));
        assert_true(isfinite(loss));
        for (int x = 0; x < 48; x++) assert_true(g[x] == 0.0f);
        assert_unit_rows(w, 6, 8);
        if (s == 0) /* the commit normalized the rows, nothing else */
            for (int j = 0; j < 6; j++) {
                double n = 0;
                for (int e = 0; e < 8; e++) n += (double)before[j * 8 + e] * before[j * 8 + e];
                for (int e = 0; e < 8; e++) assert_true(fabs(w[j * 8 + e] - before[j * 8 + e] / sqrt(n)) < 1e-6);
            }
        memcpy(before, w, sizeof before);
    }
    CHECK_OK(simclr_trainer_step(r.tr, img, 2, &loss));
    double gn = 0, moved = 0;
    for (int x = 0; x < 48; x++) gn += (double)g[x] * g[x], moved += fabs(w[x] - before[x]);
    assert_true(gn > 0);
    assert_true(moved > 1e-4);
    assert_unit_rows(w, 6, 8);
    CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_ACCURACY, &v));
    assert_true(v >= 0 && v <= 1);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    rig r;
    CHECK_OK(rig_try(&r, NULL, 0));
    simclr_trainer *t = NULL;
    simclr_module *head2, *protos4;
    CHECK_OK(simclr_mlp_head_create(r.ctx, (int)simclr_module_output_dim(r.enc), 16, 8, 2, 1, 1, &head2));
    CHECK_OK(simclr_swav_prototypes_create(r.ctx, 4, 6, 1, &protos4));
    CHECK_STATUS(simclr_swav_trainer_create(NULL, r.enc, r.head, r.protos, r.aug, r.opt, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_trainer_create(r.ctx, r.enc, r.head, NULL, r.aug, r.opt, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_trainer_create(r.ctx, r.enc, r.head, r.head, r.aug, r.opt, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_trainer_create(r.ctx, r.enc, r.head, head2, r.aug, r.opt, &t), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_swav_prototypes_create"));
    CHECK_STATUS(simclr_swav_trainer_create(r.ctx, r.enc, r.head, protos4, r.aug, r.opt, &t), SIMCLR_E_SHAPE);
    /* An optimizer without the prototypes. */
    simclr_optimizer *opt2;
    simclr_module *two[2] = {r.enc, r.head};
    CHECK_OK(simclr_optimizer_create(r.ctx, SIMCLR_OPT_SGD, two, 2, &opt2));
    CHECK_STATUS(simclr_swav_trainer_create(r.ctx, r.enc, r.head, r.protos, r.aug, opt2, &t), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "prototypes"));
    assert_null(t);
    simclr_optimizer_destroy(opt2);

    /* Settings: ranges, read-only, unsupported features, other methods. */
    double before, v;
    CHECK_OK(simclr_swav_get(r.tr, SIMCLR_SWAV_TEMPERATURE, &before));
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_TEMPERATURE, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_TEMPERATURE, NAN), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_EPSILON, 0.001), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_SINKHORN_ITERATIONS, 2.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_SINKHORN_ITERATIONS, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS, -1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_PROTOTYPES, 6), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_QUEUE_LENGTH, 3840), SIMCLR_E_UNSUPPORTED);
    assert_non_null(strstr(simclr_last_error(), "queue"));
    CHECK_OK(simclr_swav_set(r.tr, SIMCLR_SWAV_QUEUE_LENGTH, 0));
    CHECK_STATUS(simclr_swav_set(r.tr, SIMCLR_SWAV_CODE_VIEWS, 1), SIMCLR_E_UNSUPPORTED);
    CHECK_OK(simclr_swav_set(r.tr, SIMCLR_SWAV_CODE_VIEWS, 2));
    CHECK_STATUS(simclr_swav_set(r.tr, (simclr_swav_param)999, 1), SIMCLR_E_INVALID);
    CHECK_OK(simclr_swav_get(r.tr, SIMCLR_SWAV_TEMPERATURE, &v));
    assert_true(v == before);
    CHECK_STATUS(simclr_swav_get(r.tr, SIMCLR_SWAV_TEMPERATURE, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_swav_set(NULL, SIMCLR_SWAV_TEMPERATURE, 0.2), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_MOMENTUM, 0.9), SIMCLR_E_INVALID);
    simclr_loss *nt;
    CHECK_OK(simclr_ntxent_create(r.ctx, 0.5, 2, &nt));
    simclr_optimizer *opt3;
    CHECK_OK(simclr_optimizer_create(r.ctx, SIMCLR_OPT_SGD, two, 2, &opt3));
    CHECK_OK(simclr_trainer_create(r.ctx, r.enc, r.head, r.aug, nt, opt3, &t));
    CHECK_STATUS(simclr_swav_set(t, SIMCLR_SWAV_TEMPERATURE, 0.2), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "not a SwAV trainer"));
    simclr_trainer_destroy(t);
    simclr_optimizer_destroy(opt3);
    simclr_loss_destroy(nt);
    simclr_module_destroy(protos4);
    simclr_module_destroy(head2);
    rig_free(&r);
}

/* The whole state of a SwAV trainer: three modules (prototypes included),
 * their gradients, optimizer, statistics. */
static sf_blob swav_state(void *u, int timing)
{
    rig *r = u;
    sf_blob b = {0};
    sf_put_module(&b, r->enc, 0);
    sf_put_module(&b, r->head, 0);
    sf_section(&b, "parameters or BN running statistics");
    sf_put_module(&b, r->protos, 0);
    sf_section(&b, "prototypes");
    sf_put_module(&b, r->protos, 1);
    sf_put_training(&b, r->enc, r->head, r->opt);
    sf_put_stats(&b, r->tr, timing);
    sf_section(&b, "trainer statistics");
    return b;
}

/* Every way a step can fail after it started (a stop at each poll, a NaN
 * weight, every allocation at a new batch size and at the same one), on a
 * trainer past its freeze (prototype gradients and momentum set): each
 * leaves the prototypes and everything else byte for byte as they were;
 * the step that then succeeds equals that of a trainer that never failed. */
static void test_failed_steps_sweep(void **state)
{
    (void)state;
    test_alloc ta = {0, 0, 0, 0};
    simclr_allocator hooks = test_allocator(&ta);
    rig a, ref;
    CHECK_OK(rig_try(&a, &hooks, 0));
    CHECK_OK(rig_try(&ref, NULL, 0));
    simclr_tensor *img4 = images(a.ctx, 4, 3), *img8 = images(a.ctx, 8, 4);
    CHECK_OK(simclr_trainer_step(a.tr, img4, 9, NULL)); /* past the freeze of 1 step */
    CHECK_OK(simclr_trainer_step(ref.tr, img4, 9, NULL));
    const sf_target t = {a.tr, ref.tr, a.ctx, a.enc, &ta, &a, &ref, swav_state};
    sf_counts n = sf_sweep_all(&t, img4, img8, NULL, NULL);
    print_message("swav failed steps: %ld stops, %ld NaN, %ld + %ld allocation failures; each left the trainer as "
                  "it was\n", n.stops, n.nans, n.allocs_new, n.allocs);
    /* A NaN prototype fails the step with SIMCLR_E_NUMERIC and changes nothing. */
    float *w = weight(&a, NULL);
    float keep = w[5];
    w[5] = NAN;
    sf_blob before = swav_state(&a, 1);
    CHECK_STATUS(simclr_trainer_step(a.tr, img4, 7, NULL), SIMCLR_E_NUMERIC);
    assert_non_null(strstr(simclr_last_error(), "prototype"));
    sf_blob after = swav_state(&a, 1);
    assert_null(sf_diff(&before, &after));
    free(before.p), free(after.p);
    w[5] = keep;
    simclr_tensor_destroy(img4), simclr_tensor_destroy(img8);
    rig_free(&a), rig_free(&ref);
    assert_int_equal(ta.live, 0);
}

/* Two ranks holding the same shard (a fake communicator: rank 1 of 2 whose
 * peer has the same data) against one process on that shard, with views
 * that do not depend on the image index (SIMCLR_AUG_PRESET_NONE): the
 * global batch is the shard twice, which changes neither the codes nor the
 * loss, so the summed gradients (the prototypes' included: each rank writes
 * half) and the step equal the single process's up to rounding. */
static void test_ranks_match_one_process(void **state)
{
    (void)state;
    rig r[2];
    sf_fake_comm f = {0, 0};
    simclr_comm comm = sf_fake(&f);
    for (int k = 0; k < 2; k++) {
        CHECK_OK(rig_try(&r[k], NULL, 0));
        simclr_augment_destroy(r[k].aug);
        CHECK_OK(simclr_augment_create(r[k].ctx, SIMCLR_AUG_PRESET_NONE, IMG, IMG, &r[k].aug));
        simclr_trainer_destroy(r[k].tr);
        CHECK_OK(simclr_swav_trainer_create(r[k].ctx, r[k].enc, r[k].head, r[k].protos, r[k].aug, r[k].opt,
                                            &r[k].tr));
        CHECK_OK(simclr_swav_set(r[k].tr, SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS, 0));
    }
    CHECK_OK(simclr_trainer_set_comm(r[1].tr, &comm));
    simclr_tensor *img = images(r[0].ctx, 4, 8);
    float loss[2];
    for (int k = 0; k < 2; k++) CHECK_OK(simclr_trainer_step(r[k].tr, img, 3, &loss[k]));
    assert_true(fabsf(loss[0] - loss[1]) < 1e-5f * (1 + fabsf(loss[0])));
    simclr_module *m0[3] = {r[0].enc, r[0].head, r[0].protos}, *m1[3] = {r[1].enc, r[1].head, r[1].protos};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < simclr_module_param_count(m0[k]); i++) {
            const char *name;
            simclr_tensor *v0, *g0, *v1, *g1;
            CHECK_OK(simclr_module_param(m0[k], i, &name, &v0, &g0, NULL));
            CHECK_OK(simclr_module_param(m1[k], i, NULL, &v1, &g1, NULL));
            if (g0) {
                double e = test_norm_err(simclr_tensor_data(g1), simclr_tensor_data(g0), simclr_tensor_numel(g0));
                if (e > 1e-4) fail_msg("module %d gradient %s: error %.2e", k, name, e);
            }
            double e = test_norm_err(simclr_tensor_data(v1), simclr_tensor_data(v0), simclr_tensor_numel(v0));
            if (e > 1e-5) fail_msg("module %d tensor %s after the step: error %.2e", k, name, e);
        }
    float *g;
    weight(&r[1], &g);
    double gn = 0;
    for (int x = 0; x < 48; x++) gn += (double)g[x] * g[x];
    assert_true(gn > 0);
    simclr_tensor_destroy(img);
    rig_free(&r[0]), rig_free(&r[1]);
}

/* The failure sweep with micro-batches, synchronized BN and a communicator
 * that can fail: every failure leaves the trainer as it was. */
static void test_combined_failures(void **state)
{
    (void)state;
    test_alloc ta = {0, 0, 0, 0};
    simclr_allocator hooks = test_allocator(&ta);
    rig a, ref;
    CHECK_OK(rig_try(&a, &hooks, 0));
    CHECK_OK(rig_try(&ref, NULL, 0));
    simclr_tensor *img4 = images(a.ctx, 4, 3), *img8 = images(a.ctx, 8, 4);
    const sf_target t = {a.tr, ref.tr, a.ctx, a.enc, &ta, &a, &ref, swav_state};
    sf_sweep_combined("swav", &t, img4, img8);
    simclr_tensor_destroy(img4), simclr_tensor_destroy(img8);
    rig_free(&a), rig_free(&ref);
    assert_int_equal(ta.live, 0);
}

/* Save after 2 steps, run 3 more; a fresh trainer (other initial weights
 * and prototypes) loaded from the file runs the same 3 steps to the same
 * bits. A checkpoint of another method is refused. */
static void test_checkpoint_resume_bit_identical(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/resume.ckpt", tmpdir);
    rig a, b;
    CHECK_OK(rig_try(&a, NULL, 0));
    simclr_tensor *img[5];
    for (int s = 0; s < 5; s++) img[s] = images(a.ctx, 4, 20 + (uint64_t)s);
    for (int s = 0; s < 2; s++) CHECK_OK(simclr_trainer_step(a.tr, img[s], (uint64_t)s, NULL));
    CHECK_OK(simclr_trainer_save(a.tr, path));
    float la[3], lb[3];
    for (int s = 2; s < 5; s++) CHECK_OK(simclr_trainer_step(a.tr, img[s], (uint64_t)s, &la[s - 2]));

    CHECK_OK(rig_try(&b, NULL, 77));
    CHECK_OK(simclr_trainer_load(b.tr, path));
    for (int s = 2; s < 5; s++) CHECK_OK(simclr_trainer_step(b.tr, img[s], (uint64_t)s, &lb[s - 2]));
    assert_memory_equal(la, lb, sizeof la);
    sf_blob x = swav_state(&a, 0), y = swav_state(&b, 0);
    const char *diff = sf_diff(&x, &y);
    if (diff) fail_msg("resumed run differs in the %s", diff);
    free(x.p), free(y.p);

    /* Another K: refused before anything changes. */
    rig c;
    memset(&c, 0, sizeof c);
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &c.ctx));
    CHECK_OK(simclr_resnet_create(c.ctx, 18, 2, CH, SIMCLR_STEM_CIFAR, 3, &c.enc));
    CHECK_OK(simclr_mlp_head_create(c.ctx, (int)simclr_module_output_dim(c.enc), 16, 8, 2, 1, 4, &c.head));
    CHECK_OK(simclr_swav_prototypes_create(c.ctx, 8, 7, 5, &c.protos));
    CHECK_OK(simclr_augment_create(c.ctx, SIMCLR_AUG_PRESET_GRAYSCALE, IMG, IMG, &c.aug));
    simclr_module *mods[3] = {c.enc, c.head, c.protos};
    CHECK_OK(simclr_optimizer_create(c.ctx, SIMCLR_OPT_SGD, mods, 3, &c.opt));
    CHECK_OK(simclr_optimizer_set(c.opt, SIMCLR_OPT_MOMENTUM, 0.9));
    CHECK_OK(simclr_swav_trainer_create(c.ctx, c.enc, c.head, c.protos, c.aug, c.opt, &c.tr));
    x = swav_state(&c, 0);
    simclr_status st = simclr_trainer_load(c.tr, path);
    assert_true(st == SIMCLR_E_FORMAT || st == SIMCLR_E_SHAPE);
    y = swav_state(&c, 0);
    assert_null(sf_diff(&x, &y));
    free(x.p), free(y.p);
    rig_free(&c);
    for (int s = 0; s < 5; s++) simclr_tensor_destroy(img[s]);
    rig_free(&b);
    rig_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sinkhorn_matches_the_paper),
        cmocka_unit_test(test_loss_value_and_gradient),
        cmocka_unit_test(test_prototypes_module),
        cmocka_unit_test(test_freeze_and_normalization),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_failed_steps_sweep),
        cmocka_unit_test(test_ranks_match_one_process),
        cmocka_unit_test(test_combined_failures),
        cmocka_unit_test(test_checkpoint_resume_bit_identical),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
