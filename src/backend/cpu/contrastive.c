/* The contrastive-loss kernels of the "cpu" backend: the shared row code
 * (backend/contrastive_rows.h) over the context's pool, whole rows per task,
 * so the bytes are those of the one-thread fallback at any thread count. */
#include "kernels.h"
#include "../contrastive_rows.h"

#define MAX_WORKERS 256

typedef struct {
    int64_t rows, d, m, n, kq;
    int views;
    double scale, temperature;
    const float *x, *u, *kh, *cs;
    float *y, *s, *g, *dq;
    double *norm, *lse, *row_loss, *pos;
    const double *cnorm, *clse, *cpos;
    int *row_hit;
    int64_t hits[MAX_WORKERS];
} rows_job;

/* Rows per task: about 4096 values each, whole rows. */
static int64_t grain(int64_t cols) { return cols >= 4096 ? 1 : 4096 / (cols > 0 ? cols : 1); }

static void normalize_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) simclr__row_normalize(j->d, j->x + i * j->d, j->y + i * j->d, j->norm + i);
}

void simclr__cpu_rows_normalize(simclr_context *ctx, int64_t rows, int64_t d, const float *x, float *y, double *norm)
{
    rows_job j = {.rows = rows, .d = d, .x = x, .y = y, .norm = norm};
    simclr__pool_for(ctx->pool, rows, grain(d), normalize_task, &j);
}

static void normalize_backward_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) simclr__row_normalize_backward(j->d, j->u + i * j->d, j->cnorm[i], j->g + i * j->d);
}

void simclr__cpu_rows_normalize_backward(simclr_context *ctx, int64_t rows, int64_t d, const float *u,
                                         const double *norm, float *g)
{
    rows_job j = {.rows = rows, .d = d, .u = u, .cnorm = norm, .g = g};
    simclr__pool_for(ctx->pool, rows, grain(d), normalize_backward_task, &j);
}

static void ntxent_rows_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) simclr__ntxent_row(j->m, j->n, j->views, j->cs, i, j->lse, j->row_loss, j->row_hit);
}

void simclr__cpu_ntxent_rows(simclr_context *ctx, int64_t m, int64_t n, int views, const float *s, double *lse,
                             double *row_loss, int *row_hit)
{
    rows_job j = {.m = m, .n = n, .views = views, .cs = s, .lse = lse, .row_loss = row_loss, .row_hit = row_hit};
    simclr__pool_for(ctx->pool, m, grain(m), ntxent_rows_task, &j);
}

/* Row i's pairs (i, c > i) shrink with i: task k takes rows k and m-1-k so
 * every task gets about the same number of pairs. */
static void ntxent_grad_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    (void)w;
    for (int64_t k = b; k < e; k++) {
        simclr__ntxent_grad_row(j->m, j->n, j->views, j->scale, j->s, j->clse, k);
        if (j->m - 1 - k != k) simclr__ntxent_grad_row(j->m, j->n, j->views, j->scale, j->s, j->clse, j->m - 1 - k);
    }
}

void simclr__cpu_ntxent_grad(simclr_context *ctx, int64_t m, int64_t n, int views, double scale, float *s,
                             const double *lse)
{
    rows_job j = {.m = m, .n = n, .views = views, .scale = scale, .s = s, .clse = lse};
    simclr__pool_for(ctx->pool, (m + 1) / 2, grain(m), ntxent_grad_task, &j);
}

static void infonce_rows_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    for (int64_t i = b; i < e; i++)
        j->hits[w] += simclr__infonce_row(j->d, j->kq, j->temperature, j->u, j->kh, j->cs, i, j->pos, j->lse);
}

int64_t simclr__cpu_infonce_rows(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double temperature,
                                 const float *u, const float *kh, const float *s, double *pos, double *lse)
{
    rows_job j = {.n = n, .d = d, .kq = kq, .temperature = temperature, .u = u, .kh = kh, .cs = s, .pos = pos,
                  .lse = lse};
    simclr__pool_for(ctx->pool, n, grain(kq), infonce_rows_task, &j);
    int64_t hits = 0;
    for (int w = 0; w < MAX_WORKERS; w++) hits += j.hits[w];
    return hits;
}

static void infonce_weights_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++)
        simclr__infonce_weights_row(j->d, j->kq, j->scale, j->s, j->cpos, j->clse, j->kh, j->dq, i);
}

void simclr__cpu_infonce_weights(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double scale, float *s,
                                 const double *pos, const double *lse, const float *kh, float *dq)
{
    rows_job j = {.n = n, .d = d, .kq = kq, .scale = scale, .s = s, .cpos = pos, .clse = lse, .kh = kh, .dq = dq};
    simclr__pool_for(ctx->pool, n, grain(kq), infonce_weights_task, &j);
}
