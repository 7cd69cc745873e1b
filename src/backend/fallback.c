/* Generic versions of the backend's optional slots, filled into a context's
 * copy of its backend's table at creation (backend/context_create.c): the
 * layers call every slot unconditionally, and a backend implements an
 * optional slot only where it can do better than these. */
#include "backend.h"
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

void simclr__backend_fill_fallbacks(simclr__backend *t)
{
    if (!t->context_acquire) t->context_acquire = no_op;
    if (!t->context_release) t->context_release = no_op;
    if (!t->conv2d_forward_affine) t->conv2d_forward_affine = conv2d_forward_affine;
    if (!t->opt_update) t->opt_update = opt_update;
    if (!t->opt_sq_norms) t->opt_sq_norms = opt_sq_norms;
}
