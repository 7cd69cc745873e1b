/* The Vision Transformer: finite-difference checks of every new layer
 * (layer norm, token linear, GELU, the attention core with its softmax) and
 * of the whole encoder with class-token and mean pooling, on "ref" and
 * "cpu"; the arena rule (no allocation once a batch size is planned); the
 * creation errors and the forward's shape errors.
 *
 * Loss L = sum(r * y) for a fixed random r; central differences with step
 * h = 1e-2. GELU, softmax and layer norm are smooth, so no kink precondition
 * applies (unlike ReLU networks); the truncation error O(h^2) of these
 * smooth layers is ~1e-4 relative and float32 rounding of L is ~1e-7 * sum|r
 * y| / h, so |fd - analytic| <= 2e-3 * max(1, max|analytic|) + 5e-3 *
 * |analytic| holds with margin, while a wrong term (a missing 1/sqrt(dh), a
 * transposed head, a dropped mean term) is off by far more. */
#include "test_util.h"

#include "model/module.h"
#include "nn/transformer.h"

#define H 1e-2

typedef struct fd_case fd_case;
struct fd_case {
    simclr_context *ctx;
    simclr_module *m;
    simclr__param_sink ps;
    void (*forward)(fd_case *c);
    void (*backward)(fd_case *c);
    float *x, *y, *dy, *dx, *r;
    int64_t nx, ny;
    simclr__layernorm ln;
    simclr__tlinear lin;
    float *stats, *ones, *scratch, *ws;
    int64_t rows, n, t, d, heads;
};

static const simclr__module_ops test_ops = {"test", NULL, NULL, NULL};

static double loss(fd_case *c)
{
    c->forward(c);
    double l = 0;
    for (int64_t i = 0; i < c->ny; i++) l += (double)c->r[i] * c->y[i];
    return l;
}

static double fd_at(fd_case *c, float *v, double h)
{
    float old = *v;
    *v = (float)(old + h);
    double hi = loss(c);
    *v = (float)(old - h);
    double lo = loss(c);
    *v = old;
    return (hi - lo) / ((double)(float)(old + h) - (double)(float)(old - h));
}

static double max_abs(const float *g, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(g[i]) > m ? fabs(g[i]) : m;
    return m;
}

static void check_entries(fd_case *c, const char *what, float *v, const float *grad, int64_t n)
{
    double scale = max_abs(grad, n);
    if (!(scale > 0)) fail_msg("%s on %s: the gradient is identically zero (the test could not fail)", what,
                               simclr_context_backend(c->ctx));
    int64_t step = n > 30 ? n / 30 : 1;
    for (int64_t i = 0; i < n; i += step) {
        double an = grad[i], fd = fd_at(c, &v[i], H);
        double tol = 2e-3 * (scale > 1 ? scale : 1) + 5e-3 * fabs(an);
        if (!(fabs(fd - an) <= tol))
            fail_msg("%s on %s: d/d[%lld] analytic %.6g, finite difference %.6g (tol %.3g)", what,
                     simclr_context_backend(c->ctx), (long long)i, an, fd, tol);
    }
}

static void gradcheck(fd_case *c, const char *what)
{
    CHECK_OK(simclr_module_zero_grad(c->m));
    c->forward(c);
    memcpy(c->dy, c->r, (size_t)c->ny * sizeof(float));
    c->backward(c);
    float *dx = malloc((size_t)c->nx * sizeof(float));
    memcpy(dx, c->dx, (size_t)c->nx * sizeof(float));
    check_entries(c, what, c->x, dx, c->nx);
    free(dx);
    for (int i = 0; i < simclr_module_param_count(c->m); i++) {
        const char *name;
        simclr_tensor *value, *grad;
        CHECK_OK(simclr_module_param(c->m, i, &name, &value, &grad, NULL));
        int64_t n = simclr_tensor_numel(grad);
        float *g = malloc((size_t)n * sizeof(float));
        memcpy(g, simclr_tensor_data(grad), (size_t)n * sizeof(float));
        char label[200];
        snprintf(label, sizeof label, "%s %s", what, name);
        check_entries(c, label, simclr_tensor_data(value), g, n);
        free(g);
    }
}

static fd_case *new_case(const char *backend, int threads, int64_t nx, int64_t ny, uint64_t seed)
{
    fd_case *c = calloc(1, sizeof *c);
    CHECK_OK(simclr_context_create(backend, threads, NULL, &c->ctx));
    CHECK_OK(simclr__module_new(c->ctx, &test_ops, "test", &c->m));
    c->ps = simclr__module_sink(c->m);
    c->nx = nx, c->ny = ny;
    c->x = calloc((size_t)nx, 4), c->dx = calloc((size_t)nx, 4);
    c->y = calloc((size_t)ny, 4), c->dy = calloc((size_t)ny, 4), c->r = calloc((size_t)ny, 4);
    test_fill(c->x, nx, seed);
    test_fill(c->r, ny, seed + 1000);
    return c;
}

static void free_case(fd_case *c)
{
    simclr_module_destroy(c->m);
    simclr_context_destroy(c->ctx);
    free(c->x), free(c->dx), free(c->y), free(c->dy), free(c->r);
    free(c->stats), free(c->ones), free(c->scratch), free(c->ws);
    free(c);
}

static const char *const backends[] = {"ref", "cpu"};

/* ---- layer norm ---- */

static void ln_fwd(fd_case *c) { simclr__layernorm_forward(c->ctx, &c->ln, c->rows, c->x, c->y, c->stats); }
static void ln_bwd(fd_case *c) { simclr__layernorm_backward(c->ctx, &c->ln, c->rows, c->x, c->dy, c->dx, c->stats); }

static void test_layernorm_grad(void **state)
{
    (void)state;
    const int64_t shapes[][2] = {{1, 2}, {3, 5}, {7, 33}, {4, 70}};
    for (int b = 0; b < 2; b++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t rows = shapes[s][0], d = shapes[s][1];
            fd_case *c = new_case(backends[b], 2, rows * d, rows * d, 10 + s);
            CHECK_OK(simclr__layernorm_init(&c->ps, &c->ln, "ln", d, 1e-6f));
            /* Non-trivial affine parameters. */
            test_fill(simclr_tensor_data(c->ln.w), d, 20 + s);
            test_fill(simclr_tensor_data(c->ln.b), d, 30 + s);
            c->rows = rows;
            c->stats = malloc((size_t)SIMCLR__LN_STATS(rows) * 4);
            c->forward = ln_fwd, c->backward = ln_bwd;
            gradcheck(c, "layernorm");
            free_case(c);
        }
}

/* ---- token linear ---- */

static void lin_fwd(fd_case *c) { simclr__tlinear_forward(c->ctx, &c->lin, c->rows, c->x, c->ones, c->y); }
static void lin_bwd(fd_case *c)
{
    simclr__tlinear_backward(c->ctx, &c->lin, c->rows, c->x, c->dy, c->dx, 0, c->scratch);
}

static void test_token_linear_grad(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{1, 1, 1}, {5, 3, 7}, {9, 16, 48}};
    for (int b = 0; b < 2; b++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t rows = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            fd_case *c = new_case(backends[b], 2, rows * in, rows * out, 40 + s);
            CHECK_OK(simclr__tlinear_init(&c->ps, &c->lin, "fc.weight", "fc.bias", in, out,
                                          (simclr__tlinear_init_kind)(s % 3), 7));
            test_fill(simclr_tensor_data(c->lin.b), out, 50 + s);
            c->rows = rows;
            c->ones = malloc((size_t)rows * 4);
            for (int64_t i = 0; i < rows; i++) c->ones[i] = 1.0f;
            c->scratch = malloc((size_t)out * 4);
            c->forward = lin_fwd, c->backward = lin_bwd;
            gradcheck(c, "token linear");
            /* accumulate = 1 adds into dx */
            float *dx0 = malloc((size_t)rows * in * 4);
            memcpy(dx0, c->dx, (size_t)rows * in * 4);
            simclr__tlinear_backward(c->ctx, &c->lin, rows, c->x, c->dy, c->dx, 1, c->scratch);
            for (int64_t i = 0; i < rows * in; i++) assert_float_equal(c->dx[i], 2 * dx0[i], 1e-5 * (1 + fabs(dx0[i])));
            free(dx0);
            free_case(c);
        }
}

/* ---- GELU ---- */

static void gelu_fwd(fd_case *c) { simclr__gelu_forward(c->ctx, c->nx, c->x, c->y); }
static void gelu_bwd(fd_case *c) { simclr__gelu_backward(c->ctx, c->nx, c->x, c->dy, c->dx); }

static void test_gelu_grad(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        fd_case *c = new_case(backends[b], 2, 301, 301, 60);
        /* Values over the interesting range, -4 .. 4. */
        for (int64_t i = 0; i < c->nx; i++) c->x[i] = 4.0f * c->x[i];
        c->forward = gelu_fwd, c->backward = gelu_bwd;
        /* No parameters: only the input gradient. */
        c->forward(c);
        memcpy(c->dy, c->r, (size_t)c->ny * 4);
        c->backward(c);
        float *dx = malloc((size_t)c->nx * 4);
        memcpy(dx, c->dx, (size_t)c->nx * 4);
        check_entries(c, "gelu", c->x, dx, c->nx);
        /* The definition at a few points: GELU(1) = 0.8413447, GELU(-1) = -0.1586553. */
        float p[3] = {1.0f, -1.0f, 0.0f}, q[3];
        c->ctx->backend->gelu_forward(c->ctx, 3, p, q);
        assert_float_equal(q[0], 0.8413447f, 1e-6);
        assert_float_equal(q[1], -0.1586553f, 1e-6);
        assert_float_equal(q[2], 0.0f, 0);
        free(dx);
        free_case(c);
    }
}

/* ---- attention core (softmax included) ---- */

static void attn_fwd(fd_case *c) { simclr__attention_forward(c->ctx, c->n, c->t, c->d, c->heads, c->x, c->y, c->ws); }
static void attn_bwd(fd_case *c)
{
    simclr__attention_backward(c->ctx, c->n, c->t, c->d, c->heads, c->x, c->dy, c->dx, c->ws);
}

static void test_attention_grad(void **state)
{
    (void)state;
    /* n, t, d, heads; threads 1..3 on cpu (per-worker workspaces) */
    const int64_t shapes[][4] = {{1, 1, 2, 1}, {2, 5, 6, 3}, {3, 7, 8, 2}, {2, 17, 12, 4}};
    for (int b = 0; b < 2; b++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t n = shapes[s][0], t = shapes[s][1], d = shapes[s][2], heads = shapes[s][3];
            fd_case *c = new_case(backends[b], 1 + (int)(s % 3), n * t * 3 * d, n * t * d, 70 + s);
            /* Scores of order 1-3 so the softmax is neither flat nor one-hot. */
            for (int64_t i = 0; i < c->nx; i++) c->x[i] *= 2.0f;
            c->n = n, c->t = t, c->d = d, c->heads = heads;
            c->ws = malloc((size_t)simclr__attention_workspace(c->ctx, t) * 4);
            c->forward = attn_fwd, c->backward = attn_bwd;
            gradcheck(c, "attention");
            /* Forward against the definition for (image 0, head 0, query 0). */
            {
                int64_t dh = d / heads;
                double sc[64], mx = -1e30, sum = 0;
                for (int64_t j = 0; j < t; j++) {
                    double a = 0;
                    for (int64_t k = 0; k < dh; k++) a += (double)c->x[k] * c->x[j * 3 * d + d + k];
                    sc[j] = a / sqrt((double)dh);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int64_t j = 0; j < t; j++) sum += exp(sc[j] - mx);
                double o = 0;
                for (int64_t j = 0; j < t; j++) o += exp(sc[j] - mx) / sum * c->x[j * 3 * d + 2 * d];
                attn_fwd(c);
                if (fabs(c->y[0] - o) > 1e-5) fail_msg("attention o[0] = %g, definition %g", c->y[0], o);
            }
            free_case(c);
        }
}

/* ---- the whole encoder through the public API ---- */

typedef struct {
    simclr_context *ctx;
    simclr_module *m;
    simclr_tensor *x, *y, *dy, *dx;
    float *r;
    int64_t nx, ny;
} enc_case;

static double enc_loss(enc_case *e)
{
    CHECK_OK(simclr_module_forward(e->m, e->x, SIMCLR_TRAIN, e->y));
    const float *y = simclr_tensor_data(e->y);
    double l = 0;
    for (int64_t i = 0; i < e->ny; i++) l += (double)e->r[i] * y[i];
    return l;
}

static void enc_check(enc_case *e, const char *what, float *v, const float *grad, int64_t n)
{
    double scale = max_abs(grad, n);
    if (!(scale > 0)) fail_msg("%s: gradient identically zero", what);
    int64_t step = n > 12 ? n / 12 : 1;
    for (int64_t i = 0; i < n; i += step) {
        float old = v[i];
        v[i] = (float)(old + H);
        double hi = enc_loss(e);
        v[i] = (float)(old - H);
        double lo = enc_loss(e);
        v[i] = old;
        double fd = (hi - lo) / ((double)(float)(old + H) - (double)(float)(old - H)), an = grad[i];
        double tol = 2e-3 * (scale > 1 ? scale : 1) + 5e-3 * fabs(an);
        if (!(fabs(fd - an) <= tol))
            fail_msg("%s on %s: d/d[%lld] analytic %.6g, finite difference %.6g (tol %.3g)", what,
                     simclr_context_backend(e->ctx), (long long)i, an, fd, tol);
    }
}

static void encoder_gradcheck(const char *backend, simclr_vit_pool pool)
{
    enc_case e = {0};
    const int64_t n = 2, c = 2, img = 8, d = 8;
    CHECK_OK(simclr_context_create(backend, 2, NULL, &e.ctx));
    CHECK_OK(simclr_vit_create(e.ctx, (int32_t)img, 4, (int32_t)c, (int32_t)d, 2, 2, 12, pool, 3, &e.m));
    assert_int_equal(simclr_module_output_dim(e.m), d);
    int64_t xs[4] = {n, c, img, img}, ys[2] = {n, d};
    CHECK_OK(simclr_tensor_create(e.ctx, SIMCLR_F32, 4, xs, &e.x));
    CHECK_OK(simclr_tensor_create(e.ctx, SIMCLR_F32, 4, xs, &e.dx));
    CHECK_OK(simclr_tensor_create(e.ctx, SIMCLR_F32, 2, ys, &e.y));
    CHECK_OK(simclr_tensor_create(e.ctx, SIMCLR_F32, 2, ys, &e.dy));
    e.nx = n * c * img * img, e.ny = n * d;
    test_fill(simclr_tensor_data(e.x), e.nx, 5);
    e.r = malloc((size_t)e.ny * 4);
    test_fill(e.r, e.ny, 6);
    /* Perturb every parameter away from torchvision's init (layer norms at
     * 1/0, tiny biases) so that each term of the backward matters. */
    for (int i = 0; i < simclr_module_param_count(e.m); i++) {
        simclr_tensor *v;
        CHECK_OK(simclr_module_param(e.m, i, NULL, &v, NULL, NULL));
        float *p = simclr_tensor_data(v), *noise = malloc((size_t)simclr_tensor_numel(v) * 4);
        test_fill(noise, simclr_tensor_numel(v), 100 + (uint64_t)i);
        for (int64_t k = 0; k < simclr_tensor_numel(v); k++) p[k] += 0.3f * noise[k];
        free(noise);
    }
    CHECK_OK(simclr_module_zero_grad(e.m));
    enc_loss(&e);
    memcpy(simclr_tensor_data(e.dy), e.r, (size_t)e.ny * 4);
    CHECK_OK(simclr_module_backward(e.m, e.dy, e.dx));
    float *dx = malloc((size_t)e.nx * 4);
    memcpy(dx, simclr_tensor_data(e.dx), (size_t)e.nx * 4);
    char what[200];
    snprintf(what, sizeof what, "vit (%s pooling) input", pool == SIMCLR_VIT_POOL_CLS ? "cls" : "mean");
    enc_check(&e, what, simclr_tensor_data(e.x), dx, e.nx);
    free(dx);
    for (int i = 0; i < simclr_module_param_count(e.m); i++) {
        const char *name;
        simclr_tensor *v, *g;
        CHECK_OK(simclr_module_param(e.m, i, &name, &v, &g, NULL));
        int64_t k = simclr_tensor_numel(g);
        float *gc = malloc((size_t)k * 4);
        memcpy(gc, simclr_tensor_data(g), (size_t)k * 4);
        snprintf(what, sizeof what, "vit (%s pooling) %s", pool == SIMCLR_VIT_POOL_CLS ? "cls" : "mean", name);
        enc_check(&e, what, simclr_tensor_data(v), gc, k);
        free(gc);
    }
    free(e.r);
    simclr_tensor_destroy(e.x), simclr_tensor_destroy(e.y), simclr_tensor_destroy(e.dy), simclr_tensor_destroy(e.dx);
    simclr_module_destroy(e.m);
    simclr_context_destroy(e.ctx);
}

static void test_encoder_grad(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        encoder_gradcheck(backends[b], SIMCLR_VIT_POOL_CLS);
        encoder_gradcheck(backends[b], SIMCLR_VIT_POOL_MEAN);
    }
}

/* Once a batch size is planned, forward and backward allocate nothing; a
 * new batch size re-plans once; a failed re-plan keeps the old arena. */
static void test_arena_rule(void **state)
{
    (void)state;
    test_alloc a = {0};
    simclr_allocator al = {test_alloc_fn, test_free_fn, &a};
    simclr_context *ctx;
    simclr_module *m;
    CHECK_OK(simclr_context_create("cpu", 2, &al, &ctx));
    CHECK_OK(simclr_vit_create(ctx, 16, 4, 3, 16, 2, 2, 32, SIMCLR_VIT_POOL_CLS, 1, &m));
    int64_t xs[4] = {3, 3, 16, 16}, ys[2] = {3, 16};
    simclr_tensor *x, *y, *dx;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &x));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &dx));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &y));
    test_fill(simclr_tensor_data(x), 3 * 3 * 256, 1);
    CHECK_OK(simclr_module_forward(m, x, SIMCLR_TRAIN, y));
    CHECK_OK(simclr_module_backward(m, y, dx));
    long before = a.allocs;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(simclr_module_forward(m, x, SIMCLR_TRAIN, y));
        CHECK_OK(simclr_module_backward(m, y, dx));
        CHECK_OK(simclr_module_forward(m, x, SIMCLR_EVAL, y));
    }
    assert_int_equal(a.allocs, before);
    /* A failed allocation for a new batch size leaves the old plan working. */
    int64_t xs2[4] = {5, 3, 16, 16}, ys2[2] = {5, 16};
    simclr_tensor *x2, *y2;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, xs2, &x2));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys2, &y2));
    float *y_ref = malloc(3 * 16 * 4);
    CHECK_OK(simclr_module_forward(m, x, SIMCLR_EVAL, y));
    memcpy(y_ref, simclr_tensor_data(y), 3 * 16 * 4);
    a.fail_at = a.allocs + 1;
    CHECK_STATUS(simclr_module_forward(m, x2, SIMCLR_TRAIN, y2), SIMCLR_E_NOMEM);
    a.fail_at = 0;
    CHECK_OK(simclr_module_forward(m, x, SIMCLR_EVAL, y));
    assert_memory_equal(simclr_tensor_data(y), y_ref, 3 * 16 * 4);
    CHECK_OK(simclr_module_forward(m, x2, SIMCLR_TRAIN, y2));
    free(y_ref);
    simclr_tensor_destroy(x), simclr_tensor_destroy(y), simclr_tensor_destroy(dx);
    simclr_tensor_destroy(x2), simclr_tensor_destroy(y2);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
    assert_int_equal(a.live, 0);
}

/* The largest single allocation (the activation arena). */
static size_t g_largest;
static void *largest_alloc(void *user, size_t size, size_t alignment)
{
    (void)user;
    if (size > g_largest) g_largest = size;
    void *p = NULL;
    return posix_memalign(&p, alignment, size ? size : 1) == 0 ? p : NULL;
}
static void largest_free(void *user, void *ptr) { (void)user, free(ptr); }

/* An EVAL forward first plans the smaller inference arena and gives the
 * same bytes as a TRAIN forward; a TRAIN forward then re-plans, and its
 * backward runs. */
static void test_inference_plan(void **state)
{
    (void)state;
    simclr_allocator al = {largest_alloc, largest_free, NULL};
    simclr_context *ctx;
    simclr_module *a, *b;
    CHECK_OK(simclr_context_create("cpu", 2, &al, &ctx));
    for (int pool = 0; pool < 2; pool++) {
        CHECK_OK(simclr_vit_create(ctx, 16, 4, 3, 16, 3, 2, 32, (simclr_vit_pool)pool, 4, &a));
        CHECK_OK(simclr_vit_create(ctx, 16, 4, 3, 16, 3, 2, 32, (simclr_vit_pool)pool, 4, &b));
        int64_t xs[4] = {3, 3, 16, 16}, ys[2] = {3, 16};
        simclr_tensor *x, *ya, *yb, *dx;
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &x));
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &dx));
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &ya));
        CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &yb));
        test_fill(simclr_tensor_data(x), 3 * 3 * 256, 8);
        g_largest = 0;
        CHECK_OK(simclr_module_forward(a, x, SIMCLR_EVAL, ya));
        size_t eval_arena = g_largest;
        g_largest = 0;
        CHECK_OK(simclr_module_forward(b, x, SIMCLR_TRAIN, yb));
        size_t train_arena = g_largest;
        assert_memory_equal(simclr_tensor_data(ya), simclr_tensor_data(yb), 3 * 16 * 4);
        if (!(2 * eval_arena < train_arena))
            fail_msg("inference arena %zu bytes, training arena %zu", eval_arena, train_arena);
        /* backward needs a TRAIN forward; the TRAIN forward re-plans */
        assert_int_not_equal(simclr_module_backward(a, ya, dx), SIMCLR_OK);
        CHECK_OK(simclr_module_forward(a, x, SIMCLR_TRAIN, ya));
        assert_memory_equal(simclr_tensor_data(ya), simclr_tensor_data(yb), 3 * 16 * 4);
        CHECK_OK(simclr_module_backward(a, ya, dx));
        /* EVAL on the training plan: the same bytes again */
        CHECK_OK(simclr_module_forward(a, x, SIMCLR_EVAL, ya));
        assert_memory_equal(simclr_tensor_data(ya), simclr_tensor_data(yb), 3 * 16 * 4);
        simclr_tensor_destroy(x), simclr_tensor_destroy(dx), simclr_tensor_destroy(ya), simclr_tensor_destroy(yb);
        simclr_module_destroy(a), simclr_module_destroy(b);
    }
    simclr_context_destroy(ctx);
}

static void expect_invalid(simclr_status st, const char *needle)
{
    assert_int_equal(st, SIMCLR_E_INVALID);
    if (!strstr(simclr_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", simclr_last_error(), needle);
}

static void test_errors(void **state)
{
    (void)state;
    simclr_context *ctx;
    simclr_module *m = (simclr_module *)(uintptr_t)1; /* must stay untouched */
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    const simclr_vit_pool cls = SIMCLR_VIT_POOL_CLS;
    expect_invalid(simclr_vit_create(NULL, 32, 4, 3, 64, 2, 2, 128, cls, 0, &m), "simclr_vit_create: ctx is NULL");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 3, 64, 2, 2, 128, cls, 0, NULL), "out is NULL");
    expect_invalid(simclr_vit_create(ctx, 30, 4, 3, 64, 2, 2, 128, cls, 0, &m),
                   "image_size 30 is not a multiple of patch_size 4");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 3, 64, 2, 3, 128, cls, 0, &m),
                   "hidden_dim 64 is not a multiple of heads 3");
    expect_invalid(simclr_vit_create(ctx, 0, 4, 3, 64, 2, 2, 128, cls, 0, &m), "image_size 0 out of range");
    expect_invalid(simclr_vit_create(ctx, 32, 0, 3, 64, 2, 2, 128, cls, 0, &m), "patch_size 0 out of range");
    expect_invalid(simclr_vit_create(ctx, 32, 64, 3, 64, 2, 2, 128, cls, 0, &m), "patch_size 64 out of range");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 0, 64, 2, 2, 128, cls, 0, &m), "in_channels 0");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 3, 0, 2, 2, 128, cls, 0, &m), "hidden_dim 0");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 3, 64, 0, 2, 128, cls, 0, &m), "depth 0");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 3, 64, 2, 0, 128, cls, 0, &m), "heads 0");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 3, 64, 2, 2, 0, cls, 0, &m), "mlp_dim 0");
    expect_invalid(simclr_vit_create(ctx, 32, 4, 3, 64, 2, 2, 128, (simclr_vit_pool)5, 0, &m), "pool 5");
    expect_invalid(simclr_vit_create(ctx, 4096, 1, 3, 64, 2, 2, 128, cls, 0, &m), "tokens");
    expect_invalid(simclr_vit_create_preset(ctx, (simclr_vit_preset)0, 3, 0, &m),
                   "simclr_vit_create_preset: unknown preset 0");
    expect_invalid(simclr_vit_create_preset(ctx, SIMCLR_VIT_TINY_CIFAR, 65, 0, &m), "in_channels 65");
    expect_invalid(simclr_vit_create_preset(NULL, SIMCLR_VIT_TINY_CIFAR, 3, 0, &m), "ctx is NULL");
    assert_true(m == (simclr_module *)(uintptr_t)1);

    CHECK_OK(simclr_vit_create_preset(ctx, SIMCLR_VIT_TINY_CIFAR, 3, 0, &m));
    assert_int_equal(simclr_module_output_dim(m), 192);
    assert_string_equal(simclr_module_arch(m), "vit image=32 patch=4 in=3 d=192 depth=12 heads=3 mlp=768 pool=cls");
    /* Forward shape errors name the layer and leave the module usable. */
    int64_t bad[4] = {2, 3, 28, 28}, badc[4] = {2, 1, 32, 32}, ys[2] = {2, 192};
    simclr_tensor *x, *xc, *y;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, bad, &x));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, badc, &xc));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &y));
    assert_int_equal(simclr_module_forward(m, x, SIMCLR_EVAL, y), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "encoder.pos_embedding: input must be 32x32"));
    assert_int_equal(simclr_module_forward(m, xc, SIMCLR_EVAL, y), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "conv_proj: input has 1 channels"));
    /* backward without a TRAIN forward */
    assert_int_not_equal(simclr_module_backward(m, y, NULL), SIMCLR_OK);
    simclr_tensor_destroy(x), simclr_tensor_destroy(xc), simclr_tensor_destroy(y);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm_grad), cmocka_unit_test(test_token_linear_grad),
        cmocka_unit_test(test_gelu_grad),      cmocka_unit_test(test_attention_grad),
        cmocka_unit_test(test_encoder_grad),   cmocka_unit_test(test_arena_rule),
        cmocka_unit_test(test_inference_plan),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("vit", tests, NULL, NULL);
}
