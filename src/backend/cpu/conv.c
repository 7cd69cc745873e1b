/* Convolution on the "cpu" backend: im2col over chunks of a few images
 * feeding one large sgemm per chunk, on channel-major activations.
 *
 *   forward:  y[:, chunk]  = W [cout, K] x col [K, cols]        (K = cin*kh*kw)
 *   backward: dW          += dy[:, chunk] x col^T
 *             col          = W^T x dy[:, chunk];  dx += col2im(col)
 *
 * A 1x1 stride-1 unpadded convolution is a plain product on x itself, no
 * im2col. The column buffer is the caller's workspace (a few MB, sized by
 * simclr__cpu_conv2d_workspace) and is reused chunk after chunk, so it stays
 * in cache between im2col and the product.
 *
 * Threads: when a layer has at least one chunk per worker, the workers
 * take whole chunks, each with its own column buffer in the workspace, and
 * run im2col and a single-threaded product back to back: one parallel
 * region per layer instead of two per chunk. Otherwise chunks run one after
 * another with im2col and each product split across the workers.
 *
 * Reproducibility: chunks are a function of the layer's shape, not of the
 * thread count, and the one sum over chunks (the weight gradient) is
 * grouped into DW_PARTS fixed partial sums added in order, so every result
 * is the same bytes for any number of threads.
 *
 * 3x3 stride-1 layers may instead run Winograd (winograd.c), as the
 * context's SIMCLR_CTX_CONV_ALGO setting and simclr__cpu_winograd_choose
 * decide per layer. */
#include <cblas.h>
#include <string.h>

#include "kernels.h"

/* Chunk size: OpenBLAS runs these products fastest at 1-2 thousand columns
 * (measured: M=64, K=576 at 84 GFLOP/s for N = 1024..2048, 52 at N = 8192,
 * one core), and the column buffer stays under 16 MB. */
#define COL_TARGET 2048
#define COL_BUDGET ((size_t)1 << 22)

static int is_pointwise(const simclr__conv_desc *d)
{
    return d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0;
}

static int64_t chunk_images(const simclr__conv_desc *d)
{
    int64_t plane = d->oh * d->ow;
    size_t per_image = (size_t)(d->cin * d->kh * d->kw) * (size_t)plane;
    int64_t nb = (COL_TARGET + plane - 1) / plane;
    int64_t cap = (int64_t)(COL_BUDGET / (per_image ? per_image : 1));
    if (nb > cap) nb = cap;
    if (nb < 1) nb = 1;
    return nb < d->n ? nb : d->n;
}


typedef struct {
    const simclr__conv_desc *d;
    int64_t n0, nb; /* the chunk of images */
    const float *x;
    float *col;
    float *dx;
} col_job;

/* One im2col row: tap (ci, ky, kx) over every output position of the chunk. */
static void im2col_row(const col_job *j, int64_t r)
{
    const simclr__conv_desc *d = j->d;
    int64_t kk = d->kh * d->kw, ci = r / kk, ky = (r % kk) / d->kw, kx = r % d->kw;
    int64_t plane = d->oh * d->ow;
    float *out = j->col + r * j->nb * plane;
    /* Valid output columns for this kx: 0 <= ox*stride - pad + kx < w. */
    int64_t ox_lo = 0, ox_hi = d->ow;
    while (ox_lo < d->ow && ox_lo * d->stride - d->pad + kx < 0) ox_lo++;
    while (ox_hi > ox_lo && (ox_hi - 1) * d->stride - d->pad + kx >= d->w) ox_hi--;
    for (int64_t n = 0; n < j->nb; n++) {
        const float *src = j->x + (ci * d->n + j->n0 + n) * d->h * d->w;
        for (int64_t oy = 0; oy < d->oh; oy++, out += d->ow) {
            int64_t iy = oy * d->stride - d->pad + ky;
            if (iy < 0 || iy >= d->h || ox_lo >= ox_hi) {
                memset(out, 0, (size_t)d->ow * sizeof(float));
                continue;
            }
            /* Index arithmetic, not a pointer before src: off may be negative. */
            int64_t off = iy * d->w - d->pad + kx;
            for (int64_t ox = 0; ox < ox_lo; ox++) out[ox] = 0;
            if (d->stride == 1)
                memcpy(out + ox_lo, src + off + ox_lo, (size_t)(ox_hi - ox_lo) * sizeof(float));
            else
                for (int64_t ox = ox_lo; ox < ox_hi; ox++) out[ox] = src[off + ox * d->stride];
            for (int64_t ox = ox_hi; ox < d->ow; ox++) out[ox] = 0;
        }
    }
}

static void im2col_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    for (int64_t r = b; r < e; r++) im2col_row(arg, r);
}

/* col2im for input channels [b, e): every tap of channel ci writes only into
 * ci's planes, so channels split across threads without races. */
static void col2im_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const col_job *j = arg;
    const simclr__conv_desc *d = j->d;
    int64_t plane = d->oh * d->ow, kk = d->kh * d->kw;
    for (int64_t ci = b; ci < e; ci++)
        for (int64_t t = 0; t < kk; t++) {
            int64_t ky = t / d->kw, kx = t % d->kw;
            const float *in = j->col + (ci * kk + t) * j->nb * plane;
            int64_t ox_lo = 0, ox_hi = d->ow;
            while (ox_lo < d->ow && ox_lo * d->stride - d->pad + kx < 0) ox_lo++;
            while (ox_hi > ox_lo && (ox_hi - 1) * d->stride - d->pad + kx >= d->w) ox_hi--;
            for (int64_t n = 0; n < j->nb; n++) {
                float *dst = j->dx + (ci * d->n + j->n0 + n) * d->h * d->w;
                for (int64_t oy = 0; oy < d->oh; oy++, in += d->ow) {
                    int64_t iy = oy * d->stride - d->pad + ky;
                    if (iy < 0 || iy >= d->h) continue;
                    int64_t off = iy * d->w - d->pad + kx;
                    if (d->stride == 1)
                        for (int64_t ox = ox_lo; ox < ox_hi; ox++) dst[off + ox] += in[ox];
                    else
                        for (int64_t ox = ox_lo; ox < ox_hi; ox++) dst[off + ox * d->stride] += in[ox];
                }
            }
        }
}

static void im2col(simclr_context *ctx, col_job *j)
{
    int64_t k = j->d->cin * j->d->kh * j->d->kw;
    int64_t row = j->nb * j->d->oh * j->d->ow;
    simclr__pool_for(ctx->pool, k, SIMCLR__GRAIN / (row > 0 ? row : 1), im2col_task, j);
}

typedef struct {
    int64_t rows, cols;
    float *x;
    const float *bias;
    float *dbias;
} bias_job;

static void bias_add_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    bias_job *j = arg;
    for (int64_t r = b; r < e; r++) {
        float *row = j->x + r * j->cols, v = j->bias[r];
        for (int64_t i = 0; i < j->cols; i++) row[i] += v;
    }
}

static void bias_grad_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    bias_job *j = arg;
    for (int64_t r = b; r < e; r++) j->dbias[r] += (float)simclr__cpu_sum_f32(j->x + r * j->cols, j->cols);
}

/* Chunks ("groups") of chunk_images(d) images: a function of the layer's
 * shape only, never of the thread count, so that every sum below has the
 * same terms in the same order whatever the number of workers. */
static int64_t n_groups(const simclr__conv_desc *d)
{
    int64_t nb = chunk_images(d);
    return (d->n + nb - 1) / nb;
}

/* The weight gradient sums over every image. With at least DW_PARTS groups,
 * group ranges [a*G/P, (a+1)*G/P) are summed into DW_PARTS partial sums (the
 * first straight into dw), each by whichever worker takes it, then added to
 * dw in part order: the result is the same bytes for 1, 2, 3 or 64 threads.
 * Fewer groups run one after another with each product split across the
 * workers by output rows or columns (which does not change any element's
 * sum). Four parts keep 2 and 4 workers busy at the price of three extra
 * weight-sized buffers. */
#define DW_PARTS 4

static int parted(const simclr__conv_desc *d) { return !is_pointwise(d) && n_groups(d) >= DW_PARTS; }

/* Groups run by whole workers (each with its own column buffer) when there
 * are enough of them; the forward's products do not depend on the split. */
static int by_workers(simclr_context *ctx, const simclr__conv_desc *d)
{
    int64_t t = simclr__pool_size(ctx->pool);
    return t > 1 && !is_pointwise(d) && n_groups(d) >= t;
}

/* Column buffers (one per worker on the worker paths, else one) and the
 * weight-gradient parts. */
size_t simclr__cpu_conv2d_workspace(simclr_context *ctx, const simclr__conv_desc *d)
{
    if (is_pointwise(d)) return 0;
    size_t k = (size_t)(d->cin * d->kh * d->kw), col = k * (size_t)(chunk_images(d) * d->oh * d->ow);
    size_t t = (size_t)simclr__pool_size(ctx->pool), cols = (by_workers(ctx, d) || parted(d)) ? t * col : col;
    size_t direct = cols + (parted(d) ? (size_t)(DW_PARTS - 1) * (size_t)d->cout * k : 0);
    /* Winograd's too, whatever the setting now: the host may change
     * SIMCLR_CTX_CONV_ALGO after a module sized its workspace. */
    size_t w2 = simclr__cpu_winograd_workspace(d, 2), w4 = simclr__cpu_winograd_workspace(d, 4);
    size_t sl = simclr__cpu_sliding_workspace(ctx, d);
    if (w2 > direct) direct = w2;
    if (sl > direct) direct = sl;
    return w4 > direct ? w4 : direct;
}

typedef struct {
    const simclr__conv_desc *d;
    const float *x, *w, *dy;
    float *y, *dx, *ws;
    int64_t groups;
    size_t ws_per; /* column-buffer floats per worker */
    int accumulate;
    float *dw;       /* part 0 (the caller's gradient) */
    float *dw_parts; /* parts 1.. [DW_PARTS - 1][cout][k], written (not added) by their first product */
} chunk_job;

static void forward_chunks(void *arg, int64_t b, int64_t e, int wk)
{
    const chunk_job *c = arg;
    const simclr__conv_desc *d = c->d;
    int64_t k = d->cin * d->kh * d->kw, plane = d->oh * d->ow, m = d->n * plane, nb = chunk_images(d);
    for (int64_t q = b; q < e; q++) {
        int64_t n0 = q * nb, cnt = n0 + nb <= d->n ? nb : d->n - n0, cols = cnt * plane;
        col_job j = {d, n0, cnt, c->x, c->ws + (size_t)wk * c->ws_per, NULL};
        for (int64_t r = 0; r < k; r++) im2col_row(&j, r);
        /* Blocked as simclr__cpu_gemm would: the same bytes as the path for one worker. */
        simclr__cpu_gemm_serial(0, 0, d->cout, cols, k, 1.0f, c->w, k, j.col, cols, 0.0f, c->y + n0 * plane, m);
    }
}

typedef struct {
    float *dw;
    const float *parts; /* [n_parts][len] */
    int n_parts;
    int64_t len;
} part_sum_job;

static void part_sum_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const part_sum_job *j = arg;
    for (int p = 0; p < j->n_parts; p++) {
        const float *src = j->parts + (size_t)p * (size_t)j->len;
        for (int64_t i = b; i < e; i++) j->dw[i] += src[i];
    }
}

/* Both gradients of the groups of parts [b, e): each part's weight gradient
 * into its own sum, then the input gradient through the same column
 * buffer (its images' planes are the part's own). */
static void backward_parts(void *arg, int64_t b, int64_t e, int wk)
{
    const chunk_job *c = arg;
    const simclr__conv_desc *d = c->d;
    int64_t k = d->cin * d->kh * d->kw, plane = d->oh * d->ow, m = d->n * plane, in_plane = d->h * d->w;
    int64_t nb = chunk_images(d);
    for (int64_t a = b; a < e; a++) {
        float *dw = a ? c->dw_parts + (size_t)(a - 1) * (size_t)(d->cout * k) : c->dw;
        int64_t g0 = a * c->groups / DW_PARTS, g1 = (a + 1) * c->groups / DW_PARTS;
        for (int64_t q = g0; q < g1; q++) {
            int64_t n0 = q * nb, cnt = n0 + nb <= d->n ? nb : d->n - n0, cols = cnt * plane;
            col_job j = {d, n0, cnt, c->x, c->ws + (size_t)wk * c->ws_per, c->dx};
            for (int64_t r = 0; r < k; r++) im2col_row(&j, r);
            float beta = a && q == g0 ? 0.0f : 1.0f;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d->cout, (int)k, (int)cols, 1.0f,
                        c->dy + n0 * plane, (int)m, j.col, (int)cols, beta, dw, (int)k);
            if (!c->dx) continue;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)cols, (int)d->cout, 1.0f, c->w, (int)k,
                        c->dy + n0 * plane, (int)m, 0.0f, j.col, (int)cols);
            if (!c->accumulate)
                for (int64_t ci = 0; ci < d->cin; ci++)
                    memset(c->dx + (ci * d->n + n0) * in_plane, 0, (size_t)(cnt * in_plane) * sizeof(float));
            col2im_task(&j, 0, d->cin, wk);
        }
    }
}

/* Both gradients group after group, each product split across the workers
 * (too few groups for the parts); dw NULL: the input gradient only. */
static void backward_serial(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                            const float *dy, float *dw, float *dx, int accumulate, float *ws)
{
    int64_t k = d->cin * d->kh * d->kw, plane = d->oh * d->ow, m = d->n * plane;
    int64_t nb = chunk_images(d), in_plane = d->h * d->w;
    for (int64_t n0 = 0; n0 < d->n; n0 += nb) {
        col_job j = {d, n0, n0 + nb <= d->n ? nb : d->n - n0, x, ws, dx};
        int64_t cols = j.nb * plane;
        if (dw) {
            im2col(ctx, &j);
            simclr__cpu_gemm(ctx, 0, 1, d->cout, k, cols, 1.0f, dy + n0 * plane, m, ws, cols, 1.0f, dw, k);
        }
        if (!dx) continue;
        simclr__cpu_gemm(ctx, 1, 0, k, cols, d->cout, 1.0f, w, k, dy + n0 * plane, m, 0.0f, ws, cols);
        if (!accumulate)
            for (int64_t ci = 0; ci < d->cin; ci++)
                memset(dx + (ci * d->n + n0) * in_plane, 0, (size_t)(j.nb * in_plane) * sizeof(float));
        simclr__pool_for(ctx->pool, d->cin, 1, col2im_task, &j);
    }
}

void simclr__cpu_conv2d_forward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                const float *bias, float *y, float *ws)
{
    int64_t k = d->cin * d->kh * d->kw, plane = d->oh * d->ow, m = d->n * plane;
    int wino = simclr__cpu_winograd_choose(ctx, d);
    if (wino) {
        simclr__cpu_winograd_forward(ctx, d, wino, x, w, y, ws);
    } else if (simclr__cpu_sliding_choose(ctx, d, 0)) {
        simclr__cpu_sliding_forward(ctx, d, x, w, bias, y, ws);
        return;
    } else if (is_pointwise(d)) {
        simclr__cpu_gemm(ctx, 0, 0, d->cout, m, k, 1.0f, w, k, x, m, 0.0f, y, m);
    } else if (by_workers(ctx, d)) {
        chunk_job c = {.d = d, .x = x, .w = w, .y = y, .ws = ws, .ws_per = (size_t)(k * chunk_images(d) * plane)};
        simclr__pool_for(ctx->pool, n_groups(d), 1, forward_chunks, &c);
    } else {
        int64_t nb = chunk_images(d);
        for (int64_t n0 = 0; n0 < d->n; n0 += nb) {
            col_job j = {d, n0, n0 + nb <= d->n ? nb : d->n - n0, x, ws, NULL};
            im2col(ctx, &j);
            int64_t cols = j.nb * plane;
            simclr__cpu_gemm(ctx, 0, 0, d->cout, cols, k, 1.0f, w, k, ws, cols, 0.0f, y + n0 * plane, m);
        }
    }
    if (bias) {
        bias_job bj = {d->cout, m, y, bias, NULL};
        simclr__pool_for(ctx->pool, d->cout, SIMCLR__GRAIN / (m > 0 ? m : 1), bias_add_task, &bj);
    }
}

void simclr__cpu_conv2d_backward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                 const float *dy, float *dw, float *dbias, float *dx, int accumulate, float *ws)
{
    int64_t k = d->cin * d->kh * d->kw, plane = d->oh * d->ow, m = d->n * plane;
    if (dbias) {
        bias_job bj = {d->cout, m, (float *)dy, NULL, dbias};
        simclr__pool_for(ctx->pool, d->cout, SIMCLR__GRAIN / (m > 0 ? m : 1), bias_grad_task, &bj);
    }
    int wino = simclr__cpu_winograd_choose(ctx, d);
    if (wino) {
        simclr__cpu_winograd_backward(ctx, d, wino, x, w, dy, dw, dx, accumulate, ws);
        return;
    }
    if (is_pointwise(d)) {
        simclr__cpu_gemm(ctx, 0, 1, d->cout, k, m, 1.0f, dy, m, x, m, 1.0f, dw, k);
        if (dx) simclr__cpu_gemm(ctx, 1, 0, k, m, d->cout, 1.0f, w, k, dy, m, accumulate ? 1.0f : 0.0f, dx, m);
        return;
    }
    if (simclr__cpu_sliding_choose(ctx, d, 1)) {
        /* One after the other: they share the workspace. A strided layer's
         * input gradient is not a convolution: products and col2im. */
        simclr__cpu_sliding_weight_grad(ctx, d, x, dy, dw, ws);
        if (dx && d->stride == 1) simclr__cpu_sliding_input_grad(ctx, d, w, dy, dx, accumulate, ws);
        if (dx && d->stride != 1) backward_serial(ctx, d, x, w, dy, NULL, dx, accumulate, ws);
        return;
    }
    if (parted(d)) {
        int64_t nb = chunk_images(d);
        size_t col = (size_t)(k * nb * plane), t = (size_t)simclr__pool_size(ctx->pool);
        chunk_job c = {.d = d, .x = x, .w = w, .dy = dy, .dx = dx, .ws = ws, .groups = n_groups(d), .ws_per = col,
                       .accumulate = accumulate, .dw = dw, .dw_parts = ws + t * col};
        simclr__pool_for(ctx->pool, DW_PARTS, 1, backward_parts, &c);
        part_sum_job ps = {dw, c.dw_parts, DW_PARTS - 1, d->cout * k};
        simclr__pool_for(ctx->pool, ps.len, SIMCLR__GRAIN, part_sum_task, &ps);
    } else {
        backward_serial(ctx, d, x, w, dy, dw, dx, accumulate, ws);
    }
}
