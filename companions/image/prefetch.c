/* Background decoding of the next batch (simclr_image_folder_prefetch).
 *
 * Why threads of its own and not the context's pool: the pool is a
 * fork-join pool that the caller's next call -- the training step the
 * prefetch is meant to overlap -- occupies entirely, and a context runs one
 * call at a time. The prefetch threads are plain POSIX threads, started per
 * batch (tens of microseconds against a batch's milliseconds of decoding)
 * and joined before anyone reads their slots, so no lock guards the slots:
 * pthread_join orders every write of a worker before the reader's reads. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Worker `first` decodes slots first, first + stride, ...: strided, so one
 * slow image does not hold up a whole contiguous share. */
static void decode_share(const simclr__img_prefetch *pf, int first, int stride)
{
    for (int64_t k = first; k < pf->n; k += stride) simclr__img_batch_decode(&pf->job, k, k + 1);
}

static void *worker(void *p)
{
    const simclr__img_worker_arg *a = p;
    decode_share(a->pf, a->first, a->stride);
    return NULL;
}

void simclr__img_prefetch_wait(simclr__img_prefetch *pf)
{
    for (int t = 0; t < pf->running; t++) pthread_join(pf->threads[t], NULL);
    pf->running = 0;
}

void simclr__img_prefetch_free(simclr__img_prefetch *pf)
{
    simclr__img_prefetch_wait(pf);
    simclr__img_batch_free(&pf->batch);
    free(pf->indices);
    memset(pf, 0, sizeof *pf);
}

int simclr__img_prefetch_matches(const simclr__img_prefetch *pf, const int64_t *indices, int64_t n,
                                 simclr__img_settings settings)
{
    return pf->pending && pf->n == n && memcmp(pf->indices, indices, (size_t)n * sizeof *indices) == 0 &&
           pf->job.settings.channels == settings.channels && pf->job.settings.max_pixels == settings.max_pixels &&
           pf->job.settings.min_side == settings.min_side;
}

simclr_status simclr__img_prefetch_start(simclr__img_prefetch *pf, char *const *paths, const int64_t *indices,
                                         int64_t n, simclr__img_settings settings, int threads)
{
    simclr__img_prefetch_wait(pf);
    pf->pending = 0;
    simclr_status st = simclr__img_batch_reserve(&pf->batch, n);
    if (st != SIMCLR_OK) return st;
    if (n > pf->cap) {
        int64_t *idx = realloc(pf->indices, (size_t)n * sizeof *idx);
        if (!idx)
            return simclr__img_fail(SIMCLR_E_NOMEM, "simclr_image_folder_prefetch: no memory for %lld indices",
                                    (long long)n);
        pf->indices = idx, pf->cap = n;
    }
    memcpy(pf->indices, indices, (size_t)n * sizeof *indices);
    pf->n = n;
    pf->job = (simclr__img_decode_job){.paths = paths, .indices = pf->indices, .settings = settings,
                                       .batch = &pf->batch};
    if (threads > SIMCLR__IMG_MAX_PREFETCH_THREADS) threads = SIMCLR__IMG_MAX_PREFETCH_THREADS;
    if (threads > n) threads = (int)n;
    /* A thread that cannot start (the system's limit) is not an error: the
     * caller decodes that thread's share now, so the batch is complete
     * either way -- only later than hoped. */
    int t = 0;
    for (; t < threads; t++) {
        pf->args[t] = (simclr__img_worker_arg){pf, t, threads};
        if (pthread_create(&pf->threads[t], NULL, worker, &pf->args[t]) != 0) break;
    }
    pf->running = t;
    for (int u = t; u < threads; u++) decode_share(pf, u, threads);
    pf->pending = 1;
    return SIMCLR_OK;
}
