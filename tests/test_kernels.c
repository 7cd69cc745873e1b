/* Every backend kernel on "ref" and "cpu" over a sweep of shapes (odd,
 * size-1, larger than a thread grain), compared by normalized error
 * max|cpu - ref| / max|ref|. Every new kernel joins this file.
 *
 * Tolerance: float32 products of length k accumulate a relative rounding
 * error of about k * 2^-24 in the worst case, ~sqrt(k) * 2^-24 typically;
 * ref accumulates in double. 1e-5 covers k up to a few thousand with margin. */
#include "test_util.h"

#include "backend/backend.h"

#define TOL 1e-5

typedef struct {
    simclr_context *ref, *cpu;
} ctxs;

static int setup(void **state)
{
    ctxs *c = malloc(sizeof *c);
    if (simclr_context_create("ref", 1, NULL, &c->ref) != SIMCLR_OK) return -1;
    if (simclr_context_create("cpu", 2, NULL, &c->cpu) != SIMCLR_OK) return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctxs *c = *state;
    simclr_context_destroy(c->ref);
    simclr_context_destroy(c->cpu);
    free(c);
    return 0;
}

static float *alloc_rand(int64_t n, uint64_t seed)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    test_fill(p, n, seed);
    return p;
}

static void test_gemm(void **state)
{
    ctxs *c = *state;
    const int64_t sizes[][3] = {{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {3, 4, 1}, {17, 13, 11},
                                {64, 64, 64}, {33, 129, 65}, {128, 3, 300}, {2, 257, 1000}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 2; bi++) {
                    int64_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
                    /* Padded leading dimensions check that strides are honoured. */
                    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
                    float *a = alloc_rand((ta ? k : m) * lda, 1 + s), *b = alloc_rand((tb ? n : k) * ldb, 2 + s);
                    float *c1 = alloc_rand(m * ldc, 3 + s), *c2 = malloc((size_t)(m * ldc) * sizeof(float));
                    memcpy(c2, c1, (size_t)(m * ldc) * sizeof(float));
                    float beta = bi ? 0.5f : 0.0f;
                    c->ref->backend->gemm(c->ref, ta, tb, m, n, k, 1.5f, a, lda, b, ldb, beta, c1, ldc);
                    c->cpu->backend->gemm(c->cpu, ta, tb, m, n, k, 1.5f, a, lda, b, ldb, beta, c2, ldc);
                    double err = test_norm_err(c2, c1, m * ldc);
                    if (err > TOL)
                        fail_msg("gemm m=%lld n=%lld k=%lld ta=%d tb=%d beta=%g: err %g", (long long)m,
                                 (long long)n, (long long)k, ta, tb, beta, err);
                    free(a), free(b), free(c1), free(c2);
                }
}

/* beta = 0 must ignore NaN garbage in C (a fresh arena holds anything). */
static void test_gemm_beta0_nan(void **state)
{
    ctxs *c = *state;
    simclr_context *both[2] = {c->ref, c->cpu};
    for (int i = 0; i < 2; i++) {
        float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, out[4];
        for (int j = 0; j < 4; j++) out[j] = NAN;
        both[i]->backend->gemm(both[i], 0, 0, 2, 2, 3, 1.0f, a, 3, b, 2, 0.0f, out, 2);
        assert_float_equal(out[0], 4, 1e-6);
        assert_float_equal(out[1], 5, 1e-6);
        assert_float_equal(out[2], 10, 1e-6);
        assert_float_equal(out[3], 11, 1e-6);
    }
}

static const int64_t vec_sizes[] = {1, 2, 7, 31, 1000, 32769, 100003};

static void test_elementwise(void **state)
{
    ctxs *c = *state;
    for (size_t s = 0; s < sizeof vec_sizes / sizeof vec_sizes[0]; s++) {
        int64_t n = vec_sizes[s];
        float *x = alloc_rand(n, 10 + s), *y1 = alloc_rand(n, 20 + s), *y2 = malloc((size_t)n * 4);
        memcpy(y2, y1, (size_t)n * 4);
        c->ref->backend->axpy(c->ref, n, -0.75f, x, y1);
        c->cpu->backend->axpy(c->cpu, n, -0.75f, x, y2);
        assert_true(test_norm_err(y2, y1, n) <= TOL);
        c->ref->backend->scale(c->ref, n, 3.0f, y1);
        c->cpu->backend->scale(c->cpu, n, 3.0f, y2);
        assert_true(test_norm_err(y2, y1, n) <= TOL);
        float *o1 = malloc((size_t)n * 4), *o2 = malloc((size_t)n * 4);
        c->ref->backend->add(c->ref, n, x, y1, o1);
        c->cpu->backend->add(c->cpu, n, x, y2, o2);
        assert_true(test_norm_err(o2, o1, n) <= TOL);
        c->cpu->backend->add(c->cpu, n, x, y2, y2); /* aliasing allowed */
        assert_true(test_norm_err(y2, o1, n) <= TOL);
        /* Against a direct formula too, so ref itself is checked. */
        for (int64_t i = 0; i < n; i += 97) assert_float_equal(o1[i], x[i] + y1[i], 1e-6);
        free(x), free(y1), free(y2), free(o1), free(o2);
    }
}

static void test_reductions(void **state)
{
    ctxs *c = *state;
    for (size_t s = 0; s < sizeof vec_sizes / sizeof vec_sizes[0]; s++) {
        int64_t n = vec_sizes[s];
        float *x = alloc_rand(n, 30 + s), *y = alloc_rand(n, 40 + s);
        double sref = c->ref->backend->sum(c->ref, n, x), scpu = c->cpu->backend->sum(c->cpu, n, x);
        double dref = c->ref->backend->dot(c->ref, n, x, y), dcpu = c->cpu->backend->dot(c->cpu, n, x, y);
        double l1 = 0;
        for (int64_t i = 0; i < n; i++) l1 += fabs(x[i]);
        /* Errors are relative to the sum of magnitudes: sums of signed terms cancel. */
        assert_true(fabs(scpu - sref) <= TOL * l1);
        assert_true(fabs(dcpu - dref) <= TOL * l1);
        free(x), free(y);
    }
    /* Matrix reductions over both axes, including a single row and column. */
    const int64_t shapes[][2] = {{1, 1}, {1, 50}, {50, 1}, {3, 7}, {64, 1025}, {300, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t r = shapes[s][0], cc = shapes[s][1];
        float *x = alloc_rand(r * cc, 50 + s);
        float *a1 = malloc((size_t)cc * 4), *a2 = malloc((size_t)cc * 4);
        float *b1 = malloc((size_t)r * 4), *b2 = malloc((size_t)r * 4);
        c->ref->backend->sum_rows(c->ref, r, cc, x, a1);
        c->cpu->backend->sum_rows(c->cpu, r, cc, x, a2);
        c->ref->backend->sum_cols(c->ref, r, cc, x, b1);
        c->cpu->backend->sum_cols(c->cpu, r, cc, x, b2);
        double scale_r = (double)r, scale_c = (double)cc; /* bound by the number of terms */
        for (int64_t j = 0; j < cc; j++) assert_true(fabs(a1[j] - a2[j]) <= TOL * scale_r);
        for (int64_t i = 0; i < r; i++) assert_true(fabs(b1[i] - b2[i]) <= TOL * scale_c);
        /* ref against the definition */
        double s0 = 0;
        for (int64_t i = 0; i < r; i++) s0 += x[i * cc];
        assert_float_equal(a1[0], s0, 1e-4);
        free(x), free(a1), free(a2), free(b1), free(b2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_beta0_nan),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_reductions),
    };
    return cmocka_run_group_tests_name("kernels", tests, setup, teardown);
}
