/* The multi-head self-attention core: per (image, head), scores
 * S = q k^T / sqrt(dh) [t, t], P = softmax(S) by rows, o = P v.
 *
 * Memory: P is never kept. Each pool worker owns two t x t blocks of the
 * workspace; the backward recomputes S and P with the same kernels (the
 * same bytes as in the forward), then
 *   dv = P^T do,  dP = do v^T,  dS = P * (dP - rowsum(dP * P)) / sqrt(dh),
 *   dq = dS k,    dk = dS^T q.
 * Every (image, head) pair is one task item; its products and softmax run
 * inline in the worker (a pool call inside a task does not fan out), so the
 * operations per pair, and the bytes, do not depend on the thread count. */
#include <math.h>

#include "transformer.h"

typedef struct {
    simclr_context *ctx;
    int64_t t, d, heads, dh;
    float scale;
    const float *qkv, *dout;
    float *o, *dqkv, *ws;
} attn_job;

int64_t simclr__attention_workspace(const simclr_context *ctx, int64_t t)
{
    return (int64_t)simclr__pool_size(ctx->pool) * 2 * t * t;
}

/* P = softmax(q k^T * scale) of pair (b, h) into p [t, t]. */
static void scores(const attn_job *j, int64_t b, int64_t h, float *p)
{
    const simclr__backend *be = j->ctx->backend;
    int64_t ld = 3 * j->d;
    const float *q = j->qkv + b * j->t * ld + h * j->dh, *k = q + j->d;
    be->gemm(j->ctx, 0, 1, j->t, j->t, j->dh, j->scale, q, ld, k, ld, 0.0f, p, j->t);
    be->softmax_forward(j->ctx, j->t, j->t, p, p);
}

static void fwd_task(void *arg, int64_t begin, int64_t end, int worker)
{
    const attn_job *j = arg;
    const simclr__backend *be = j->ctx->backend;
    float *p = j->ws + (int64_t)worker * 2 * j->t * j->t;
    int64_t ld = 3 * j->d;
    for (int64_t i = begin; i < end; i++) {
        int64_t b = i / j->heads, h = i % j->heads;
        scores(j, b, h, p);
        const float *v = j->qkv + b * j->t * ld + 2 * j->d + h * j->dh;
        be->gemm(j->ctx, 0, 0, j->t, j->dh, j->t, 1.0f, p, j->t, v, ld, 0.0f, j->o + b * j->t * j->d + h * j->dh,
                 j->d);
    }
}

void simclr__attention_forward(simclr_context *ctx, int64_t n, int64_t t, int64_t d, int64_t heads,
                               const float *qkv, float *o, float *ws)
{
    int64_t dh = d / heads;
    attn_job j = {ctx, t, d, heads, dh, (float)(1.0 / sqrt((double)dh)), qkv, NULL, o, NULL, ws};
    simclr__pool_for(ctx->pool, n * heads, 1, fwd_task, &j);
}

static void bwd_task(void *arg, int64_t begin, int64_t end, int worker)
{
    const attn_job *j = arg;
    const simclr__backend *be = j->ctx->backend;
    float *p = j->ws + (int64_t)worker * 2 * j->t * j->t, *dp = p + j->t * j->t;
    int64_t ld = 3 * j->d, t = j->t, dh = j->dh;
    for (int64_t i = begin; i < end; i++) {
        int64_t b = i / j->heads, h = i % j->heads;
        scores(j, b, h, p);
        const float *q = j->qkv + b * t * ld + h * dh, *k = q + j->d, *v = q + 2 * j->d;
        const float *dout = j->dout + b * t * j->d + h * dh;
        float *dq = j->dqkv + b * t * ld + h * dh, *dk = dq + j->d, *dv = dq + 2 * j->d;
        be->gemm(j->ctx, 1, 0, t, dh, t, 1.0f, p, t, dout, j->d, 0.0f, dv, ld);
        be->gemm(j->ctx, 0, 1, t, t, dh, 1.0f, dout, j->d, v, ld, 0.0f, dp, t);
        be->softmax_backward(j->ctx, t, t, p, dp, dp);
        be->gemm(j->ctx, 0, 0, t, dh, t, j->scale, dp, t, k, ld, 0.0f, dq, ld);
        be->gemm(j->ctx, 1, 0, t, dh, t, j->scale, dp, t, q, ld, 0.0f, dk, ld);
    }
}

void simclr__attention_backward(simclr_context *ctx, int64_t n, int64_t t, int64_t d, int64_t heads,
                                const float *qkv, const float *do_, float *dqkv, float *ws)
{
    int64_t dh = d / heads;
    attn_job j = {ctx, t, d, heads, dh, (float)(1.0 / sqrt((double)dh)), qkv, do_, NULL, dqkv, ws};
    simclr__pool_for(ctx->pool, n * heads, 1, bwd_task, &j);
}
