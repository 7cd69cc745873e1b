/* Finite-difference gradient checks of every layer in src/nn/, on both
 * backends: input gradients and parameter gradients of the scalar
 * L = sum(r * y) for a fixed random r, against central differences.
 *
 * Tolerance: the layers compute in float32; L is summed in double from the
 * float outputs. With step h = 1e-2 on values of order 1, the central
 * difference has truncation error O(h^2) ~ 1e-4 (relative) for the smooth
 * layers (0 for the linear ones) and rounding error ~ 1e-7 * sum|r*y| / h ~
 * 5e-5 absolute here, so
 * |fd - analytic| <= 1e-3 * max(1, max|analytic|) + 2e-3 * |analytic| bounds
 * both with margin, while a wrong term (a missing 1/m, a transposed index,
 * a 1% scale error)
 * is off by more. At ReLU kinks (and max-pool ties) a difference quotient
 * is meaningless: inputs of the piecewise layers are kept >= 0.05 away from
 * them. Fused batch-norm + ReLU is repaired the same way (bn_clear_of_kinks:
 * every pre-activation at least BN_MARGIN from zero, asserted), and each
 * difference step is used only when, recomputed in double, it moves no
 * pre-activation across zero or within BN_MARGIN / 4 of it (h, else h/8,
 * else h/64; a case where every step crosses a kink fails). */
#include "test_util.h"

#include "model/module.h"
#include "nn/nn.h"

#define H 1e-2

typedef struct fd_case fd_case;
struct fd_case {
    simclr_context *ctx;
    simclr_module *m; /* holds the layer's parameters */
    simclr__param_sink ps; /* registers them in m */
    void (*forward)(fd_case *c);
    void (*backward)(fd_case *c); /* dy -> dx (and parameter gradients) */
    float *x, *y, *dy, *dx, *r;
    int64_t nx, ny;
    int kinks; /* fused BN + ReLU: use only steps that cross no kink */
    /* layer and geometry */
    simclr__conv2d conv;
    simclr__conv_desc d;
    simclr__batchnorm bn;
    simclr__linear lin;
    float *res, *dres, *stats, *ws, *scratch;
    int32_t *idx;
    int64_t c, mm, h, w, n;
    int relu, with_res;
};

static int step_is_kink_free(fd_case *c, float *v, double h);

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
    /* The actual steps taken in float, not the nominal ones. */
    return (hi - lo) / ((double)(float)(old + h) - (double)(float)(old - h));
}

static void check_entries(fd_case *c, const char *what, float *v, const float *grad, int64_t n, double scale)
{
    int64_t step = n > 40 ? n / 40 : 1; /* a spread of entries keeps the test fast */
    for (int64_t i = 0; i < n; i += step) {
        double an = grad[i], h = H;
        double tol = 1e-3 * (scale > 1 ? scale : 1) + 2e-3 * fabs(an);
        if (c->kinks) {
            while (h > H / 100 && !step_is_kink_free(c, &v[i], h)) h /= 8;
            if (h < H / 100)
                fail_msg("%s on %s: d/d[%lld]: every step size crosses a ReLU kink", what,
                         simclr_context_backend(c->ctx), (long long)i);
        }
        double fd = fd_at(c, &v[i], h);
        if (fabs(fd - an) <= tol) continue;
        fail_msg("%s on %s: d/d[%lld] analytic %.6g, finite difference %.6g at h %g (tol %.3g)", what,
                 simclr_context_backend(c->ctx), (long long)i, an, fd, h, tol);
    }
}

static double max_abs(const float *g, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(g[i]) > m ? fabs(g[i]) : m;
    return m;
}

/* Analytic gradients once, then central differences on x and every parameter. */
static void gradcheck(fd_case *c, const char *what)
{
    CHECK_OK(simclr_module_zero_grad(c->m));
    c->forward(c);
    memcpy(c->dy, c->r, (size_t)c->ny * sizeof(float));
    c->backward(c);
    float *dx = malloc((size_t)c->nx * sizeof(float));
    memcpy(dx, c->dx, (size_t)c->nx * sizeof(float));
    check_entries(c, what, c->x, dx, c->nx, max_abs(dx, c->nx));
    for (int i = 0; i < simclr_module_param_count(c->m); i++) {
        const char *name;
        simclr_tensor *value, *grad;
        CHECK_OK(simclr_module_param(c->m, i, &name, &value, &grad, NULL));
        if (!grad) continue;
        int64_t n = simclr_tensor_numel(grad);
        float *g = malloc((size_t)n * sizeof(float));
        memcpy(g, simclr_tensor_data(grad), (size_t)n * sizeof(float));
        char label[160];
        snprintf(label, sizeof label, "%s %s", what, name);
        check_entries(c, label, simclr_tensor_data(value), g, n, max_abs(g, n));
        free(g);
    }
    free(dx);
}

static fd_case *new_case(const char *backend, int64_t nx, int64_t ny, uint64_t seed)
{
    fd_case *c = calloc(1, sizeof *c);
    CHECK_OK(simclr_context_create(backend, 2, NULL, &c->ctx));
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
    free(c->res), free(c->dres), free(c->stats), free(c->ws), free(c->scratch), free(c->idx);
    free(c);
}

static const char *const backends[] = {"ref", "cpu"};

/* ---- conv2d ---- */

static void conv_fwd(fd_case *c) { simclr__conv2d_forward(c->ctx, &c->conv, &c->d, c->x, c->y, c->ws); }
static void conv_bwd(fd_case *c) { simclr__conv2d_backward(c->ctx, &c->conv, &c->d, c->x, c->dy, c->dx, 0, c->ws); }

static void test_conv2d_grad(void **state)
{
    (void)state;
    /* n, cin, h, w, cout, k, stride, pad, bias */
    const int64_t g[][9] = {{2, 3, 5, 4, 4, 3, 1, 1, 0}, {1, 2, 7, 6, 3, 3, 2, 1, 1}, {2, 2, 9, 8, 2, 7, 2, 3, 0},
                            {3, 4, 3, 3, 5, 1, 1, 0, 1}, {2, 3, 5, 5, 2, 1, 2, 0, 0}, {1, 1, 1, 1, 1, 3, 1, 1, 1}};
    for (int b = 0; b < 2; b++)
        for (size_t s = 0; s < sizeof g / sizeof g[0]; s++) {
            int64_t n = g[s][0], cin = g[s][1], h = g[s][2], w = g[s][3], cout = g[s][4], k = g[s][5];
            simclr__conv2d probe = {.cin = cin, .cout = cout, .k = k, .stride = g[s][6], .pad = g[s][7]};
            simclr__conv_desc d;
            CHECK_OK(simclr__conv2d_desc(&probe, n, h, w, &d));
            fd_case *c = new_case(backends[b], cin * n * h * w, cout * n * d.oh * d.ow, 10 + s);
            CHECK_OK(simclr__conv2d_init(&c->ps, &c->conv, "conv", cin, cout, k, g[s][6], g[s][7], (int)g[s][8], 5));
            if (c->conv.b) test_fill(simclr_tensor_data(c->conv.b), cout, 77);
            c->d = d;
            c->ws = malloc((c->ctx->backend->conv2d_workspace(c->ctx, &d) + 1) * sizeof(float));
            c->forward = conv_fwd, c->backward = conv_bwd;
            gradcheck(c, "conv2d");
            free_case(c);
        }
}

/* The first layer's pass without an input gradient still gives dW. */
static void test_conv2d_no_dx(void **state)
{
    (void)state;
    fd_case *c = new_case("cpu", 2 * 3 * 6 * 6, 0, 3);
    CHECK_OK(simclr__conv2d_init(&c->ps, &c->conv, "conv", 3, 4, 3, 1, 1, 0, 5));
    CHECK_OK(simclr__conv2d_desc(&c->conv, 2, 6, 6, &c->d));
    float *dy = malloc(4 * 2 * 36 * 4), *ws = malloc((c->ctx->backend->conv2d_workspace(c->ctx, &c->d) + 1) * 4);
    test_fill(dy, 4 * 2 * 36, 9);
    simclr__conv2d_backward(c->ctx, &c->conv, &c->d, c->x, dy, NULL, 0, ws);
    float *with = malloc((size_t)c->conv.dw->numel * 4);
    memcpy(with, simclr_tensor_data(c->conv.dw), (size_t)c->conv.dw->numel * 4);
    CHECK_OK(simclr_module_zero_grad(c->m));
    simclr__conv2d_backward(c->ctx, &c->conv, &c->d, c->x, dy, c->dx, 0, ws);
    assert_true(test_norm_err(simclr_tensor_data(c->conv.dw), with, c->conv.dw->numel) < 1e-6);
    free(dy), free(ws), free(with);
    free_case(c);
}

/* ---- batch norm (fused residual and ReLU) ---- */

static void bn_fwd(fd_case *c)
{
    simclr__batchnorm_forward(c->ctx, &c->bn, c->mm, SIMCLR_TRAIN, c->x, c->with_res ? c->res : NULL, c->relu,
                              c->y, c->stats);
}

static void bn_bwd(fd_case *c)
{
    simclr__batchnorm_backward(c->ctx, &c->bn, c->mm, c->x, c->y, c->relu, c->dy, c->dx,
                               c->with_res ? c->dres : NULL, c->stats);
}

/* The residual is a second input: its gradient is checked by perturbing it. */
static void check_residual(fd_case *c)
{
    float *dres = malloc((size_t)c->nx * 4);
    memcpy(dres, c->dres, (size_t)c->nx * 4);
    check_entries(c, "batchnorm residual", c->res, dres, c->nx, max_abs(dres, c->nx));
    free(dres);
}

/* Pre-activations gamma * xhat + beta + res of the fused layer, in double,
 * from the case's current data; returns the smallest |value|, and in *flips
 * (when not NULL) how many differ in sign from ref (when not NULL). */
#define BN_MARGIN 0.05
static double bn_preact(const fd_case *c, const double *ref, double *out, int64_t *flips)
{
    const float *gm = simclr_tensor_data(c->bn.gamma);
    const float *bt = c->bn.beta ? simclr_tensor_data(c->bn.beta) : NULL;
    double smallest = INFINITY;
    if (flips) *flips = 0;
    for (int64_t ch = 0; ch < c->bn.c; ch++) {
        const float *x = c->x + ch * c->mm;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < c->mm; j++) mean += x[j];
        mean /= (double)c->mm;
        for (int64_t j = 0; j < c->mm; j++) var += (x[j] - mean) * (x[j] - mean);
        var /= (double)c->mm;
        for (int64_t j = 0; j < c->mm; j++) {
            int64_t i = ch * c->mm + j;
            double p = gm[ch] * (x[j] - mean) / sqrt(var + (double)c->bn.eps) + (bt ? bt[ch] : 0) +
                       (c->with_res ? c->res[i] : 0);
            if (out) out[i] = p;
            if (fabs(p) < smallest) smallest = fabs(p);
            if (flips && ref && (p > 0) != (ref[i] > 0)) (*flips)++;
        }
    }
    return smallest;
}

/* Moves inputs until every pre-activation is BN_MARGIN from zero: the
 * residual element itself when there is one (it enters no statistic), else
 * the input element away from the value that zeroes it (which moves the
 * channel's statistics a little: iterate). Asserts the result. */
static void bn_clear_of_kinks(fd_case *c)
{
    double *pre = malloc((size_t)c->nx * sizeof *pre);
    for (int it = 0; it < 200 && bn_preact(c, NULL, pre, NULL) < 2 * BN_MARGIN; it++)
        for (int64_t i = 0; i < c->nx; i++) {
            if (fabs(pre[i]) >= 2 * BN_MARGIN) continue;
            float dir = pre[i] >= 0 ? 1.0f : -1.0f;
            if (c->with_res)
                c->res[i] += dir * 3 * (float)BN_MARGIN;
            else
            {
                float g = ((const float *)simclr_tensor_data(c->bn.gamma))[i / c->mm];
                c->x[i] += dir * (g > 0 ? 0.1f : -0.1f); /* d pre / d x[i] has gamma's sign */
            }
        }
    double smallest = bn_preact(c, NULL, pre, NULL);
    free(pre);
    if (c->relu && !(smallest >= BN_MARGIN))
        fail_msg("precondition: a batch-norm pre-activation is %.3g from the ReLU kink (want >= %g)", smallest,
                 BN_MARGIN);
}

/* Does the step v +- h keep every pre-activation on its side, clear of zero? */
static int step_is_kink_free(fd_case *c, float *v, double h)
{
    double *base = malloc((size_t)c->nx * sizeof *base);
    bn_preact(c, NULL, base, NULL);
    float old = *v;
    int ok = 1;
    for (int s = -1; s <= 1 && ok; s += 2) {
        int64_t flips;
        *v = (float)(old + s * h);
        ok = bn_preact(c, base, NULL, &flips) >= BN_MARGIN / 4 && flips == 0;
        *v = old;
    }
    free(base);
    return ok;
}

static void test_batchnorm_grad(void **state)
{
    (void)state;
    const int64_t shapes[][2] = {{3, 8}, {2, 2}, {1, 13}, {4, 5}}; /* channels, values per channel */
    for (int b = 0; b < 2; b++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int variant = 0; variant < 8; variant++) {
                int64_t ch = shapes[s][0], m = shapes[s][1];
                fd_case *c = new_case(backends[b], ch * m, ch * m, 20 + s);
                c->mm = m;
                c->relu = variant & 1, c->with_res = (variant >> 1) & 1;
                int has_beta = !((variant >> 2) & 1);
                c->kinks = c->relu;
                CHECK_OK(simclr__batchnorm_init(&c->ps, &c->bn, "bn", ch, has_beta));
                /* Non-trivial affine parameters. */
                float *gm = simclr_tensor_data(c->bn.gamma);
                for (int64_t i = 0; i < ch; i++) gm[i] = 0.5f + 0.25f * (float)i;
                if (has_beta) test_fill(simclr_tensor_data(c->bn.beta), ch, 31);
                c->res = malloc((size_t)(ch * m) * 4), c->dres = malloc((size_t)(ch * m) * 4);
                test_fill(c->res, ch * m, 32);
                c->stats = malloc((size_t)SIMCLR__BN_STATS(ch) * 4);
                if (c->relu) bn_clear_of_kinks(c);
                c->forward = bn_fwd, c->backward = bn_bwd;
                gradcheck(c, "batchnorm");
                if (c->with_res) check_residual(c);
                free_case(c);
            }
}

/* Running statistics follow PyTorch: momentum 0.1, unbiased variance, a count. */
static void test_batchnorm_running_stats(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        fd_case *c = new_case(backends[b], 2 * 4, 2 * 4, 40);
        CHECK_OK(simclr__batchnorm_init(&c->ps, &c->bn, "bn", 2, 1));
        c->stats = malloc((size_t)SIMCLR__BN_STATS(2) * 4);
        const float x[8] = {1, 2, 3, 6, -1, -1, -1, -1};
        memcpy(c->x, x, sizeof x);
        simclr__batchnorm_forward(c->ctx, &c->bn, 4, SIMCLR_TRAIN, c->x, NULL, 0, c->y, c->stats);
        const float *rm = simclr_tensor_data(c->bn.running_mean), *rv = simclr_tensor_data(c->bn.running_var);
        /* row 0: mean 3, biased var 3.5, unbiased 14/3 */
        assert_float_equal(rm[0], 0.1f * 3.0f, 1e-6);
        assert_float_equal(rv[0], 0.9f + 0.1f * (14.0f / 3.0f), 1e-6);
        assert_float_equal(rm[1], -0.1f, 1e-6);
        assert_float_equal(rv[1], 0.9f, 1e-6);
        assert_float_equal(((float *)simclr_tensor_data(c->bn.num_batches_tracked))[0], 1.0f, 0);
        /* normalized with the biased variance and eps = 1e-5 */
        assert_float_equal(c->y[3], (float)(3.0 / sqrt(3.5 + 1e-5)), 1e-5);
        /* a constant row normalizes to 0 (the variance is exactly 0, no NaN) */
        assert_float_equal(c->y[4], 0.0f, 1e-6);
        /* EVAL uses the running statistics and changes nothing */
        float before[2] = {rm[0], rv[0]};
        simclr__batchnorm_forward(c->ctx, &c->bn, 4, SIMCLR_EVAL, c->x, NULL, 0, c->y, c->stats);
        assert_float_equal(c->y[0], (float)((1.0 - before[0]) / sqrt(before[1] + 1e-5)), 1e-5);
        assert_true(rm[0] == before[0] && rv[0] == before[1]);
        assert_float_equal(((float *)simclr_tensor_data(c->bn.num_batches_tracked))[0], 1.0f, 0);
        free_case(c);
    }
}

/* ---- linear ---- */

static void lin_fwd(fd_case *c) { simclr__linear_forward(c->ctx, &c->lin, c->n, c->x, c->y); }
static void lin_bwd(fd_case *c) { simclr__linear_backward(c->ctx, &c->lin, c->n, c->x, c->dy, c->dx, c->scratch); }

static void test_linear_grad(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{5, 3, 4}, {1, 1, 1}, {7, 2, 1}, {3, 6, 2}}; /* in, out, n */
    for (int b = 0; b < 2; b++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int bias = 0; bias < 2; bias++) {
                int64_t in = shapes[s][0], out = shapes[s][1], n = shapes[s][2];
                fd_case *c = new_case(backends[b], in * n, out * n, 50 + s);
                c->n = n;
                CHECK_OK(simclr__linear_init(&c->ps, &c->lin, "fc", in, out, bias, 3));
                c->scratch = malloc((size_t)out * 4);
                c->forward = lin_fwd, c->backward = lin_bwd;
                gradcheck(c, "linear");
                free_case(c);
            }
}

/* ---- parameter-free layers ---- */

/* Values at least 0.05 from 0 (ReLU kink), both signs. */
static void away_from_zero(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0 ? x[i] + 0.05f : x[i] - 0.05f;
}

static void relu_fwd(fd_case *c) { simclr__relu_forward(c->ctx, c->nx, c->x, c->y); }
static void relu_bwd(fd_case *c) { simclr__relu_backward(c->ctx, c->nx, c->y, c->dy, c->dx); }

static void mp_fwd(fd_case *c) { simclr__maxpool_forward(c->ctx, c->c, c->h, c->w, c->x, c->y, c->idx); }
static void mp_bwd(fd_case *c) { simclr__maxpool_backward(c->ctx, c->c, c->h, c->w, c->dy, c->idx, c->dx); }

static void ap_fwd(fd_case *c) { simclr__avgpool_forward(c->ctx, c->c, c->n, c->h * c->w, c->x, c->y); }
static void ap_bwd(fd_case *c) { simclr__avgpool_backward(c->ctx, c->c, c->n, c->h * c->w, c->dy, c->dx); }

static void fl_fwd(fd_case *c) { simclr__layout_to_nchw(c->ctx, c->n, c->c, 1, c->x, c->y); }
static void fl_bwd(fd_case *c) { simclr__layout_to_cm(c->ctx, c->n, c->c, 1, c->dy, c->dx); }

static void test_parameter_free_grads(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        fd_case *c = new_case(backends[b], 37, 37, 60);
        away_from_zero(c->x, 37);
        c->forward = relu_fwd, c->backward = relu_bwd;
        gradcheck(c, "relu");
        free_case(c);

        const int64_t pools[][3] = {{3, 7, 6}, {2, 1, 1}, {1, 2, 5}, {2, 8, 8}}; /* planes, h, w */
        for (size_t s = 0; s < sizeof pools / sizeof pools[0]; s++) {
            int64_t p = pools[s][0], h = pools[s][1], w = pools[s][2];
            int64_t oh = simclr__maxpool_out(h), ow = simclr__maxpool_out(w);
            c = new_case(backends[b], p * h * w, p * oh * ow, 61 + s);
            /* Distinct values 0.1 apart: a step of h never changes a window's winner. */
            for (int64_t i = 0; i < c->nx; i++) c->x[i] = 0.1f * (float)((i * 7919) % c->nx);
            c->c = p, c->h = h, c->w = w;
            c->idx = malloc((size_t)c->ny * sizeof(int32_t));
            c->forward = mp_fwd, c->backward = mp_bwd;
            gradcheck(c, "maxpool");
            free_case(c);

            c = new_case(backends[b], p * 2 * h * w, p * 2, 70 + s);
            c->c = p, c->n = 2, c->h = h, c->w = w;
            c->forward = ap_fwd, c->backward = ap_bwd;
            gradcheck(c, "avgpool");
            free_case(c);
        }
        c = new_case(backends[b], 5 * 3, 5 * 3, 80);
        c->c = 5, c->n = 3;
        c->forward = fl_fwd, c->backward = fl_bwd;
        gradcheck(c, "flatten");
        free_case(c);
    }
}

/* Layout changes are exact permutations: NCHW -> channel-major -> NCHW. */
static void test_layout_roundtrip(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        simclr_context *ctx;
        CHECK_OK(simclr_context_create(backends[b], 2, NULL, &ctx));
        float x[2 * 3 * 4], cm[2 * 3 * 4], back[2 * 3 * 4];
        test_fill(x, 24, 90);
        simclr__layout_to_cm(ctx, 2, 3, 4, x, cm);
        /* element (n=1, c=2, p=3) */
        assert_true(cm[(2 * 2 + 1) * 4 + 3] == x[(1 * 3 + 2) * 4 + 3]);
        simclr__layout_to_nchw(ctx, 2, 3, 4, cm, back);
        assert_memory_equal(x, back, sizeof x);
        float s[3];
        simclr__residual_forward(ctx, 3, x, x + 3, s);
        for (int i = 0; i < 3; i++) assert_true(s[i] == x[i] + x[i + 3]);
        simclr_context_destroy(ctx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_grad),
        cmocka_unit_test(test_conv2d_no_dx),
        cmocka_unit_test(test_batchnorm_grad),
        cmocka_unit_test(test_batchnorm_running_stats),
        cmocka_unit_test(test_linear_grad),
        cmocka_unit_test(test_parameter_free_grads),
        cmocka_unit_test(test_layout_roundtrip),
    };
    return cmocka_run_group_tests_name("nn", tests, NULL, NULL);
}
