/* Supervised losses on class logits: softmax cross-entropy with optional
 * label smoothing (fine-tuning) and SimCLR v2's distillation loss with an
 * optional cross-entropy on labelled rows.
 *
 * Both are computed row by row in double: with m the row maximum and
 * s = sum_k exp(z_k - m), lse = m + log s and lse - z_k = (m - z_k) + log s
 * >= 0, so no exponential overflows and no large value is subtracted from
 * another. The gradient is computed with the value (it costs the same
 * exponentials) and kept for simclr_loss_backward; rows are visited in order
 * and summed in double, so the result does not depend on threads.
 *
 * Cross-entropy, label y, smoothing eps, C classes, p = softmax(z):
 *   q_k = (1 - eps) [k = y] + eps / C,  row loss = sum_k q_k (lse - z_k),
 *   d/dz_k = p_k - q_k  (divided by N for the mean).
 * Distillation, temperature T, c = T^2 or 1, a = t / T, b = s / T:
 *   p_t = softmax(a), p_s = softmax(b), row loss = c sum_k p_t,k (lse_b - b_k),
 *   d/ds_k = c (p_s,k - p_t,k) / T.
 * Mixed: (1 - w) mean(distillation rows) + w mean(cross-entropy over the
 * labelled rows). */
#include <math.h>
#include <string.h>

#include "loss.h"
#include "supervised.h"

#define MAX_CLASSES (1 << 20)

typedef struct sup {
    int distill;
    int classes;
    double temperature;  /* distillation only */
    double smoothing;    /* SIMCLR_LOSS_LABEL_SMOOTHING */
    double label_weight; /* SIMCLR_LOSS_LABEL_WEIGHT */
    double scale_t2;     /* SIMCLR_LOSS_TEMPERATURE_SCALE, 0 or 1 */
    float *grad;         /* [rows, classes] gradient of the last forward */
    size_t cap;          /* floats */
    int64_t rows;
    double value;        /* the last forward's loss, in double (tests) */
    int has_forward;
} sup;

static void sup_destroy(simclr_context *ctx, void *impl)
{
    sup *s = impl;
    if (!s) return;
    simclr__free(ctx, s->grad);
    simclr__free(ctx, s);
}

static simclr_status sup_backward(void *impl, simclr_tensor *d)
{
    static const char fn[] = "simclr_loss_backward";
    sup *s = impl;
    if (!s->has_forward) return simclr__fail(SIMCLR_E_STATE, "%s: no forward precedes this backward", fn);
    SIMCLR__TRY(simclr__tensor_expect(d, fn, s->distill ? "d(loss)/d(student logits)" : "d(loss)/d(logits)",
                                      SIMCLR_F32, 2, (const int64_t[]){s->rows, s->classes}));
    memcpy(d->data, s->grad, (size_t)s->rows * (size_t)s->classes * sizeof(float));
    return SIMCLR_OK;
}

static const char *key_name(simclr_loss_param key)
{
    switch (key) {
    case SIMCLR_LOSS_TEMPERATURE: return "SIMCLR_LOSS_TEMPERATURE";
    case SIMCLR_LOSS_N_VIEWS: return "SIMCLR_LOSS_N_VIEWS";
    case SIMCLR_LOSS_CLASSES: return "SIMCLR_LOSS_CLASSES";
    case SIMCLR_LOSS_LABEL_SMOOTHING: return "SIMCLR_LOSS_LABEL_SMOOTHING";
    case SIMCLR_LOSS_LABEL_WEIGHT: return "SIMCLR_LOSS_LABEL_WEIGHT";
    case SIMCLR_LOSS_TEMPERATURE_SCALE: return "SIMCLR_LOSS_TEMPERATURE_SCALE";
    }
    return NULL;
}

static simclr_status unknown_key(const char *fn, simclr_loss_param key, const char *kind)
{
    const char *name = key_name(key);
    if (!name) return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    return simclr__fail(SIMCLR_E_INVALID, "%s: %s does not apply to a %s loss", fn, name, kind);
}

/* The field behind a key for this kind, or NULL; *writable and the range. */
static double *sup_field(sup *s, simclr_loss_param key, int *writable, double *lo, double *hi)
{
    *writable = 1, *lo = 0, *hi = 1;
    switch (key) {
    case SIMCLR_LOSS_LABEL_SMOOTHING: return &s->smoothing;
    case SIMCLR_LOSS_LABEL_WEIGHT: return s->distill ? &s->label_weight : NULL;
    case SIMCLR_LOSS_TEMPERATURE_SCALE: return s->distill ? &s->scale_t2 : NULL;
    case SIMCLR_LOSS_TEMPERATURE: *writable = 0; return s->distill ? &s->temperature : NULL;
    case SIMCLR_LOSS_CLASSES:
    case SIMCLR_LOSS_N_VIEWS: break;
    }
    return NULL;
}

static simclr_status sup_set(void *impl, const char *fn, simclr_loss_param key, double value)
{
    sup *s = impl;
    const char *kind = s->distill ? "distillation" : "cross-entropy";
    int writable;
    double lo, hi, *f = sup_field(s, key, &writable, &lo, &hi);
    if (key == SIMCLR_LOSS_CLASSES || (f && !writable))
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s is read-only (fixed at creation)", fn, key_name(key));
    if (!f) return unknown_key(fn, key, kind);
    if (!(value >= lo && value <= hi))
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s = %g out of range [%g, %g]", fn, key_name(key), value, lo, hi);
    if (key == SIMCLR_LOSS_TEMPERATURE_SCALE && value != 0 && value != 1)
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s = %g must be 0 or 1", fn, key_name(key), value);
    *f = value;
    return SIMCLR_OK;
}

static simclr_status sup_get(const void *impl, const char *fn, simclr_loss_param key, double *value)
{
    sup *s = (sup *)impl;
    if (key == SIMCLR_LOSS_CLASSES) {
        *value = s->classes;
        return SIMCLR_OK;
    }
    int writable;
    double lo, hi, *f = sup_field(s, key, &writable, &lo, &hi);
    if (!f) return unknown_key(fn, key, s->distill ? "distillation" : "cross-entropy");
    *value = *f;
    return SIMCLR_OK;
}

static const simclr__loss_ops ce_ops = {"cross-entropy", "simclr_loss_forward_labels", sup_destroy, sup_backward,
                                        sup_set, sup_get};
static const simclr__loss_ops distill_ops = {"distillation", "simclr_loss_forward_distill", sup_destroy,
                                             sup_backward, sup_set, sup_get};

static simclr_status sup_create(simclr_context *ctx, const char *fn, int distill, int n_classes, double temperature,
                                simclr_loss **out)
{
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (n_classes < 2 || n_classes > MAX_CLASSES)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_classes %d out of range 2..%d", fn, n_classes, MAX_CLASSES);
    if (distill && !(temperature >= 0.01 && temperature <= 100.0))
        return simclr__fail(SIMCLR_E_INVALID, "%s: temperature %g out of range [0.01, 100]", fn, temperature);
    sup *s = simclr__calloc(ctx, 1, sizeof *s);
    if (!s) return simclr__nomem(fn, sizeof *s);
    s->distill = distill;
    s->classes = n_classes;
    s->temperature = distill ? temperature : 0;
    s->scale_t2 = 1;
    return simclr__loss_new_kind(ctx, fn, distill ? &distill_ops : &ce_ops, s, out);
}

simclr_status simclr_cross_entropy_create(simclr_context *ctx, int n_classes, simclr_loss **out)
{
    return sup_create(ctx, "simclr_cross_entropy_create", 0, n_classes, 0, out);
}

simclr_status simclr_distill_create(simclr_context *ctx, int n_classes, double temperature, simclr_loss **out)
{
    return sup_create(ctx, "simclr_distill_create", 1, n_classes, temperature, out);
}

/* ---- settings for every kind ---------------------------------------------- */

simclr_status simclr_loss_set(simclr_loss *loss, simclr_loss_param key, double value)
{
    static const char fn[] = "simclr_loss_set";
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    const simclr__loss_ops *ops = simclr__loss_ops_of(loss);
    if (ops) return ops->set(simclr__loss_impl(loss), fn, key, value);
    if (key == SIMCLR_LOSS_TEMPERATURE || key == SIMCLR_LOSS_N_VIEWS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s is read-only (fixed at creation)", fn, key_name(key));
    return unknown_key(fn, key, "NT-Xent");
}

simclr_status simclr_loss_get(const simclr_loss *loss, simclr_loss_param key, double *value)
{
    static const char fn[] = "simclr_loss_get";
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    const simclr__loss_ops *ops = simclr__loss_ops_of(loss);
    if (ops) return ops->get(simclr__loss_impl(loss), fn, key, value);
    if (key == SIMCLR_LOSS_TEMPERATURE) {
        *value = simclr__loss_temperature(loss);
        return SIMCLR_OK;
    }
    if (key == SIMCLR_LOSS_N_VIEWS) {
        *value = simclr__loss_n_views(loss);
        return SIMCLR_OK;
    }
    return unknown_key(fn, key, "NT-Xent");
}

/* ---- the rows -------------------------------------------------------------- */

/* argmax with ties to the lower index (torch.argmax's rule). */
static int64_t row_argmax(const float *z, int64_t c)
{
    int64_t best = 0;
    for (int64_t k = 1; k < c; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

/* m = max_k scale z_k, returns log sum_k exp(scale z_k - m). */
static double row_logsum(const float *z, int64_t c, double scale, double *m)
{
    double mx = scale * z[0];
    for (int64_t k = 1; k < c; k++)
        if (scale * z[k] > mx) mx = scale * z[k];
    double sum = 0;
    for (int64_t k = 0; k < c; k++) sum += exp(scale * z[k] - mx);
    *m = mx;
    return log(sum);
}

/* Cross-entropy of one row: returns its loss, adds weight * (p - q) to g. */
static double ce_row(const float *z, int64_t c, int32_t y, double eps, double weight, float *g)
{
    double m, ls = row_logsum(z, c, 1.0, &m), loss = 0, off = eps / (double)c;
    for (int64_t k = 0; k < c; k++) {
        double nlp = (m - z[k]) + ls; /* -log p_k >= 0 */
        double q = off + (k == y ? 1.0 - eps : 0.0);
        loss += q * nlp;
        g[k] += (float)(weight * (exp(-nlp) - q));
    }
    return loss;
}

/* Distillation of one row (without c): returns -sum p_t log p_s, writes
 * weight * (p_s - p_t) to g. */
static double distill_row(const float *s, const float *t, int64_t c, double inv_t, double weight, float *g)
{
    double ms, mt, lss = row_logsum(s, c, inv_t, &ms), lst = row_logsum(t, c, inv_t, &mt), loss = 0;
    for (int64_t k = 0; k < c; k++) {
        double pt = exp(inv_t * t[k] - mt - lst);
        double nlps = (ms - inv_t * s[k]) + lss;
        loss += pt * nlps;
        g[k] = (float)(weight * (exp(-nlps) - pt));
    }
    return loss;
}

/* ---- forwards -------------------------------------------------------------- */

static sup *expect_kind(const char *fn, simclr_loss *loss, const simclr__loss_ops *want)
{
    const simclr__loss_ops *ops = simclr__loss_ops_of(loss);
    if (ops == want) return simclr__loss_impl(loss);
    simclr__fail(SIMCLR_E_INVALID, "%s: the loss is %s %s loss (compute it with %s)", fn,
                 ops ? "a" : "an", ops ? ops->kind : "NT-Xent", ops ? ops->forward : "simclr_loss_forward");
    return NULL;
}

static simclr_status check_finite(const char *fn, const char *what, const simclr_tensor *t)
{
    const float *x = simclr__f32(t);
    int64_t c = t->dims[1];
    for (int64_t i = 0; i < t->dims[0]; i++) {
        int bad = 0;
        for (int64_t k = 0; k < c; k++) bad |= !isfinite(x[i * c + k]);
        if (bad) return simclr__fail(SIMCLR_E_NUMERIC, "%s: %s row %lld holds a NaN or infinity", fn, what, (long long)i);
    }
    return SIMCLR_OK;
}

/* Grows the gradient buffer to rows x classes; the old one is released only
 * once the new one is had, so a failure keeps the previous forward. */
static simclr_status reserve(simclr_loss *loss, sup *s, const char *fn, int64_t rows)
{
    simclr_context *ctx = simclr__loss_ctx(loss);
    if ((uint64_t)rows > SIZE_MAX / sizeof(float) / (uint64_t)s->classes)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld rows of %d classes are too large", fn, (long long)rows,
                            s->classes);
    size_t need = (size_t)rows * (size_t)s->classes;
    if (need <= s->cap) return SIMCLR_OK;
    float *g = simclr__malloc(ctx, need * sizeof *g);
    if (!g) return simclr__nomem(fn, need * sizeof *g);
    simclr__free(ctx, s->grad);
    s->grad = g;
    s->cap = need;
    return SIMCLR_OK;
}

static simclr_status check_labels(const char *fn, const int32_t *labels, int64_t n, int classes, int allow_unlabelled)
{
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= classes || labels[i] < (allow_unlabelled ? -1 : 0))
            return simclr__fail(SIMCLR_E_INVALID, "%s: labels[%lld] = %d out of range %s..%d", fn, (long long)i,
                                (int)labels[i], allow_unlabelled ? "-1" : "0", classes - 1);
    return SIMCLR_OK;
}

simclr_status simclr_loss_forward_labels(simclr_loss *loss, const simclr_tensor *logits, const int32_t *labels,
                                         int64_t n_labels, float *value, float *accuracy)
{
    static const char fn[] = "simclr_loss_forward_labels";
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    SIMCLR__CHECK_ARG(logits, fn, "logits is NULL");
    SIMCLR__CHECK_ARG(labels, fn, "labels is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    sup *s = expect_kind(fn, loss, &ce_ops);
    if (!s) return SIMCLR_E_INVALID;
    SIMCLR__TRY(simclr__tensor_expect(logits, fn, "logits", SIMCLR_F32, 2, (const int64_t[]){-1, s->classes}));
    const int64_t n = logits->dims[0], c = s->classes;
    if (n_labels != n)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld labels for %lld rows of logits", fn, (long long)n_labels,
                            (long long)n);
    SIMCLR__TRY(check_labels(fn, labels, n, s->classes, 0));
    SIMCLR__TRY(check_finite(fn, "logits", logits));
    SIMCLR__TRY(reserve(loss, s, fn, n));
    /* Nothing fails past this point. */
    const float *z = simclr__f32(logits);
    memset(s->grad, 0, (size_t)(n * c) * sizeof(float));
    double total = 0;
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        total += ce_row(z + i * c, c, labels[i], s->smoothing, 1.0 / (double)n, s->grad + i * c);
        hits += row_argmax(z + i * c, c) == labels[i];
    }
    s->rows = n;
    s->value = total / (double)n;
    s->has_forward = 1;
    *value = (float)s->value;
    if (accuracy) *accuracy = (float)((double)hits / (double)n);
    return SIMCLR_OK;
}

simclr_status simclr_loss_forward_distill(simclr_loss *loss, const simclr_tensor *student,
                                          const simclr_tensor *teacher, const int32_t *labels, int64_t n_labels,
                                          float *value, float *accuracy)
{
    static const char fn[] = "simclr_loss_forward_distill";
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    SIMCLR__CHECK_ARG(student, fn, "student is NULL");
    SIMCLR__CHECK_ARG(teacher, fn, "teacher is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    if (!labels && n_labels != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: labels is NULL but n_labels is %lld", fn, (long long)n_labels);
    sup *s = expect_kind(fn, loss, &distill_ops);
    if (!s) return SIMCLR_E_INVALID;
    SIMCLR__TRY(simclr__tensor_expect(student, fn, "student", SIMCLR_F32, 2, (const int64_t[]){-1, s->classes}));
    const int64_t n = student->dims[0], c = s->classes;
    SIMCLR__TRY(simclr__tensor_expect(teacher, fn, "teacher (the student's shape)", SIMCLR_F32, 2,
                                      (const int64_t[]){n, c}));
    if (n_labels != 0 && n_labels != n)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld labels for %lld rows (0 or one per row)", fn,
                            (long long)n_labels, (long long)n);
    if (n_labels) SIMCLR__TRY(check_labels(fn, labels, n, s->classes, 1));
    SIMCLR__TRY(check_finite(fn, "student", student));
    SIMCLR__TRY(check_finite(fn, "teacher", teacher));
    SIMCLR__TRY(reserve(loss, s, fn, n));
    /* Nothing fails past this point. */
    const float *zs = simclr__f32(student), *zt = simclr__f32(teacher);
    const double tau = s->temperature, cscale = s->scale_t2 != 0 ? tau * tau : 1.0, w = s->label_weight;
    int64_t n_lab = 0;
    for (int64_t i = 0; i < n_labels; i++) n_lab += labels[i] >= 0;
    double dist = 0, ce = 0;
    int64_t agree = 0;
    for (int64_t i = 0; i < n; i++) {
        float *g = s->grad + i * c;
        dist += cscale * distill_row(zs + i * c, zt + i * c, c, 1.0 / tau, (1.0 - w) * cscale / (tau * (double)n), g);
        if (n_labels && labels[i] >= 0) {
            /* with w = 0 the term is computed for nothing but adds exact zeros */
            ce += ce_row(zs + i * c, c, labels[i], s->smoothing, w / (double)n_lab, g);
        }
        agree += row_argmax(zs + i * c, c) == row_argmax(zt + i * c, c);
    }
    s->rows = n;
    s->value = (1.0 - w) * dist / (double)n + (n_lab ? w * ce / (double)n_lab : 0.0);
    s->has_forward = 1;
    *value = (float)s->value;
    if (accuracy) *accuracy = (float)((double)agree / (double)n);
    return SIMCLR_OK;
}

double simclr__supervised_value(const simclr_loss *loss)
{
    const sup *s = simclr__loss_impl(loss);
    return s ? s->value : 0.0;
}

int simclr__is_supervised(const simclr_loss *loss)
{
    const simclr__loss_ops *ops = loss ? simclr__loss_ops_of(loss) : NULL;
    return ops == &ce_ops || ops == &distill_ops;
}

simclr_status simclr__supervised_reserve(simclr_loss *loss, int64_t rows)
{
    static const char fn[] = "supervised loss";
    if (!simclr__is_supervised(loss))
        return simclr__fail(SIMCLR_E_INVALID, "%s: not a cross-entropy or distillation loss", fn);
    if (rows < 1) return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld rows", fn, (long long)rows);
    return reserve(loss, simclr__loss_impl(loss), fn, rows);
}
