/* Sliding-window convolution for stride-1 layers with few input channels:
 * no im2col, no sgemm, every output accumulated in vector registers.
 *
 * Why: at 16-32 input channels an im2col product has a short inner
 * dimension (K = 9 cin = 144..288), and most of its time goes to writing
 * the column matrix, OpenBLAS packing it again and zeroing C (measured on
 * the width-16 Fashion-MNIST model: the sgemm kernel itself was 37% of an
 * EVAL forward, im2col plus packing 40%). Here the input is read in place.
 *
 * How: each image's input planes are copied once, zero-padded, into rows
 * of width wp = w + 2 pad. Output (oy, ox) then lives at flat position
 * q = oy * wp + ox of a plane of oh rows of wp, and tap (ky, kx) reads flat
 * position q + ky * wp + kx of every padded input plane: one unaligned
 * vector load serves VL neighbouring outputs. Positions with ox >= ow are
 * computed and thrown away (wp - ow of every wp: 7% at 28x28, 12% at 14x14).
 * The register block is CO output channels x NV vectors of positions; the
 * weights are rearranged so that the CO weights of one (input channel, tap)
 * are adjacent.
 *
 * The input gradient of a stride-1 convolution is the same kernel run on dy
 * with the flipped, transposed weights and padding k - 1 - pad (no col2im).
 * The weight gradient correlates dy, laid out on the same padded grid (zero
 * where ox >= ow), with the padded input: dw[co][ci][ky][kx] = sum over
 * images and q of dy[co][q] x[ci][q + ky wp + kx].
 *
 * Every output sums its terms in one fixed order (input channel, then tap),
 * one multiply and one add each (-ffp-contract=off; AMD's separate add
 * pipes make that as fast as a fused multiply-add): the same bytes in every
 * ISA copy and for any thread count, since a task writes its own outputs
 * only. */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#if defined(__AVX512F__)
#define VL 16
#else
#define VL 8
#endif
#define CO 4 /* output channels per register block */
#define NV 2 /* vectors of positions per register block */
#define BQ (NV * VL)

typedef float vf __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float)), may_alias));

/* Images per chunk: their padded copies stay under this many floats. */
#define CHUNK_FLOATS ((int64_t)1 << 20)

/* Stride s: the padded input is split into s x s phase planes (rows and
 * columns of one residue mod s), so that output column ox of tap (ky, kx)
 * reads column ox + kx / s of phase (ky mod s, kx mod s): consecutive again,
 * and the stride-1 kernel runs unchanged with per-tap offsets. */
typedef struct {
    int64_t s;     /* stride: 1 or 2 */
    int64_t wp;    /* row width of a phase plane (the padded row for stride 1) */
    int64_t hph;   /* rows of a phase plane */
    int64_t q;     /* flat output positions of one image: oh * wp */
    int64_t qr;    /* q rounded up to whole register blocks */
    int64_t phase; /* floats of one phase plane, with the slack the last block reads */
    int64_t plane; /* floats of one input channel: s * s phase planes */
    int64_t kk;
    int64_t cblocks; /* output-channel blocks of CO */
    int64_t nb;      /* images per chunk */
} geom;

static geom geometry(const simclr__conv_desc *d)
{
    geom g;
    g.s = d->stride;
    g.wp = (d->w + 2 * d->pad + g.s - 1) / g.s;
    g.hph = (d->h + 2 * d->pad + g.s - 1) / g.s;
    g.q = d->oh * g.wp;
    g.qr = (g.q + BQ - 1) / BQ * BQ;
    /* The last block reads up to qr - 1 + ((kh - 1) / s) wp + (kw - 1) / s,
     * and the weight gradient's 3-tap groups 2 further. */
    int64_t reach = g.qr + (d->kh - 1) / g.s * g.wp + (d->kw - 1) / g.s + 2;
    g.phase = g.hph * g.wp > reach ? g.hph * g.wp : reach;
    g.phase = (g.phase + 15) / 16 * 16;
    g.plane = g.s * g.s * g.phase;
    g.kk = d->kh * d->kw;
    g.cblocks = (d->cout + CO - 1) / CO;
    int64_t per_image = d->cin * g.plane;
    g.nb = CHUNK_FLOATS / (per_image > 0 ? per_image : 1);
    if (g.nb < 1) g.nb = 1;
    if (g.nb > d->n) g.nb = d->n;
    return g;
}

/* Flat offset, within one input channel's planes, of tap t's first read. */
static int64_t tap_offset(const simclr__conv_desc *d, const geom *g, int64_t t)
{
    int64_t ky = t / d->kw, kx = t % d->kw;
    return ((ky % g->s) * g->s + kx % g->s) * g->phase + ky / g->s * g->wp + kx / g->s;
}

int simclr__cpu_sliding_eligible(const simclr__conv_desc *d)
{
    /* Stride 1: pad <= k - 1 keeps the input gradient's padding k - 1 - pad
     * >= 0. Stride 2: forward and weight gradient only (the input gradient
     * of a strided layer is not a convolution; it stays on im2col). */
    return (d->stride == 1 || d->stride == 2) && d->kh >= 1 && d->kh <= 7 && d->kw >= 1 && d->kw <= 7 &&
           d->pad >= 0 && d->pad <= d->kh - 1 && d->pad <= d->kw - 1 && d->oh >= 1 && d->ow >= 1 && d->n >= 1 &&
           d->cin >= 1 && d->cout >= 1 && !(d->kh == 1 && d->kw == 1);
}

/* The input gradient as a forward convolution of dy with padding k - 1 - pad. */
static simclr__conv_desc flipped_desc(const simclr__conv_desc *d)
{
    simclr__conv_desc t = {.n = d->n, .cin = d->cout, .h = d->oh, .w = d->ow, .cout = d->cin, .kh = d->kh,
                           .kw = d->kw, .stride = 1, .pad = d->kh - 1 - d->pad, .oh = d->h, .ow = d->w};
    return t;
}

static size_t pass_workspace(simclr_context *ctx, const simclr__conv_desc *d)
{
    geom g = geometry(d);
    size_t t = (size_t)simclr__pool_size(ctx->pool);
    return (size_t)(g.cblocks * CO * d->cin * g.kk) + (size_t)(g.nb * d->cin * g.plane) + t * (size_t)(CO * g.qr);
}

/* The weight gradient's: double sums [cout][cin][kk] (two floats each, after
 * up to two floats that align them to 8 bytes), the
 * padded input chunk and dy on the padded grid [cout][nb][qr]. */
static size_t dw_workspace(const simclr__conv_desc *d)
{
    geom g = geometry(d);
    return 2 + (size_t)(2 * d->cout * d->cin * g.kk) + (size_t)(g.nb * d->cin * g.plane) +
           (size_t)(d->cout * g.nb * g.qr);
}

size_t simclr__cpu_sliding_workspace(simclr_context *ctx, const simclr__conv_desc *d)
{
    if (!simclr__cpu_sliding_eligible(d)) return 0;
    size_t f = pass_workspace(ctx, d), w = dw_workspace(d);
    if (d->stride == 1) {
        simclr__conv_desc t = flipped_desc(d);
        size_t b = pass_workspace(ctx, &t);
        if (b > f) f = b;
    }
    return w > f ? w : f;
}

typedef struct {
    const simclr__conv_desc *d;
    geom g;
    const float *x; /* [cin][n][h][w] */
    const float *wr; /* [cblocks][cin][kk][CO] */
    const float *bias;
    float *y; /* [cout][n][oh][ow] */
    float *padded; /* [nb][cin][plane] */
    float *scratch; /* [workers][CO][qr] */
    int64_t n0, cnt; /* the chunk */
    int64_t off[49]; /* flat offset of every tap */
    int accumulate;
    const float *scale, *shift, *res; /* the folded EVAL batch norm, or NULL */
    int relu;
} pass_job;

static void pad_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const pass_job *j = arg;
    const simclr__conv_desc *d = j->d;
    const geom *g = &j->g;
    for (int64_t r = b; r < e; r++) { /* r = image-in-chunk * cin + ci */
        int64_t i = r / d->cin, ci = r % d->cin;
        float *dst = j->padded + r * g->plane;
        const float *src = j->x + (ci * d->n + j->n0 + i) * d->h * d->w;
        memset(dst, 0, (size_t)g->plane * sizeof(float));
        if (g->s == 1) {
            for (int64_t iy = 0; iy < d->h; iy++)
                memcpy(dst + (iy + d->pad) * g->wp + d->pad, src + iy * d->w, (size_t)d->w * sizeof(float));
            continue;
        }
        for (int64_t iy = 0; iy < d->h; iy++) {
            int64_t py = iy + d->pad;
            for (int64_t ix = 0; ix < d->w; ix++) {
                int64_t px = ix + d->pad;
                dst[((py % 2) * 2 + px % 2) * g->phase + py / 2 * g->wp + px / 2] = src[iy * d->w + ix];
            }
        }
    }
}

/* CO x BQ outputs starting at flat position q0 of one image: the inner loop.
 * kk is a constant in the common 3x3 call, so the tap loop unrolls. */
static inline __attribute__((always_inline)) void block(const float *xp, int64_t plane, const float *wr,
                                                        int64_t cin, const int64_t *off, int64_t kk,
                                                        float *out, int64_t qr)
{
    vf a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    for (int64_t ci = 0; ci < cin; ci++) {
        const float *xc = xp + ci * plane, *wc = wr + ci * kk * CO;
        for (int64_t t = 0; t < kk; t++) {
            const float *s = xc + off[t], *w4 = wc + t * CO;
            vf x0 = *(const vf *)s, x1 = *(const vf *)(s + VL);
            float w0 = w4[0], w1 = w4[1], w2 = w4[2], w3 = w4[3];
            a00 += x0 * w0, a01 += x1 * w0;
            a10 += x0 * w1, a11 += x1 * w1;
            a20 += x0 * w2, a21 += x1 * w2;
            a30 += x0 * w3, a31 += x1 * w3;
        }
    }
    *(vf *)(out + 0 * qr) = a00, *(vf *)(out + 0 * qr + VL) = a01;
    *(vf *)(out + 1 * qr) = a10, *(vf *)(out + 1 * qr + VL) = a11;
    *(vf *)(out + 2 * qr) = a20, *(vf *)(out + 2 * qr + VL) = a21;
    *(vf *)(out + 3 * qr) = a30, *(vf *)(out + 3 * qr + VL) = a31;
}

/* One output plane through the folded batch norm: the expression of the
 * cpu backend's row_affine, so the bytes equal the two-pass fallback's. */
static void epilogue_affine(const pass_job *j, int64_t co, const float *src, float *dst, const float *res)
{
    const simclr__conv_desc *d = j->d;
    float sc = j->scale[co], t = j->shift[co];
    for (int64_t oy = 0; oy < d->oh; oy++, src += j->g.wp, dst += d->ow, res = res ? res + d->ow : NULL) {
        if (res && j->relu)
            for (int64_t ox = 0; ox < d->ow; ox++) {
                float v = src[ox] * sc + t + res[ox];
                dst[ox] = v > 0.0f ? v : 0.0f;
            }
        else if (res)
            for (int64_t ox = 0; ox < d->ow; ox++) dst[ox] = src[ox] * sc + t + res[ox];
        else if (j->relu)
            for (int64_t ox = 0; ox < d->ow; ox++) {
                float v = src[ox] * sc + t;
                dst[ox] = v > 0.0f ? v : 0.0f;
            }
        else
            for (int64_t ox = 0; ox < d->ow; ox++) dst[ox] = src[ox] * sc + t;
    }
}

/* One task: output channels [cb CO, cb CO + CO) of one image of the chunk. */
static void conv_task(void *arg, int64_t b, int64_t e, int wk)
{
    const pass_job *j = arg;
    const simclr__conv_desc *d = j->d;
    const geom *g = &j->g;
    float *scratch = j->scratch + (size_t)wk * (size_t)(CO * g->qr);
    for (int64_t r = b; r < e; r++) {
        int64_t i = r / g->cblocks, cb = r % g->cblocks;
        const float *xp = j->padded + i * d->cin * g->plane, *wr = j->wr + cb * d->cin * g->kk * CO;
        for (int64_t q0 = 0; q0 < g->qr; q0 += BQ) {
            if (g->kk == 9)
                block(xp + q0, g->plane, wr, d->cin, j->off, 9, scratch + q0, g->qr);
            else
                block(xp + q0, g->plane, wr, d->cin, j->off, g->kk, scratch + q0, g->qr);
        }
        int64_t co_end = cb * CO + CO < d->cout ? cb * CO + CO : d->cout;
        for (int64_t co = cb * CO; co < co_end; co++) {
            const float *src = scratch + (co - cb * CO) * g->qr;
            int64_t at = (co * d->n + j->n0 + i) * d->oh * d->ow;
            float *dst = j->y + at;
            if (j->scale) {
                epilogue_affine(j, co, src, dst, j->res ? j->res + at : NULL);
                continue;
            }
            float bv = j->bias ? j->bias[co] : 0.0f;
            for (int64_t oy = 0; oy < d->oh; oy++, src += g->wp, dst += d->ow) {
                if (j->accumulate)
                    for (int64_t ox = 0; ox < d->ow; ox++) dst[ox] += src[ox];
                else if (j->bias)
                    for (int64_t ox = 0; ox < d->ow; ox++) dst[ox] = src[ox] + bv;
                else
                    memcpy(dst, src, (size_t)d->ow * sizeof(float));
            }
        }
    }
}

/* wr[cb][ci][t][c] = w[cb CO + c][ci][t] (zero past cout), or for the input
 * gradient's pass (flip) the transposed, flipped w[ci][cb CO + c][kk - 1 - t]
 * of the original layer, whose cout is this pass's cin. */
static void arrange_weights(const simclr__conv_desc *d, const geom *g, const float *w, int flip, float *wr)
{
    for (int64_t cb = 0; cb < g->cblocks; cb++)
        for (int64_t ci = 0; ci < d->cin; ci++)
            for (int64_t t = 0; t < g->kk; t++)
                for (int64_t c = 0; c < CO; c++) {
                    int64_t co = cb * CO + c;
                    float v = 0.0f;
                    if (co < d->cout)
                        v = flip ? w[(ci * d->cout + co) * g->kk + (g->kk - 1 - t)] : w[(co * d->cin + ci) * g->kk + t];
                    wr[((cb * d->cin + ci) * g->kk + t) * CO + c] = v;
                }
}

static void run_pass(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w, int flip,
                     const float *bias, float *y, int accumulate, float *ws, const pass_job *affine)
{
    pass_job j = {.d = d, .g = geometry(d), .x = x, .bias = bias, .y = y, .accumulate = accumulate};
    if (affine) j.scale = affine->scale, j.shift = affine->shift, j.res = affine->res, j.relu = affine->relu;
    const geom *g = &j.g;
    float *wr = ws;
    j.wr = wr;
    j.padded = wr + g->cblocks * CO * d->cin * g->kk;
    j.scratch = j.padded + g->nb * d->cin * g->plane;
    arrange_weights(d, g, w, flip, wr);
    for (int64_t t = 0; t < g->kk; t++) j.off[t] = tap_offset(d, g, t);
    for (j.n0 = 0; j.n0 < d->n; j.n0 += g->nb) {
        j.cnt = j.n0 + g->nb <= d->n ? g->nb : d->n - j.n0;
        simclr__pool_for(ctx->pool, j.cnt * d->cin, 1, pad_task, &j);
        simclr__pool_for(ctx->pool, j.cnt * g->cblocks, 1, conv_task, &j);
    }
}

void simclr__cpu_sliding_forward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                 const float *bias, float *y, float *ws)
{
    run_pass(ctx, d, x, w, 0, bias, y, 0, ws, NULL);
}

void simclr__cpu_sliding_forward_affine(simclr_context *ctx, const simclr__conv_desc *d, const float *x,
                                        const float *w, const float *scale, const float *shift, const float *res,
                                        int relu, float *y, float *ws)
{
    pass_job a = {.scale = scale, .shift = shift, .res = res, .relu = relu};
    run_pass(ctx, d, x, w, 0, NULL, y, 0, ws, &a);
}

void simclr__cpu_sliding_input_grad(simclr_context *ctx, const simclr__conv_desc *d, const float *w,
                                    const float *dy, float *dx, int accumulate, float *ws)
{
    simclr__conv_desc t = flipped_desc(d);
    run_pass(ctx, &t, dy, w, 1, NULL, dx, accumulate, ws, NULL);
}

/* ---- Weight gradient ----
 * Accumulated in 8-lane vectors on every ISA (the lane a term lands in must
 * not depend on the vector width, or the copies would round differently),
 * the lanes folded in a fixed tree into double sums that run over the
 * images in order, a fold every span of images holding about DW_FOLD_TERMS
 * positions (512 float terms per lane). A task owns the sums of 2 output channels x 1 input
 * channel, so no sum is split between workers. */
typedef float v8 __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float)), may_alias));
#define DW_CO 2
#define DW_FOLD_TERMS 4096

typedef struct {
    const simclr__conv_desc *d;
    geom g;
    const float *x, *dy;
    float *padded, *dyp;
    double *sums; /* [cout][cin][kk] */
    int64_t n0, cnt;
    int64_t off[49]; /* flat offset of every tap */
} dw_job;

static void pad_dy_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const dw_job *j = arg;
    const simclr__conv_desc *d = j->d;
    for (int64_t r = b; r < e; r++) { /* r = co * cnt + image-in-chunk */
        int64_t co = r / j->cnt, i = r % j->cnt;
        float *dst = j->dyp + (co * j->g.nb + i) * j->g.qr;
        const float *src = j->dy + (co * d->n + j->n0 + i) * d->oh * d->ow;
        memset(dst, 0, (size_t)j->g.qr * sizeof(float));
        for (int64_t oy = 0; oy < d->oh; oy++) memcpy(dst + oy * j->g.wp, src + oy * d->ow, (size_t)d->ow * sizeof(float));
    }
}

/* The 8 lanes in a fixed tree, as a double. A macro, not a function: a
 * vector argument would change the portable copy's ABI. */
#define fold8(v) ((double)((((v)[0] + (v)[1]) + ((v)[2] + (v)[3])) + (((v)[4] + (v)[5]) + ((v)[6] + (v)[7]))))

#if defined(__AVX512F__)
/* A 3x3 kernel's nine taps for both output channels in one pass over the
 * span: 18 accumulators, which fit AVX-512's 32 vector registers (AVX2's 16
 * would spill). Each accumulator receives the same terms in the same order
 * as in the three-tap passes of dw_task (images in order, positions in
 * order, lane by lane), and is folded at the same points: the same bytes,
 * from one read of each plane instead of three (the three-tap passes
 * stream a span's planes from L2 three times). Measured on Zen 4, one
 * thread, batch 256, medians of 3 alternated runs: 16>16 @28 25.7 -> 19.7
 * ms, 32>32 @14 23.6 -> 21.0 ms. */
#define DW_ONE_PASS 1
static void dw_span_3x3(const dw_job *j, int64_t ci, int64_t co0, int64_t co1, int64_t i0, int64_t i1)
{
    const simclr__conv_desc *d = j->d;
    const geom *g = &j->g;
    const int64_t *o = j->off;
    v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0}, a8 = {0};
    v8 b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0}, b4 = {0}, b5 = {0}, b6 = {0}, b7 = {0}, b8 = {0};
    for (int64_t i = i0; i < i1; i++) {
        /* Stride 1: tap (ky, kx) reads row ky's pointer + kx. */
        const float *xs = j->padded + (i * d->cin + ci) * g->plane;
        const float *r0 = xs + o[0], *r1 = xs + o[3], *r2 = xs + o[6];
        const float *y0 = j->dyp + (co0 * g->nb + i) * g->qr, *y1 = j->dyp + (co1 * g->nb + i) * g->qr;
        for (int64_t q = 0; q < g->qr; q += 8) {
            v8 u = *(const v8 *)(y0 + q), v = *(const v8 *)(y1 + q), t;
#define DW_TAP(k, r, kx) t = *(const v8 *)(r + q + kx), a##k += u * t, b##k += v * t
            DW_TAP(0, r0, 0); DW_TAP(1, r0, 1); DW_TAP(2, r0, 2);
            DW_TAP(3, r1, 0); DW_TAP(4, r1, 1); DW_TAP(5, r1, 2);
            DW_TAP(6, r2, 0); DW_TAP(7, r2, 1); DW_TAP(8, r2, 2);
#undef DW_TAP
        }
    }
    double *s0 = j->sums + (co0 * d->cin + ci) * 9, *s1 = j->sums + (co1 * d->cin + ci) * 9;
    s0[0] += fold8(a0), s0[1] += fold8(a1), s0[2] += fold8(a2), s0[3] += fold8(a3), s0[4] += fold8(a4);
    s0[5] += fold8(a5), s0[6] += fold8(a6), s0[7] += fold8(a7), s0[8] += fold8(a8);
    if (co1 == co0) return;
    s1[0] += fold8(b0), s1[1] += fold8(b1), s1[2] += fold8(b2), s1[3] += fold8(b3), s1[4] += fold8(b4);
    s1[5] += fold8(b5), s1[6] += fold8(b6), s1[7] += fold8(b7), s1[8] += fold8(b8);
}
#elif defined(__AVX2__)
/* AVX2's 16 registers hold the nine accumulators of one output channel:
 * per image, one pass for each of the two channels, the accumulators kept in
 * memory between images (the image's planes stay in L1 for the second
 * pass). Same terms, same order, same folds: the same bytes. Measured with
 * this copy on Zen 4 (medians of 5 alternated runs, as above): 16>16 @28
 * 23.6 -> 21.3 ms, 32>32 @14 26.5 -> 20.5 ms. */
#define DW_ONE_PASS 1
static void dw_span_3x3(const dw_job *j, int64_t ci, int64_t co0, int64_t co1, int64_t i0, int64_t i1)
{
    const simclr__conv_desc *d = j->d;
    const geom *g = &j->g;
    const int64_t *o = j->off;
    v8 acc[2][9];
    memset(acc, 0, sizeof acc);
    const int64_t cos[2] = {co0, co1}, n_co = co1 == co0 ? 1 : 2;
    for (int64_t i = i0; i < i1; i++) {
        const float *xs = j->padded + (i * d->cin + ci) * g->plane;
        for (int64_t c = 0; c < n_co; c++) {
            const float *y = j->dyp + (cos[c] * g->nb + i) * g->qr;
            const float *r0 = xs + o[0], *r1 = xs + o[3], *r2 = xs + o[6]; /* stride 1, as above */
            v8 a0 = acc[c][0], a1 = acc[c][1], a2 = acc[c][2], a3 = acc[c][3], a4 = acc[c][4];
            v8 a5 = acc[c][5], a6 = acc[c][6], a7 = acc[c][7], a8 = acc[c][8];
            for (int64_t q = 0; q < g->qr; q += 8) {
                v8 u = *(const v8 *)(y + q), t;
#define DW_TAP(k, r, kx) t = *(const v8 *)(r + q + kx), a##k += u * t
                DW_TAP(0, r0, 0); DW_TAP(1, r0, 1); DW_TAP(2, r0, 2);
                DW_TAP(3, r1, 0); DW_TAP(4, r1, 1); DW_TAP(5, r1, 2);
                DW_TAP(6, r2, 0); DW_TAP(7, r2, 1); DW_TAP(8, r2, 2);
#undef DW_TAP
            }
            acc[c][0] = a0, acc[c][1] = a1, acc[c][2] = a2, acc[c][3] = a3, acc[c][4] = a4;
            acc[c][5] = a5, acc[c][6] = a6, acc[c][7] = a7, acc[c][8] = a8;
        }
    }
    for (int64_t c = 0; c < n_co; c++) {
        double *sc = j->sums + (cos[c] * d->cin + ci) * 9;
        for (int k = 0; k < 9; k++) sc[k] += fold8(acc[c][k]);
    }
}
#else
#define DW_ONE_PASS 0
#endif

/* Tasks: (co block of DW_CO, ci); every image of the chunk, every tap row,
 * taps in groups of three along the row (a short last group's extra taps
 * read the plane's slack and are dropped). */
static void dw_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const dw_job *j = arg;
    const simclr__conv_desc *d = j->d;
    const geom *g = &j->g;
    int64_t nblk = (d->cout + DW_CO - 1) / DW_CO;
    /* Images per fold: about DW_FOLD_TERMS positions in float before the
     * lanes go into double (folding after every small image cost a quarter
     * of the loop at 14x14); the span's planes stay in cache across the
     * tap loops. */
    int64_t span = (DW_FOLD_TERMS + g->qr - 1) / g->qr;
    for (int64_t r = b; r < e; r++) {
        int64_t cb = r % nblk, ci = r / nblk, co0 = cb * DW_CO, co1 = co0 + 1 < d->cout ? co0 + 1 : co0;
        for (int64_t i0 = 0; i0 < j->cnt; i0 += span) {
            int64_t i1 = i0 + span < j->cnt ? i0 + span : j->cnt;
            if (DW_ONE_PASS && d->kh == 3 && d->kw == 3 && g->s == 1) {
#if DW_ONE_PASS
                dw_span_3x3(j, ci, co0, co1, i0, i1);
#endif
                continue;
            }
            for (int64_t ky = 0; ky < d->kh; ky++)
                for (int64_t kx = 0; kx < d->kw; kx += 3) {
                    v8 a0 = {0}, a1 = {0}, a2 = {0}, b0 = {0}, b1 = {0}, b2 = {0};
                    const int64_t *o = j->off + ky * d->kw + kx;
                    int64_t o1 = kx + 1 < d->kw ? o[1] : o[0], o2 = kx + 2 < d->kw ? o[2] : o[0];
                    for (int64_t i = i0; i < i1; i++) {
                        const float *xs = j->padded + (i * d->cin + ci) * g->plane;
                        const float *xs0 = xs + o[0], *xs1 = xs + o1, *xs2 = xs + o2;
                        const float *y0 = j->dyp + (co0 * g->nb + i) * g->qr, *y1 = j->dyp + (co1 * g->nb + i) * g->qr;
                        for (int64_t q = 0; q < g->qr; q += 8) {
                            v8 u = *(const v8 *)(y0 + q), v = *(const v8 *)(y1 + q);
                            v8 x0 = *(const v8 *)(xs0 + q), x1 = *(const v8 *)(xs1 + q),
                               x2 = *(const v8 *)(xs2 + q);
                            a0 += u * x0, a1 += u * x1, a2 += u * x2;
                            b0 += v * x0, b1 += v * x1, b2 += v * x2;
                        }
                    }
                    double *s0 = j->sums + (co0 * d->cin + ci) * g->kk + ky * d->kw + kx;
                    double *s1 = j->sums + (co1 * d->cin + ci) * g->kk + ky * d->kw + kx;
                    s0[0] += fold8(a0);
                    if (kx + 1 < d->kw) s0[1] += fold8(a1);
                    if (kx + 2 < d->kw) s0[2] += fold8(a2);
                    if (co1 == co0) continue;
                    s1[0] += fold8(b0);
                    if (kx + 1 < d->kw) s1[1] += fold8(b1);
                    if (kx + 2 < d->kw) s1[2] += fold8(b2);
                }
        }
    }
}

void simclr__cpu_sliding_weight_grad(simclr_context *ctx, const simclr__conv_desc *d, const float *x,
                                     const float *dy, float *dw, float *ws)
{
    dw_job j = {.d = d, .g = geometry(d), .x = x, .dy = dy};
    const geom *g = &j.g;
    int64_t nw = d->cout * d->cin * g->kk;
    /* The workspace may start at any float of an arena: align the doubles. */
    float *base = (float *)(void *)(((uintptr_t)ws + 7) & ~(uintptr_t)7);
    j.sums = (double *)(void *)base;
    j.padded = base + 2 * nw;
    j.dyp = j.padded + g->nb * d->cin * g->plane;
    memset(j.sums, 0, (size_t)nw * sizeof(double));
    for (int64_t t = 0; t < g->kk; t++) j.off[t] = tap_offset(d, g, t);
    /* pad_task reads the forward job's fields: x, n0, padded, g, d. */
    pass_job p = {.d = d, .g = *g, .x = x, .padded = j.padded};
    for (j.n0 = 0; j.n0 < d->n; j.n0 += g->nb) {
        j.cnt = j.n0 + g->nb <= d->n ? g->nb : d->n - j.n0;
        p.n0 = j.n0;
        simclr__pool_for(ctx->pool, j.cnt * d->cin, 1, pad_task, &p);
        simclr__pool_for(ctx->pool, d->cout * j.cnt, 1, pad_dy_task, &j);
        simclr__pool_for(ctx->pool, (d->cout + DW_CO - 1) / DW_CO * d->cin, 1, dw_task, &j);
    }
    for (int64_t k = 0; k < nw; k++) dw[k] += (float)j.sums[k];
}

/* The default rule, fitted with bench/bench_conv on an idle 2-core Zen 3
 * (AVX2, batch 256, 2 threads; ms forward/backward of one layer):
 *  - forward, stride 1, up to 64 input channels: 16>16 @28 13.9 vs im2col
 *    19.4, 32>32 @14 13.5 vs 18.0, 64>64 @7 14.6 vs 24.9, 3>64 @32 22.7 vs
 *    28.0 (Winograd, where AUTO picks it, comes first);
 *  - backward, stride 1, at most 32 channels in and out: 16>16 @28 36.7 vs
 *    51.7, 32>32 @14 32.2 vs 33.0 (a one-channel stem measured 9.0 vs 4.5
 *    with its input gradient, which a network never asks for);
 *  - stride 2 stays on im2col by default: its phase planes lost in both
 *    passes (16>32 @28 11.1 vs 10.1 forward, 32.4 vs 22.1 backward), so
 *    only conv_exact = 2 runs it (the kernel tests). */
#define SLIDING_MAX_CIN 64
#define SLIDING_BWD_MAX_CHANNELS 32

int simclr__cpu_sliding_choose(const simclr_context *ctx, const simclr__conv_desc *d, int backward)
{
    if (!simclr__cpu_sliding_eligible(d) || ctx->conv_exact == 1) return 0;
    if (ctx->conv_exact == 2) return 1;
    if (d->stride != 1) return 0;
    if (backward) return d->cin <= SLIDING_BWD_MAX_CHANNELS && d->cout <= SLIDING_BWD_MAX_CHANNELS;
    return d->cin <= SLIDING_MAX_CIN;
}
