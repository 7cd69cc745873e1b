/* Fine-tuning and distillation pieces (issue 25): the cross-entropy and
 * distillation losses (gradients by central finite differences of the
 * double-precision value, references written here in long double, large
 * logits), label fractions (balance, reproducibility, nesting, refusals, the
 * file), the linear head, the classifier (probabilities against the
 * embedder's features and the head's weights, top-k, evaluation, bad inputs
 * with outputs untouched, cancellation, concurrency) and the
 * allocation-failure sweeps. */
#include <pthread.h>
#include <unistd.h>

#include "test_util.h"
#include "loss/supervised.h"

static char tmpdir[256];

static int group_setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "finetune");
}

static int group_teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static simclr_context *ctx_new(int threads)
{
    simclr_context *ctx;
    CHECK_OK(simclr_context_create(NULL, threads, NULL, &ctx));
    return ctx;
}

static simclr_tensor *f32(simclr_context *ctx, int64_t r, int64_t c)
{
    int64_t s[2] = {r, c};
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, s, &t));
    return t;
}

static float *fp(simclr_tensor *t) { return simclr_tensor_data(t); }

/* ---- references, long double, from the definitions ------------------------ */

static long double ref_logsumexp(const float *z, int c, long double scale)
{
    long double m = scale * z[0], s = 0;
    for (int k = 1; k < c; k++)
        if (scale * z[k] > m) m = scale * z[k];
    for (int k = 0; k < c; k++) s += expl(scale * z[k] - m);
    return m + logl(s);
}

/* F.cross_entropy(z, y, label_smoothing=eps), mean over rows. */
static long double ref_ce(const float *z, const int32_t *y, int n, int c, double eps)
{
    long double total = 0;
    for (int i = 0; i < n; i++) {
        long double lse = ref_logsumexp(z + i * c, c, 1), row = 0;
        for (int k = 0; k < c; k++) {
            long double q = (long double)eps / c + (k == y[i] ? 1 - (long double)eps : 0);
            row += q * (lse - z[i * c + k]);
        }
        total += row;
    }
    return total / n;
}

/* (1 - w) mean_i c * CE(softmax(t/T), s/T) + w mean_{labelled} CE(s, y). */
static long double ref_distill(const float *s, const float *t, const int32_t *y, int n, int c, double tau, int t2,
                               double w, double eps)
{
    long double dist = 0, ce = 0, cs = t2 ? (long double)tau * tau : 1;
    int nl = 0;
    for (int i = 0; i < n; i++) {
        long double lt = ref_logsumexp(t + i * c, c, 1 / (long double)tau);
        long double ls = ref_logsumexp(s + i * c, c, 1 / (long double)tau), row = 0;
        for (int k = 0; k < c; k++) row += expl(t[i * c + k] / (long double)tau - lt) * (ls - s[i * c + k] / (long double)tau);
        dist += cs * row;
        if (y && y[i] >= 0) {
            ce += ref_ce(s + i * c, y + i, 1, c, eps);
            nl++;
        }
    }
    return (1 - (long double)w) * dist / n + (nl ? (long double)w * ce / nl : 0);
}

/* ---- cross-entropy ------------------------------------------------------- */

enum { N = 6, C = 5 };

static void fill_logits(float *z, int64_t count, uint64_t seed, float scale)
{
    test_fill(z, count, seed);
    for (int64_t i = 0; i < count; i++) z[i] *= scale;
}

/* The value against the long double definition, and the gradient against
 * central differences of the double value (step 1e-3 on logits of size
 * ~3: the truncation error is ~h^2 = 1e-6 relative). */
static void check_ce(double eps, float scale)
{
    simclr_context *ctx = ctx_new(1);
    simclr_loss *loss;
    CHECK_OK(simclr_cross_entropy_create(ctx, C, &loss));
    CHECK_OK(simclr_loss_set(loss, SIMCLR_LOSS_LABEL_SMOOTHING, eps));
    simclr_tensor *z = f32(ctx, N, C), *g = f32(ctx, N, C);
    fill_logits(fp(z), N * C, 7, scale);
    const int32_t y[N] = {0, 4, 2, 2, 1, 3};
    float v, acc;
    CHECK_OK(simclr_loss_forward_labels(loss, z, y, N, &v, &acc));
    long double want = ref_ce(fp(z), y, N, C, eps);
    assert_true(fabsl(simclr__supervised_value(loss) - want) <= 1e-12L * (1 + fabsl(want)));
    assert_true(fabs(v - (double)want) <= 1e-6 * (1 + fabs((double)want)));
    CHECK_OK(simclr_loss_backward(loss, g));
    double h = 1e-3 * scale, worst = 0, gmax = 0;
    for (int i = 0; i < N * C; i++) {
        float keep = fp(z)[i];
        fp(z)[i] = keep + (float)h;
        double hp = (double)fp(z)[i] - keep;
        CHECK_OK(simclr_loss_forward_labels(loss, z, y, N, &v, NULL));
        double up = simclr__supervised_value(loss);
        fp(z)[i] = keep - (float)h;
        double hm = keep - (double)fp(z)[i];
        CHECK_OK(simclr_loss_forward_labels(loss, z, y, N, &v, NULL));
        double down = simclr__supervised_value(loss);
        fp(z)[i] = keep;
        double fd = (up - down) / (hp + hm);
        worst = fmax(worst, fabs(fd - fp(g)[i]));
        gmax = fmax(gmax, fabs(fp(g)[i]));
    }
    assert_true(worst <= 1e-5 * gmax);
    simclr_tensor_destroy(z);
    simclr_tensor_destroy(g);
    simclr_loss_destroy(loss);
    simclr_context_destroy(ctx);
}

static void test_ce_gradient(void **state)
{
    (void)state;
    check_ce(0.0, 3.0f);
    check_ce(0.1, 3.0f);
    check_ce(1.0, 3.0f);
}

/* Uniform logits: -log(1/C) whatever the label and smoothing; and the
 * accuracy counts the lower class on ties. */
static void test_ce_known_values(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    simclr_loss *loss;
    CHECK_OK(simclr_cross_entropy_create(ctx, 4, &loss));
    simclr_tensor *z = f32(ctx, 2, 4);
    for (int i = 0; i < 8; i++) fp(z)[i] = 1.5f;
    int32_t y[2] = {0, 3};
    float v, acc;
    CHECK_OK(simclr_loss_set(loss, SIMCLR_LOSS_LABEL_SMOOTHING, 0.3));
    CHECK_OK(simclr_loss_forward_labels(loss, z, y, 2, &v, &acc));
    assert_true(fabs(simclr__supervised_value(loss) - log(4.0)) < 1e-15);
    assert_true(acc == 0.5f); /* row 0: tie -> class 0 = label; row 1: class 0 != 3 */
    /* a confident right row and a confident wrong row */
    const float zz[8] = {9, 0, 0, 0, 0, 0, 9, 0};
    memcpy(fp(z), zz, sizeof zz);
    CHECK_OK(simclr_loss_set(loss, SIMCLR_LOSS_LABEL_SMOOTHING, 0));
    CHECK_OK(simclr_loss_forward_labels(loss, z, y, 2, &v, &acc));
    assert_true(acc == 0.5f);
    double row0 = log(exp(9.0) + 3) - 9, row1 = log(exp(9.0) + 3);
    assert_true(fabs(simclr__supervised_value(loss) - (row0 + row1) / 2) < 1e-14);
    simclr_tensor_destroy(z);
    simclr_loss_destroy(loss);
    simclr_context_destroy(ctx);
}

/* Logits of 1e4 (and 1e30) with gaps of the same size: the naive softmax
 * overflows; the loss is finite and equals the long double definition, the
 * gradient is p - q exactly to float rounding. */
/* The reserve a trainer calls ahead of its steps: afterwards a forward of
 * that batch allocates nothing (the allocator hook counts). */
static void test_supervised_reserve(void **state)
{
    (void)state;
    test_alloc a = {0, 0, 0, 0};
    simclr_allocator hooks = test_allocator(&a);
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, &hooks, &ctx));
    simclr_loss *ce, *nt;
    CHECK_OK(simclr_cross_entropy_create(ctx, 3, &ce));
    CHECK_OK(simclr_ntxent_create(ctx, 0.5, 2, &nt));
    assert_true(simclr__is_supervised(ce) && !simclr__is_supervised(nt) && !simclr__is_supervised(NULL));
    CHECK_STATUS(simclr__supervised_reserve(nt, 4), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr__supervised_reserve(ce, 0), SIMCLR_E_SHAPE);
    simclr_tensor *z = f32(ctx, 8, 3), *g = f32(ctx, 8, 3);
    CHECK_OK(simclr__supervised_reserve(ce, 8));
    const int32_t y[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    long before = a.allocs;
    float v;
    CHECK_OK(simclr_loss_forward_labels(ce, z, y, 8, &v, NULL));
    CHECK_OK(simclr_loss_backward(ce, g));
    assert_int_equal(a.allocs, before);
    simclr_tensor_destroy(z);
    simclr_tensor_destroy(g);
    simclr_loss_destroy(ce);
    simclr_loss_destroy(nt);
    simclr_context_destroy(ctx);
    assert_int_equal(a.live, 0);
}

static void test_ce_large_logits(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    simclr_loss *loss;
    CHECK_OK(simclr_cross_entropy_create(ctx, 3, &loss));
    simclr_tensor *z = f32(ctx, 2, 3), *g = f32(ctx, 2, 3);
    const float big[6] = {1e4f, 1e4f - 2, -1e4f, 1e30f, -1e30f, 1e30f};
    memcpy(fp(z), big, sizeof big);
    int32_t y[2] = {1, 1};
    float v;
    CHECK_OK(simclr_loss_forward_labels(loss, z, y, 2, &v, NULL));
    long double want = ref_ce(fp(z), y, 2, 3, 0);
    assert_true(isfinite(v));
    assert_true(fabsl(simclr__supervised_value(loss) - want) <= 1e-12L * fabsl(want));
    CHECK_OK(simclr_loss_backward(loss, g));
    /* row 0: p = softmax(0, -2, -2e4): p1 - 1 = e^-2/(1+e^-2) - 1 */
    double p0 = 1 / (1 + exp(-2.0)), p1 = exp(-2.0) / (1 + exp(-2.0));
    assert_true(fabs(fp(g)[0] - p0 / 2) < 1e-7 && fabs(fp(g)[1] - (p1 - 1) / 2) < 1e-7 && fp(g)[2] == 0);
    /* row 1: classes 0 and 2 tie at 1e30, class 1 at -1e30 */
    assert_true(fabs(fp(g)[3] - 0.25) < 1e-7 && fp(g)[4] == -0.5f && fabs(fp(g)[5] - 0.25) < 1e-7);
    simclr_tensor_destroy(z);
    simclr_tensor_destroy(g);
    simclr_loss_destroy(loss);
    simclr_context_destroy(ctx);
}

/* ---- distillation ---------------------------------------------------------- */

static void check_distill(double tau, int t2, double w, double eps, int with_labels)
{
    simclr_context *ctx = ctx_new(1);
    simclr_loss *loss;
    CHECK_OK(simclr_distill_create(ctx, C, tau, &loss));
    CHECK_OK(simclr_loss_set(loss, SIMCLR_LOSS_TEMPERATURE_SCALE, t2));
    CHECK_OK(simclr_loss_set(loss, SIMCLR_LOSS_LABEL_WEIGHT, w));
    CHECK_OK(simclr_loss_set(loss, SIMCLR_LOSS_LABEL_SMOOTHING, eps));
    simclr_tensor *s = f32(ctx, N, C), *t = f32(ctx, N, C), *g = f32(ctx, N, C);
    fill_logits(fp(s), N * C, 11, 2.0f);
    fill_logits(fp(t), N * C, 12, 2.0f);
    const int32_t y[N] = {-1, 4, -1, 2, 1, -1};
    const int32_t *lab = with_labels ? y : NULL;
    float v, acc;
    CHECK_OK(simclr_loss_forward_distill(loss, s, t, lab, with_labels ? N : 0, &v, &acc));
    long double want = ref_distill(fp(s), fp(t), lab, N, C, tau, t2, w, eps);
    assert_true(fabsl(simclr__supervised_value(loss) - want) <= 1e-12L * (1 + fabsl(want)));
    CHECK_OK(simclr_loss_backward(loss, g));
    double h = 1e-3 * fmin(1.0, tau), worst = 0, gmax = 0;
    for (int i = 0; i < N * C; i++) {
        float keep = fp(s)[i];
        fp(s)[i] = keep + (float)h;
        double hp = (double)fp(s)[i] - keep;
        CHECK_OK(simclr_loss_forward_distill(loss, s, t, lab, with_labels ? N : 0, &v, NULL));
        double up = simclr__supervised_value(loss);
        fp(s)[i] = keep - (float)h;
        double hm = keep - (double)fp(s)[i];
        CHECK_OK(simclr_loss_forward_distill(loss, s, t, lab, with_labels ? N : 0, &v, NULL));
        double down = simclr__supervised_value(loss);
        fp(s)[i] = keep;
        double fd = (up - down) / (hp + hm);
        worst = fmax(worst, fabs(fd - fp(g)[i]));
        gmax = fmax(gmax, fabs(fp(g)[i]));
    }
    if (worst > 1e-4 * gmax)
        fail_msg("distillation tau %g t2 %d w %g: gradient off by %g (largest %g)", tau, t2, w, worst, gmax);
    simclr_tensor_destroy(s);
    simclr_tensor_destroy(t);
    simclr_tensor_destroy(g);
    simclr_loss_destroy(loss);
    simclr_context_destroy(ctx);
}

static void test_distill_gradient(void **state)
{
    (void)state;
    const double taus[] = {0.1, 1, 4};
    for (int i = 0; i < 3; i++) {
        check_distill(taus[i], 1, 0, 0, 0);
        check_distill(taus[i], 0, 0, 0, 0);
        check_distill(taus[i], 1, 0.3, 0.1, 1);
    }
    check_distill(2, 1, 1, 0, 1);   /* labels only */
    check_distill(2, 1, 0.5, 0, 0); /* a weight but no labels: the label term is 0 */
}

/* Student = teacher: the value is c times the teacher's entropy (a
 * cross-entropy, not a KL divergence), the gradient 0, the agreement 1. */
static void test_distill_known_values(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    simclr_loss *loss;
    CHECK_OK(simclr_distill_create(ctx, 3, 2.0, &loss));
    double v;
    CHECK_OK(simclr_loss_get(loss, SIMCLR_LOSS_TEMPERATURE_SCALE, &v));
    assert_true(v == 1); /* the default: the official code's tau^2 */
    CHECK_OK(simclr_loss_get(loss, SIMCLR_LOSS_TEMPERATURE, &v));
    assert_true(v == 2);
    CHECK_OK(simclr_loss_get(loss, SIMCLR_LOSS_CLASSES, &v));
    assert_true(v == 3);
    simclr_tensor *s = f32(ctx, 1, 3), *g = f32(ctx, 1, 3);
    const float z[3] = {2, 0, -2};
    memcpy(fp(s), z, sizeof z);
    float val, acc;
    CHECK_OK(simclr_loss_forward_distill(loss, s, s, NULL, 0, &val, &acc));
    double e1 = exp(1.0), e0 = 1, em = exp(-1.0), sum = e1 + e0 + em, ent = 0;
    const double p[3] = {e1 / sum, e0 / sum, em / sum};
    for (int k = 0; k < 3; k++) ent -= p[k] * log(p[k]);
    assert_true(fabs(simclr__supervised_value(loss) - 4 * ent) < 1e-14);
    assert_true(acc == 1.0f);
    CHECK_OK(simclr_loss_backward(loss, g));
    for (int k = 0; k < 3; k++) assert_true(fabs(fp(g)[k]) < 1e-7);
    CHECK_OK(simclr_loss_set(loss, SIMCLR_LOSS_TEMPERATURE_SCALE, 0));
    CHECK_OK(simclr_loss_forward_distill(loss, s, s, NULL, 0, &val, &acc));
    assert_true(fabs(simclr__supervised_value(loss) - ent) < 1e-14);
    simclr_tensor_destroy(s);
    simclr_tensor_destroy(g);
    simclr_loss_destroy(loss);
    simclr_context_destroy(ctx);
}

static void test_distill_large_logits(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    simclr_loss *loss;
    CHECK_OK(simclr_distill_create(ctx, 3, 0.01, &loss));
    simclr_tensor *s = f32(ctx, 1, 3), *t = f32(ctx, 1, 3), *g = f32(ctx, 1, 3);
    const float zs[3] = {3e4f, 0, -3e4f}, zt[3] = {0, 3e4f, 1e38f};
    memcpy(fp(s), zs, sizeof zs);
    memcpy(fp(t), zt, sizeof zt);
    float v, acc;
    CHECK_OK(simclr_loss_forward_distill(loss, s, t, NULL, 0, &v, &acc));
    long double want = ref_distill(fp(s), fp(t), NULL, 1, 3, 0.01, 1, 0, 0);
    assert_true(isfinite(v) && fabsl(simclr__supervised_value(loss) - want) <= 1e-12L * fabsl(want));
    assert_true(acc == 0.0f);
    CHECK_OK(simclr_loss_backward(loss, g));
    /* p_s = (1, 0, 0), p_t = (0, 0, 1): c / tau (p_s - p_t) = 0.01 (1, 0, -1) */
    assert_true(fabs(fp(g)[0] - 0.01) < 1e-9 && fp(g)[1] == 0 && fabs(fp(g)[2] + 0.01) < 1e-9);
    simclr_tensor_destroy(s);
    simclr_tensor_destroy(t);
    simclr_tensor_destroy(g);
    simclr_loss_destroy(loss);
    simclr_context_destroy(ctx);
}

static void test_loss_errors(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    simclr_loss *ce, *kd, *nt;
    simclr_loss *untouched = (simclr_loss *)&ce;
    simclr_loss *out = untouched;
    CHECK_STATUS(simclr_cross_entropy_create(NULL, 3, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_cross_entropy_create(ctx, 1, &out), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "n_classes 1 out of range"));
    CHECK_STATUS(simclr_cross_entropy_create(ctx, 3, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_distill_create(ctx, 3, 0.005, &out), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "temperature"));
    assert_ptr_equal(out, untouched);
    CHECK_OK(simclr_cross_entropy_create(ctx, 3, &ce));
    CHECK_OK(simclr_distill_create(ctx, 3, 1.0, &kd));
    CHECK_OK(simclr_ntxent_create(ctx, 0.5, 2, &nt));

    /* settings */
    CHECK_STATUS(simclr_loss_set(ce, SIMCLR_LOSS_LABEL_SMOOTHING, 1.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_set(ce, SIMCLR_LOSS_LABEL_WEIGHT, 0.5), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "SIMCLR_LOSS_LABEL_WEIGHT does not apply to a cross-entropy loss"));
    CHECK_STATUS(simclr_loss_set(kd, SIMCLR_LOSS_TEMPERATURE, 2), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "read-only"));
    CHECK_STATUS(simclr_loss_set(kd, SIMCLR_LOSS_TEMPERATURE_SCALE, 0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_set(kd, SIMCLR_LOSS_CLASSES, 4), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_set(nt, SIMCLR_LOSS_LABEL_SMOOTHING, 0.1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_set(ce, (simclr_loss_param)12345, 0), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "unknown key 12345"));
    double v = -7;
    CHECK_STATUS(simclr_loss_get(ce, SIMCLR_LOSS_TEMPERATURE, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_get(nt, SIMCLR_LOSS_CLASSES, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_get(ce, SIMCLR_LOSS_CLASSES, NULL), SIMCLR_E_INVALID);
    assert_true(v == -7);
    CHECK_OK(simclr_loss_get(nt, SIMCLR_LOSS_TEMPERATURE, &v));
    assert_true(v == 0.5);
    CHECK_OK(simclr_loss_get(nt, SIMCLR_LOSS_N_VIEWS, &v));
    assert_true(v == 2);
    CHECK_OK(simclr_loss_get(ce, SIMCLR_LOSS_LABEL_SMOOTHING, &v));
    assert_true(v == 0);

    simclr_tensor *z = f32(ctx, 2, 3), *z4 = f32(ctx, 2, 4), *g = f32(ctx, 2, 3), *g1 = f32(ctx, 1, 3);
    fill_logits(fp(z), 6, 3, 1.0f);
    int32_t y[2] = {0, 2}, bad[2] = {0, 3}, neg[2] = {-1, 0};
    float val = -1, acc = -1;
    CHECK_STATUS(simclr_loss_backward(ce, g), SIMCLR_E_STATE);
    CHECK_STATUS(simclr_loss_forward_labels(NULL, z, y, 2, &val, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward_labels(ce, NULL, y, 2, &val, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward_labels(ce, z, NULL, 2, &val, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward_labels(ce, z, y, 2, NULL, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward_labels(ce, z4, y, 2, &val, &acc), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_loss_forward_labels(ce, z, y, 1, &val, &acc), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "1 labels for 2 rows"));
    CHECK_STATUS(simclr_loss_forward_labels(ce, z, bad, 2, &val, &acc), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "labels[1] = 3 out of range 0..2"));
    CHECK_STATUS(simclr_loss_forward_labels(ce, z, neg, 2, &val, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward_labels(kd, z, y, 2, &val, &acc), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "distillation loss (compute it with simclr_loss_forward_distill)"));
    CHECK_STATUS(simclr_loss_forward_labels(nt, z, y, 2, &val, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward(ce, z, &val, &acc), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_loss_forward_labels"));
    assert_true(val == -1 && acc == -1);

    /* a forward, then failing forwards: the kept gradient stays that forward's */
    CHECK_OK(simclr_loss_forward_labels(ce, z, y, 2, &val, &acc));
    float keep_val = val;
    CHECK_OK(simclr_loss_backward(ce, g));
    float before[6];
    memcpy(before, fp(g), sizeof before);
    simclr_tensor *big = f32(ctx, 8, 3);
    fp(big)[13] = NAN;
    int32_t y8[8] = {0};
    val = acc = -1;
    CHECK_STATUS(simclr_loss_forward_labels(ce, big, y8, 8, &val, &acc), SIMCLR_E_NUMERIC);
    assert_non_null(strstr(simclr_last_error(), "logits row 4 holds a NaN"));
    assert_true(val == -1 && acc == -1);
    memset(fp(g), 0, sizeof before);
    CHECK_OK(simclr_loss_backward(ce, g));
    assert_memory_equal(fp(g), before, sizeof before);
    CHECK_STATUS(simclr_loss_backward(ce, g1), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_loss_backward(ce, NULL), SIMCLR_E_INVALID);
    assert_true(keep_val > 0);

    /* distillation */
    CHECK_STATUS(simclr_loss_forward_distill(kd, z, z4, NULL, 0, &val, &acc), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_loss_forward_distill(kd, z, z, NULL, 2, &val, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward_distill(kd, z, z, y, 1, &val, &acc), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_loss_forward_distill(kd, z, z, bad, 2, &val, &acc), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "labels[1] = 3 out of range -1..2"));
    CHECK_STATUS(simclr_loss_forward_distill(kd, z, NULL, NULL, 0, &val, &acc), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward_distill(ce, z, z, NULL, 0, &val, &acc), SIMCLR_E_INVALID);
    simclr_tensor *zt = f32(ctx, 2, 3);
    fp(zt)[4] = INFINITY;
    CHECK_STATUS(simclr_loss_forward_distill(kd, z, zt, NULL, 0, &val, &acc), SIMCLR_E_NUMERIC);
    assert_non_null(strstr(simclr_last_error(), "teacher row 1"));
    assert_true(val == -1 && acc == -1);
    CHECK_OK(simclr_loss_forward_distill(kd, z, z, neg, 2, &val, NULL));

    /* the trainer refuses a supervised loss */
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_optimizer *opt;
    simclr_trainer *tr;
    CHECK_OK(simclr_resnet_create_v2(ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 1, &enc));
    CHECK_OK(simclr_mlp_head_create_v2(ctx, 16, 8, 4, 2, 0, 1, &head));
    CHECK_OK(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_GRAYSCALE, 8, 8, &aug));
    simclr_module *mods[2] = {enc, head};
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, mods, 2, &opt));
    CHECK_STATUS(simclr_trainer_create(ctx, enc, head, aug, ce, opt, &tr), SIMCLR_E_INVALID);
    simclr_optimizer_destroy(opt);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);

    simclr_tensor_destroy(zt);
    simclr_tensor_destroy(big);
    simclr_tensor_destroy(z);
    simclr_tensor_destroy(z4);
    simclr_tensor_destroy(g);
    simclr_tensor_destroy(g1);
    simclr_loss_destroy(ce);
    simclr_loss_destroy(kd);
    simclr_loss_destroy(nt);
    simclr_context_destroy(ctx);
}

/* ---- label fractions ------------------------------------------------------- */

/* 1000 labels over 4 classes of 700, 200, 90 and 10 images, interleaved. */
enum { NL = 1000, NC = 4 };
static void make_labels(int32_t *y)
{
    int64_t i = 0;
    const int per[NC] = {700, 200, 90, 10};
    int left[NC] = {700, 200, 90, 10};
    uint64_t s = 99;
    while (i < NL) {
        int c = (int)(test_rand_next(&s) % NC);
        if (left[c]) {
            left[c]--;
            y[i++] = c;
        }
    }
    (void)per;
}

static int64_t *subset_fraction(simclr_context *ctx, const int32_t *y, double f, uint64_t seed, int64_t *count)
{
    CHECK_OK(simclr_label_subset_fraction(ctx, y, NL, NC, f, seed, NULL, 0, count));
    int64_t *idx = malloc((size_t)*count * sizeof *idx);
    int64_t got = -1;
    CHECK_OK(simclr_label_subset_fraction(ctx, y, NL, NC, f, seed, idx, *count, &got));
    assert_int_equal(got, *count);
    return idx;
}

static void test_subset_balance_and_order(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    int32_t y[NL];
    make_labels(y);
    const double fracs[] = {0.01, 0.1, 0.5, 1.0};
    /* max(1, round(f * n_c)) for n_c = 700, 200, 90, 10 */
    const int64_t want[4][NC] = {{7, 2, 1, 1}, {70, 20, 9, 1}, {350, 100, 45, 5}, {700, 200, 90, 10}};
    for (int fi = 0; fi < 4; fi++) {
        int64_t n;
        int64_t *idx = subset_fraction(ctx, y, fracs[fi], 42, &n);
        int64_t per[NC] = {0};
        for (int64_t j = 0; j < n; j++) {
            assert_true(idx[j] >= 0 && idx[j] < NL);
            if (j) assert_true(idx[j] > idx[j - 1]);
            per[y[idx[j]]]++;
        }
        for (int c = 0; c < NC; c++) assert_int_equal(per[c], want[fi][c]);
        free(idx);
    }
    /* N per class */
    int64_t n, idx[40];
    CHECK_OK(simclr_label_subset_per_class(ctx, y, NL, NC, 10, 7, idx, 40, &n));
    assert_int_equal(n, 40);
    int64_t per[NC] = {0};
    for (int64_t j = 0; j < n; j++) per[y[idx[j]]]++;
    for (int c = 0; c < NC; c++) assert_int_equal(per[c], 10);
    simclr_context_destroy(ctx);
}

static void test_subset_reproducible_and_nested(void **state)
{
    (void)state;
    int32_t y[NL];
    make_labels(y);
    simclr_context *c1 = ctx_new(1), *c3 = ctx_new(3);
    int64_t n1, n3, n10, n_other;
    int64_t *a = subset_fraction(c1, y, 0.1, 5, &n1), *b = subset_fraction(c3, y, 0.1, 5, &n3);
    assert_int_equal(n1, n3);
    assert_memory_equal(a, b, (size_t)n1 * sizeof *a);
    /* 1% inside 10% for one seed */
    int64_t *small = subset_fraction(c1, y, 0.01, 5, &n10);
    for (int64_t j = 0, k = 0; j < n10; j++) {
        while (k < n1 && a[k] < small[j]) k++;
        assert_true(k < n1 && a[k] == small[j]);
    }
    /* another seed, another subset of the same size */
    int64_t *other = subset_fraction(c1, y, 0.1, 6, &n_other);
    assert_int_equal(n_other, n1);
    assert_true(memcmp(a, other, (size_t)n1 * sizeof *a) != 0);
    /* a seed that only differs in its high bits too */
    free(other);
    other = subset_fraction(c1, y, 0.1, 5 | (1ull << 40), &n_other);
    assert_true(memcmp(a, other, (size_t)n1 * sizeof *a) != 0);
    free(a);
    free(b);
    free(small);
    free(other);
    simclr_context_destroy(c1);
    simclr_context_destroy(c3);
}

/* The picks are spread: over many seeds each image of a class is picked
 * about as often as the others (a biased generator or a sort by index
 * would favour some). */
static void test_subset_uniform(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    int32_t y[20];
    for (int i = 0; i < 20; i++) y[i] = i % 2;
    int hits[20] = {0};
    const int seeds = 2000;
    for (int s = 0; s < seeds; s++) {
        int64_t idx[2], n;
        CHECK_OK(simclr_label_subset_per_class(ctx, y, 20, 2, 1, (uint64_t)s, idx, 2, &n));
        hits[idx[0]]++;
        hits[idx[1]]++;
    }
    /* each of the 10 images of a class: 200 expected, sd ~13.4 */
    for (int i = 0; i < 20; i++) assert_true(hits[i] > 140 && hits[i] < 260);
    simclr_context_destroy(ctx);
}

static void test_subset_refusals(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    int32_t y[NL];
    make_labels(y);
    int64_t idx[64], n = -5;
    for (int i = 0; i < 64; i++) idx[i] = -9;
    CHECK_STATUS(simclr_label_subset_per_class(ctx, y, NL, NC, 11, 1, idx, 64, &n), SIMCLR_E_INVALID);
    assert_string_equal(simclr_last_error(),
                        "simclr_label_subset_per_class: class 3 has 10 labelled images, 11 requested");
    CHECK_STATUS(simclr_label_subset_per_class(ctx, y, NL, NC, 11, 1, NULL, 0, &n), SIMCLR_E_INVALID);
    /* a class without images: 5 classes declared, class 4 empty */
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, NL, 5, 0.01, 1, idx, 64, &n), SIMCLR_E_INVALID);
    assert_string_equal(simclr_last_error(),
                        "simclr_label_subset_fraction: class 4 has 0 labelled images, 1 requested");
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, NL, NC, 0, 1, idx, 64, &n), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, NL, NC, 1.01, 1, idx, 64, &n), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, NL, NC, NAN, 1, idx, 64, &n), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_per_class(ctx, y, NL, NC, 0, 1, idx, 64, &n), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, NL, 3, 0.01, 1, idx, 64, &n), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "out of range 0..2"));
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, 0, NC, 0.01, 1, idx, 64, &n), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_fraction(NULL, y, NL, NC, 0.01, 1, idx, 64, &n), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_fraction(ctx, NULL, NL, NC, 0.01, 1, idx, 64, &n), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, NL, NC, 0.01, 1, idx, 64, NULL), SIMCLR_E_INVALID);
    /* 0.1 needs 100 indices */
    CHECK_STATUS(simclr_label_subset_fraction(ctx, y, NL, NC, 0.1, 1, idx, 64, &n), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "the subset has 100 indices, indices holds 64"));
    assert_int_equal(n, -5);
    for (int i = 0; i < 64; i++) assert_int_equal(idx[i], -9);
    simclr_context_destroy(ctx);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_subset_file(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    int32_t y[NL];
    make_labels(y);
    int64_t n;
    int64_t *idx = subset_fraction(ctx, y, 0.1, 1234567890123ull, &n);
    char path[300];
    snprintf(path, sizeof path, "%s/subset.txt", tmpdir);
    CHECK_OK(simclr_label_subset_save(ctx, path, idx, n, NL, 0.1, 0, 1234567890123ull));
    /* the header as documented */
    FILE *f = fopen(path, "r");
    char line[200];
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "simclr-label-subset 1 seed=1234567890123 fraction=0.10000000000000001 per_class=0 "
                              "total=1000 count=100\n");
    int64_t count = -1, back[100], pc = -1;
    uint64_t seed = 0;
    double frac = -1;
    CHECK_OK(simclr_label_subset_load(ctx, path, NL, NULL, 0, &count, NULL, NULL, NULL));
    assert_int_equal(count, 100);
    CHECK_OK(simclr_label_subset_load(ctx, path, 0, back, 100, &count, &seed, &frac, &pc));
    assert_memory_equal(back, idx, 100 * sizeof *back);
    assert_true(seed == 1234567890123ull && frac == 0.1 && pc == 0);
    free(idx);

    /* the caller's set must be the file's */
    count = -1;
    CHECK_STATUS(simclr_label_subset_load(ctx, path, 999, back, 100, &count, NULL, NULL, NULL), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "indexes a labelled set of 1000 images, this one has 999"));
    CHECK_STATUS(simclr_label_subset_load(ctx, path, 0, back, 99, &count, NULL, NULL, NULL), SIMCLR_E_SHAPE);
    assert_int_equal(count, -1);

    /* malformed files: FORMAT naming the line; outputs untouched */
    static const struct { const char *text, *msg; } cases[] = {
        {"simclr-label-subset 2 seed=1 fraction=0 per_class=1 total=5 count=1\n0\n", "line 1: not a label subset"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=2\n0\n", "line 3: fewer indices"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=2\n3\n1\n", "line 3: indices must ascend"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=2\n1\n1\n", "line 3: indices must ascend"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=1\n5\n", "line 2: index not below"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=1\n-1\n", "line 2: expected an index"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=1\n 1\n", "line 2: expected an index"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=1\n1\n\n", "line 3: more lines"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=1\n1 2\n", "line 2: expected the end"},
        {"simclr-label-subset 1 seed=1 fraction=2 per_class=1 total=5 count=1\n1\n", "line 1: expected fraction"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=6\n1\n", "line 1: expected count"},
        {"simclr-label-subset 1 seed=99999999999999999999 fraction=0 per_class=1 total=5 count=1\n1\n",
         "line 1: expected seed"},
        {"simclr-label-subset 1 seed=1 fraction=0 per_class=1 total=5 count=1 x\n1\n", "line 1: the header must end"},
        {"", "line 1: not a label subset"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(path, cases[i].text);
        count = -1;
        seed = 77;
        back[0] = -3;
        simclr_status st = simclr_label_subset_load(ctx, path, 0, back, 100, &count, &seed, NULL, NULL);
        if (st != SIMCLR_E_FORMAT || !strstr(simclr_last_error(), cases[i].msg))
            fail_msg("case %zu: %s: %s", i, simclr_status_string(st), simclr_last_error());
        assert_true(count == -1 && seed == 77 && back[0] == -3);
    }
    /* \r\n and a last line without an end are read */
    write_text(path, "simclr-label-subset 1 seed=3 fraction=0 per_class=2 total=9 count=2\r\n4\r\n8");
    CHECK_OK(simclr_label_subset_load(ctx, path, 9, back, 2, &count, &seed, NULL, &pc));
    assert_true(count == 2 && back[0] == 4 && back[1] == 8 && seed == 3 && pc == 2);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.txt", tmpdir);
    CHECK_STATUS(simclr_label_subset_load(ctx, missing, 0, NULL, 0, &count, NULL, NULL, NULL), SIMCLR_E_IO);

    /* the writer refuses what the reader would */
    const int64_t unsorted[3] = {1, 5, 5}, far[2] = {1, 10};
    CHECK_STATUS(simclr_label_subset_save(ctx, path, unsorted, 3, 10, 0, 0, 1), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "indices[2] = 5 does not ascend"));
    CHECK_STATUS(simclr_label_subset_save(ctx, path, far, 2, 10, 0, 0, 1), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "indices[1] = 10 out of range 0..9"));
    CHECK_STATUS(simclr_label_subset_save(ctx, path, far, 1, 10, 0.5, 3, 1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_label_subset_save(ctx, path, far, 0, 10, 0, 0, 1), SIMCLR_E_INVALID);
    /* ... and leaves the previous file alone */
    CHECK_OK(simclr_label_subset_load(ctx, path, 9, back, 2, &count, NULL, NULL, NULL));
    simclr_context_destroy(ctx);
}

/* ---- the linear head ------------------------------------------------------- */

static void test_linear_head(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(2);
    simclr_module *h;
    CHECK_OK(simclr_linear_head_create(ctx, 6, 3, 9, &h));
    assert_string_equal(simclr_module_arch(h), "linear_head in=6 out=3");
    assert_int_equal(simclr_module_param_count(h), 2);
    const char *name;
    simclr_tensor *w, *b, *gw, *gb;
    int flags;
    CHECK_OK(simclr_module_param(h, 0, &name, &w, &gw, &flags));
    assert_string_equal(name, "fc.weight");
    assert_int_equal(flags, 0);
    assert_true(simclr_tensor_dim(w, 0) == 3 && simclr_tensor_dim(w, 1) == 6);
    CHECK_OK(simclr_module_param(h, 1, &name, &b, &gb, &flags));
    assert_string_equal(name, "fc.bias");
    assert_int_equal(flags, SIMCLR_PARAM_NO_DECAY);
    /* torch.nn.Linear's bound 1/sqrt(6) */
    for (int i = 0; i < 18; i++) assert_true(fabsf(fp(w)[i]) <= 1 / sqrtf(6.0f));
    simclr_tensor *x = f32(ctx, 4, 6), *y = f32(ctx, 4, 3), *dy = f32(ctx, 4, 3), *dx = f32(ctx, 4, 6);
    test_fill(fp(x), 24, 1);
    test_fill(fp(dy), 12, 2);
    CHECK_OK(simclr_module_forward(h, x, SIMCLR_TRAIN, y));
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++) {
            double want = fp(b)[k];
            for (int j = 0; j < 6; j++) want += (double)fp(x)[i * 6 + j] * fp(w)[k * 6 + j];
            assert_true(fabs(fp(y)[i * 3 + k] - want) < 1e-5);
        }
    CHECK_OK(simclr_module_zero_grad(h));
    CHECK_OK(simclr_module_backward(h, dy, dx));
    for (int k = 0; k < 3; k++) {
        double db = 0;
        for (int i = 0; i < 4; i++) db += fp(dy)[i * 3 + k];
        assert_true(fabs(fp(gb)[k] - db) < 1e-5);
        for (int j = 0; j < 6; j++) {
            double dw = 0;
            for (int i = 0; i < 4; i++) dw += (double)fp(dy)[i * 3 + k] * fp(x)[i * 6 + j];
            assert_true(fabs(fp(gw)[k * 6 + j] - dw) < 1e-5);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) {
            double want = 0;
            for (int k = 0; k < 3; k++) want += (double)fp(dy)[i * 3 + k] * fp(w)[k * 6 + j];
            assert_true(fabs(fp(dx)[i * 6 + j] - want) < 1e-5);
        }
    /* an EVAL forward allows no backward */
    CHECK_OK(simclr_module_forward(h, x, SIMCLR_EVAL, y));
    CHECK_STATUS(simclr_module_backward(h, dy, NULL), SIMCLR_E_STATE);
    simclr_module *out = NULL;
    CHECK_STATUS(simclr_linear_head_create(ctx, 0, 3, 1, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_linear_head_create(ctx, 6, 1, 1, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_linear_head_create(NULL, 6, 3, 1, &out), SIMCLR_E_INVALID);
    assert_null(out);
    CHECK_STATUS(simclr_module_forward(h, dy, SIMCLR_EVAL, y), SIMCLR_E_SHAPE);
    simclr_tensor_destroy(x);
    simclr_tensor_destroy(y);
    simclr_tensor_destroy(dx);
    simclr_tensor_destroy(dy);
    simclr_module_destroy(h);
    simclr_context_destroy(ctx);
}

/* ---- the classifier -------------------------------------------------------- */

enum { NI = 7, CLS = 4 };

typedef struct cfix {
    simclr_context *ctx;
    simclr_module *enc, *head;
    uint8_t *px[NI];
    int64_t h[NI], w[NI];
    simclr_image_list *list;
} cfix;

static void cfix_make(cfix *f, int threads)
{
    f->ctx = ctx_new(threads);
    CHECK_OK(simclr_resnet_create_v2(f->ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 21, &f->enc));
    CHECK_OK(simclr_linear_head_create(f->ctx, simclr_module_output_dim(f->enc), CLS, 4, &f->head));
    /* larger weights than the default, so the classes differ clearly */
    simclr_tensor *w;
    CHECK_OK(simclr_module_param(f->head, 0, NULL, &w, NULL, NULL));
    for (int64_t i = 0; i < simclr_tensor_numel(w); i++) fp(w)[i] *= 20;
    const int64_t hs[NI] = {16, 40, 23, 64, 9, 16, 20}, ws[NI] = {16, 30, 51, 17, 7, 12, 20};
    uint64_t s = 5;
    CHECK_OK(simclr_image_list_create(f->ctx, 3, &f->list));
    for (int i = 0; i < NI; i++) {
        f->h[i] = hs[i], f->w[i] = ws[i];
        size_t n = (size_t)(hs[i] * ws[i] * 3);
        f->px[i] = malloc(n);
        for (size_t k = 0; k < n; k++) f->px[i][k] = (uint8_t)(test_rand_next(&s) >> 56);
        CHECK_OK(simclr_image_list_add(f->list, f->px[i], hs[i], ws[i]));
    }
}

static void cfix_free(cfix *f)
{
    for (int i = 0; i < NI; i++) free(f->px[i]);
    simclr_image_list_destroy(f->list);
    simclr_module_destroy(f->head);
    simclr_module_destroy(f->enc);
    simclr_context_destroy(f->ctx);
}

/* Probabilities against the embedder's features and the head's weights
 * (softmax in double here), for several batch sizes. */
static void test_classifier_probabilities(void **state)
{
    (void)state;
    cfix f;
    cfix_make(&f, 2);
    int64_t d = simclr_module_output_dim(f.enc);
    simclr_embedder *e;
    CHECK_OK(simclr_embedder_create(f.ctx, f.enc, 12, 12, &e));
    simclr_tensor *feat = f32(f.ctx, NI, d), *probs = f32(f.ctx, NI, CLS);
    CHECK_OK(simclr_embedder_run(e, f.list, feat));
    simclr_tensor *w, *b;
    CHECK_OK(simclr_module_param(f.head, 0, NULL, &w, NULL, NULL));
    CHECK_OK(simclr_module_param(f.head, 1, NULL, &b, NULL, NULL));
    /* tol[i]: twice the float32 rounding bound of a d-term dot product in
     * any order (d * 2^-23 * sum |terms|) over the row's logits, as
     * |dp_k| <= p_k (|dz_k| + sum_j p_j |dz_j|); plus the rounding of p. */
    double want[NI][CLS], tol[NI];
    int spread = 0;
    for (int i = 0; i < NI; i++) {
        double z[CLS], m = -INFINITY, s = 0, worst = 0;
        for (int k = 0; k < CLS; k++) {
            double mag = fabs(fp(b)[k]);
            z[k] = fp(b)[k];
            for (int64_t j = 0; j < d; j++) {
                z[k] += (double)fp(feat)[i * d + j] * fp(w)[k * d + j];
                mag += fabs((double)fp(feat)[i * d + j] * fp(w)[k * d + j]);
            }
            m = fmax(m, z[k]);
            worst = fmax(worst, (double)(d + 1) * 0x1p-23 * mag);
        }
        tol[i] = 2 * worst + 1e-7;
        for (int k = 0; k < CLS; k++) s += exp(z[k] - m);
        for (int k = 0; k < CLS; k++) want[i][k] = exp(z[k] - m) / s;
        for (int k = 0; k < CLS; k++) spread += want[i][k] > 0.05 && want[i][k] < 0.95;
    }
    assert_true(spread > 0); /* not all saturated: the comparison means something */
    const int batches[] = {32, 3, 1};
    for (int bi = 0; bi < 3; bi++) {
        simclr_classifier *c;
        CHECK_OK(simclr_classifier_create(f.ctx, f.enc, f.head, 12, 12, &c));
        CHECK_OK(simclr_classifier_set(c, SIMCLR_CLASSIFIER_BATCH, batches[bi]));
        double v;
        CHECK_OK(simclr_classifier_get(c, SIMCLR_CLASSIFIER_CLASSES, &v));
        assert_true(v == CLS);
        CHECK_OK(simclr_classifier_get(c, SIMCLR_CLASSIFIER_RESIZE, &v));
        assert_true(v == 14); /* round(12 / 0.875) */
        CHECK_OK(simclr_classifier_run(c, f.list, probs));
        for (int i = 0; i < NI; i++) {
            double sum = 0;
            for (int k = 0; k < CLS; k++) {
                if (!(fabs(fp(probs)[i * CLS + k] - want[i][k]) <= tol[i]))
                    fail_msg("image %d class %d: %.9g, want %.9g (bound %.3g)", i, k, fp(probs)[i * CLS + k],
                             want[i][k], tol[i]);
                sum += fp(probs)[i * CLS + k];
            }
            assert_true(fabs(sum - 1) < 1e-6);
        }
        /* top-k: descending, consistent with the probabilities */
        int32_t cls[NI * 3];
        float tp[NI * 3];
        CHECK_OK(simclr_classifier_topk(c, f.list, 3, cls, tp, NI * 3));
        for (int i = 0; i < NI; i++) {
            for (int j = 0; j < 3; j++) {
                assert_true(tp[i * 3 + j] == fp(probs)[i * CLS + cls[i * 3 + j]]);
                if (j) assert_true(tp[i * 3 + j] <= tp[i * 3 + j - 1]);
            }
            for (int k = 0; k < CLS; k++) /* no class left out beats the third */
                if (k != cls[i * 3] && k != cls[i * 3 + 1] && k != cls[i * 3 + 2])
                    assert_true(fp(probs)[i * CLS + k] <= tp[i * 3 + 2]);
        }
        /* evaluation with the top-1 classes as labels: all right */
        int32_t labels[NI];
        for (int i = 0; i < NI; i++) labels[i] = cls[i * 3];
        double acc = -1, recall[CLS];
        int64_t conf[CLS * CLS];
        CHECK_OK(simclr_classifier_evaluate(c, f.list, labels, NI, &acc, conf, CLS * CLS, recall, CLS));
        assert_true(acc == 1.0);
        int64_t diag = 0;
        for (int k = 0; k < CLS; k++) diag += conf[k * CLS + k];
        assert_int_equal(diag, NI);
        /* one label moved to the second choice: that row goes off the diagonal */
        labels[2] = cls[2 * 3 + 1];
        CHECK_OK(simclr_classifier_evaluate(c, f.list, labels, NI, &acc, conf, CLS * CLS, NULL, 0));
        assert_true(fabs(acc - 6.0 / 7.0) < 1e-15);
        assert_true(conf[labels[2] * CLS + cls[2 * 3]] >= 1);
        simclr_classifier_destroy(c);
    }
    simclr_tensor_destroy(feat);
    simclr_tensor_destroy(probs);
    simclr_embedder_destroy(e);
    cfix_free(&f);
}

static void test_classifier_errors(void **state)
{
    (void)state;
    cfix f;
    cfix_make(&f, 1);
    simclr_classifier *c, *out = (simclr_classifier *)&f;
    simclr_module *mlp, *wide;
    CHECK_OK(simclr_mlp_head_create_v2(f.ctx, simclr_module_output_dim(f.enc), 0, CLS, 1, 0, 1, &mlp));
    CHECK_OK(simclr_linear_head_create(f.ctx, 7, CLS, 1, &wide));
    CHECK_STATUS(simclr_classifier_create(NULL, f.enc, f.head, 12, 12, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_create(f.ctx, NULL, f.head, 12, 12, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_create(f.ctx, f.enc, NULL, 12, 12, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_create(f.ctx, f.enc, f.head, 12, 12, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_create(f.ctx, f.enc, f.head, 0, 12, &out), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_create(f.ctx, f.enc, mlp, 12, 12, &out), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "is not a linear head"));
    CHECK_STATUS(simclr_classifier_create(f.ctx, f.enc, wide, 12, 12, &out), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "takes 7 features, the encoder"));
    CHECK_STATUS(simclr_classifier_create(f.ctx, mlp, f.head, 12, 12, &out), SIMCLR_E_SHAPE);
    simclr_module *lin32;
    CHECK_OK(simclr_linear_head_create(f.ctx, 7, 32, 1, &lin32));
    CHECK_STATUS(simclr_classifier_create(f.ctx, lin32, f.head, 12, 12, &out), SIMCLR_E_INVALID);
    simclr_module_destroy(lin32);
    assert_non_null(strstr(simclr_last_error(), "simclr_classifier_create: the encoder"));
    assert_ptr_equal(out, (simclr_classifier *)&f);
    CHECK_OK(simclr_classifier_create(f.ctx, f.enc, f.head, 12, 12, &c));

    double v = 3;
    CHECK_STATUS(simclr_classifier_set(c, SIMCLR_CLASSIFIER_CLASSES, 5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_set(c, SIMCLR_CLASSIFIER_BATCH, 0), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_classifier_set: key 101"));
    CHECK_STATUS(simclr_classifier_set(c, (simclr_classifier_param)999, 1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_get(c, (simclr_classifier_param)999, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_get(c, SIMCLR_CLASSIFIER_BATCH, NULL), SIMCLR_E_INVALID);
    assert_true(v == 3);

    simclr_tensor *probs = f32(f.ctx, NI, CLS), *short_probs = f32(f.ctx, NI - 1, CLS);
    for (int i = 0; i < NI * CLS; i++) fp(probs)[i] = -1;
    simclr_image_list *empty, *gray;
    CHECK_OK(simclr_image_list_create(f.ctx, 3, &empty));
    CHECK_OK(simclr_image_list_create(f.ctx, 1, &gray));
    CHECK_OK(simclr_image_list_add(gray, f.px[0], 4, 4));
    CHECK_STATUS(simclr_classifier_run(NULL, f.list, probs), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_run(c, NULL, probs), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_run(c, f.list, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_run(c, empty, probs), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_run(c, gray, probs), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "simclr_classifier_run: the images have 1 channels"));
    CHECK_STATUS(simclr_classifier_run(c, f.list, short_probs), SIMCLR_E_SHAPE);
    for (int i = 0; i < NI * CLS; i++) assert_true(fp(probs)[i] == -1);

    int32_t cls[NI * 2], lab[NI] = {0, 1, 2, 3, 0, 1, 2}, badlab[NI] = {0, 1, 2, 4, 0, 1, 2};
    float tp[NI * 2];
    for (int i = 0; i < NI * 2; i++) cls[i] = -1, tp[i] = -1;
    CHECK_STATUS(simclr_classifier_topk(c, f.list, 0, cls, tp, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_topk(c, f.list, CLS + 1, cls, tp, NI * (CLS + 1)), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_topk(c, f.list, 2, NULL, tp, NI * 2), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_topk(c, f.list, 2, cls, tp, NI * 2 - 1), SIMCLR_E_SHAPE);
    for (int i = 0; i < NI * 2; i++) assert_true(cls[i] == -1 && tp[i] == -1);
    CHECK_OK(simclr_classifier_topk(c, f.list, 2, cls, NULL, NI * 2)); /* probs may be NULL */

    double acc = -1, recall[CLS] = {-1, -1, -1, -1};
    int64_t conf[CLS * CLS];
    for (int i = 0; i < CLS * CLS; i++) conf[i] = -1;
    CHECK_STATUS(simclr_classifier_evaluate(c, f.list, NULL, NI, &acc, conf, 16, recall, 4), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_evaluate(c, f.list, lab, NI, NULL, conf, 16, recall, 4), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classifier_evaluate(c, f.list, lab, NI - 1, &acc, conf, 16, recall, 4), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_classifier_evaluate(c, f.list, badlab, NI, &acc, conf, 16, recall, 4), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "labels[3] = 4 out of range 0..3"));
    CHECK_STATUS(simclr_classifier_evaluate(c, f.list, lab, NI, &acc, conf, 15, recall, 4), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_classifier_evaluate(c, f.list, lab, NI, &acc, conf, 16, recall, 3), SIMCLR_E_SHAPE);
    assert_true(acc == -1);
    for (int i = 0; i < CLS * CLS; i++) assert_true(conf[i] == -1);
    for (int i = 0; i < CLS; i++) assert_true(recall[i] == -1);

    /* NaN weights: SIMCLR_E_NUMERIC, probs untouched */
    simclr_tensor *w;
    CHECK_OK(simclr_module_param(f.head, 0, NULL, &w, NULL, NULL));
    float keep = fp(w)[5];
    fp(w)[5] = NAN;
    CHECK_STATUS(simclr_classifier_run(c, f.list, probs), SIMCLR_E_NUMERIC);
    assert_non_null(strstr(simclr_last_error(), "image 0 has a logit"));
    for (int i = 0; i < NI * CLS; i++) assert_true(fp(probs)[i] == -1);
    fp(w)[5] = keep;
    CHECK_OK(simclr_classifier_run(c, f.list, probs));

    simclr_image_list_destroy(empty);
    simclr_image_list_destroy(gray);
    simclr_tensor_destroy(probs);
    simclr_tensor_destroy(short_probs);
    simclr_classifier_destroy(c);
    simclr_classifier_destroy(NULL);
    simclr_module_destroy(mlp);
    simclr_module_destroy(wide);
    cfix_free(&f);
}

static int stop_after_first(void *user, const char *what, int64_t done, int64_t total)
{
    (void)total;
    int *calls = user;
    if (strcmp(what, "classify") == 0) ++*calls;
    return done > 0;
}

static void test_classifier_cancel(void **state)
{
    (void)state;
    cfix f;
    cfix_make(&f, 1);
    simclr_classifier *c;
    CHECK_OK(simclr_classifier_create(f.ctx, f.enc, f.head, 12, 12, &c));
    CHECK_OK(simclr_classifier_set(c, SIMCLR_CLASSIFIER_BATCH, 2));
    int calls = 0;
    CHECK_OK(simclr_context_set_progress_cancel(f.ctx, stop_after_first, &calls));
    int32_t lab[NI] = {0};
    double acc = -1;
    CHECK_STATUS(simclr_classifier_evaluate(c, f.list, lab, NI, &acc, NULL, 0, NULL, 0), SIMCLR_E_CANCELLED);
    assert_int_equal(calls, 2); /* 0 of 7, then 2 of 7: stop */
    assert_true(acc == -1);
    CHECK_OK(simclr_context_set_progress_cancel(f.ctx, NULL, NULL));
    CHECK_OK(simclr_classifier_evaluate(c, f.list, lab, NI, &acc, NULL, 0, NULL, 0));
    simclr_classifier_destroy(c);
    cfix_free(&f);
}

/* Threads with their own contexts and classifiers over one encoder and head
 * get exactly the sequential probabilities (make tsan-embed's pattern). */
typedef struct worker {
    cfix *f;
    float probs[NI * CLS];
    simclr_status st;
} worker;

static void *work(void *arg)
{
    worker *wk = arg;
    simclr_context *ctx;
    simclr_classifier *c;
    simclr_tensor *p;
    int64_t s[2] = {NI, CLS};
    wk->st = simclr_context_create(NULL, 1, NULL, &ctx);
    if (wk->st != SIMCLR_OK) return NULL;
    wk->st = simclr_classifier_create(ctx, wk->f->enc, wk->f->head, 12, 12, &c);
    if (wk->st == SIMCLR_OK) {
        wk->st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, s, wk->probs, &p);
        for (int r = 0; r < 3 && wk->st == SIMCLR_OK; r++) wk->st = simclr_classifier_run(c, wk->f->list, p);
        simclr_tensor_destroy(p);
        simclr_classifier_destroy(c);
    }
    simclr_context_destroy(ctx);
    return NULL;
}

static void test_classifier_concurrent(void **state)
{
    (void)state;
    cfix f;
    cfix_make(&f, 1);
    simclr_classifier *c;
    simclr_tensor *probs = f32(f.ctx, NI, CLS);
    CHECK_OK(simclr_classifier_create(f.ctx, f.enc, f.head, 12, 12, &c));
    CHECK_OK(simclr_classifier_run(c, f.list, probs));
    enum { T = 3 };
    worker wk[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        wk[t].f = &f;
        assert_int_equal(pthread_create(&th[t], NULL, work, &wk[t]), 0);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < T; t++) {
        assert_int_equal(wk[t].st, SIMCLR_OK);
        assert_memory_equal(wk[t].probs, fp(probs), sizeof wk[t].probs);
    }
    simclr_tensor_destroy(probs);
    simclr_classifier_destroy(c);
    cfix_free(&f);
}

/* ---- metrics ----------------------------------------------------------------- */

static void test_metrics(void **state)
{
    (void)state;
    const int32_t pred[6] = {0, 1, 1, 2, 0, 0}, lab[6] = {0, 1, 2, 2, 1, 0};
    double acc, recall[4];
    int64_t conf[16];
    CHECK_OK(simclr_classification_metrics(pred, lab, 6, 4, &acc, conf, 16, recall, 4));
    assert_true(acc == 4.0 / 6.0);
    const int64_t want[16] = {2, 0, 0, 0, /* true 0 */ 1, 1, 0, 0, /* true 1 */ 0, 1, 1, 0, 0, 0, 0, 0};
    assert_memory_equal(conf, want, sizeof want);
    assert_true(recall[0] == 1.0 && recall[1] == 0.5 && recall[2] == 0.5 && isnan(recall[3]));
    CHECK_OK(simclr_classification_metrics(pred, lab, 6, 3, &acc, NULL, 0, NULL, 0));
    /* more than 256 classes: recall over several blocks */
    enum { K = 600 };
    static int32_t p2[2 * K], l2[2 * K];
    static double r2[K];
    for (int i = 0; i < 2 * K; i++) l2[i] = i % K, p2[i] = i < K ? i % K : (i * 7) % K;
    CHECK_OK(simclr_classification_metrics(p2, l2, 2 * K, K, &acc, NULL, 0, r2, K));
    for (int c = 0; c < K; c++) {
        double w = ((c + K) * 7) % K == c ? 1.0 : 0.5;
        assert_true(r2[c] == w);
    }
    /* errors, outputs untouched */
    const int32_t badp[2] = {0, 5}, badl[2] = {-1, 0};
    acc = -1;
    for (int i = 0; i < 16; i++) conf[i] = -1;
    CHECK_STATUS(simclr_classification_metrics(badp, lab, 2, 4, &acc, conf, 16, NULL, 0), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "predicted[1] = 5 out of range 0..3"));
    CHECK_STATUS(simclr_classification_metrics(pred, badl, 2, 4, &acc, conf, 16, NULL, 0), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "labels[0] = -1"));
    CHECK_STATUS(simclr_classification_metrics(pred, lab, 6, 4, &acc, conf, 9, NULL, 0), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_classification_metrics(pred, lab, 6, 4, &acc, NULL, 0, recall, 3), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_classification_metrics(pred, lab, 0, 4, &acc, NULL, 0, NULL, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classification_metrics(NULL, lab, 6, 4, &acc, NULL, 0, NULL, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_classification_metrics(pred, lab, 6, 4, NULL, NULL, 0, NULL, 0), SIMCLR_E_INVALID);
    assert_true(acc == -1);
    for (int i = 0; i < 16; i++) assert_true(conf[i] == -1);
}

static void test_image_list_add_tensor(void **state)
{
    (void)state;
    simclr_context *ctx = ctx_new(1);
    int64_t s[4] = {3, 5, 4, 3};
    simclr_tensor *t, *bad;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, s, &t));
    simclr_image_list *l;
    CHECK_OK(simclr_image_list_create(ctx, 3, &l));
    CHECK_OK(simclr_image_list_add(l, simclr_tensor_data(t), 2, 2));
    CHECK_OK(simclr_image_list_add_tensor(l, t));
    assert_int_equal(simclr_image_list_count(l), 4);
    int64_t h, w;
    CHECK_OK(simclr_image_list_size(l, 3, &h, &w));
    assert_true(h == 5 && w == 4);
    int64_t gs[4] = {3, 5, 4, 1};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, gs, &bad));
    CHECK_STATUS(simclr_image_list_add_tensor(l, bad), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_image_list_add_tensor(l, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_list_add_tensor(NULL, t), SIMCLR_E_INVALID);
    simclr_tensor_destroy(bad);
    int64_t fs[2] = {3, 3};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, fs, &bad));
    CHECK_STATUS(simclr_image_list_add_tensor(l, bad), SIMCLR_E_SHAPE);
    assert_int_equal(simclr_image_list_count(l), 4);
    /* many images: the list grows past its first capacity in one call */
    int64_t ms[4] = {200, 2, 2, 3};
    simclr_tensor *many;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, ms, &many));
    CHECK_OK(simclr_image_list_add_tensor(l, many));
    assert_int_equal(simclr_image_list_count(l), 204);
    simclr_tensor_destroy(many);
    simclr_tensor_destroy(bad);
    simclr_tensor_destroy(t);
    simclr_image_list_destroy(l);
    simclr_context_destroy(ctx);
}

/* ---- export ----------------------------------------------------------------- */

static void test_export_classifier(void **state)
{
    (void)state;
    cfix f;
    cfix_make(&f, 1);
    char path[300];
    snprintf(path, sizeof path, "%s/clf.safetensors", tmpdir);
    CHECK_OK(simclr_export_classifier_safetensors(f.enc, f.head, path));
    /* names and metadata in the header */
    FILE *fh = fopen(path, "rb");
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, fh), 8);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | len8[i];
    char *json = calloc(1, len + 1);
    assert_int_equal(fread(json, 1, len, fh), len);
    fclose(fh);
    assert_non_null(strstr(json, "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[4,32]"));
    assert_non_null(strstr(json, "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[4]"));
    assert_non_null(strstr(json, "\"simclr.classes\":\"4\""));
    assert_non_null(strstr(json, "\"simclr.head\":\"linear_head in=32 out=4\""));
    assert_non_null(strstr(json, "\"simclr.arch\":\"resnet18\""));
    assert_non_null(strstr(json, "\"layer4.1.bn2.running_var\""));
    free(json);
    /* both modules import back from the one file */
    simclr_module *enc2, *head2;
    CHECK_OK(simclr_resnet_create_v2(f.ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 99, &enc2));
    CHECK_OK(simclr_linear_head_create(f.ctx, 32, CLS, 99, &head2));
    CHECK_OK(simclr_module_import_safetensors(enc2, path));
    CHECK_OK(simclr_module_import_safetensors(head2, path));
    for (int m = 0; m < 2; m++) {
        simclr_module *a = m ? f.head : f.enc, *b = m ? head2 : enc2;
        for (int i = 0; i < simclr_module_param_count(a); i++) {
            simclr_tensor *ta, *tb;
            CHECK_OK(simclr_module_param(a, i, NULL, &ta, NULL, NULL));
            CHECK_OK(simclr_module_param(b, i, NULL, &tb, NULL, NULL));
            assert_memory_equal(simclr_tensor_data(ta), simclr_tensor_data(tb), simclr_tensor_bytes(ta));
        }
    }
    /* errors */
    simclr_module *mlp, *wide;
    CHECK_OK(simclr_mlp_head_create_v2(f.ctx, 32, 0, CLS, 1, 0, 1, &mlp));
    CHECK_OK(simclr_linear_head_create(f.ctx, 7, CLS, 1, &wide));
    CHECK_STATUS(simclr_export_classifier_safetensors(f.enc, mlp, path), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_export_classifier_safetensors(f.enc, wide, path), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_export_classifier_safetensors(mlp, f.head, path), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_export_classifier_safetensors(NULL, f.head, path), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_export_classifier_safetensors(f.enc, f.head, NULL), SIMCLR_E_INVALID);
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.safetensors", tmpdir);
    CHECK_STATUS(simclr_export_classifier_safetensors(f.enc, f.head, nodir), SIMCLR_E_IO);
    /* the earlier file is intact after the failures */
    CHECK_OK(simclr_module_import_safetensors(head2, path));
    simclr_module_destroy(mlp);
    simclr_module_destroy(wide);
    simclr_module_destroy(enc2);
    simclr_module_destroy(head2);
    cfix_free(&f);
}

/* ---- allocation failures ---------------------------------------------------- */

typedef struct sweep_state {
    simclr_loss *loss;
    simclr_tensor *z, *t;
    simclr_module *enc, *head;
    simclr_classifier *clf;
    simclr_image_list *list;
    uint8_t px[3 * 10 * 10];
    int64_t idx[64], count;
    int32_t y[NL];
    int kind;
    char path[300];
} sweep_state;

static void sweep_loss_call_prepare(simclr_context *ctx, void *user)
{
    sweep_state *s = user;
    s->loss = NULL;
    s->z = f32(ctx, 4, 3);
    s->t = f32(ctx, 4, 3);
    test_fill(fp(s->z), 12, 1);
    test_fill(fp(s->t), 12, 2);
}

static simclr_status sweep_loss_call(simclr_context *ctx, void *user)
{
    sweep_state *s = user;
    simclr_status st = s->kind ? simclr_distill_create(ctx, 3, 2.0, &s->loss) : simclr_cross_entropy_create(ctx, 3, &s->loss);
    const int32_t y[4] = {0, 1, 2, -1};
    float v;
    if (st != SIMCLR_OK) return st;
    const int32_t all[4] = {0, 1, 2, 0};
    st = s->kind ? simclr_loss_forward_distill(s->loss, s->z, s->t, y, 4, &v, NULL)
                 : simclr_loss_forward_labels(s->loss, s->z, all, 4, &v, NULL);
    if (st == SIMCLR_OK) st = simclr_loss_backward(s->loss, s->t);
    return st;
}

static void sweep_loss_finish(simclr_context *ctx, simclr_status st, void *user)
{
    (void)ctx;
    (void)st;
    sweep_state *s = user;
    simclr_loss_destroy(s->loss);
    simclr_tensor_destroy(s->z);
    simclr_tensor_destroy(s->t);
}

static void test_sweep_losses(void **state)
{
    (void)state;
    sweep_state s;
    memset(&s, 0, sizeof s);
    test_alloc_sweep sw = {sweep_loss_call_prepare, sweep_loss_call, sweep_loss_finish, &s};
    s.kind = 0;
    test_sweep_alloc_failures(50, &sw);
    s.kind = 1;
    test_sweep_alloc_failures(50, &sw);
}

static simclr_status sweep_subset_call(simclr_context *ctx, void *user)
{
    sweep_state *s = user;
    int64_t n = -1, idx[NL];
    simclr_status st = simclr_label_subset_fraction(ctx, s->y, NL, NC, 0.05, 3, idx, NL, &n);
    if (st == SIMCLR_OK) st = simclr_label_subset_save(ctx, s->path, idx, n, NL, 0.05, 0, 3);
    if (st == SIMCLR_OK) st = simclr_label_subset_load(ctx, s->path, NL, s->idx, 64, &s->count, NULL, NULL, NULL);
    return st;
}

static void test_sweep_subsets(void **state)
{
    (void)state;
    sweep_state s;
    memset(&s, 0, sizeof s);
    make_labels(s.y);
    snprintf(s.path, sizeof s.path, "%s/sweep.txt", tmpdir);
    test_alloc_sweep sw = {NULL, sweep_subset_call, NULL, &s};
    test_sweep_alloc_failures(50, &sw);
    assert_int_equal(s.count, 51); /* 35 + 10 + 5 (4.5 rounds up) + 1 (0.5 rounds up) */
}

static void sweep_clf_prepare(simclr_context *ctx, void *user)
{
    sweep_state *s = user;
    CHECK_OK(simclr_resnet_create_v2(ctx, 18, 2, 3, SIMCLR_STEM_CIFAR, 3, &s->enc));
    CHECK_OK(simclr_linear_head_create(ctx, 16, 3, 3, &s->head));
    CHECK_OK(simclr_image_list_create(ctx, 3, &s->list));
    for (size_t i = 0; i < sizeof s->px; i++) s->px[i] = (uint8_t)(i * 37);
    CHECK_OK(simclr_image_list_add(s->list, s->px, 10, 10));
    CHECK_OK(simclr_image_list_add(s->list, s->px, 6, 9));
    CHECK_OK(simclr_image_list_add(s->list, s->px, 9, 6));
    s->clf = NULL;
    s->z = f32(ctx, 3, 3);
}

static simclr_status sweep_clf_call(simclr_context *ctx, void *user)
{
    sweep_state *s = user;
    simclr_status st = simclr_classifier_create(ctx, s->enc, s->head, 8, 8, &s->clf);
    if (st == SIMCLR_OK) st = simclr_classifier_set(s->clf, SIMCLR_CLASSIFIER_BATCH, 2);
    if (st == SIMCLR_OK) st = simclr_classifier_run(s->clf, s->list, s->z);
    int32_t cls[6], lab[3] = {0, 1, 2};
    double acc, recall[3];
    int64_t conf[9];
    if (st == SIMCLR_OK) st = simclr_classifier_topk(s->clf, s->list, 2, cls, NULL, 6);
    if (st == SIMCLR_OK) st = simclr_classifier_evaluate(s->clf, s->list, lab, 3, &acc, conf, 9, recall, 3);
    if (st == SIMCLR_OK) st = simclr_image_list_add_tensor(s->list, NULL) == SIMCLR_E_INVALID ? SIMCLR_OK : SIMCLR_E_INTERNAL;
    snprintf(s->path, sizeof s->path, "%s/sweep.safetensors", tmpdir);
    if (st == SIMCLR_OK) st = simclr_export_classifier_safetensors(s->enc, s->head, s->path);
    return st;
}

static void sweep_clf_finish(simclr_context *ctx, simclr_status st, void *user)
{
    (void)ctx;
    (void)st;
    sweep_state *s = user;
    simclr_classifier_destroy(s->clf);
    simclr_image_list_destroy(s->list);
    simclr_module_destroy(s->head);
    simclr_module_destroy(s->enc);
    simclr_tensor_destroy(s->z);
}

static void test_sweep_classifier(void **state)
{
    (void)state;
    sweep_state s;
    memset(&s, 0, sizeof s);
    test_alloc_sweep sw = {sweep_clf_prepare, sweep_clf_call, sweep_clf_finish, &s};
    test_sweep_alloc_failures(5000, &sw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ce_gradient),
        cmocka_unit_test(test_ce_known_values),
        cmocka_unit_test(test_ce_large_logits),
        cmocka_unit_test(test_supervised_reserve),
        cmocka_unit_test(test_distill_gradient),
        cmocka_unit_test(test_distill_known_values),
        cmocka_unit_test(test_distill_large_logits),
        cmocka_unit_test(test_loss_errors),
        cmocka_unit_test(test_subset_balance_and_order),
        cmocka_unit_test(test_subset_reproducible_and_nested),
        cmocka_unit_test(test_subset_uniform),
        cmocka_unit_test(test_subset_refusals),
        cmocka_unit_test(test_subset_file),
        cmocka_unit_test(test_linear_head),
        cmocka_unit_test(test_classifier_probabilities),
        cmocka_unit_test(test_classifier_errors),
        cmocka_unit_test(test_classifier_cancel),
        cmocka_unit_test(test_classifier_concurrent),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_image_list_add_tensor),
        cmocka_unit_test(test_export_classifier),
        cmocka_unit_test(test_sweep_losses),
        cmocka_unit_test(test_sweep_subsets),
        cmocka_unit_test(test_sweep_classifier),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
