/* NT-Xent (normalized temperature-scaled cross-entropy), generalized to V
 * views per sample as SupCon's L_out: each anchor's target is uniform over the
 * V - 1 other views of its sample; V = 2 is SimCLR's loss.
 *
 * Forward: u = z / max(||z||, 1e-12) row-wise (F.normalize), logits
 * S = u u^T / T by one GEMM, self excluded from every softmax,
 * loss = mean over the M = V*N anchors of lse_i - mean_{p in pos(i)} S_ip.
 *
 * Backward: with P the row softmax and t the target,
 *   dL/dS_ij = (P_ij - t_ij) / M, and S_ij, S_ji both depend on u_i . u_j, so
 *   du = G u with G = (P + P^T - 2t) / (M T) (symmetric, zero diagonal),
 * one more GEMM; then dz_i = (du_i - u_i (u_i . du_i)) / ||z_i||, or
 * du_i / eps for rows shorter than eps (where the clamp is active).
 *
 * The logits are kept from forward; backward overwrites them with G, and a
 * second backward redoes the logits GEMM from the kept u.
 *
 * This file owns the buffers and the order of the passes; the passes run in
 * the backend (rows_normalize, gemm, ntxent_rows, ntxent_grad,
 * rows_normalize_backward). */
#include <math.h>
#include <string.h>

#include "loss.h"
#include "../backend/backend.h"

struct simclr_loss {
    simclr_context *ctx;
    double temperature;
    int n_views;
    /* Scratch, grown when the batch grows; capacities in elements. */
    float *u;        /* [M, D] normalized rows */
    float *s;        /* [M, M] logits, then G in backward */
    double *norm;    /* [M] ||z_i|| */
    double *lse;     /* [M] log-sum-exp of each logit row (self excluded) */
    double *row_loss;/* [M] */
    int *row_hit;    /* [M] 1 when the most similar other row is a positive */
    size_t u_cap, s_cap, row_cap;
    int64_t rows, dim;
    int has_forward;  /* a forward succeeded since creation */
    int logits_valid; /* s holds the logits of that forward (not G) */
    const simclr__loss_ops *ops; /* NULL: NT-Xent; else another kind (loss.h) */
    void *impl;                  /* that kind's state */
};

simclr_status simclr__loss_new_kind(simclr_context *ctx, const char *fn, const simclr__loss_ops *ops, void *impl,
                                    simclr_loss **out)
{
    simclr_loss *l = simclr__calloc(ctx, 1, sizeof *l);
    if (!l) {
        ops->destroy(ctx, impl);
        return simclr__nomem(fn, sizeof *l);
    }
    l->ctx = ctx;
    l->ops = ops;
    l->impl = impl;
    *out = l;
    return SIMCLR_OK;
}

const simclr__loss_ops *simclr__loss_ops_of(const simclr_loss *loss) { return loss->ops; }
void *simclr__loss_impl(const simclr_loss *loss) { return loss->impl; }

int simclr__loss_n_views(const simclr_loss *loss) { return loss->n_views; }
double simclr__loss_temperature(const simclr_loss *loss) { return loss->temperature; }
simclr_context *simclr__loss_ctx(const simclr_loss *loss) { return loss->ctx; }

simclr_status simclr_ntxent_create(simclr_context *ctx, double temperature, int n_views, simclr_loss **out)
{
    static const char fn[] = "simclr_ntxent_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (!(temperature >= 0.001 && temperature <= 100.0))
        return simclr__fail(SIMCLR_E_INVALID, "%s: temperature %g out of range [0.001, 100]", fn, temperature);
    if (n_views < 2)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_views %d, need at least 2", fn, n_views);
    simclr_loss *l = simclr__calloc(ctx, 1, sizeof *l);
    if (!l) return simclr__nomem(fn, sizeof *l);
    l->ctx = ctx;
    l->temperature = temperature;
    l->n_views = n_views;
    *out = l;
    return SIMCLR_OK;
}

static void free_scratch(simclr_loss *l)
{
    simclr__free(l->ctx, l->u);
    simclr__free(l->ctx, l->s);
    simclr__free(l->ctx, l->norm);
    simclr__free(l->ctx, l->lse);
    simclr__free(l->ctx, l->row_loss);
    simclr__free(l->ctx, l->row_hit);
}

void simclr_loss_destroy(simclr_loss *loss)
{
    if (!loss) return;
    if (loss->ops) loss->ops->destroy(loss->ctx, loss->impl);
    free_scratch(loss);
    simclr__free(loss->ctx, loss);
}

/* Allocates every buffer that must grow before releasing any old one, so a
 * failure leaves the previous forward's state usable. */
simclr_status simclr__loss_reserve(simclr_loss *l, int64_t rows, int64_t dim)
{
    static const char fn[] = "ntxent";
    if (l->ops) return simclr__fail(SIMCLR_E_INVALID, "%s: the loss is a %s loss, not NT-Xent", fn, l->ops->kind);
    size_t m = (size_t)rows, ud = (size_t)rows * (size_t)dim;
    if ((uint64_t)rows > SIZE_MAX / sizeof(float) / (size_t)rows)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld rows make a similarity matrix too large", fn, (long long)rows);
    size_t mm = m * m;
    float *u = NULL, *s = NULL;
    double *norm = NULL, *lse = NULL, *rl = NULL;
    int *hit = NULL;
    int grow_u = ud > l->u_cap, grow_s = mm > l->s_cap, grow_r = m > l->row_cap;
    if (grow_u && !(u = simclr__malloc(l->ctx, ud * sizeof *u))) return simclr__nomem(fn, ud * sizeof *u);
    if (grow_s && !(s = simclr__malloc(l->ctx, mm * sizeof *s))) {
        simclr__free(l->ctx, u);
        return simclr__nomem(fn, mm * sizeof *s);
    }
    if (grow_r) {
        norm = simclr__malloc(l->ctx, m * sizeof *norm);
        lse = norm ? simclr__malloc(l->ctx, m * sizeof *lse) : NULL;
        rl = lse ? simclr__malloc(l->ctx, m * sizeof *rl) : NULL;
        hit = rl ? simclr__malloc(l->ctx, m * sizeof *hit) : NULL;
        if (!hit) {
            simclr__free(l->ctx, u);
            simclr__free(l->ctx, s);
            simclr__free(l->ctx, norm);
            simclr__free(l->ctx, lse);
            simclr__free(l->ctx, rl);
            return simclr__nomem(fn, m * (3 * sizeof(double) + sizeof(int)));
        }
    }
    /* Every allocation succeeded: the old contents are given up only now. */
    if (grow_u || grow_s || grow_r) l->has_forward = 0;
    if (grow_u) {
        simclr__free(l->ctx, l->u);
        l->u = u;
        l->u_cap = ud;
    }
    if (grow_s) {
        simclr__free(l->ctx, l->s);
        l->s = s;
        l->s_cap = mm;
    }
    if (grow_r) {
        simclr__free(l->ctx, l->norm);
        simclr__free(l->ctx, l->lse);
        simclr__free(l->ctx, l->row_loss);
        simclr__free(l->ctx, l->row_hit);
        l->norm = norm;
        l->lse = lse;
        l->row_loss = rl;
        l->row_hit = hit;
        l->row_cap = m;
    }
    return SIMCLR_OK;
}

/* The finiteness check before anything changes: per worker flags, so no two
 * threads write one. */
typedef struct {
    const float *z;
    int64_t d;
    unsigned char bad[256];
} finite_job;

static void finite_task(void *arg, int64_t b, int64_t e, int w)
{
    finite_job *j = arg;
    int bad = 0;
    for (int64_t i = b * j->d; i < e * j->d; i++) bad |= !isfinite(j->z[i]);
    j->bad[w] |= (unsigned char)bad;
}

static void logits(simclr_loss *l)
{
    const int64_t m = l->rows, d = l->dim;
    l->ctx->backend->gemm(l->ctx, 0, 1, m, m, d, (float)(1.0 / l->temperature), l->u, d, l->u, d, 0.0f, l->s, m);
    l->logits_valid = 1;
}

static int64_t grain_rows(int64_t cols) { return cols >= 4096 ? 1 : 4096 / cols; }

simclr_status simclr_loss_forward(simclr_loss *loss, const simclr_tensor *z, float *value, float *accuracy)
{
    static const char fn[] = "simclr_loss_forward";
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    if (loss->ops)
        return simclr__fail(SIMCLR_E_INVALID, "%s: a %s loss is computed with %s", fn, loss->ops->kind,
                            loss->ops->forward);
    SIMCLR__TRY(simclr__tensor_expect(z, fn, "z", SIMCLR_F32, 2, (const int64_t[]){-1, -1}));
    const int64_t m = z->dims[0], d = z->dims[1];
    if (m % loss->n_views != 0)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: z has %lld rows, not a multiple of n_views = %d", fn,
                            (long long)m, loss->n_views);
    finite_job j = {simclr__f32(z), d, {0}};
    simclr__pool_for(loss->ctx->pool, m, grain_rows(d), finite_task, &j);
    int bad = 0;
    for (int w = 0; w < 256; w++) bad |= j.bad[w];
    if (bad) return simclr__fail(SIMCLR_E_NUMERIC, "%s: z holds a NaN or infinity", fn);
    SIMCLR__TRY(simclr__loss_reserve(loss, m, d));

    loss->rows = m;
    loss->dim = d;
    const simclr__backend *be = loss->ctx->backend;
    be->rows_normalize(loss->ctx, m, d, simclr__f32(z), loss->u, loss->norm);
    logits(loss);
    be->ntxent_rows(loss->ctx, m, m / loss->n_views, loss->n_views, loss->s, loss->lse, loss->row_loss,
                    loss->row_hit);
    double total = 0;
    int64_t hits = 0;
    for (int64_t i = 0; i < m; i++) {
        total += loss->row_loss[i];
        hits += loss->row_hit[i];
    }
    loss->has_forward = 1;
    *value = (float)(total / (double)m);
    if (accuracy) *accuracy = (float)((double)hits / (double)m);
    return SIMCLR_OK;
}

simclr_status simclr_loss_backward(simclr_loss *loss, simclr_tensor *dz)
{
    static const char fn[] = "simclr_loss_backward";
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    if (loss->ops) {
        SIMCLR__CHECK_ARG(dz, fn, "dz is NULL");
        return loss->ops->backward(loss->impl, dz);
    }
    if (!loss->has_forward) return simclr__fail(SIMCLR_E_STATE, "%s: no forward precedes this backward", fn);
    SIMCLR__TRY(simclr__tensor_expect(dz, fn, "dz", SIMCLR_F32, 2, (const int64_t[]){loss->rows, loss->dim}));
    const int64_t m = loss->rows, d = loss->dim;
    const simclr__backend *be = loss->ctx->backend;
    float *g = simclr__f32(dz);
    if (!loss->logits_valid) logits(loss);
    be->ntxent_grad(loss->ctx, m, m / loss->n_views, loss->n_views, 1.0 / ((double)m * loss->temperature), loss->s,
                    loss->lse);
    loss->logits_valid = 0;
    be->gemm(loss->ctx, 0, 0, m, d, m, 1.0f, loss->s, m, loss->u, d, 0.0f, g, d);
    be->rows_normalize_backward(loss->ctx, m, d, loss->u, loss->norm, g);
    return SIMCLR_OK;
}
