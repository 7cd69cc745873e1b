/* Generic versions of the backend's optional slots, filled into a context's
 * copy of its backend's table at creation (backend/context_create.c): the
 * layers call every slot unconditionally, and a backend implements an
 * optional slot only where it can do better than these. */
#include "backend.h"
#include "contrastive_rows.h"
#include "opt_rules.h"

static void no_op(simclr_context *ctx) { (void)ctx; }

/* conv2d_forward_affine: the convolution, then the affine pass over y. */
static void conv2d_forward_affine(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                  const float *scale, const float *shift, const float *res, int relu, float *y,
                                  float *ws)
{
    ctx->backend->conv2d_forward(ctx, d, x, w, NULL, y, ws);
    ctx->backend->row_affine(ctx, d->cout, d->n * d->oh * d->ow, y, scale, shift, res, relu, y);
}

static void opt_update(simclr_context *ctx, const simclr__opt_rule *r, int64_t n, float *w, const float *g, float *s0,
                       float *s1)
{
    (void)ctx;
    simclr__opt_rule_range(r, 0, n, w, g, s0, s1);
}

static void opt_sq_norms(simclr_context *ctx, int64_t n, const float *w, const float *g, float wd, double *ww,
                         double *gg)
{
    (void)ctx;
    simclr__opt_sq_norms_range(0, n, w, g, wd, ww, gg);
}

static void rows_normalize(simclr_context *ctx, int64_t rows, int64_t d, const float *x, float *y, double *norm)
{
    (void)ctx;
    for (int64_t i = 0; i < rows; i++) simclr__row_normalize(d, x + i * d, y + i * d, norm + i);
}

static void rows_normalize_backward(simclr_context *ctx, int64_t rows, int64_t d, const float *u, const double *norm,
                                    float *g)
{
    (void)ctx;
    for (int64_t i = 0; i < rows; i++) simclr__row_normalize_backward(d, u + i * d, norm[i], g + i * d);
}

static void ntxent_rows(simclr_context *ctx, int64_t m, int64_t n, int views, const float *s, double *lse,
                        double *row_loss, int *row_hit)
{
    (void)ctx;
    for (int64_t i = 0; i < m; i++) simclr__ntxent_row(m, n, views, s, i, lse, row_loss, row_hit);
}

static void ntxent_grad(simclr_context *ctx, int64_t m, int64_t n, int views, double scale, float *s,
                        const double *lse)
{
    (void)ctx;
    for (int64_t i = 0; i < m; i++) simclr__ntxent_grad_row(m, n, views, scale, s, lse, i);
}

static int64_t infonce_rows(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double temperature,
                            const float *u, const float *kh, const float *s, double *pos, double *lse)
{
    (void)ctx;
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) hits += simclr__infonce_row(d, kq, temperature, u, kh, s, i, pos, lse);
    return hits;
}

static void infonce_weights(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double scale, float *s,
                            const double *pos, const double *lse, const float *kh, float *dq)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) simclr__infonce_weights_row(d, kq, scale, s, pos, lse, kh, dq, i);
}

void simclr__backend_fill_fallbacks(simclr__backend *t)
{
    if (!t->context_acquire) t->context_acquire = no_op;
    if (!t->context_release) t->context_release = no_op;
    if (!t->conv2d_forward_affine) t->conv2d_forward_affine = conv2d_forward_affine;
    if (!t->opt_update) t->opt_update = opt_update;
    if (!t->opt_sq_norms) t->opt_sq_norms = opt_sq_norms;
    if (!t->rows_normalize) t->rows_normalize = rows_normalize;
    if (!t->rows_normalize_backward) t->rows_normalize_backward = rows_normalize_backward;
    if (!t->ntxent_rows) t->ntxent_rows = ntxent_rows;
    if (!t->ntxent_grad) t->ntxent_grad = ntxent_grad;
    if (!t->infonce_rows) t->infonce_rows = infonce_rows;
    if (!t->infonce_weights) t->infonce_weights = infonce_weights;
}
