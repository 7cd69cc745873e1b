/* Every backend kernel on "ref" and "cpu" over a sweep of shapes (odd,
 * size-1, larger than a thread grain), compared by normalized error
 * max|cpu - ref| / max|ref|. Every new kernel joins this file.
 *
 * The whole group runs once per instruction-set copy of the cpu backend
 * this machine can run (SIMCLR_ISA forces each) and per thread count 1, 2
 * and 3 (3 workers on 2 cores: uneven splits, a worker count that divides
 * nothing evenly).
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

static const char *g_isa = "portable";
static int g_threads = 2;

static int setup(void **state)
{
    ctxs *c = malloc(sizeof *c);
    if (setenv("SIMCLR_ISA", g_isa, 1) != 0) return -1;
    if (simclr_context_create("ref", 1, NULL, &c->ref) != SIMCLR_OK) return -1;
    if (simclr_context_create("cpu", g_threads, NULL, &c->cpu) != SIMCLR_OK) return -1;
    unsetenv("SIMCLR_ISA");
    /* The switch really selected the copy under test. */
    if (strcmp(simclr_context_isa(c->cpu), g_isa) != 0) {
        fprintf(stderr, "SIMCLR_ISA=%s gave a context running %s\n", g_isa, simclr_context_isa(c->cpu));
        return -1;
    }
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

/* ---- optimizer kernels ---- */

/* The update rules on both backends from the same state: the rules are one
 * piece of code (backend/opt_rules.h) run over any split, so the bytes must
 * match exactly. The squared norms: cpu against ref within double rounding,
 * the same bytes at 1 and 3 threads, and finite exactly when the input is
 * (a huge finite gradient must not read as an overflow, a NaN must show). */
static void test_optimizer_kernels(void **state)
{
    ctxs *c = *state;
    const int64_t sizes[] = {1, 7, 31, 1000, 100003, 300001};
    const simclr__opt_rule rules[] = {
        {.kind = SIMCLR_OPT_SGD, .lr = 0.1f, .wd = 5e-4f, .mu = 0.9f},
        {.kind = SIMCLR_OPT_SGD, .nesterov = 1, .lr = 0.1f, .wd = 0.0f, .mu = 0.9f},
        {.kind = SIMCLR_OPT_ADAMW, .b1 = 0.9f, .b2 = 0.999f, .eps = 1e-8f, .step_size = 0.01f, .bc2_sqrt = 0.0447f,
         .decay = 0.9995f},
        {.kind = SIMCLR_OPT_LARS, .lr = 0.3f, .wd = 1e-6f, .mu = 0.9f},
        {.kind = SIMCLR_OPT_LARS, .nesterov = 1, .lr = 0.3f, .wd = 1e-6f, .mu = 0.9f},
    };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t k = 0; k < sizeof rules / sizeof rules[0]; k++) {
            int64_t n = sizes[s];
            size_t bytes = (size_t)n * sizeof(float);
            float *w[2], *s0[2], *s1[2], *g = alloc_rand(n, 200 + s);
            for (int b = 0; b < 2; b++) {
                w[b] = alloc_rand(n, 210 + s), s0[b] = alloc_rand(n, 220 + s), s1[b] = alloc_rand(n, 230 + s);
                for (int64_t i = 0; i < n; i++) s1[b][i] = fabsf(s1[b][i]); /* a second moment */
            }
            c->ref->backend->opt_update(c->ref, &rules[k], n, w[0], g, s0[0], s1[0]);
            c->cpu->backend->opt_update(c->cpu, &rules[k], n, w[1], g, s0[1], s1[1]);
            if (memcmp(w[0], w[1], bytes) || memcmp(s0[0], s0[1], bytes) || memcmp(s1[0], s1[1], bytes))
                fail_msg("opt_update rule %zu n=%lld: cpu differs from ref", k, (long long)n);
            /* The update moved the weights (a no-op kernel would pass the comparison). */
            float *w0 = alloc_rand(n, 210 + s);
            assert_true(memcmp(w0, w[0], bytes) != 0);
            free(w0);
            for (int b = 0; b < 2; b++) free(w[b]), free(s0[b]), free(s1[b]);
            free(g);
        }
    simclr_context *one, *three;
    assert_int_equal(setenv("SIMCLR_ISA", g_isa, 1), 0);
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &one));
    CHECK_OK(simclr_context_create("cpu", 3, NULL, &three));
    unsetenv("SIMCLR_ISA");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        float *w = alloc_rand(n, 240 + s), *g = alloc_rand(n, 250 + s);
        double wr, gr, wc, gc, w1, g1, w3, g3, want_w = 0, want_g = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = (double)(g[i] + 0.01f * w[i]);
            want_w += (double)w[i] * w[i], want_g += d * d;
        }
        c->ref->backend->opt_sq_norms(c->ref, n, w, g, 0.01f, &wr, &gr);
        c->cpu->backend->opt_sq_norms(c->cpu, n, w, g, 0.01f, &wc, &gc);
        assert_true(fabs(wr - want_w) <= 1e-12 * want_w && fabs(gr - want_g) <= 1e-12 * want_g);
        assert_true(fabs(wc - want_w) <= 1e-12 * want_w && fabs(gc - want_g) <= 1e-12 * want_g);
        one->backend->opt_sq_norms(one, n, w, g, 0.01f, &w1, &g1);
        three->backend->opt_sq_norms(three, n, w, g, 0.01f, &w3, &g3);
        if (w1 != w3 || g1 != g3) fail_msg("opt_sq_norms n=%lld: 3 threads differ from 1", (long long)n);
        /* Without w: the gradient's own squared norm, *ww = 0. */
        c->cpu->backend->opt_sq_norms(c->cpu, n, NULL, g, 0.0f, &wc, &gc);
        assert_true(wc == 0.0 && fabs(gc - c->ref->backend->dot(c->ref, n, g, g)) <= 1e-12 * gc);
        /* 1e30^2 overflows a float, not the double sum; a NaN shows. */
        g[n / 2] = 1e30f;
        c->cpu->backend->opt_sq_norms(c->cpu, n, NULL, g, 0.0f, &wc, &gc);
        assert_true(isfinite(gc) && gc >= 1e60);
        g[n - 1] = NAN;
        c->cpu->backend->opt_sq_norms(c->cpu, n, NULL, g, 0.0f, &wc, &gc);
        assert_true(isnan(gc));
        free(w), free(g);
    }
    simclr_context_destroy(one);
    simclr_context_destroy(three);
}

/* ---- contrastive-loss kernels ---- */

/* Each slot on both backends from the same inputs (the logits from one
 * product) must give the same bytes
 * (one row code, whole rows per thread), including a zero row (the norm
 * clamp) and views = 3; and the results must be the definitions (checked on
 * one row each in double), so matching a wrong shared row code fails too. */
static void test_contrastive_kernels(void **state)
{
    ctxs *c = *state;
    const int64_t shapes[][3] = {{3, 1, 3}, {6, 3, 2}, {64, 7, 2}, {96, 33, 3}, {258, 16, 2}}; /* m, d, views */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t m = shapes[s][0], d = shapes[s][1];
        const int views = (int)shapes[s][2];
        const int64_t n = m / views;
        float *x = alloc_rand(m * d, 300 + s), *u[2], *sm[2], *g[2];
        double *norm[2], *lse[2], *rl[2];
        int *hit[2];
        for (int64_t k = 0; k < d; k++) x[(m - 1) * d + k] = 0.0f; /* a zero row */
        simclr_context *cx[2] = {c->ref, c->cpu};
        for (int b = 0; b < 2; b++) {
            u[b] = malloc((size_t)(m * d) * 4), norm[b] = malloc((size_t)m * 8), lse[b] = malloc((size_t)m * 8);
            rl[b] = malloc((size_t)m * 8), hit[b] = malloc((size_t)m * sizeof(int));
            sm[b] = malloc((size_t)(m * m) * 4), g[b] = alloc_rand(m * d, 310 + s);
            const simclr__backend *be = cx[b]->backend;
            be->rows_normalize(cx[b], m, d, x, u[b], norm[b]);
            /* The logits from one product (ref's), so only the slots under test differ. */
            c->ref->backend->gemm(c->ref, 0, 1, m, m, d, 5.0f, u[0], d, u[0], d, 0.0f, sm[b], m);
            be->ntxent_rows(cx[b], m, n, views, sm[b], lse[b], rl[b], hit[b]);
            be->ntxent_grad(cx[b], m, n, views, 0.01, sm[b], lse[b]);
            be->rows_normalize_backward(cx[b], m, d, u[b], norm[b], g[b]);
        }
        if (memcmp(u[0], u[1], (size_t)(m * d) * 4) || memcmp(norm[0], norm[1], (size_t)m * 8) ||
            memcmp(lse[0], lse[1], (size_t)m * 8) || memcmp(rl[0], rl[1], (size_t)m * 8) ||
            memcmp(hit[0], hit[1], (size_t)m * sizeof(int)) || memcmp(sm[0], sm[1], (size_t)(m * m) * 4) ||
            memcmp(g[0], g[1], (size_t)(m * d) * 4))
            fail_msg("contrastive kernels m=%lld d=%lld views=%d: cpu differs from ref", (long long)m, (long long)d,
                     views);
        /* Row 0 against the definitions: unit length, lse over the other rows. */
        double ss = 0, uu = 0;
        for (int64_t k = 0; k < d; k++) ss += (double)x[k] * x[k], uu += (double)u[0][k] * u[0][k];
        assert_true(fabs(norm[0][0] - sqrt(ss)) <= 1e-12 * sqrt(ss) && fabs(uu - 1.0) < 1e-6);
        assert_true(norm[0][m - 1] == 0.0);
        free(x);
        for (int b = 0; b < 2; b++) free(u[b]), free(norm[b]), free(lse[b]), free(rl[b]), free(hit[b]), free(sm[b]), free(g[b]);
    }
    /* NT-Xent rows on hand-made logits: 2 samples x 2 views, m = 4. */
    const float logits[16] = {9, 1, 3, 0, 1, 9, 0.5f, 2, 3, 0.5f, 9, 1, 0, 2, 1, 9};
    double lse[4], rl[4];
    int hit[4];
    c->cpu->backend->ntxent_rows(c->cpu, 4, 2, 2, logits, lse, rl, hit);
    double want = log(exp(1.0) + exp(3.0) + exp(0.0)); /* row 0 without its diagonal */
    assert_true(fabs(lse[0] - want) < 1e-12 && fabs(rl[0] - (want - 3.0)) < 1e-12 && hit[0] == 1);
    want = log(exp(1.0) + exp(0.5) + exp(2.0)); /* row 1: positive is row 3 (logit 2), the largest */
    assert_true(fabs(lse[1] - want) < 1e-12 && hit[1] == 1);
    /* InfoNCE: cpu against ref, bytes, and the hit count. */
    const int64_t n = 37, d = 9, kq = 50;
    float *q = alloc_rand(n * d, 330), *k = alloc_rand(n * d, 331), *neg = alloc_rand(kq * d, 332);
    float *qu[2], *kh[2], *sn[2], *dq[2];
    double *qn[2], *kn[2], *pos[2], *ls[2];
    int64_t hits[2];
    simclr_context *cx[2] = {c->ref, c->cpu};
    for (int b = 0; b < 2; b++) {
        qu[b] = malloc((size_t)(n * d) * 4), kh[b] = malloc((size_t)(n * d) * 4), dq[b] = malloc((size_t)(n * d) * 4);
        sn[b] = malloc((size_t)(n * kq) * 4);
        qn[b] = malloc((size_t)n * 8), kn[b] = malloc((size_t)n * 8), pos[b] = malloc((size_t)n * 8);
        ls[b] = malloc((size_t)n * 8);
        const simclr__backend *be = cx[b]->backend;
        be->rows_normalize(cx[b], n, d, q, qu[b], qn[b]);
        be->rows_normalize(cx[b], n, d, k, kh[b], kn[b]);
        c->ref->backend->gemm(c->ref, 0, 1, n, kq, d, 5.0f, qu[0], d, neg, d, 0.0f, sn[b], kq);
        hits[b] = be->infonce_rows(cx[b], n, d, kq, 0.2, qu[b], kh[b], sn[b], pos[b], ls[b]);
        be->infonce_weights(cx[b], n, d, kq, 0.1, sn[b], pos[b], ls[b], kh[b], dq[b]);
    }
    assert_true(hits[0] == hits[1] && hits[0] >= 0 && hits[0] <= n);
    if (memcmp(pos[0], pos[1], (size_t)n * 8) || memcmp(ls[0], ls[1], (size_t)n * 8) ||
        memcmp(sn[0], sn[1], (size_t)(n * kq) * 4) || memcmp(dq[0], dq[1], (size_t)(n * d) * 4))
        fail_msg("infonce kernels: cpu differs from ref");
    double p0 = 0;
    for (int64_t j = 0; j < d; j++) p0 += (double)qu[0][j] * kh[0][j];
    assert_true(fabs(pos[0][0] - p0 / 0.2) < 1e-9);
    free(q), free(k), free(neg);
    for (int b = 0; b < 2; b++)
        free(qu[b]), free(kh[b]), free(dq[b]), free(sn[b]), free(qn[b]), free(kn[b]), free(pos[b]), free(ls[b]);
}

/* ---- layer kernels ---- */

/* Runs the same kernel on both backends over copies of the same buffers. */
/* Where the sweep is (shape, path), for cmp's message; "" outside sweeps. */
static char g_where[96];

static void cmp(const char *what, const float *ref, const float *cpu, int64_t n, double tol)
{
    double err = test_norm_err(cpu, ref, n);
    if (!(err <= tol)) fail_msg("%s%s: normalized error %g > %g", what, g_where, err, tol);
}

static float *dup(const float *x, int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(p, x, (size_t)n * sizeof(float));
    return p;
}

static void test_swap01(void **state)
{
    ctxs *c = *state;
    const int64_t shapes[][3] = {{1, 1, 1}, {1, 5, 3}, {4, 1, 7}, {3, 5, 1}, {7, 13, 33}, {64, 300, 1}, {8, 16, 1024}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t a = shapes[s][0], b = shapes[s][1], in = shapes[s][2], n = a * b * in;
        float *x = alloc_rand(n, 60 + s), *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4);
        c->ref->backend->swap01(c->ref, a, b, in, x, y1);
        c->cpu->backend->swap01(c->cpu, a, b, in, x, y2);
        assert_memory_equal(y1, y2, (size_t)n * 4);
        /* ref against the definition at one corner */
        assert_true(y1[((b - 1) * a + 0) * in + in - 1] == x[(0 * b + b - 1) * in + in - 1]);
        free(x), free(y1), free(y2);
    }
}

/* Convolution geometries: kernel size, stride, padding, odd and size-1
 * shapes, 1x1 stride 1 (no im2col on cpu), and batches large enough for the
 * cpu backend to use several im2col chunks. */
static const int64_t conv_shapes[][8] = {
    /* n, cin, h, w, cout, k, stride, pad */
    {1, 1, 1, 1, 1, 1, 1, 0},   {1, 1, 1, 1, 1, 3, 1, 1},   {2, 3, 5, 7, 4, 3, 1, 1},
    {3, 2, 9, 6, 5, 3, 2, 1},   {2, 3, 11, 13, 8, 7, 2, 3}, {2, 6, 7, 5, 3, 1, 2, 0},
    {3, 5, 4, 4, 7, 1, 1, 0},   {1, 4, 2, 3, 2, 3, 2, 1},   {2, 3, 6, 5, 2, 5, 1, 0},
    {5, 16, 8, 8, 16, 3, 1, 1}, {64, 32, 16, 16, 8, 3, 1, 1}, {9, 8, 3, 3, 32, 3, 2, 1},
    {3, 64, 2, 2, 256, 1, 1, 0}, {3, 256, 2, 2, 64, 1, 1, 0}, {3, 128, 4, 3, 256, 1, 2, 0},
    /* 3 chunks of 8 images (below the weight gradient's 4 parts), and 5
     * chunks with a short last one (parts of 1, 1, 1, 2 chunks). */
    {21, 4, 16, 16, 4, 3, 1, 1}, {37, 2, 16, 16, 3, 3, 1, 1},
    /* Stride 1 for the sliding kernel: the width-16 model's first layers,
     * 7x7 pad 3, 3x3 pad 2 (input-gradient padding 0), 5x5 pad 4 (its
     * largest), widths that end mid-vector. */
    {3, 16, 28, 28, 16, 3, 1, 1}, {2, 3, 9, 8, 5, 7, 1, 3}, {2, 5, 6, 11, 6, 3, 1, 2}, {1, 2, 3, 4, 9, 5, 1, 4},
    {2, 33, 7, 7, 17, 3, 1, 0},
    /* Stride 2 on the sliding kernel's phase planes: the width-16 model's
     * first strided layer, pad 0 on an odd size, 5x5 on an even one. */
    {3, 16, 28, 28, 32, 3, 2, 1}, {2, 3, 9, 9, 4, 3, 2, 0}, {2, 2, 10, 8, 3, 5, 2, 2},
};

static simclr__conv_desc conv_desc_of(const int64_t *g)
{
    simclr__conv_desc d = {.n = g[0], .cin = g[1], .h = g[2], .w = g[3], .cout = g[4], .kh = g[5], .kw = g[5],
                           .stride = g[6], .pad = g[7]};
    d.oh = (d.h + 2 * d.pad - d.kh) / d.stride + 1;
    d.ow = (d.w + 2 * d.pad - d.kw) / d.stride + 1;
    return d;
}

/* The exact paths of the cpu backend's convolution (ctx->conv_exact): the
 * default rule, im2col + sgemm everywhere, the sliding kernel wherever it
 * applies. Each runs the whole conv sweep. */
static const int conv_exact_modes[] = {0, 1, 2};
#define N_EXACT_MODES (sizeof conv_exact_modes / sizeof conv_exact_modes[0])

static void test_conv2d(void **state)
{
    ctxs *c = *state;
    for (size_t e = 0; e < N_EXACT_MODES; e++)
    for (size_t s = 0; s < sizeof conv_shapes / sizeof conv_shapes[0]; s++) {
        simclr__conv_desc d = conv_desc_of(conv_shapes[s]);
        c->cpu->conv_exact = conv_exact_modes[e];
        snprintf(g_where, sizeof g_where, " (shape %zu, exact path %d)", s, conv_exact_modes[e]);
        int64_t nx = d.cin * d.n * d.h * d.w, ny = d.cout * d.n * d.oh * d.ow, nw = d.cout * d.cin * d.kh * d.kw;
        float *x = alloc_rand(nx, 70 + s), *w = alloc_rand(nw, 80 + s), *bias = alloc_rand(d.cout, 90 + s);
        float *dy = alloc_rand(ny, 100 + s);
        float *ws = malloc((c->cpu->backend->conv2d_workspace(c->cpu, &d) + 1) * sizeof(float));
        float *y1 = malloc((size_t)ny * 4), *y2 = malloc((size_t)ny * 4);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            c->ref->backend->conv2d_forward(c->ref, &d, x, w, with_bias ? bias : NULL, y1, NULL);
            c->cpu->backend->conv2d_forward(c->cpu, &d, x, w, with_bias ? bias : NULL, y2, ws);
            cmp("conv2d_forward", y1, y2, ny, TOL);
            for (int acc = 0; acc < 2; acc++) {
                float *dw1 = alloc_rand(nw, 110 + s), *dw2 = dup(dw1, nw);
                float *db1 = alloc_rand(d.cout, 120 + s), *db2 = dup(db1, d.cout);
                float *dx1 = alloc_rand(nx, 130 + s), *dx2 = dup(dx1, nx);
                c->ref->backend->conv2d_backward(c->ref, &d, x, w, dy, dw1, with_bias ? db1 : NULL, dx1, acc, NULL);
                c->cpu->backend->conv2d_backward(c->cpu, &d, x, w, dy, dw2, with_bias ? db2 : NULL, dx2, acc, ws);
                cmp("conv2d_backward dw", dw1, dw2, nw, TOL);
                cmp("conv2d_backward db", db1, db2, d.cout, TOL);
                cmp("conv2d_backward dx", dx1, dx2, nx, TOL);
                /* No input gradient: dw still accumulates. */
                c->cpu->backend->conv2d_backward(c->cpu, &d, x, w, dy, dw2, NULL, NULL, 0, ws);
                c->ref->backend->conv2d_backward(c->ref, &d, x, w, dy, dw1, NULL, NULL, 0, NULL);
                cmp("conv2d_backward dw (no dx)", dw1, dw2, nw, TOL);
                free(dw1), free(dw2), free(db1), free(db2), free(dx1), free(dx2);
            }
        }
        /* ref against the definition at one output */
        {
            double acc = 0;
            for (int64_t ci = 0; ci < d.cin; ci++)
                for (int64_t ky = 0; ky < d.kh; ky++)
                    for (int64_t kx = 0; kx < d.kw; kx++) {
                        int64_t iy = ky - d.pad, ix = kx - d.pad;
                        if (iy >= 0 && iy < d.h && ix >= 0 && ix < d.w)
                            acc += (double)x[(ci * d.n) * d.h * d.w + iy * d.w + ix] * w[((0 * d.cin + ci) * d.kh + ky) * d.kw + kx];
                    }
            c->ref->backend->conv2d_forward(c->ref, &d, x, w, NULL, y1, NULL);
            if (fabs(y1[0] - acc) > 1e-5) fail_msg("ref conv2d shape %zu: y[0] = %g, definition %g", s, y1[0], acc);
        }
        free(x), free(w), free(bias), free(dy), free(ws), free(y1), free(y2);
    }
    c->cpu->conv_exact = 0;
    g_where[0] = 0;
}

/* The folded EVAL batch norm: the cpu slot against ref's convolution and
 * affine pass (tolerance), and against the cpu's own two passes (the same
 * bytes, as the slot promises), with and without residual and ReLU, on
 * every exact path. */
static void test_conv2d_affine(void **state)
{
    ctxs *c = *state;
    assert_non_null(c->cpu->backend->conv2d_forward_affine);
    assert_non_null(c->ref->backend->conv2d_forward_affine);
    assert_true(simclr__backend_ref.conv2d_forward_affine == NULL); /* so the line above tests the fallback */
    for (size_t e = 0; e < N_EXACT_MODES; e++)
    for (size_t s = 0; s < sizeof conv_shapes / sizeof conv_shapes[0]; s++) {
        simclr__conv_desc d = conv_desc_of(conv_shapes[s]);
        c->cpu->conv_exact = conv_exact_modes[e];
        snprintf(g_where, sizeof g_where, " (shape %zu, exact path %d)", s, conv_exact_modes[e]);
        int64_t nx = d.cin * d.n * d.h * d.w, ny = d.cout * d.n * d.oh * d.ow, nw = d.cout * d.cin * d.kh * d.kw;
        float *x = alloc_rand(nx, 70 + s), *w = alloc_rand(nw, 80 + s), *res = alloc_rand(ny, 85 + s);
        float *scale = alloc_rand(d.cout, 90 + s), *shift = alloc_rand(d.cout, 95 + s);
        float *ws = malloc((c->cpu->backend->conv2d_workspace(c->cpu, &d) + 1) * sizeof(float));
        float *y1 = malloc((size_t)ny * 4), *y2 = malloc((size_t)ny * 4), *y3 = malloc((size_t)ny * 4);
        for (int variant = 0; variant < 4; variant++) {
            const float *r = variant & 1 ? res : NULL;
            int relu = variant >> 1;
            c->ref->backend->conv2d_forward(c->ref, &d, x, w, NULL, y1, NULL);
            c->ref->backend->row_affine(c->ref, d.cout, ny / d.cout, y1, scale, shift, r, relu, y1);
            c->cpu->backend->conv2d_forward_affine(c->cpu, &d, x, w, scale, shift, r, relu, y2, ws);
            cmp("conv2d_forward_affine", y1, y2, ny, TOL);
            c->cpu->backend->conv2d_forward(c->cpu, &d, x, w, NULL, y3, ws);
            c->cpu->backend->row_affine(c->cpu, d.cout, ny / d.cout, y3, scale, shift, r, relu, y3);
            if (memcmp(y2, y3, (size_t)ny * 4))
                fail_msg("conv2d_forward_affine%s, variant %d: not the bytes of conv2d_forward + row_affine", g_where,
                         variant);
            /* ref has no such kernel: its context got the generic fallback. */
            c->ref->backend->conv2d_forward_affine(c->ref, &d, x, w, scale, shift, r, relu, y3, NULL);
            if (memcmp(y1, y3, (size_t)ny * 4))
                fail_msg("ref's conv2d_forward_affine fallback%s, variant %d: not the bytes of its two passes",
                         g_where, variant);
        }
        free(x), free(w), free(res), free(scale), free(shift), free(ws), free(y1), free(y2), free(y3);
    }
    c->cpu->conv_exact = 0;
    g_where[0] = 0;
}

/* The same bytes at 1, 2 and 3 threads (the header's promise): products,
 * convolutions (both gradients, both accumulate modes) and reductions. */
static void test_same_bytes_any_thread_count(void **state)
{
    (void)state;
    simclr_context *cx[3];
    for (int t = 0; t < 3; t++) {
        if (setenv("SIMCLR_ISA", g_isa, 1) != 0) fail();
        CHECK_OK(simclr_context_create("cpu", t + 1, NULL, &cx[t]));
        unsetenv("SIMCLR_ISA");
    }
    const simclr__backend *be = cx[0]->backend;
    const int64_t gs[][3] = {{33, 129, 65}, {300, 517, 700}, {2, 4000, 50}, {517, 3, 300}};
    for (size_t s = 0; s < sizeof gs / sizeof gs[0]; s++) {
        int64_t m = gs[s][0], n = gs[s][1], k = gs[s][2];
        float *a = alloc_rand(m * k, 1), *b = alloc_rand(k * n, 2), *c[3];
        for (int t = 0; t < 3; t++) {
            c[t] = alloc_rand(m * n, 3);
            be->gemm(cx[t], 0, 1, m, n, k, 1.0f, a, k, b, k, 0.5f, c[t], n);
            if (t && memcmp(c[t], c[0], (size_t)(m * n) * 4))
                fail_msg("gemm %lldx%lldx%lld: %d threads differ from 1", (long long)m, (long long)n, (long long)k,
                         t + 1);
        }
        double s1 = be->dot(cx[0], m * k, a, a), s2 = be->sum(cx[0], k * n, b);
        for (int t = 1; t < 3; t++)
            if (be->dot(cx[t], m * k, a, a) != s1 || be->sum(cx[t], k * n, b) != s2)
                fail_msg("dot/sum of %lld: %d threads differ from 1", (long long)(m * k), t + 1);
        free(a), free(b), free(c[0]), free(c[1]), free(c[2]);
    }
    for (size_t e = 0; e < N_EXACT_MODES; e++)
    for (size_t s = 0; s < sizeof conv_shapes / sizeof conv_shapes[0]; s++) {
        simclr__conv_desc d = conv_desc_of(conv_shapes[s]);
        for (int t = 0; t < 3; t++) cx[t]->conv_exact = conv_exact_modes[e];
        int64_t nx = d.cin * d.n * d.h * d.w, ny = d.cout * d.n * d.oh * d.ow, nw = d.cout * d.cin * d.kh * d.kw;
        float *x = alloc_rand(nx, 70 + s), *w = alloc_rand(nw, 80 + s), *dy = alloc_rand(ny, 100 + s);
        float *y[3], *dw[3], *dx[3];
        for (int t = 0; t < 3; t++) {
            float *ws = malloc((be->conv2d_workspace(cx[t], &d) + 1) * sizeof(float));
            y[t] = malloc((size_t)ny * 4), dw[t] = alloc_rand(nw, 110 + s), dx[t] = alloc_rand(nx, 130 + s);
            be->conv2d_forward(cx[t], &d, x, w, NULL, y[t], ws);
            be->conv2d_backward(cx[t], &d, x, w, dy, dw[t], NULL, dx[t], 1, ws);
            be->conv2d_backward(cx[t], &d, x, w, dy, dw[t], NULL, NULL, 0, ws);
            free(ws);
            if (t && (memcmp(y[t], y[0], (size_t)ny * 4) || memcmp(dw[t], dw[0], (size_t)nw * 4) ||
                      memcmp(dx[t], dx[0], (size_t)nx * 4)))
                fail_msg("conv2d shape %zu, exact path %d: %d threads differ from 1", s, conv_exact_modes[e], t + 1);
        }
        for (int t = 0; t < 3; t++) free(y[t]), free(dw[t]), free(dx[t]);
        free(x), free(w), free(dy);
    }
    for (int t = 0; t < 3; t++) simclr_context_destroy(cx[t]);
}

/* The same bytes in every ISA copy the machine runs, on every exact path of
 * the convolution (forward, input gradient, weight gradient): each output
 * sums its terms in one fixed order whatever the vector width or register
 * block (the AVX-512 copy's sliding kernels block 8 output channels and take
 * a 3x3 weight gradient's nine taps in one pass; the others do not). Run
 * once, at 2 threads, comparing each copy with the portable one. */
static void test_conv_same_bytes_every_isa(void **state)
{
    (void)state;
    static const char *const copies[] = {"portable", "avx2", "avx512"};
    for (size_t e = 0; e < N_EXACT_MODES; e++)
        for (size_t s = 0; s < sizeof conv_shapes / sizeof conv_shapes[0]; s++) {
            simclr__conv_desc d = conv_desc_of(conv_shapes[s]);
            int64_t nx = d.cin * d.n * d.h * d.w, ny = d.cout * d.n * d.oh * d.ow, nw = d.cout * d.cin * d.kh * d.kw;
            float *x = alloc_rand(nx, 170 + s), *w = alloc_rand(nw, 180 + s), *dy = alloc_rand(ny, 190 + s);
            float *first = NULL, *out = malloc((size_t)(ny + nw + nx) * 4);
            int compared = 0;
            for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
                if (!simclr_isa_supported(copies[i])) continue;
                simclr_context *ctx;
                if (setenv("SIMCLR_ISA", copies[i], 1) != 0) fail();
                CHECK_OK(simclr_context_create("cpu", 2, NULL, &ctx));
                unsetenv("SIMCLR_ISA");
                assert_string_equal(simclr_context_isa(ctx), copies[i]);
                ctx->conv_exact = conv_exact_modes[e];
                const simclr__backend *be = ctx->backend;
                float *ws = malloc((be->conv2d_workspace(ctx, &d) + 1) * sizeof(float));
                float *y = out, *dw = out + ny, *dx = out + ny + nw;
                memset(dw, 0, (size_t)nw * 4);
                be->conv2d_forward(ctx, &d, x, w, NULL, y, ws);
                be->conv2d_backward(ctx, &d, x, w, dy, dw, NULL, dx, 0, ws);
                free(ws);
                simclr_context_destroy(ctx);
                if (!first) {
                    first = out, out = malloc((size_t)(ny + nw + nx) * 4);
                    continue;
                }
                compared++;
                if (memcmp(first, y, (size_t)ny * 4) || memcmp(first + ny, dw, (size_t)nw * 4) ||
                    memcmp(first + ny + nw, dx, (size_t)nx * 4))
                    fail_msg("conv2d shape %zu, exact path %d: the %s copy differs from the portable one (y %d, dw %d, "
                             "dx %d)",
                             s, conv_exact_modes[e], copies[i], memcmp(first, y, (size_t)ny * 4) != 0,
                             memcmp(first + ny, dw, (size_t)nw * 4) != 0, memcmp(first + ny + nw, dx, (size_t)nx * 4) != 0);
            }
            assert_true(compared >= 1); /* every x86-64 machine here has AVX2 */
            free(first), free(out), free(x), free(w), free(dy);
        }
}

/* Rows x columns of channel-major activations [C, M], incl. M = 1, 2, odd,
 * and longer than a thread grain. */
static const int64_t row_shapes[][2] = {{1, 1}, {1, 2}, {3, 1}, {2, 7}, {5, 33}, {64, 4}, {4, 40000}, {33, 1025}};

static void test_batchnorm_kernels(void **state)
{
    ctxs *c = *state;
    for (size_t s = 0; s < sizeof row_shapes / sizeof row_shapes[0]; s++) {
        int64_t rows = row_shapes[s][0], m = row_shapes[s][1], n = rows * m;
        float *x = alloc_rand(n, 140 + s), *res = alloc_rand(n, 150 + s), *dy = alloc_rand(n, 160 + s);
        /* An offset mean checks the variance is not computed as E[x^2]-E[x]^2 naively. */
        for (int64_t i = 0; i < n; i++) x[i] = 3.0f + 0.5f * x[i];
        float *p1 = malloc((size_t)rows * 4 * 6), *p2 = malloc((size_t)rows * 4 * 6);
        float *mean1 = p1, *var1 = p1 + rows, *mean2 = p2, *var2 = p2 + rows;
        c->ref->backend->row_moments(c->ref, rows, m, x, mean1, var1);
        c->cpu->backend->row_moments(c->cpu, rows, m, x, mean2, var2);
        cmp("row_moments mean", mean1, mean2, rows, TOL);
        cmp("row_moments var", var1, var2, rows, m > 1 ? TOL : 1e-30);
        float *scale = alloc_rand(rows, 170 + s), *shift = alloc_rand(rows, 180 + s);
        float *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4);
        for (int variant = 0; variant < 8; variant++) {
            const float *sc = variant & 1 ? scale : NULL, *rs = variant & 2 ? res : NULL;
            int relu = variant & 4 ? 1 : 0;
            c->ref->backend->row_affine(c->ref, rows, m, x, sc, shift, rs, relu, y1);
            c->cpu->backend->row_affine(c->cpu, rows, m, x, sc, shift, rs, relu, y2);
            cmp("row_affine", y1, y2, n, TOL);
            /* in place */
            float *y3 = dup(x, n);
            c->cpu->backend->row_affine(c->cpu, rows, m, y3, sc, shift, rs, relu, y3);
            cmp("row_affine in place", y1, y3, n, TOL);
            free(y3);
        }
        /* Backward with and without the ReLU mask (y1 holds a ReLU output). */
        c->ref->backend->row_affine(c->ref, rows, m, x, scale, shift, res, 1, y1);
        float *ka = alloc_rand(rows, 190 + s), *kb = alloc_rand(rows, 200 + s), *kc = alloc_rand(rows, 210 + s);
        for (int masked = 0; masked < 2; masked++) {
            const float *mask = masked ? y1 : NULL;
            float *sg1 = p1 + 2 * rows, *sx1 = p1 + 3 * rows, *sg2 = p2 + 2 * rows, *sx2 = p2 + 3 * rows;
            c->ref->backend->bn_backward_reduce(c->ref, rows, m, x, mask, dy, mean1, sg1, sx1);
            c->cpu->backend->bn_backward_reduce(c->cpu, rows, m, x, mask, dy, mean1, sg2, sx2);
            /* Sums of signed terms: compare against the sum of magnitudes. */
            for (int64_t r = 0; r < rows; r++) {
                double l1 = 0;
                for (int64_t j = 0; j < m; j++) l1 += fabs(dy[r * m + j]) * (1 + fabs(x[r * m + j] - mean1[r]));
                assert_true(fabs(sg1[r] - sg2[r]) <= TOL * l1);
                assert_true(fabs(sx1[r] - sx2[r]) <= TOL * l1);
            }
            for (int with_res = 0; with_res < 2; with_res++) {
                float *dx1 = malloc((size_t)n * 4), *dx2 = malloc((size_t)n * 4);
                float *dr1 = malloc((size_t)n * 4), *dr2 = malloc((size_t)n * 4);
                c->ref->backend->bn_backward_dx(c->ref, rows, m, x, mask, dy, mean1, ka, kb, kc, dx1,
                                                with_res ? dr1 : NULL);
                c->cpu->backend->bn_backward_dx(c->cpu, rows, m, x, mask, dy, mean1, ka, kb, kc, dx2,
                                                with_res ? dr2 : NULL);
                cmp("bn_backward_dx", dx1, dx2, n, TOL);
                if (with_res) cmp("bn_backward_dx dres", dr1, dr2, n, TOL);
                /* dx aliasing dy */
                float *dd = dup(dy, n);
                c->cpu->backend->bn_backward_dx(c->cpu, rows, m, x, mask, dd, mean1, ka, kb, kc, dd, NULL);
                cmp("bn_backward_dx in place", dx1, dd, n, TOL);
                free(dx1), free(dx2), free(dr1), free(dr2), free(dd);
            }
        }
        float *g1 = malloc((size_t)n * 4), *g2 = malloc((size_t)n * 4);
        c->ref->backend->relu_backward(c->ref, n, y1, dy, g1);
        c->cpu->backend->relu_backward(c->cpu, n, y1, dy, g2);
        assert_memory_equal(g1, g2, (size_t)n * 4);
        for (int64_t i = 0; i < n; i++) assert_true(g1[i] == (y1[i] > 0 ? dy[i] : 0.0f));
        free(x), free(res), free(dy), free(p1), free(p2), free(scale), free(shift), free(y1), free(y2);
        free(ka), free(kb), free(kc), free(g1), free(g2);
    }
}

static void test_pooling(void **state)
{
    ctxs *c = *state;
    const int64_t shapes[][3] = {{1, 1, 1}, {1, 2, 2}, {3, 1, 5}, {4, 7, 6}, {2, 16, 16}, {300, 9, 11}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t planes = shapes[s][0], h = shapes[s][1], w = shapes[s][2];
        int64_t oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1, n = planes * h * w, no = planes * oh * ow;
        float *x = alloc_rand(n, 220 + s), *dy = alloc_rand(no, 230 + s);
        float *y1 = malloc((size_t)no * 4), *y2 = malloc((size_t)no * 4);
        int32_t *i1 = malloc((size_t)no * 4), *i2 = malloc((size_t)no * 4);
        c->ref->backend->maxpool_forward(c->ref, planes, h, w, 3, 2, 1, oh, ow, x, y1, i1);
        c->cpu->backend->maxpool_forward(c->cpu, planes, h, w, 3, 2, 1, oh, ow, x, y2, i2);
        assert_memory_equal(y1, y2, (size_t)no * 4);
        assert_memory_equal(i1, i2, (size_t)no * 4);
        float *dx1 = malloc((size_t)n * 4), *dx2 = malloc((size_t)n * 4);
        c->ref->backend->maxpool_backward(c->ref, planes, h, w, oh, ow, dy, i1, dx1);
        c->cpu->backend->maxpool_backward(c->cpu, planes, h, w, oh, ow, dy, i2, dx2);
        cmp("maxpool_backward", dx1, dx2, n, TOL);
        /* ref against the definition: output (0,0) is the max of the top-left 2x2. */
        float best = x[0];
        for (int64_t iy = 0; iy < 2 && iy < h; iy++)
            for (int64_t ix = 0; ix < 2 && ix < w; ix++) best = x[iy * w + ix] > best ? x[iy * w + ix] : best;
        assert_true(y1[0] == best);

        float *a1 = malloc((size_t)planes * 4), *a2 = malloc((size_t)planes * 4);
        c->ref->backend->avgpool_forward(c->ref, planes, h * w, x, a1);
        c->cpu->backend->avgpool_forward(c->cpu, planes, h * w, x, a2);
        cmp("avgpool_forward", a1, a2, planes, TOL);
        c->ref->backend->avgpool_backward(c->ref, planes, h * w, dy, dx1);
        c->cpu->backend->avgpool_backward(c->cpu, planes, h * w, dy, dx2);
        cmp("avgpool_backward", dx1, dx2, n, TOL);
        free(x), free(dy), free(y1), free(y2), free(i1), free(i2), free(dx1), free(dx2), free(a1), free(a2);
    }
    /* A NaN propagates through max pooling (as in torch) instead of being skipped. */
    float x[4] = {1, NAN, 2, 3}, y[1];
    int32_t idx[1];
    c->cpu->backend->maxpool_forward(c->cpu, 1, 2, 2, 3, 2, 1, 1, 1, x, y, idx);
    assert_true(isnan(y[0]) && idx[0] >= 0 && idx[0] < 4);
    c->ref->backend->maxpool_forward(c->ref, 1, 2, 2, 3, 2, 1, 1, 1, x, y, idx);
    assert_true(isnan(y[0]) && idx[0] >= 0 && idx[0] < 4);
}

/* ---- transformer kernels: layer norm, GELU, row softmax on [rows, d] ---- */

/* Token rows x features, incl. one row, one feature, odd widths, a width
 * past one band of layer-norm columns (64) and more rows than a grain. */
static const int64_t tf_shapes[][2] = {{1, 1}, {1, 7}, {3, 1}, {5, 33}, {65, 64}, {17, 129}, {2000, 192}, {3, 5000}};

static void test_transformer_kernels(void **state)
{
    ctxs *c = *state;
    for (size_t s = 0; s < sizeof tf_shapes / sizeof tf_shapes[0]; s++) {
        int64_t rows = tf_shapes[s][0], d = tf_shapes[s][1], n = rows * d;
        float *x = alloc_rand(n, 300 + s), *dy = alloc_rand(n, 310 + s);
        float *gamma = alloc_rand(d, 320 + s), *beta = alloc_rand(d, 330 + s);
        /* An offset mean checks the variance is centred before it is squared. */
        for (int64_t i = 0; i < n; i++) x[i] = 2.0f + 0.5f * x[i];
        float *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4);
        float *st1 = malloc((size_t)rows * 8), *st2 = malloc((size_t)rows * 8);
        c->ref->backend->layernorm_forward(c->ref, rows, d, x, gamma, beta, 1e-5f, y1, st1, st1 + rows);
        c->cpu->backend->layernorm_forward(c->cpu, rows, d, x, gamma, beta, 1e-5f, y2, st2, st2 + rows);
        cmp("layernorm_forward", y1, y2, n, TOL);
        cmp("layernorm_forward mean", st1, st2, rows, TOL);
        cmp("layernorm_forward rstd", st1 + rows, st2 + rows, rows, TOL);
        /* ref against the definition on row 0 */
        {
            double mu = 0, var = 0;
            for (int64_t j = 0; j < d; j++) mu += x[j];
            mu /= (double)d;
            for (int64_t j = 0; j < d; j++) var += (x[j] - mu) * (x[j] - mu);
            var /= (double)d;
            double want = (x[d - 1] - mu) / sqrt(var + 1e-5) * gamma[d - 1] + beta[d - 1];
            if (fabs(y1[d - 1] - want) > 1e-4) fail_msg("ref layernorm: %g, definition %g", y1[d - 1], want);
        }
        /* in place */
        float *y3 = dup(x, n);
        c->cpu->backend->layernorm_forward(c->cpu, rows, d, y3, gamma, beta, 1e-5f, y3, st2, st2 + rows);
        cmp("layernorm_forward in place", y1, y3, n, TOL);

        float *dx1 = malloc((size_t)n * 4), *dx2 = malloc((size_t)n * 4);
        float *dg1 = alloc_rand(d, 340 + s), *dg2 = dup(dg1, d), *db1 = alloc_rand(d, 350 + s), *db2 = dup(db1, d);
        c->ref->backend->layernorm_backward(c->ref, rows, d, x, gamma, st1, st1 + rows, dy, dx1, dg1, db1);
        c->cpu->backend->layernorm_backward(c->cpu, rows, d, x, gamma, st1, st1 + rows, dy, dx2, dg2, db2);
        cmp("layernorm_backward dx", dx1, dx2, n, TOL);
        /* Column sums over `rows` signed terms: bound by the number of terms. */
        for (int64_t j = 0; j < d; j++)
            if (fabs(dg1[j] - dg2[j]) > TOL * (double)rows * 4 || fabs(db1[j] - db2[j]) > TOL * (double)rows)
                fail_msg("layernorm_backward dgamma/dbeta column %lld: %g/%g vs %g/%g", (long long)j, dg2[j],
                         db2[j], dg1[j], db1[j]);
        /* dx aliasing dy */
        float *dd = dup(dy, n);
        c->cpu->backend->layernorm_backward(c->cpu, rows, d, x, gamma, st1, st1 + rows, dd, dd, dg2, db2);
        cmp("layernorm_backward in place", dx1, dd, n, TOL);

        /* GELU: forward and backward, in place too */
        c->ref->backend->gelu_forward(c->ref, n, x, y1);
        c->cpu->backend->gelu_forward(c->cpu, n, x, y2);
        cmp("gelu_forward", y1, y2, n, TOL);
        memcpy(y3, x, (size_t)n * 4);
        c->cpu->backend->gelu_forward(c->cpu, n, y3, y3);
        cmp("gelu_forward in place", y1, y3, n, TOL);
        for (int64_t i = 0; i < n; i += 13) {
            double v = x[i], want = 0.5 * v * (1 + erf(v / sqrt(2.0)));
            if (fabs(y1[i] - want) > 1e-6 * (1 + fabs(want))) fail_msg("ref gelu(%g) = %g, want %g", v, y1[i], want);
        }
        c->ref->backend->gelu_backward(c->ref, n, x, dy, dx1);
        c->cpu->backend->gelu_backward(c->cpu, n, x, dy, dx2);
        cmp("gelu_backward", dx1, dx2, n, TOL);
        memcpy(dd, dy, (size_t)n * 4);
        c->cpu->backend->gelu_backward(c->cpu, n, x, dd, dd);
        cmp("gelu_backward in place", dx1, dd, n, TOL);

        /* Softmax: rows of scores, with a large offset (max subtraction). */
        float *sc = dup(x, n);
        for (int64_t i = 0; i < n; i++) sc[i] = 40.0f * (sc[i] - 2.0f) + 100.0f;
        c->ref->backend->softmax_forward(c->ref, rows, d, sc, y1);
        c->cpu->backend->softmax_forward(c->cpu, rows, d, sc, y2);
        cmp("softmax_forward", y1, y2, n, TOL);
        {
            double sum = 0;
            for (int64_t j = 0; j < d; j++) sum += y1[j];
            if (fabs(sum - 1) > 1e-5) fail_msg("ref softmax row 0 sums to %g", sum);
        }
        memcpy(y3, sc, (size_t)n * 4);
        c->cpu->backend->softmax_forward(c->cpu, rows, d, y3, y3);
        cmp("softmax_forward in place", y1, y3, n, TOL);
        c->ref->backend->softmax_backward(c->ref, rows, d, y1, dy, dx1);
        c->cpu->backend->softmax_backward(c->cpu, rows, d, y1, dy, dx2);
        /* dx = y * (dy - s): normalized by max |y| * max |dy|, not by max |dx|,
         * which can be tiny where a row's softmax is nearly one-hot. */
        {
            double worst = 0, scale = 0;
            for (int64_t i = 0; i < n; i++) {
                worst = fmax(worst, fabs(dx1[i] - dx2[i]));
                scale = fmax(scale, fabs(y1[i]) * 4);
            }
            if (worst > TOL * scale) fail_msg("softmax_backward: error %g > %g", worst, TOL * scale);
        }
        memcpy(dd, dy, (size_t)n * 4);
        c->cpu->backend->softmax_backward(c->cpu, rows, d, y1, dd, dd);
        assert_memory_equal(dd, dx2, (size_t)n * 4);
        free(x), free(dy), free(gamma), free(beta), free(y1), free(y2), free(y3), free(st1), free(st2);
        free(dx1), free(dx2), free(dg1), free(dg2), free(db1), free(db2), free(dd), free(sc);
    }
}

/* The transformer kernels give the same bytes at 1, 2 and 3 threads. */
static void test_transformer_same_bytes(void **state)
{
    (void)state;
    simclr_context *cx[3];
    for (int t = 0; t < 3; t++) {
        if (setenv("SIMCLR_ISA", g_isa, 1) != 0) fail();
        CHECK_OK(simclr_context_create("cpu", t + 1, NULL, &cx[t]));
        unsetenv("SIMCLR_ISA");
    }
    const simclr__backend *be = cx[0]->backend;
    for (size_t s = 0; s < sizeof tf_shapes / sizeof tf_shapes[0]; s++) {
        int64_t rows = tf_shapes[s][0], d = tf_shapes[s][1], n = rows * d;
        float *x = alloc_rand(n, 400 + s), *dy = alloc_rand(n, 410 + s), *gamma = alloc_rand(d, 420 + s);
        float *beta = alloc_rand(d, 430 + s);
        float *out[3];
        int64_t per = 6 * n + 2 * rows + 2 * d;
        for (int t = 0; t < 3; t++) {
            float *o = out[t] = calloc((size_t)per, 4);
            float *y = o, *st = o + n, *dx = st + 2 * rows, *dg = dx + n, *db = dg + d, *g = db + d, *gd = g + n,
                  *sm = gd + n, *sd = sm + n;
            be->layernorm_forward(cx[t], rows, d, x, gamma, beta, 1e-6f, y, st, st + rows);
            be->layernorm_backward(cx[t], rows, d, x, gamma, st, st + rows, dy, dx, dg, db);
            be->gelu_forward(cx[t], n, x, g);
            be->gelu_backward(cx[t], n, x, dy, gd);
            be->softmax_forward(cx[t], rows, d, x, sm);
            be->softmax_backward(cx[t], rows, d, sm, dy, sd);
            if (t && memcmp(out[t], out[0], (size_t)per * 4))
                fail_msg("transformer kernels %lldx%lld: %d threads differ from 1", (long long)rows, (long long)d,
                         t + 1);
        }
        for (int t = 0; t < 3; t++) free(out[t]);
        free(x), free(dy), free(gamma), free(beta);
    }
    for (int t = 0; t < 3; t++) simclr_context_destroy(cx[t]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_beta0_nan),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_swap01),
        cmocka_unit_test(test_optimizer_kernels),
        cmocka_unit_test(test_contrastive_kernels),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv2d_affine),
        cmocka_unit_test(test_batchnorm_kernels),
        cmocka_unit_test(test_pooling),
        cmocka_unit_test(test_same_bytes_any_thread_count),
        cmocka_unit_test(test_transformer_kernels),
        cmocka_unit_test(test_transformer_same_bytes),
    };
    static const char *const isas[] = {"avx512", "avx2", "portable"};
    /* SIMCLR_TEST_THREADS=N runs one thread count only: the sanitizer run
     * (make sanitize) looks for memory errors, which the thread count does
     * not change, at a tenth of the speed; the plain run checks 1, 2, 3. */
    int threads[3] = {1, 2, 3}, n_threads = 3;
    const char *only = getenv("SIMCLR_TEST_THREADS");
    if (only && atoi(only) >= 1) threads[0] = atoi(only), n_threads = 1;
    int failed = 0;
    const struct CMUnitTest once[] = {cmocka_unit_test(test_conv_same_bytes_every_isa)};
    failed += cmocka_run_group_tests_name("kernels: every ISA copy", once, NULL, NULL);
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (!simclr_isa_supported(isas[i])) {
            printf("kernels: instruction set %s: not on this machine, its copy is untested here\n", isas[i]);
            continue;
        }
        for (int t = 0; t < n_threads; t++) {
            char name[64];
            g_isa = isas[i], g_threads = threads[t];
            snprintf(name, sizeof name, "kernels %s %d thread%s", g_isa, g_threads, g_threads > 1 ? "s" : "");
            failed += cmocka_run_group_tests_name(name, tests, setup, teardown);
        }
    }
    return failed;
}
