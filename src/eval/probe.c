/* The linear probe: multinomial logistic regression on standardized frozen
 * features, trained by full-batch Nesterov accelerated gradient descent.
 *
 * Standardization is folded into the weights instead of copying the
 * features: with V the weights in standardized space (z = (x - mu) * inv_s),
 * logits = x W' + b' where W' = inv_s (.) V and b' = c - mu^T W', and the
 * gradient of V is inv_s (.) (X^T G - mu colsum(G)). Two gemms per pass.
 * simclr__probe_fit is one fit; simclr_linear_probe runs it once and
 * simclr_linear_probe_select (probe_select.c) once per decay of its grid. */
#include <math.h>
#include <string.h>

#include "../backend/backend.h"
#include "probe.h"

typedef struct probe {
    simclr_context *ctx;
    const float *x; /* train [n, d] */
    const int32_t *y;
    int64_t n, d, k;
    float *mu, *inv_s; /* [d] */
    float *w_eff, *b_eff; /* [d, k], [k] */
    float *logits;     /* [n, k] */
    float *colsum;     /* [k] */
    float *gx;         /* [d, k] X^T G */
} probe;

/* W', b' from standardized-space weights v [d, k] and bias c [k]. */
static void effective(probe *p, const float *v, const float *c)
{
    for (int64_t k = 0; k < p->k; k++) p->b_eff[k] = c[k];
    for (int64_t j = 0; j < p->d; j++)
        for (int64_t k = 0; k < p->k; k++) {
            float w = p->inv_s[j] * v[j * p->k + k];
            p->w_eff[j * p->k + k] = w;
            p->b_eff[k] -= p->mu[j] * w;
        }
}

/* logits[n, k] = x W' + b'. */
static void forward(probe *p, const float *x, int64_t n, float *logits)
{
    p->ctx->backend->gemm(p->ctx, 0, 0, n, p->k, p->d, 1.0f, x, p->d, p->w_eff, p->k, 0.0f, logits, p->k);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < p->k; k++) logits[i * p->k + k] += p->b_eff[k];
}

/* Gradient of the mean cross-entropy + wd/2 |v|^2 at (v, c) into (gv, gc). */
static void gradient(probe *p, const float *v, const float *c, double wd, float *gv, float *gc)
{
    int64_t n = p->n, k = p->k, d = p->d;
    effective(p, v, c);
    forward(p, p->x, n, p->logits);
    /* logits -> G = (softmax - onehot) / n, in place */
    for (int64_t i = 0; i < n; i++) {
        float *z = p->logits + i * k;
        float mx = z[0];
        for (int64_t q = 1; q < k; q++) mx = z[q] > mx ? z[q] : mx;
        double s = 0;
        for (int64_t q = 0; q < k; q++) s += exp((double)z[q] - mx);
        for (int64_t q = 0; q < k; q++) z[q] = (float)((exp((double)z[q] - mx) / s - (q == p->y[i])) / (double)n);
    }
    p->ctx->backend->sum_rows(p->ctx, n, k, p->logits, p->colsum);
    p->ctx->backend->gemm(p->ctx, 1, 0, d, k, n, 1.0f, p->x, d, p->logits, k, 0.0f, p->gx, k);
    for (int64_t j = 0; j < d; j++)
        for (int64_t q = 0; q < k; q++)
            gv[j * k + q] = p->inv_s[j] * (p->gx[j * k + q] - p->mu[j] * p->colsum[q]) + (float)wd * v[j * k + q];
    memcpy(gc, p->colsum, (size_t)k * sizeof *gc);
}

/* Largest eigenvalue of A^T A / n, A = [standardized x, 1], by power
 * iteration (deterministic start). Uses p->logits' first column as scratch. */
static double top_eigen(probe *p, float *vec /* [d + 1] */, float *tmp /* [d + 1] */, float *u /* [n] */)
{
    int64_t n = p->n, d = p->d;
    for (int64_t j = 0; j <= d; j++) vec[j] = 1.0f + 0.01f * (float)(j % 7);
    double lambda = 0;
    for (int it = 0; it < 50; it++) {
        double norm = 0;
        for (int64_t j = 0; j <= d; j++) norm += (double)vec[j] * vec[j];
        norm = sqrt(norm);
        if (norm == 0) return 0;
        for (int64_t j = 0; j <= d; j++) vec[j] = (float)(vec[j] / norm);
        /* u = A vec = x (inv_s (.) v) + (v_d - mu . (inv_s (.) v)) */
        double off = vec[d];
        for (int64_t j = 0; j < d; j++) {
            tmp[j] = p->inv_s[j] * vec[j];
            off -= (double)p->mu[j] * tmp[j];
        }
        p->ctx->backend->gemm(p->ctx, 0, 0, n, 1, d, 1.0f, p->x, d, tmp, 1, 0.0f, u, 1);
        double su = 0;
        for (int64_t i = 0; i < n; i++) {
            u[i] += (float)off;
            su += u[i];
        }
        /* vec' = A^T u / n */
        p->ctx->backend->gemm(p->ctx, 1, 0, d, 1, n, 1.0f, p->x, d, u, 1, 0.0f, tmp, 1);
        double rq = 0;
        for (int64_t j = 0; j < d; j++) {
            float nv = (float)(p->inv_s[j] * (tmp[j] - p->mu[j] * su) / (double)n);
            rq += (double)nv * vec[j];
            vec[j] = nv;
        }
        float last = (float)(su / (double)n);
        rq += (double)last * vec[d];
        vec[d] = last;
        lambda = rq;
    }
    return lambda;
}

static void argmax_count(const float *logits, const int32_t *y, int64_t n, int64_t k, int64_t *correct)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t q = 1; q < k; q++)
            if (logits[i * k + q] > logits[i * k + best]) best = q;
        *correct += best == y[i];
    }
}

simclr_status simclr__probe_check_epochs(const char *fn, int epochs)
{
    if (epochs < 1 || epochs > 100000)
        return simclr__fail(SIMCLR_E_INVALID, "%s: epochs %d out of range 1..100000", fn, epochs);
    return SIMCLR_OK;
}

simclr_status simclr__probe_check_decay(const char *fn, int64_t index, double weight_decay)
{
    if (weight_decay >= 0 && isfinite(weight_decay)) return SIMCLR_OK;
    if (index < 0) return simclr__fail(SIMCLR_E_INVALID, "%s: weight_decay %g must be finite and >= 0", fn, weight_decay);
    return simclr__fail(SIMCLR_E_INVALID, "%s: decays[%lld] = %g must be finite and >= 0", fn, (long long)index,
                        weight_decay);
}

size_t simclr__probe_floats(int64_t d, int64_t k, int64_t rows)
{
    size_t dk = (size_t)(d * k);
    /* One block: mu, inv_s, w_eff, gx, 4 parameter-sized vectors (x, x_prev,
     * y, grad) for v and for c, b_eff, colsum, power-iteration vectors, logits. */
    return 2 * (size_t)d + 2 * dk + 4 * dk + 4 * (size_t)k + 2 * (size_t)k + 2 * ((size_t)d + 1) +
           (size_t)rows * (size_t)(k > 1 ? k : 1);
}

simclr_status simclr__probe_fit(simclr_context *ctx, float *mem, const simclr__probe_data *data, int epochs,
                                double weight_decay, const simclr__probe_report *rep, int64_t *correct)
{
    const char *fn = rep->fn;
    int64_t n = data->n, d = data->d, k = data->k, nte = data->nt;
    size_t dk = (size_t)(d * k);
    float *f = mem;
    probe p = {ctx, data->x, data->y, n, d, k, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    p.mu = f, f += d;
    p.inv_s = f, f += d;
    p.w_eff = f, f += dk;
    p.gx = f, f += dk;
    float *v = f, *v_prev = f + dk, *vy = f + 2 * dk, *gv = f + 3 * dk;
    f += 4 * dk;
    float *c = f, *c_prev = f + k, *cy = f + 2 * k, *gc = f + 3 * k;
    f += 4 * k;
    p.b_eff = f, f += k;
    p.colsum = f, f += k;
    float *pv = f, *ptmp = f + d + 1;
    f += 2 * (d + 1);
    p.logits = f;

    /* Train statistics in double; a constant feature gets inv_s = 0 (ignored). */
    const float *x = p.x;
    int64_t constant = 0;
    for (int64_t j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) s += x[i * d + j];
        double m = s / (double)n;
        for (int64_t i = 0; i < n; i++) s2 += (x[i * d + j] - m) * (x[i * d + j] - m);
        double sd = sqrt(s2 / (double)n);
        p.mu[j] = (float)m;
        p.inv_s[j] = sd > 1e-12 * (fabs(m) + 1) ? (float)(1.0 / sd) : 0.0f;
        constant += p.inv_s[j] == 0.0f;
    }
    if (constant && rep->warn_constant)
        simclr__log(ctx, SIMCLR_LOG_WARN, "%s: %lld of %lld features are constant over the train set and are ignored",
                    fn, (long long)constant, (long long)d);

    /* Step 1/L: the softmax cross-entropy Hessian is bounded by
     * 0.5 * lambda_max(A^T A / n) (A with the bias column) plus the decay;
     * the 1.1 margin covers power iteration's slight underestimate. */
    double lip = 0.5 * top_eigen(&p, pv, ptmp, p.logits) * 1.1 + weight_decay;
    float step = (float)(1.0 / (lip > 1e-12 ? lip : 1e-12));
    memset(v, 0, 3 * dk * sizeof *v);
    memset(c, 0, 3 * (size_t)k * sizeof *c);
    double t = 1;
    for (int it = 0; it < epochs; it++) {
        gradient(&p, vy, cy, weight_decay, gv, gc);
        memcpy(v_prev, v, dk * sizeof *v);
        memcpy(c_prev, c, (size_t)k * sizeof *c);
        double t_next = 0.5 * (1 + sqrt(1 + 4 * t * t)), mom = (t - 1) / t_next;
        for (size_t i = 0; i < dk; i++) {
            v[i] = vy[i] - step * gv[i];
            vy[i] = v[i] + (float)mom * (v[i] - v_prev[i]);
        }
        for (int64_t i = 0; i < k; i++) {
            c[i] = cy[i] - step * gc[i];
            cy[i] = c[i] + (float)mom * (c[i] - c_prev[i]);
        }
        t = t_next;
        int64_t done = rep->done + it + 1;
        if (simclr__progress(ctx, rep->what, done, rep->total) && done < rep->total)
            return simclr__cancelled(ctx, fn, "iteration", done, rep->total);
    }
    for (size_t i = 0; i < dk; i++)
        if (!isfinite(v[i]))
            return simclr__fail(SIMCLR_E_NUMERIC, "%s: the classifier's weights diverged (weight_decay %g)", fn,
                                weight_decay);
    effective(&p, v, c);
    forward(&p, data->xt, nte, p.logits);
    *correct = 0;
    argmax_count(p.logits, data->yt, nte, k, correct);
    return SIMCLR_OK;
}

simclr_status simclr_linear_probe(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels,
                                  const simclr_tensor *test, const int32_t *test_labels, int n_classes, int epochs,
                                  double weight_decay, double *top1)
{
    static const char fn[] = "simclr_linear_probe";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(top1, fn, "top1 is NULL");
    SIMCLR__TRY(simclr__eval_check(fn, train, train_labels, test, test_labels, n_classes, 2));
    SIMCLR__TRY(simclr__probe_check_epochs(fn, epochs));
    SIMCLR__TRY(simclr__probe_check_decay(fn, -1, weight_decay));
    int64_t n = train->dims[0], d = train->dims[1], nte = test->dims[0];
    size_t floats = simclr__probe_floats(d, n_classes, n > nte ? n : nte);
    float *mem = simclr__malloc(ctx, floats * sizeof(float));
    if (!mem) return simclr__nomem(fn, floats * sizeof(float));
    simclr__probe_data data = {simclr__f32(train), train_labels, n, simclr__f32(test), test_labels, nte, d, n_classes};
    simclr__probe_report rep = {fn, "probe", 0, epochs, 1};
    int64_t correct = 0;
    simclr_status st = simclr__probe_fit(ctx, mem, &data, epochs, weight_decay, &rep, &correct);
    simclr__free(ctx, mem);
    if (st == SIMCLR_OK) *top1 = (double)correct / (double)nte;
    return st;
}

simclr_status simclr_linear_probe_n(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels,
                                    int64_t n_train_labels, const simclr_tensor *test, const int32_t *test_labels,
                                    int64_t n_test_labels, int n_classes, int epochs, double weight_decay,
                                    double *top1)
{
    SIMCLR__TRY(simclr__eval_check_lengths("simclr_linear_probe_n", train, n_train_labels, test, n_test_labels));
    return simclr_linear_probe(ctx, train, train_labels, test, test_labels, n_classes, epochs, weight_decay, top1);
}
