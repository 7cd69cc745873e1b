/* The weighted kNN monitor of the SSL literature (InstDisc, MoCo): cosine
 * similarity to every train feature, the k most similar vote for their label
 * with weight exp(sim / temperature), the heaviest class wins. */
#include <math.h>
#include <string.h>

#include "../backend/backend.h"
#include "eval_util.h"

/* Similarity blocks hold at most this many floats (16 MB). */
#define KNN_BLOCK_FLOATS (1 << 22)

typedef struct knn_job {
    const float *sims;        /* [rows, ntr] raw dot products of this block */
    const float *test_norm;   /* norms of this block's test rows */
    const float *train_norm;  /* [ntr] */
    const int32_t *train_labels, *test_labels;
    int64_t ntr, first;
    int k, n_classes;
    double temperature;
    unsigned char *scratch;   /* per worker: k heap slots + n_classes scores */
    size_t scratch_stride;
    int64_t *correct;         /* per worker */
} knn_job;

typedef struct hslot {
    float sim;
    int64_t idx;
} hslot;

/* a is a worse neighbour than b: lower similarity, or equal and a later index. */
static int worse(hslot a, hslot b) { return a.sim < b.sim || (a.sim == b.sim && a.idx > b.idx); }

static void sift_down(hslot *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(h[l], h[m])) m = l;
        if (r < n && worse(h[r], h[m])) m = r;
        if (m == i) return;
        hslot t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void knn_rows(void *arg, int64_t begin, int64_t end, int worker)
{
    knn_job *j = arg;
    hslot *heap = (hslot *)(void *)(j->scratch + (size_t)worker * j->scratch_stride);
    double *score = (double *)(void *)(heap + j->k);
    for (int64_t r = begin; r < end; r++) {
        const float *s = j->sims + r * j->ntr;
        float tn = j->test_norm[r];
        int n = 0;
        /* A min-heap of the k best seen so far: its root is the worst of them. */
        for (int64_t t = 0; t < j->ntr; t++) {
            float den = tn * j->train_norm[t];
            hslot c = {den > 0 ? s[t] / den : 0.0f, t};
            if (n < j->k) {
                heap[n++] = c;
                if (n == j->k)
                    for (int i = j->k / 2 - 1; i >= 0; i--) sift_down(heap, n, i);
            } else if (worse(heap[0], c)) {
                heap[0] = c;
                sift_down(heap, n, 0);
            }
        }
        /* Shifting by the best similarity leaves the vote unchanged and keeps
         * exp() finite for small temperatures. */
        float best = heap[0].sim;
        for (int i = 0; i < n; i++)
            if (heap[i].sim > best) best = heap[i].sim;
        memset(score, 0, (size_t)j->n_classes * sizeof *score);
        for (int i = 0; i < n; i++)
            score[j->train_labels[heap[i].idx]] += exp(((double)heap[i].sim - best) / j->temperature);
        int pred = 0;
        for (int c = 1; c < j->n_classes; c++)
            if (score[c] > score[pred]) pred = c;
        if (pred == j->test_labels[j->first + r]) j->correct[worker]++;
    }
}

static void row_norms(const float *x, int64_t n, int64_t d, float *out)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t q = 0; q < d; q++) s += (double)x[i * d + q] * x[i * d + q];
        out[i] = (float)sqrt(s);
    }
}

simclr_status simclr_knn_eval(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels,
                              const simclr_tensor *test, const int32_t *test_labels, int n_classes, int k,
                              double temperature, double *top1)
{
    static const char fn[] = "simclr_knn_eval";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(top1, fn, "top1 is NULL");
    SIMCLR__TRY(simclr__eval_check(fn, train, train_labels, test, test_labels, n_classes, 1));
    int64_t ntr = train->dims[0], nte = test->dims[0], d = train->dims[1];
    if (k < 1 || k > ntr)
        return simclr__fail(SIMCLR_E_INVALID, "%s: k %d out of range 1..%lld (the train set size)", fn, k, (long long)ntr);
    if (!(temperature > 0) || !isfinite(temperature))
        return simclr__fail(SIMCLR_E_INVALID, "%s: temperature %g must be finite and > 0", fn, temperature);

    int64_t rows = KNN_BLOCK_FLOATS / ntr;
    if (rows < 1) rows = 1;
    if (rows > nte) rows = nte;
    int workers = simclr__pool_size(ctx->pool);
    size_t stride = ((size_t)k * sizeof(hslot) + (size_t)n_classes * sizeof(double) + 63) & ~(size_t)63;
    float *sims = simclr__malloc(ctx, (size_t)(rows * ntr) * sizeof(float));
    float *trn = simclr__malloc(ctx, (size_t)ntr * sizeof(float));
    float *tsn = simclr__malloc(ctx, (size_t)nte * sizeof(float));
    unsigned char *scratch = simclr__malloc(ctx, stride * (size_t)workers);
    int64_t *correct = simclr__calloc(ctx, (size_t)workers, sizeof *correct);
    if (!sims || !trn || !tsn || !scratch || !correct) {
        simclr__free(ctx, sims);
        simclr__free(ctx, trn);
        simclr__free(ctx, tsn);
        simclr__free(ctx, scratch);
        simclr__free(ctx, correct);
        return simclr__nomem(fn, (size_t)(rows * ntr) * sizeof(float));
    }
    row_norms(simclr__f32(train), ntr, d, trn);
    row_norms(simclr__f32(test), nte, d, tsn);
    knn_job job = {sims, NULL, trn, train_labels, test_labels, ntr, 0, k, n_classes, temperature, scratch, stride,
                   correct};
    for (int64_t first = 0; first < nte; first += rows) {
        int64_t m = nte - first < rows ? nte - first : rows;
        /* sims = test_block * train^T: the dot products; the norms divide later. */
        ctx->backend->gemm(ctx, 0, 1, m, ntr, d, 1.0f, simclr__f32(test) + first * d, d, simclr__f32(train), d, 0.0f,
                           sims, ntr);
        job.first = first;
        job.test_norm = tsn + first;
        simclr__pool_for(ctx->pool, m, 1, knn_rows, &job);
        if (simclr__progress(ctx, "knn", first + m, nte) && first + m < nte) {
            simclr__free(ctx, sims);
            simclr__free(ctx, trn);
            simclr__free(ctx, tsn);
            simclr__free(ctx, scratch);
            simclr__free(ctx, correct);
            return simclr__cancelled(ctx, fn, "test row", first + m, nte);
        }
    }
    int64_t total = 0;
    for (int i = 0; i < workers; i++) total += correct[i];
    simclr__free(ctx, sims);
    simclr__free(ctx, trn);
    simclr__free(ctx, tsn);
    simclr__free(ctx, scratch);
    simclr__free(ctx, correct);
    *top1 = (double)total / (double)nte;
    return SIMCLR_OK;
}

simclr_status simclr_knn_eval_n(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels,
                                int64_t n_train_labels, const simclr_tensor *test, const int32_t *test_labels,
                                int64_t n_test_labels, int n_classes, int k, double temperature, double *top1)
{
    SIMCLR__TRY(simclr__eval_check_lengths("simclr_knn_eval_n", train, n_train_labels, test, n_test_labels));
    return simclr_knn_eval(ctx, train, train_labels, test, test_labels, n_classes, k, temperature, top1);
}
