/* The pipeline's step buffers: one set per shape (local images, channels,
 * micro-batch, ranks), built aside and swapped in whole, with the method's
 * scratch in the same set, so that a failed rebuild or a failed step leaves
 * the trainer with the set (and the memory) it had before. */
#include <string.h>

#include "../model/module.h"
#include "distributed.h"

void simclr__ext_bufs_free(const simclr_trainer *tr, simclr__ext_bufs *b)
{
    simclr_tensor *all[] = {b->views, b->view[0], b->view[1], b->key_views, b->feat, b->dfeat,
                            b->z,     b->dz,      b->zg,      b->dzg};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) simclr_tensor_destroy(all[i]);
    float *bufs[] = {b->zl, b->gathered, b->kl, b->kgathered, b->kg, b->bn_send, b->bn_recv};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) simclr__free(tr->ctx, bufs[i]);
    if (b->method && tr->method->bufs_free) tr->method->bufs_free(tr->ctx, b->method);
    memset(b, 0, sizeof *b);
}

/* The widest batch norm of any module (channels of its running_mean). */
static int64_t widest_bn(const simclr_trainer *tr)
{
    int64_t c = 1;
    for (int k = 0; k < tr->n_mods; k++) {
        const simclr_module *m = tr->mods[k].m;
        for (int i = 0; i < m->n_params; i++) {
            const simclr__param *p = &m->params[i];
            size_t len = strlen(p->name);
            if (len >= 13 && strcmp(p->name + len - 13, ".running_mean") == 0 && p->value->numel > c)
                c = p->value->numel;
        }
    }
    return c;
}

static simclr_status floats(simclr_trainer *tr, const char *fn, int64_t count, float **out)
{
    if (count == 0) return SIMCLR_OK;
    size_t bytes = (size_t)count * sizeof(float);
    *out = simclr__malloc(tr->ctx, bytes);
    return *out ? SIMCLR_OK : simclr__nomem(fn, bytes);
}

static simclr_status build(simclr_trainer *tr, const char *fn, int64_t n, int64_t c, int64_t k, int64_t ranks,
                           simclr__ext_bufs *b)
{
    const simclr__method *m = tr->method;
    const int64_t tv = m->trained_views, kv = m->key_views, d = tr->encoder->out_dim, p = tr->head->out_dim;
    const int64_t h = tr->out_h, w = tr->out_w, plane = c * h * w;
    *b = (simclr__ext_bufs){.n = n, .c = c, .k = k, .ranks = ranks, .bn_cap = widest_bn(tr)};
    int64_t vshape[4] = {tv * k, c, h, w}, bshape[4] = {k, c, h, w};
    SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 4, vshape, &b->views));
    for (int v = 0; v < tv; v++)
        SIMCLR__TRY(simclr_tensor_wrap(tr->ctx, SIMCLR_F32, 4, bshape, simclr__f32(b->views) + v * k * plane,
                                       &b->view[v]));
    if (kv) SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 4, (const int64_t[]){kv * n, c, h, w}, &b->key_views));
    SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){tv * k, d}, &b->feat));
    SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){tv * k, d}, &b->dfeat));
    SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){tv * k, p}, &b->z));
    SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){tv * k, p}, &b->dz));
    SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){tv * n * ranks, p}, &b->zg));
    SIMCLR__TRY(simclr__tensor_f32(tr->ctx, 2, (const int64_t[]){tv * n * ranks, p}, &b->dzg));
    SIMCLR__TRY(floats(tr, fn, tv * n * p, &b->zl));
    SIMCLR__TRY(floats(tr, fn, tv * n * p * ranks, &b->gathered));
    SIMCLR__TRY(floats(tr, fn, kv * n * p, &b->kl));
    SIMCLR__TRY(floats(tr, fn, kv * n * p * ranks, &b->kgathered));
    SIMCLR__TRY(floats(tr, fn, kv * n * p * ranks, &b->kg));
    SIMCLR__TRY(floats(tr, fn, 2 * b->bn_cap, &b->bn_send));
    SIMCLR__TRY(floats(tr, fn, 2 * b->bn_cap * ranks, &b->bn_recv));
    /* Grow the loss's scratch now, so the step fails before any mutation. */
    if (tr->loss) SIMCLR__TRY(simclr__loss_reserve(tr->loss, tv * n * ranks, p));
    if (m->bufs_new) SIMCLR__TRY(m->bufs_new(tr, tr->method_state, n, n * ranks, c, &b->method));
    return SIMCLR_OK;
}

simclr_status simclr__ext_bufs_ensure(simclr_trainer *tr, const char *fn, int64_t n, int64_t c, int64_t k,
                                      simclr__ext_bufs *prev, int *rebuilt)
{
    struct simclr__trainer_ext *e = tr->ext;
    const int64_t ranks = e->comm.size;
    *rebuilt = 0;
    if (e->b.views && e->b.n == n && e->b.c == c && e->b.k == k && e->b.ranks == ranks) return SIMCLR_OK;
    simclr__ext_bufs b;
    simclr_status st = build(tr, fn, n, c, k, ranks, &b);
    if (st != SIMCLR_OK) {
        simclr__ext_bufs_free(tr, &b);
        return st;
    }
    *prev = e->b;
    e->b = b;
    *rebuilt = 1;
    return SIMCLR_OK;
}

void simclr__ext_bufs_settle(simclr_trainer *tr, simclr__ext_bufs *prev, int rebuilt, simclr_status st)
{
    if (!rebuilt) return;
    if (st != SIMCLR_OK) {
        simclr__ext_bufs cur = tr->ext->b;
        tr->ext->b = *prev;
        *prev = cur;
    }
    simclr__ext_bufs_free(tr, prev);
}
