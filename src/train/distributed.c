/* Trainer settings for distributed training and gradient caching, attaching
 * a communicator, and the collective pieces of a step that are not the step
 * itself: bucketed gradient sums, buffer broadcasts, the rank-0 checkpoint.
 *
 * Replicas stay identical because every rank starts from rank 0's state
 * (simclr_trainer_set_comm broadcasts it) and applies the same update from
 * the same summed gradients (the communicator guarantees bit-identical sums). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../model/module.h"
#include "distributed.h"

#define DEFAULT_BUCKET_BYTES ((int64_t)4 << 20)

simclr_status simclr__trainer_ext_new(simclr_trainer *tr, const char *fn)
{
    struct simclr__trainer_ext *e = simclr__calloc(tr->ctx, 1, sizeof *e);
    if (!e) return simclr__nomem(fn, sizeof *e);
    simclr_comm single;
    simclr_comm_single(&single);
    simclr__comm_init(&e->comm, &single, fn);
    e->bucket_bytes = DEFAULT_BUCKET_BYTES;
    e->bn_mode = SIMCLR_BN_LOCAL;
    simclr__bn_hook_init(e);
    tr->ext = e;
    return SIMCLR_OK;
}

static void free_step_buffers(simclr_trainer *tr)
{
    struct simclr__trainer_ext *e = tr->ext;
    simclr__ext_bufs_free(tr, &e->b);
    simclr__free(tr->ctx, e->bucket);
    e->bucket = NULL;
}

void simclr__trainer_ext_free(simclr_trainer *tr)
{
    if (!tr->ext) return;
    free_step_buffers(tr);
    simclr__free(tr->ctx, tr->ext);
    tr->ext = NULL;
}

int simclr__trainer_ext_ranks(const simclr_trainer *tr) { return tr->ext->has_comm ? tr->ext->comm.size : 1; }

/* The combinations of settings e makes (with micro-batches, bn_mode and a
 * communicator as given). */
static unsigned with_of(int64_t micro, int bn_mode, int has_comm)
{
    return (micro > 0 ? SIMCLR__WITH_MICRO : 0u) | (has_comm ? SIMCLR__WITH_RANKS : 0u) |
           (bn_mode == SIMCLR_BN_SYNC ? SIMCLR__WITH_BN_SYNC : 0u) |
           (bn_mode == SIMCLR_BN_FROZEN ? SIMCLR__WITH_BN_FROZEN : 0u);
}

unsigned simclr__trainer_ext_with(const simclr_trainer *tr)
{
    const struct simclr__trainer_ext *e = tr->ext;
    return with_of(e->micro, e->bn_mode, e->has_comm);
}

simclr_status simclr_trainer_set(simclr_trainer *tr, simclr_trainer_param key, double value)
{
    static const char fn[] = "simclr_trainer_set";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    int whole = isfinite(value) && value == floor(value);
    switch (key) {
    case SIMCLR_TRAINER_MICRO_BATCH:
        if (!whole || value < 0 || value > 1e15)
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_TRAINER_MICRO_BATCH %g is not a whole number >= 0", fn,
                                value);
        break;
    case SIMCLR_TRAINER_BN_MODE:
        if (!(value == SIMCLR_BN_LOCAL || value == SIMCLR_BN_SYNC || value == SIMCLR_BN_FROZEN))
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_TRAINER_BN_MODE %g is not a simclr_bn_mode (0, 1, 2)",
                                fn, value);
        break;
    case SIMCLR_TRAINER_BUCKET_BYTES:
        if (!whole || value < 4096 || value > 2147483648.0 || fmod(value, 4.0) != 0)
            return simclr__fail(SIMCLR_E_INVALID,
                                "%s: SIMCLR_TRAINER_BUCKET_BYTES %g is not a multiple of 4 in 4096..2^31", fn, value);
        break;
    case SIMCLR_TRAINER_FREEZE_ENCODER:
        if (!(value == 0 || value == 1))
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_TRAINER_FREEZE_ENCODER %g is not 0 or 1", fn, value);
        if (!tr->method->can_freeze_encoder)
            return simclr__fail(SIMCLR_E_UNSUPPORTED, "%s: a %s trainer always trains its encoder "
                                "(SIMCLR_TRAINER_FREEZE_ENCODER is for fine-tuning trainers)", fn, tr->method->name);
        /* Freezing follows the optimizer given at creation. */
        if ((int)value != !tr->mods[0].trained)
            return simclr__fail(SIMCLR_E_INVALID,
                                "%s: SIMCLR_TRAINER_FREEZE_ENCODER %g: the trainer's optimizer %s the encoder; freezing "
                                "follows the optimizer (create one over the head only to freeze, over encoder and "
                                "head to fine-tune all)", fn, value, value ? "covers" : "does not cover");
        return SIMCLR_OK;
    default: return simclr__fail(SIMCLR_E_INVALID, "%s: unknown trainer setting %d", fn, (int)key);
    }
    struct simclr__trainer_ext *e = tr->ext;
    /* A combination the method cannot run is refused here, not mid-step. */
    if (key != SIMCLR_TRAINER_BUCKET_BYTES)
        SIMCLR__TRY(simclr__trainer_refuse(tr, fn, with_of(key == SIMCLR_TRAINER_MICRO_BATCH ? (int64_t)value : e->micro,
                                                           key == SIMCLR_TRAINER_BN_MODE ? (int)value : e->bn_mode,
                                                           e->has_comm)));
    if (key == SIMCLR_TRAINER_MICRO_BATCH) e->micro = (int64_t)value;
    else if (key == SIMCLR_TRAINER_BN_MODE) e->bn_mode = (int)value;
    else if ((int64_t)value != e->bucket_bytes) {
        simclr__free(tr->ctx, e->bucket); /* regrown at the next step */
        e->bucket = NULL;
        e->bucket_bytes = (int64_t)value;
    }
    return SIMCLR_OK;
}

simclr_status simclr_trainer_get(const simclr_trainer *tr, simclr_trainer_param key, double *value)
{
    static const char fn[] = "simclr_trainer_get";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    const struct simclr__trainer_ext *e = tr->ext;
    switch (key) {
    case SIMCLR_TRAINER_MICRO_BATCH: *value = (double)e->micro; break;
    case SIMCLR_TRAINER_BN_MODE: *value = (double)e->bn_mode; break;
    case SIMCLR_TRAINER_BUCKET_BYTES: *value = (double)e->bucket_bytes; break;
    case SIMCLR_TRAINER_FREEZE_ENCODER: *value = !tr->mods[0].trained; break;
    default: return simclr__fail(SIMCLR_E_INVALID, "%s: unknown trainer setting %d", fn, (int)key);
    }
    return SIMCLR_OK;
}

/* Segments of the trainer's state. what: 'g' gradients of the trained
 * modules, 'b' BN buffers of every module, 's' parameters + buffers of every
 * module, optimizer state and the method's state tensors (what set_comm
 * aligns). With segs NULL, only counts. */
static int collect(simclr_trainer *tr, char what, simclr__segment *segs)
{
    int n = 0;
    for (int k = 0; k < tr->n_mods; k++) {
        if (what == 'g' && !tr->mods[k].trained) continue;
        simclr_module *m = tr->mods[k].m;
        for (int i = 0; i < m->n_params; i++) {
            simclr__param *p = &m->params[i];
            int buffer = (p->flags & SIMCLR_PARAM_BUFFER) != 0;
            simclr_tensor *t = what == 'g' ? (buffer ? NULL : p->grad) : what == 'b' ? (buffer ? p->value : NULL)
                                                                                    : p->value;
            if (!t) continue;
            if (segs) segs[n] = (simclr__segment){simclr__f32(t), t->numel};
            n++;
        }
    }
    if (what != 's') return n;
    for (int i = 0; i < tr->opt->n_states; i++) {
        simclr_tensor *t = tr->opt->states[i].tensor;
        if (segs) segs[n] = (simclr__segment){simclr__f32(t), t->numel};
        n++;
    }
    const char *names[SIMCLR__METHOD_MAX_ENTRIES];
    simclr_tensor *ts[SIMCLR__METHOD_MAX_ENTRIES];
    int nt = tr->method->tensors ? tr->method->tensors(tr->method_state, names, ts) : 0;
    for (int i = 0; i < nt; i++, n++)
        if (segs) segs[n] = (simclr__segment){simclr__f32(ts[i]), ts[i]->numel};
    return n;
}

/* Runs one collective over the concatenation of segs, bucket by bucket:
 * op 'r' sums over ranks, 'b' broadcasts from rank 0. */
static simclr_status over_segments(simclr_trainer *tr, const char *fn, simclr__segment *segs, int nseg, char op)
{
    struct simclr__trainer_ext *e = tr->ext;
    const int64_t cap = e->bucket_bytes / (int64_t)sizeof(float);
    if (!e->bucket && !(e->bucket = simclr__malloc(tr->ctx, (size_t)e->bucket_bytes)))
        return simclr__nomem(fn, (size_t)e->bucket_bytes);
    int seg = 0;
    int64_t off = 0; /* position inside segs[seg] */
    while (seg < nseg) {
        /* Fill the bucket from (seg, off). */
        int s0 = seg;
        int64_t o0 = off, fill = 0;
        while (seg < nseg && fill < cap) {
            int64_t take = segs[seg].count - off < cap - fill ? segs[seg].count - off : cap - fill;
            memcpy(e->bucket + fill, segs[seg].data + off, (size_t)take * sizeof(float));
            fill += take;
            off += take;
            if (off == segs[seg].count) seg++, off = 0;
        }
        if (fill == 0) break;
        SIMCLR__TRY(op == 'r' ? simclr__comm_all_reduce(&e->comm, fn, e->bucket, fill)
                              : simclr__comm_broadcast(&e->comm, fn, e->bucket, fill, 0));
        /* Copy back over the same span. */
        int64_t pos = 0;
        for (int s = s0; pos < fill; s++) {
            int64_t from = s == s0 ? o0 : 0;
            int64_t take = segs[s].count - from < fill - pos ? segs[s].count - from : fill - pos;
            memcpy(segs[s].data + from, e->bucket + pos, (size_t)take * sizeof(float));
            pos += take;
        }
    }
    return SIMCLR_OK;
}

/* The collective op over the segments of `what`, then the one float *extra
 * (when not NULL). */
static simclr_status collective(simclr_trainer *tr, const char *fn, char what, char op, float *extra)
{
    int n = collect(tr, what, NULL) + (extra != NULL);
    simclr__segment *segs = simclr__malloc(tr->ctx, (size_t)(n ? n : 1) * sizeof *segs);
    if (!segs) return simclr__nomem(fn, (size_t)n * sizeof *segs);
    collect(tr, what, segs);
    if (extra) segs[n - 1] = (simclr__segment){extra, 1};
    simclr_status st = over_segments(tr, fn, segs, n, op);
    simclr__free(tr->ctx, segs);
    return st;
}

simclr_status simclr__trainer_allreduce_grads(simclr_trainer *tr, const char *fn, float *extra)
{
    return collective(tr, fn, 'g', 'r', extra);
}

simclr_status simclr__trainer_broadcast_buffers(simclr_trainer *tr, const char *fn)
{
    return collective(tr, fn, 'b', 'b', NULL);
}

/* Rank 0's counters: the optimizer's step, the trainer's, the method's
 * (exact in float: split at 2^24). */
static simclr_status broadcast_counters(simclr_trainer *tr, const char *fn)
{
    int64_t *values[2 + SIMCLR__METHOD_MAX_ENTRIES] = {&tr->opt->step, &tr->steps};
    const char *names[SIMCLR__METHOD_MAX_ENTRIES], *what[SIMCLR__METHOD_MAX_ENTRIES];
    int64_t limits[SIMCLR__METHOD_MAX_ENTRIES];
    int n = 2;
    if (tr->method->counters) n += tr->method->counters(tr->method_state, names, values + 2, limits, what);
    float counters[2 * (2 + SIMCLR__METHOD_MAX_ENTRIES)];
    for (int i = 0; i < n; i++)
        counters[2 * i] = (float)(*values[i] >> 24), counters[2 * i + 1] = (float)(*values[i] & 0xffffff);
    SIMCLR__TRY(simclr__comm_broadcast(&tr->ext->comm, fn, counters, 2 * n, 0));
    for (int i = 0; i < n; i++) *values[i] = ((int64_t)counters[2 * i] << 24) + (int64_t)counters[2 * i + 1];
    return SIMCLR_OK;
}

simclr_status simclr_trainer_set_comm(simclr_trainer *tr, const simclr_comm *comm)
{
    static const char fn[] = "simclr_trainer_set_comm";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    if (!comm) {
        if (tr->ext->has_comm) {
            simclr_comm single;
            simclr_comm_single(&single);
            simclr__comm_init(&tr->ext->comm, &single, fn);
            tr->ext->has_comm = 0;
        }
        return SIMCLR_OK;
    }
    simclr__comm_state s;
    SIMCLR__TRY(simclr__comm_init(&s, comm, fn));
    struct simclr__trainer_ext *e = tr->ext;
    SIMCLR__TRY(simclr__trainer_refuse(tr, fn, with_of(e->micro, e->bn_mode, 1)));
    simclr__comm_state old = e->comm;
    int old_has = e->has_comm;
    e->comm = s;
    e->has_comm = 1;
    simclr__comm_begin(&e->comm);

    /* Every rank must hold the same model: compare the sizes first (a
     * broadcast of mismatched sizes would corrupt memory). */
    int n = collect(tr, 's', NULL);
    simclr__segment *segs = simclr__malloc(tr->ctx, (size_t)(n ? n : 1) * sizeof *segs);
    float *all = simclr__malloc(tr->ctx, (size_t)s.size * 3 * sizeof(float));
    simclr_status st = segs && all ? SIMCLR_OK : simclr__nomem(fn, (size_t)n * sizeof *segs);
    if (st == SIMCLR_OK) {
        collect(tr, 's', segs);
        int64_t total = 0;
        for (int i = 0; i < n; i++) total += segs[i].count;
        /* Exact in float: counts split at 2^24. */
        float mine[3] = {(float)n, (float)(total >> 24), (float)(total & 0xffffff)};
        st = simclr__comm_all_gather(&e->comm, fn, mine, 3, all);
        for (int r = 0; r < s.size && st == SIMCLR_OK; r++)
            if (memcmp(all + 3 * r, all, 3 * sizeof(float)) != 0)
                st = simclr__fail(SIMCLR_E_SHAPE,
                                  "%s: rank %d's model has %g tensors of %.0f floats, rank 0's %g of %.0f", fn, r,
                                  (double)all[3 * r], (double)all[3 * r + 1] * 16777216.0 + all[3 * r + 2],
                                  (double)all[0], (double)all[1] * 16777216.0 + all[2]);
    }
    /* Rank 0's parameters, buffers, optimizer state and counters. The
     * broadcast overwrites in place, so a failure part-way leaves this rank
     * with a mix: the host must end the job (simclr_comm's convention). */
    if (st == SIMCLR_OK) st = over_segments(tr, fn, segs, n, 'b');
    if (st == SIMCLR_OK) st = broadcast_counters(tr, fn);
    simclr__free(tr->ctx, segs);
    simclr__free(tr->ctx, all);
    if (st != SIMCLR_OK) {
        e->comm = old;
        e->has_comm = old_has;
        return st;
    }
    free_step_buffers(tr); /* sized for another number of ranks */
    return SIMCLR_OK;
}

simclr_status simclr__trainer_save_once(const simclr_trainer *tr, const char *path,
                                        simclr_status (*save)(const simclr_trainer *, const char *))
{
    static const char fn[] = "simclr_trainer_save";
    simclr__comm_state *s = &tr->ext->comm;
    simclr__comm_begin(s);
    simclr_status st = SIMCLR_OK;
    char message[512] = "";
    if (s->rank == 0) {
        st = save(tr, path);
        if (st != SIMCLR_OK) snprintf(message, sizeof message, "%s", simclr_last_error());
    }
    /* Every rank learns rank 0's outcome, so no rank goes on to load a file
     * that was not written. */
    float status = (float)st;
    SIMCLR__TRY(simclr__comm_broadcast(s, fn, &status, 1, 0));
    if (status == 0.0f) return SIMCLR_OK;
    if (s->rank == 0) return simclr__fail(st, "%s", message);
    return simclr__fail((simclr_status)(int)status, "%s: rank 0 failed to write '%s' (%s)", fn, path,
                        simclr_status_string((simclr_status)(int)status));
}
