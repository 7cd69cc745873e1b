/* A decoded batch: one slot per requested image holding its pixels or its
 * failure (status and message), filled by any thread, read by the folder's
 * caller. The folder keeps two: the batch its last load handed out and the
 * one a prefetch decodes into. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

simclr_status simclr__img_batch_reserve(simclr__img_batch *b, int64_t n)
{
    if (n <= b->slots) return SIMCLR_OK;
    uint8_t **px = realloc(b->px, (size_t)n * sizeof *px);
    if (px) b->px = px;
    int64_t *h = px ? realloc(b->h, (size_t)n * sizeof *h) : NULL;
    if (h) b->h = h;
    int64_t *w = h ? realloc(b->w, (size_t)n * sizeof *w) : NULL;
    if (w) b->w = w;
    simclr_status *st = w ? realloc(b->st, (size_t)n * sizeof *st) : NULL;
    if (st) b->st = st;
    char **msg = st ? realloc(b->msg, (size_t)n * sizeof *msg) : NULL;
    if (msg) b->msg = msg;
    if (!msg) return simclr__img_fail(SIMCLR_E_NOMEM, "image folder: no memory for a batch of %lld images", (long long)n);
    for (int64_t i = b->slots; i < n; i++) b->px[i] = NULL, b->msg[i] = NULL;
    b->slots = n;
    return SIMCLR_OK;
}

void simclr__img_batch_free(simclr__img_batch *b)
{
    for (int64_t i = 0; i < b->slots; i++) {
        free(b->px[i]);
        free(b->msg[i]);
    }
    free(b->px), free(b->h), free(b->w), free(b->st), free(b->msg);
    memset(b, 0, sizeof *b);
}

void simclr__img_batch_decode(const simclr__img_decode_job *job, int64_t begin, int64_t end)
{
    simclr__img_batch *b = job->batch;
    for (int64_t k = begin; k < end; k++) {
        free(b->px[k]);
        b->px[k] = NULL;
        free(b->msg[k]);
        b->msg[k] = NULL;
        b->st[k] = simclr_image_decode_file(job->paths[job->indices[k]], job->settings.channels,
                                            job->settings.max_pixels, job->settings.min_side, &b->px[k], &b->h[k],
                                            &b->w[k]);
        /* The message lives in this thread's last error: keep a copy (NULL
         * if even that fails; the folder then names the file itself). */
        if (b->st[k] != SIMCLR_OK) b->msg[k] = strdup(simclr_last_error());
    }
}
