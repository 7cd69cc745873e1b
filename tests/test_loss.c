/* NT-Xent: value and gradient against an independent double-precision
 * implementation written here from the definition, finite differences,
 * ref-vs-cpu backends, stability, accuracy, errors and allocation failures. */
#include "test_util.h"

#include "loss/loss.h"

/* The definition, in double, with plain loops: F.normalize (eps 1e-12),
 * cosine / T, self excluded, mean over positives of -log softmax, mean over
 * anchors. */
static double ref_loss(const double *z, int64_t m, int64_t d, int v_count, double t)
{
    int64_t n = m / v_count;
    double *u = calloc((size_t)(m * d), sizeof(double));
    for (int64_t i = 0; i < m; i++) {
        double ss = 0;
        for (int64_t k = 0; k < d; k++) ss += z[i * d + k] * z[i * d + k];
        double r = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
        for (int64_t k = 0; k < d; k++) u[i * d + k] = z[i * d + k] / r;
    }
    double total = 0;
    for (int64_t i = 0; i < m; i++) {
        double mx = -INFINITY, *row = malloc(sizeof(double) * (size_t)m);
        for (int64_t c = 0; c < m; c++) {
            double s = 0;
            for (int64_t k = 0; k < d; k++) s += u[i * d + k] * u[c * d + k];
            row[c] = s / t;
            if (c != i && row[c] > mx) mx = row[c];
        }
        double se = 0;
        for (int64_t c = 0; c < m; c++)
            if (c != i) se += exp(row[c] - mx);
        double lse = mx + log(se), acc = 0;
        for (int64_t c = 0; c < m; c++)
            if (c != i && c % n == i % n) acc += lse - row[c];
        total += acc / (v_count - 1);
        free(row);
    }
    free(u);
    return total / (double)m;
}

typedef struct {
    simclr_context *cpu, *ref;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (simclr_context_create("cpu", 2, NULL, &f->cpu) || simclr_context_create("ref", 1, NULL, &f->ref)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    simclr_context_destroy(f->cpu);
    simclr_context_destroy(f->ref);
    free(f);
    return 0;
}

/* Runs forward + backward of the library on z (float) and returns the loss. */
static float run(simclr_context *ctx, const float *z, int64_t m, int64_t d, int v, double t, float *dz,
                 float *acc)
{
    simclr_loss *loss;
    simclr_tensor *zt, *gt;
    int64_t shape[2] = {m, d};
    CHECK_OK(simclr_ntxent_create(ctx, t, v, &loss));
    CHECK_OK(simclr_tensor_wrap(ctx, SIMCLR_F32, 2, shape, (void *)z, &zt));
    CHECK_OK(simclr_tensor_wrap(ctx, SIMCLR_F32, 2, shape, dz, &gt));
    float value = NAN;
    CHECK_OK(simclr_loss_forward(loss, zt, &value, acc));
    CHECK_OK(simclr_loss_backward(loss, gt));
    simclr_tensor_destroy(zt);
    simclr_tensor_destroy(gt);
    simclr_loss_destroy(loss);
    return value;
}

/* Value against the double definition and gradient against central
 * differences of that definition (h = 1e-5 in double: truncation ~h^2 and
 * rounding ~1e-16/h are both far below the float32 error of the library). */
static void check_case(simclr_context *ctx, int v, int64_t n, int64_t d, double t, uint64_t seed)
{
    int64_t m = v * n;
    float *z = calloc((size_t)(m * d), sizeof(float)), *dz = calloc((size_t)(m * d), sizeof(float));
    double *zd = calloc((size_t)(m * d), sizeof(double));
    test_fill(z, m * d, seed);
    for (int64_t i = 0; i < m * d; i++) zd[i] = z[i];
    float value = run(ctx, z, m, d, v, t, dz, NULL);
    double want = ref_loss(zd, m, d, v, t);
    /* float32 logits carry ~1e-7 relative error times |logit| <= 1/T; at
     * T = 0.05 that is ~2e-6 absolute on a loss of order 1. */
    assert_true(fabs(value - want) <= 1e-5 * fabs(want) + 1e-6);
    double gmax = 0, emax = 0;
    for (int64_t i = 0; i < m * d; i++) {
        double keep = zd[i], h = 1e-5;
        zd[i] = keep + h;
        double lp = ref_loss(zd, m, d, v, t);
        zd[i] = keep - h;
        double lm = ref_loss(zd, m, d, v, t);
        zd[i] = keep;
        double fd = (lp - lm) / (2 * h);
        if (fabs(fd) > gmax) gmax = fabs(fd);
        if (fabs(fd - dz[i]) > emax) emax = fabs(fd - dz[i]);
    }
    /* Normalized error; the float32 gradient's rounding is ~1e-6 of its scale. */
    if (!(emax <= 1e-4 * gmax)) fail_msg("V=%d N=%lld D=%lld T=%g: grad err %g of scale %g", v, (long long)n,
                                         (long long)d, t, emax, gmax);
    free(z), free(dz), free(zd);
}

static void test_against_definition(void **state)
{
    fixture *f = *state;
    simclr_context *ctxs[2] = {f->cpu, f->ref};
    for (int c = 0; c < 2; c++) {
        check_case(ctxs[c], 2, 4, 8, 0.5, 1);
        check_case(ctxs[c], 2, 1, 5, 0.1, 2);   /* N = 1: the only negatives are none but the positive */
        check_case(ctxs[c], 3, 3, 6, 0.05, 3);  /* V = 3, SupCon L_out */
        check_case(ctxs[c], 4, 2, 3, 0.2, 4);
        check_case(ctxs[c], 2, 7, 16, 1.0, 5);
    }
}

/* The library against itself: central differences of its float forward
 * along a random direction. Loose tolerance: float32 loss rounding ~1e-7
 * over h = 1e-2, plus O(h^2) truncation. */
static void test_directional_fd(void **state)
{
    fixture *f = *state;
    const int64_t m = 12, d = 10;
    const int v = 3;
    float z[120], dz[120], dir[120], zp[120], zm[120], scratch[120];
    test_fill(z, m * d, 11);
    test_fill(dir, m * d, 12);
    run(f->cpu, z, m, d, v, 0.3, dz, NULL);
    double h = 1e-2, analytic = 0;
    for (int i = 0; i < m * d; i++) {
        zp[i] = z[i] + (float)h * dir[i];
        zm[i] = z[i] - (float)h * dir[i];
        analytic += (double)dz[i] * dir[i];
    }
    double fd = (run(f->cpu, zp, m, d, v, 0.3, scratch, NULL) - run(f->cpu, zm, m, d, v, 0.3, scratch, NULL)) / (2 * h);
    assert_true(fabs(fd - analytic) <= 2e-3 * fabs(analytic) + 1e-4);
}

static void test_backends_agree(void **state)
{
    fixture *f = *state;
    const int64_t m = 64, d = 33;
    float *z = calloc((size_t)(m * d), sizeof(float)), *g1 = calloc((size_t)(m * d), sizeof(float)), *g2 = calloc((size_t)(m * d), sizeof(float));
    test_fill(z, m * d, 21);
    float a1, a2;
    float l1 = run(f->cpu, z, m, d, 2, 0.1, g1, &a1), l2 = run(f->ref, z, m, d, 2, 0.1, g2, &a2);
    /* Different summation orders in the GEMM: ~1e-6 relative on logits. */
    assert_true(fabs(l1 - l2) <= 1e-5 * fabs(l2));
    assert_true(test_norm_err(g1, g2, m * d) < 1e-4);
    assert_float_equal(a1, a2, 1e-6);
    free(z), free(g1), free(g2);
}

/* Random directions in high dimension are nearly orthogonal, so every logit
 * is ~0 and the loss is ~ln(V*N - 1) (the SimCLR sanity value, 2N - 1 negatives + positive). */
static void test_random_is_log_2n_minus_1(void **state)
{
    fixture *f = *state;
    const int64_t n = 16, m = 2 * n, d = 2048;
    float *z = calloc((size_t)(m * d), sizeof(float)), *g = calloc((size_t)(m * d), sizeof(float));
    test_fill(z, m * d, 31);
    float value = run(f->cpu, z, m, d, 2, 1.0, g, NULL);
    /* cosines have std 1/sqrt(D) ~ 0.022: the deviation is of that order. */
    assert_true(fabs(value - log(2.0 * n - 1)) < 0.05);
    free(z), free(g);
}

/* T = 0.01 puts logits at +-100: exp without the max shift overflows float
 * and, for the positive, underflows the rest. D = 8192 stresses the norms. */
static void test_stability(void **state)
{
    fixture *f = *state;
    const int64_t n = 4, m = 2 * n, d = 8192;
    float *z = calloc((size_t)(m * d), sizeof(float)), *g = calloc((size_t)(m * d), sizeof(float));
    double *zd = calloc((size_t)(m * d), sizeof(double));
    test_fill(z, m * d, 41);
    for (int64_t i = 0; i < m * d; i++) z[i] *= 1000.0f; /* large norms too */
    for (int64_t i = 0; i < m * d; i++) zd[i] = z[i];
    float acc;
    float value = run(f->cpu, z, m, d, 2, 0.01, g, &acc);
    double want = ref_loss(zd, m, d, 2, 0.01);
    assert_true(isfinite(value));
    /* logits up to 100 with ~1e-7 relative float error: ~1e-4 absolute. */
    assert_true(fabs(value - want) <= 1e-5 * fabs(want) + 2e-4);
    for (int64_t i = 0; i < m * d; i++) assert_true(isfinite(g[i]));
    /* Aligned positives at T = 0.01: loss ~0, the positive dominates. */
    for (int64_t i = 0; i < n * d; i++) z[n * d + i] = z[i];
    value = run(f->cpu, z, m, d, 2, 0.01, g, &acc);
    assert_true(isfinite(value) && value >= 0 && value < 1e-6);
    assert_float_equal(acc, 1.0, 0);
    for (int64_t i = 0; i < m * d; i++) assert_true(isfinite(g[i]));
    free(z), free(g), free(zd);
}

static void test_accuracy(void **state)
{
    fixture *f = *state;
    /* Rows: sample 0 = e0, sample 1 = e1 for view 0; view 1 is swapped
     * (sample 0 = e1): every anchor's nearest other row is a negative. */
    float z[4 * 2] = {1, 0, 0, 1, 0, 1, 1, 0}, g[8];
    float acc = -1;
    run(f->cpu, z, 4, 2, 2, 0.5, g, &acc);
    assert_float_equal(acc, 0.0, 0);
    float z2[4 * 2] = {1, 0, 0, 1, 1, 0.1f, 0.1f, 1};
    run(f->cpu, z2, 4, 2, 2, 0.5, g, &acc);
    assert_float_equal(acc, 1.0, 0);
    /* N = 1: every other row is a positive. */
    float z3[3 * 2] = {1, 0, -1, 0, 0, 1};
    run(f->cpu, z3, 3, 2, 3, 0.5, g, &acc);
    assert_float_equal(acc, 1.0, 0);
}

/* A zero row (e.g. a dead projection) is clamped like F.normalize: finite
 * loss, and its gradient is the normalized-space gradient / 1e-12. */
static void test_zero_row(void **state)
{
    fixture *f = *state;
    float z[4 * 3], g[12];
    test_fill(z, 12, 51);
    z[3] = z[4] = z[5] = 0;
    double zd[12];
    for (int i = 0; i < 12; i++) zd[i] = z[i];
    float value = run(f->cpu, z, 4, 3, 2, 0.5, g, NULL);
    assert_true(fabs(value - ref_loss(zd, 4, 3, 2, 0.5)) < 1e-5);
    for (int i = 0; i < 12; i++) assert_true(isfinite(g[i]));
}

static void test_errors_and_state(void **state)
{
    fixture *f = *state;
    simclr_loss *loss = (simclr_loss *)0x1;
    CHECK_STATUS(simclr_ntxent_create(NULL, 0.5, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_ntxent_create(f->cpu, 0.5, 2, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_ntxent_create(f->cpu, 0.0005, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_ntxent_create(f->cpu, NAN, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_ntxent_create(f->cpu, 101, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_ntxent_create(f->cpu, 0.5, 1, &loss), SIMCLR_E_INVALID);
    assert_ptr_equal(loss, (simclr_loss *)0x1);
    simclr_loss_destroy(NULL);

    CHECK_OK(simclr_ntxent_create(f->cpu, 0.5, 2, &loss));
    assert_int_equal(simclr__loss_n_views(loss), 2);
    float zbuf[6 * 4], gbuf[6 * 4], g2[6 * 4], value, acc;
    test_fill(zbuf, 24, 61);
    int64_t shape[2] = {6, 4}, odd[2] = {5, 4}, other[2] = {6, 3}, flat[1] = {24};
    simclr_tensor *z, *g, *zodd, *gother, *z1, *u8;
    CHECK_OK(simclr_tensor_wrap(f->cpu, SIMCLR_F32, 2, shape, zbuf, &z));
    CHECK_OK(simclr_tensor_wrap(f->cpu, SIMCLR_F32, 2, shape, gbuf, &g));
    CHECK_OK(simclr_tensor_create(f->cpu, SIMCLR_F32, 2, odd, &zodd));
    CHECK_OK(simclr_tensor_create(f->cpu, SIMCLR_F32, 2, other, &gother));
    CHECK_OK(simclr_tensor_create(f->cpu, SIMCLR_F32, 1, flat, &z1));
    CHECK_OK(simclr_tensor_create(f->cpu, SIMCLR_U8, 2, shape, &u8));

    CHECK_STATUS(simclr_loss_backward(loss, g), SIMCLR_E_STATE);
    CHECK_STATUS(simclr_loss_forward(NULL, z, &value, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward(loss, NULL, &value, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward(loss, z, NULL, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_forward(loss, z1, &value, NULL), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_loss_forward(loss, u8, &value, NULL), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_loss_forward(loss, zodd, &value, NULL), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "n_views"));

    CHECK_OK(simclr_loss_forward(loss, z, &value, &acc));
    CHECK_STATUS(simclr_loss_backward(NULL, g), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_backward(loss, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_loss_backward(loss, gother), SIMCLR_E_SHAPE);
    CHECK_OK(simclr_loss_backward(loss, g));
    memcpy(g2, gbuf, sizeof g2);

    /* A non-finite z fails and keeps the previous forward for backward. */
    float keep = zbuf[7];
    zbuf[7] = NAN;
    value = 123;
    CHECK_STATUS(simclr_loss_forward(loss, z, &value, NULL), SIMCLR_E_NUMERIC);
    assert_float_equal(value, 123, 0);
    zbuf[7] = INFINITY;
    CHECK_STATUS(simclr_loss_forward(loss, z, &value, NULL), SIMCLR_E_NUMERIC);
    zbuf[7] = keep;
    memset(gbuf, 0, sizeof gbuf);
    /* A second backward (logits recomputed) gives the same gradient. */
    CHECK_OK(simclr_loss_backward(loss, g));
    assert_memory_equal(gbuf, g2, sizeof g2);

    simclr_tensor_destroy(z), simclr_tensor_destroy(g), simclr_tensor_destroy(zodd);
    simclr_tensor_destroy(gother), simclr_tensor_destroy(z1), simclr_tensor_destroy(u8);
    simclr_loss_destroy(loss);
}

/* dz may be z itself (in-place gradient); the result is the same. */
static void test_in_place(void **state)
{
    fixture *f = *state;
    float z[8 * 5], g[8 * 5];
    test_fill(z, 40, 71);
    run(f->cpu, z, 8, 5, 2, 0.2, g, NULL);
    simclr_loss *loss;
    simclr_tensor *zt;
    int64_t shape[2] = {8, 5};
    float value;
    CHECK_OK(simclr_ntxent_create(f->cpu, 0.2, 2, &loss));
    CHECK_OK(simclr_tensor_wrap(f->cpu, SIMCLR_F32, 2, shape, z, &zt));
    CHECK_OK(simclr_loss_forward(loss, zt, &value, NULL));
    CHECK_OK(simclr_loss_backward(loss, zt));
    assert_memory_equal(z, g, sizeof g);
    simclr_tensor_destroy(zt);
    simclr_loss_destroy(loss);
}

/* Scratch grows with the batch and is reused: no allocation once warm. */
static void test_no_alloc_when_warm_and_oom(void **state)
{
    (void)state;
    float z[16 * 4], g[16 * 4];
    test_fill(z, 64, 81);
    int64_t big[2] = {16, 4}, small[2] = {8, 4};
    int succeeded = 0;
    for (long n = 1; n < 200 && !succeeded; n++) {
        test_alloc a = {0};
        simclr_allocator h = test_allocator(&a);
        simclr_context *ctx;
        CHECK_OK(simclr_context_create("cpu", 2, &h, &ctx));
        a.fail_at = a.allocs + n;
        simclr_loss *loss = NULL;
        simclr_tensor *zt = NULL, *gt = NULL, *zs = NULL;
        float value = -7;
        simclr_status st = simclr_ntxent_create(ctx, 0.5, 2, &loss);
        if (st == SIMCLR_OK) st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, big, z, &zt);
        if (st == SIMCLR_OK) st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, big, g, &gt);
        if (st == SIMCLR_OK) st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, small, z, &zs);
        if (st == SIMCLR_OK) st = simclr_loss_forward(loss, zs, &value, NULL);
        if (st == SIMCLR_OK) {
            st = simclr_loss_forward(loss, zt, &value, NULL);
            if (st != SIMCLR_OK) {
                /* The grow failed: the small batch's forward is still usable. */
                assert_int_equal(st, SIMCLR_E_NOMEM);
                simclr_tensor *gs;
                a.fail_at = 0;
                CHECK_OK(simclr_tensor_wrap(ctx, SIMCLR_F32, 2, small, g, &gs));
                CHECK_OK(simclr_loss_backward(loss, gs));
                simclr_tensor_destroy(gs);
            }
        }
        if (st == SIMCLR_OK) {
            succeeded = 1;
            long before = a.allocs;
            CHECK_OK(simclr_loss_backward(loss, gt));
            CHECK_OK(simclr_loss_forward(loss, zs, &value, NULL));
            CHECK_OK(simclr_loss_forward(loss, zt, &value, NULL));
            CHECK_OK(simclr_loss_backward(loss, gt));
            assert_int_equal(a.allocs, before);
        } else {
            assert_int_equal(st, SIMCLR_E_NOMEM);
        }
        simclr_tensor_destroy(zt), simclr_tensor_destroy(gt), simclr_tensor_destroy(zs);
        simclr_loss_destroy(loss);
        simclr_context_destroy(ctx);
        assert_int_equal(a.live, 0);
    }
    assert_true(succeeded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_definition),
        cmocka_unit_test(test_directional_fd),
        cmocka_unit_test(test_backends_agree),
        cmocka_unit_test(test_random_is_log_2n_minus_1),
        cmocka_unit_test(test_stability),
        cmocka_unit_test(test_accuracy),
        cmocka_unit_test(test_zero_row),
        cmocka_unit_test(test_errors_and_state),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_no_alloc_when_warm_and_oom),
    };
    return cmocka_run_group_tests_name("loss", tests, setup, teardown);
}
