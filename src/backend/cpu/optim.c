/* The optimizer kernels of the "cpu" backend: the shared rules
 * (backend/opt_rules.h) over the context's pool. The update is element by
 * element, so any split gives the same bytes; the squared norms are summed in
 * pieces fixed by n (simclr__cpu_piece_width) and added in piece order, so
 * they too are the same at any thread count. */
#include "kernels.h"
#include "../opt_rules.h"

typedef struct {
    const simclr__opt_rule *rule;
    int64_t n;
    float *w, *s0, *s1;
    const float *g, *cw;
    float wd;
    double ww[SIMCLR__CPU_PIECES_MAX], gg[SIMCLR__CPU_PIECES_MAX];
} opt_job;

static void update_task(void *arg, int64_t b, int64_t e, int worker)
{
    const opt_job *j = arg;
    (void)worker;
    simclr__opt_rule_range(j->rule, b, e, j->w, j->g, j->s0, j->s1);
}

void simclr__cpu_opt_update(simclr_context *ctx, const simclr__opt_rule *r, int64_t n, float *w, const float *g,
                            float *s0, float *s1)
{
    opt_job j = {.rule = r, .n = n, .w = w, .g = g, .s0 = s0, .s1 = s1};
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN, update_task, &j);
}

static void norms_piece(void *arg, int64_t p, int64_t lo, int64_t hi)
{
    opt_job *j = arg;
    simclr__opt_sq_norms_range(lo, hi, j->cw, j->g, j->wd, &j->ww[p], &j->gg[p]);
}

void simclr__cpu_opt_sq_norms(simclr_context *ctx, int64_t n, const float *w, const float *g, float wd, double *ww,
                              double *gg)
{
    opt_job j = {.n = n, .cw = w, .g = g, .wd = wd};
    simclr__cpu_for_pieces(ctx, n, norms_piece, &j);
    double sw = 0, sg = 0;
    for (int64_t p = 0; p < simclr__cpu_pieces(n); p++) sw += j.ww[p], sg += j.gg[p];
    *ww = sw;
    *gg = sg;
}
