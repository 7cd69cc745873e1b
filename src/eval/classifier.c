/* The classifier: an embedder (evaluation transform + encoder shadow over
 * shared read-only weights, on the caller's context) followed by the linear
 * head read in place: logits = features W^T + b by one gemm per batch, then
 * a softmax per row in double. The head is never run as a module (its
 * arena belongs to whoever trains it), so classifiers of one pair of modules
 * run concurrently, one per thread on its own context, as embedders do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/backend.h"
#include "../core/image_list.h"
#include "../core/tensor.h"
#include "../model/linear_head.h"

#define MAX_OUT_SIDE 4096

struct simclr_classifier {
    simclr_context *ctx;
    simclr_embedder *emb;
    const simclr_module *head; /* borrowed; weights read at every run */
    int64_t dim, channels;
    int classes;
    float *feat;   /* [feat_n, dim] features of one batch */
    float *logits; /* [feat_n, classes] */
    int64_t feat_n;
};

/* Embedder messages name the embedder's function: say which call made them. */
static simclr_status relabel(simclr_status st, const char *fn)
{
    if (st == SIMCLR_OK) return st;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", simclr_last_error()); /* the message lives where the new one goes */
    const char *colon = strchr(msg, ':');
    return simclr__fail(st, "%s%s", fn, colon ? colon : ": the embedder failed");
}

simclr_status simclr_classifier_create(simclr_context *ctx, const simclr_module *encoder, const simclr_module *head,
                                       int64_t out_h, int64_t out_w, simclr_classifier **out)
{
    static const char fn[] = "simclr_classifier_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(head, fn, "head is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (out_h < 1 || out_h > MAX_OUT_SIDE || out_w < 1 || out_w > MAX_OUT_SIDE)
        return simclr__fail(SIMCLR_E_INVALID, "%s: output size %lld x %lld out of range 1..%d", fn, (long long)out_h,
                            (long long)out_w, MAX_OUT_SIDE);
    if (!simclr__is_linear_head(head))
        return simclr__fail(SIMCLR_E_INVALID, "%s: the head '%s' is not a linear head from simclr_linear_head_create",
                            fn, head->arch);
    if (head->in_dim != encoder->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the head '%s' takes %lld features, the encoder '%s' gives %lld", fn,
                            head->arch, (long long)head->in_dim, encoder->arch, (long long)encoder->out_dim);
    simclr_classifier *c = simclr__calloc(ctx, 1, sizeof *c);
    if (!c) return simclr__nomem(fn, sizeof *c);
    simclr_status st = relabel(simclr_embedder_create(ctx, encoder, out_h, out_w, &c->emb), fn);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, c);
        return st;
    }
    c->ctx = ctx;
    c->head = head;
    c->dim = encoder->out_dim;
    c->channels = encoder->in_dim;
    c->classes = (int)head->out_dim; /* 2..2^20: checked by simclr_linear_head_create */
    *out = c;
    return SIMCLR_OK;
}

void simclr_classifier_destroy(simclr_classifier *clf)
{
    if (!clf) return;
    simclr_embedder_destroy(clf->emb);
    simclr__free(clf->ctx, clf->feat);
    simclr__free(clf->ctx, clf->logits);
    simclr__free(clf->ctx, clf);
}

/* The transform's keys are the embedder's, value for value. */
static int transform_key(simclr_classifier_param key)
{
    switch (key) {
    case SIMCLR_CLASSIFIER_RESIZE: case SIMCLR_CLASSIFIER_BATCH: case SIMCLR_CLASSIFIER_NORMALIZE:
    case SIMCLR_CLASSIFIER_MEAN_0: case SIMCLR_CLASSIFIER_MEAN_1: case SIMCLR_CLASSIFIER_MEAN_2:
    case SIMCLR_CLASSIFIER_STD_0: case SIMCLR_CLASSIFIER_STD_1: case SIMCLR_CLASSIFIER_STD_2: return 1;
    case SIMCLR_CLASSIFIER_CLASSES: break;
    }
    return 0;
}

simclr_status simclr_classifier_set(simclr_classifier *clf, simclr_classifier_param key, double value)
{
    static const char fn[] = "simclr_classifier_set";
    SIMCLR__CHECK_ARG(clf, fn, "clf is NULL");
    if (key == SIMCLR_CLASSIFIER_CLASSES)
        return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_CLASSIFIER_CLASSES is read-only (the head's)", fn);
    if (!transform_key(key)) return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    return relabel(simclr_embedder_set(clf->emb, (simclr_embedder_param)key, value), fn);
}

simclr_status simclr_classifier_get(const simclr_classifier *clf, simclr_classifier_param key, double *value)
{
    static const char fn[] = "simclr_classifier_get";
    SIMCLR__CHECK_ARG(clf, fn, "clf is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    if (key == SIMCLR_CLASSIFIER_CLASSES) {
        *value = clf->classes;
        return SIMCLR_OK;
    }
    if (!transform_key(key)) return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    return relabel(simclr_embedder_get(clf->emb, (simclr_embedder_param)key, value), fn);
}

static simclr_status check_images(simclr_classifier *c, const char *fn, const simclr_image_list *images)
{
    SIMCLR__CHECK_ARG(c, fn, "clf is NULL");
    SIMCLR__CHECK_ARG(images, fn, "images is NULL");
    if (images->count < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: the image list is empty", fn);
    if (images->channels != c->channels)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the images have %d channels, the encoder takes %lld", fn,
                            images->channels, (long long)c->channels);
    return SIMCLR_OK;
}

/* Feature and logit buffers for batches of b images. */
static simclr_status reserve(simclr_classifier *c, const char *fn, int64_t b)
{
    if (b <= c->feat_n) return SIMCLR_OK;
    size_t fb = (size_t)b * (size_t)c->dim * sizeof(float), lb = (size_t)b * (size_t)c->classes * sizeof(float);
    float *f = simclr__malloc(c->ctx, fb);
    float *l = f ? simclr__malloc(c->ctx, lb) : NULL;
    if (!l) {
        simclr__free(c->ctx, f);
        return simclr__nomem(fn, fb + lb);
    }
    simclr__free(c->ctx, c->feat);
    simclr__free(c->ctx, c->logits);
    c->feat = f;
    c->logits = l;
    c->feat_n = b;
    return SIMCLR_OK;
}

/* Softmax of one row of logits in double, rounded once. */
static void softmax_row(const float *z, int64_t k, float *p)
{
    double m = z[0], s = 0;
    for (int64_t j = 1; j < k; j++)
        if (z[j] > m) m = z[j];
    for (int64_t j = 0; j < k; j++) s += exp((double)z[j] - m);
    for (int64_t j = 0; j < k; j++) p[j] = (float)(exp((double)z[j] - m) / s);
}

/* Probabilities of images[first .. first + k) into probs ([k, classes]). */
static simclr_status classify_batch(simclr_classifier *c, const char *fn, const simclr_image_list *images,
                                    int64_t first, int64_t k, float *probs)
{
    simclr_image_list sub = {c->ctx, images->channels, images->items + first, k, k};
    int64_t fs[2] = {k, c->dim};
    simclr_tensor *ft;
    SIMCLR__TRY(simclr_tensor_wrap(c->ctx, SIMCLR_F32, 2, fs, c->feat, &ft));
    simclr_status st = relabel(simclr_embedder_run(c->emb, &sub, ft), fn);
    simclr_tensor_destroy(ft);
    if (st != SIMCLR_OK) return st;
    const float *w, *b;
    simclr__linear_head_params(c->head, &w, &b);
    const int64_t C = c->classes;
    c->ctx->backend->gemm(c->ctx, 0, 1, k, C, c->dim, 1.0f, c->feat, c->dim, w, c->dim, 0.0f, c->logits, C);
    for (int64_t i = 0; i < k; i++) {
        float *z = c->logits + i * C;
        int bad = 0;
        for (int64_t j = 0; j < C; j++) {
            z[j] += b[j];
            bad |= !isfinite(z[j]);
        }
        if (bad)
            return simclr__fail(SIMCLR_E_NUMERIC, "%s: image %lld has a logit that is NaN or infinite", fn,
                                (long long)(first + i));
    }
    for (int64_t i = 0; i < k; i++) softmax_row(c->logits + i * C, C, probs + i * C);
    return SIMCLR_OK;
}

/* Probabilities of every image into probs [count, classes] (the caller's
 * private buffer), batch by batch; with progress, reports "classify" and
 * honours a stop request. */
static simclr_status classify(simclr_classifier *c, const char *fn, const simclr_image_list *images, float *probs,
                              int progress)
{
    double bd;
    simclr_embedder_get(c->emb, SIMCLR_EMBED_BATCH, &bd);
    const int64_t n = images->count, batch = (int64_t)bd < n ? (int64_t)bd : n;
    SIMCLR__TRY(reserve(c, fn, batch));
    if (progress) simclr__progress(c->ctx, "classify", 0, n);
    for (int64_t first = 0; first < n; first += batch) {
        int64_t k = n - first < batch ? n - first : batch;
        SIMCLR__TRY(classify_batch(c, fn, images, first, k, probs + first * c->classes));
        if (progress && simclr__progress(c->ctx, "classify", first + k, n) && first + k < n)
            return simclr__cancelled(c->ctx, fn, "image", first + k, n);
    }
    return SIMCLR_OK;
}

static simclr_status private_probs(simclr_classifier *c, const char *fn, int64_t n, float **out)
{
    size_t bytes = (size_t)n * (size_t)c->classes * sizeof(float);
    *out = simclr__malloc(c->ctx, bytes);
    return *out ? SIMCLR_OK : simclr__nomem(fn, bytes);
}

simclr_status simclr_classifier_run(simclr_classifier *clf, const simclr_image_list *images, simclr_tensor *probs)
{
    static const char fn[] = "simclr_classifier_run";
    SIMCLR__TRY(check_images(clf, fn, images));
    SIMCLR__TRY(simclr__tensor_expect(probs, fn, "probs", SIMCLR_F32, 2,
                                      (const int64_t[]){images->count, clf->classes}));
    float *p;
    SIMCLR__TRY(private_probs(clf, fn, images->count, &p));
    simclr_status st = classify(clf, fn, images, p, 0);
    if (st == SIMCLR_OK) memcpy(probs->data, p, simclr_tensor_bytes(probs));
    simclr__free(clf->ctx, p);
    return st;
}

/* Row ranking: descending probability, ties to the lower class. */
typedef struct ranked {
    float p;
    int32_t c;
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->c > y->c) - (x->c < y->c);
}

/* The top class of a row of probabilities (ties: the lower). */
static int32_t top1(const float *p, int64_t k)
{
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++)
        if (p[j] > p[best]) best = j;
    return (int32_t)best;
}

simclr_status simclr_classifier_topk(simclr_classifier *clf, const simclr_image_list *images, int k, int32_t *classes,
                                     float *probs, int64_t n_out)
{
    static const char fn[] = "simclr_classifier_topk";
    SIMCLR__TRY(check_images(clf, fn, images));
    SIMCLR__CHECK_ARG(classes, fn, "classes is NULL");
    if (k < 1 || k > clf->classes)
        return simclr__fail(SIMCLR_E_INVALID, "%s: k %d out of range 1..%d", fn, k, clf->classes);
    const int64_t n = images->count, C = clf->classes;
    if (n_out != n * k)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: n_out %lld, need count x k = %lld x %d = %lld", fn, (long long)n_out,
                            (long long)n, k, (long long)(n * k));
    float *p;
    SIMCLR__TRY(private_probs(clf, fn, n, &p));
    ranked *r = simclr__malloc(clf->ctx, (size_t)C * sizeof *r);
    if (!r) {
        simclr__free(clf->ctx, p);
        return simclr__nomem(fn, (size_t)C * sizeof *r);
    }
    simclr_status st = classify(clf, fn, images, p, 0);
    for (int64_t i = 0; i < n && st == SIMCLR_OK; i++) {
        for (int64_t j = 0; j < C; j++) r[j] = (ranked){p[i * C + j], (int32_t)j};
        qsort(r, (size_t)C, sizeof *r, ranked_cmp);
        for (int j = 0; j < k; j++) {
            classes[i * k + j] = r[j].c;
            if (probs) probs[i * k + j] = r[j].p;
        }
    }
    simclr__free(clf->ctx, r);
    simclr__free(clf->ctx, p);
    return st;
}

simclr_status simclr_classifier_evaluate(simclr_classifier *clf, const simclr_image_list *images,
                                         const int32_t *labels, int64_t n_labels, double *accuracy, int64_t *confusion,
                                         int64_t n_confusion, double *recall, int64_t n_recall)
{
    static const char fn[] = "simclr_classifier_evaluate";
    SIMCLR__TRY(check_images(clf, fn, images));
    SIMCLR__CHECK_ARG(labels, fn, "labels is NULL");
    SIMCLR__CHECK_ARG(accuracy, fn, "accuracy is NULL");
    const int64_t n = images->count, C = clf->classes;
    if (n_labels != n)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld labels for %lld images", fn, (long long)n_labels, (long long)n);
    if (confusion && n_confusion != C * C)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: n_confusion %lld, need classes^2 = %lld", fn,
                            (long long)n_confusion, (long long)(C * C));
    if (recall && n_recall != C)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: n_recall %lld, need classes = %lld", fn, (long long)n_recall,
                            (long long)C);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return simclr__fail(SIMCLR_E_INVALID, "%s: labels[%lld] = %d out of range 0..%lld", fn, (long long)i,
                                (int)labels[i], (long long)C - 1);
    /* Probabilities of one batch at a time, predictions for all. */
    double bd;
    simclr_embedder_get(clf->emb, SIMCLR_EMBED_BATCH, &bd);
    const int64_t batch = (int64_t)bd < n ? (int64_t)bd : n;
    size_t pb = (size_t)batch * (size_t)C * sizeof(float), qb = (size_t)n * sizeof(int32_t);
    float *p = simclr__malloc(clf->ctx, pb);
    int32_t *pred = p ? simclr__malloc(clf->ctx, qb) : NULL;
    if (!pred) {
        simclr__free(clf->ctx, p);
        return simclr__nomem(fn, pb + qb);
    }
    simclr_status st = reserve(clf, fn, batch);
    if (st == SIMCLR_OK) simclr__progress(clf->ctx, "classify", 0, n);
    for (int64_t first = 0; first < n && st == SIMCLR_OK; first += batch) {
        int64_t k = n - first < batch ? n - first : batch;
        st = classify_batch(clf, fn, images, first, k, p);
        for (int64_t i = 0; i < k && st == SIMCLR_OK; i++) pred[first + i] = top1(p + i * C, C);
        if (st == SIMCLR_OK && simclr__progress(clf->ctx, "classify", first + k, n) && first + k < n)
            st = simclr__cancelled(clf->ctx, fn, "image", first + k, n);
    }
    if (st == SIMCLR_OK)
        st = simclr_classification_metrics(pred, labels, n, (int)C, accuracy, confusion, n_confusion, recall, n_recall);
    simclr__free(clf->ctx, pred);
    simclr__free(clf->ctx, p);
    return st;
}

simclr_status simclr_classification_metrics(const int32_t *predicted, const int32_t *labels, int64_t n, int n_classes,
                                            double *accuracy, int64_t *confusion, int64_t n_confusion, double *recall,
                                            int64_t n_recall)
{
    static const char fn[] = "simclr_classification_metrics";
    SIMCLR__CHECK_ARG(predicted, fn, "predicted is NULL");
    SIMCLR__CHECK_ARG(labels, fn, "labels is NULL");
    SIMCLR__CHECK_ARG(accuracy, fn, "accuracy is NULL");
    if (n < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: n %lld must be at least 1", fn, (long long)n);
    if (n_classes < 1 || n_classes > (1 << 20))
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_classes %d out of range 1..%d", fn, n_classes, 1 << 20);
    const int64_t C = n_classes;
    if (confusion && n_confusion != C * C)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: n_confusion %lld, need n_classes^2 = %lld", fn,
                            (long long)n_confusion, (long long)(C * C));
    if (recall && n_recall != C)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: n_recall %lld, need n_classes = %lld", fn, (long long)n_recall,
                            (long long)C);
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes)
            return simclr__fail(SIMCLR_E_INVALID, "%s: labels[%lld] = %d out of range 0..%d", fn, (long long)i,
                                (int)labels[i], n_classes - 1);
        if (predicted[i] < 0 || predicted[i] >= n_classes)
            return simclr__fail(SIMCLR_E_INVALID, "%s: predicted[%lld] = %d out of range 0..%d", fn, (long long)i,
                                (int)predicted[i], n_classes - 1);
    }
    /* Validated: every output may be written now (nothing fails below). */
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) hits += predicted[i] == labels[i];
    *accuracy = (double)hits / (double)n;
    if (confusion) {
        memset(confusion, 0, (size_t)(C * C) * sizeof *confusion);
        for (int64_t i = 0; i < n; i++) confusion[(int64_t)labels[i] * C + predicted[i]]++;
    }
    if (recall) {
        /* Without scratch: classes in blocks of 256, one pass over the rows
         * per block (one pass for up to 256 classes). */
        enum { BLOCK = 256 };
        for (int64_t c0 = 0; c0 < C; c0 += BLOCK) {
            int64_t c1 = C - c0 < BLOCK ? C : c0 + BLOCK, total[BLOCK] = {0}, right[BLOCK] = {0};
            for (int64_t i = 0; i < n; i++)
                if (labels[i] >= c0 && labels[i] < c1) {
                    total[labels[i] - c0]++;
                    right[labels[i] - c0] += predicted[i] == labels[i];
                }
            for (int64_t c = c0; c < c1; c++)
                recall[c] = total[c - c0] ? (double)right[c - c0] / (double)total[c - c0] : NAN;
        }
    }
    return SIMCLR_OK;
}
