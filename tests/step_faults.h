/* Failure injection into trainer steps, shared by test_gradcache.c (the
 * gradient-caching and distributed step) and test_moco.c: ways to make a
 * step fail after it started (a stop from the progress callback at its k-th
 * poll, a NaN weight, the k-th allocation), a trainer's state as bytes in
 * named sections, and the sweep that checks that every failure leaves the
 * state byte for byte as it was and that the step which finally succeeds
 * equals the same step on a trainer that never failed. Also a fake
 * communicator that can fail (sf_fake) and a MoCo trainer's state
 * (sf_moco_state), for test_gradcache.c, test_moco.c and test_pipeline.c. */
#ifndef SIMCLR_TEST_STEP_FAULTS_H
#define SIMCLR_TEST_STEP_FAULTS_H

#include "test_util.h"

#include "core/context.h"

/* A stoppable progress callback that asks to stop at its stop_at-th call. */
typedef struct sf_canceller {
    long calls, stop_at;
} sf_canceller;

static inline int sf_cancel_fn(void *u, const char *what, int64_t done, int64_t total)
{
    (void)what, (void)done, (void)total;
    sf_canceller *c = u;
    return c->stop_at && ++c->calls == c->stop_at;
}

/* Arming failure number k of one kind (k = 0 disarms). */
static inline void sf_arm_cancel(void *u, long k) { *(sf_canceller *)u = (sf_canceller){0, k}; }

static inline void sf_arm_alloc(void *u, long k)
{
    test_alloc *a = u;
    a->allocs = 0;
    a->fail_at = k;
}

/* k = 1: a NaN in *w (a weight: the step fails after its forward pass with
 * SIMCLR_E_NUMERIC); the weight is mended when disarmed. */
typedef struct sf_nan {
    float *w, keep;
} sf_nan;

static inline void sf_arm_nan(void *u, long k)
{
    sf_nan *n = u;
    if (k == 1) n->keep = *n->w, *n->w = NAN;
    else if (k == 0 && isnan(*n->w)) *n->w = n->keep;
}

/* A trainer's state: bytes in up to 8 named sections. */
typedef struct sf_blob {
    unsigned char *p;
    size_t n;
    int sections;
    size_t cut[8];
    const char *name[8];
} sf_blob;

static inline void sf_put(sf_blob *b, const void *d, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    assert_non_null(b->p);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static inline void sf_put_tensor(sf_blob *b, simclr_tensor *t)
{
    if (t) sf_put(b, simclr_tensor_data(t), simclr_tensor_bytes(t));
}

/* Ends the current section under `name`. */
static inline void sf_section(sf_blob *b, const char *name)
{
    assert_true(b->sections < 8);
    b->cut[b->sections] = b->n;
    b->name[b->sections++] = name;
}

/* Every value (grads = 0: parameters and BN running statistics) or gradient
 * of m, in order. */
static inline void sf_put_module(sf_blob *b, simclr_module *m, int grads)
{
    for (int i = 0; i < simclr_module_param_count(m); i++) {
        simclr_tensor *v, *g;
        CHECK_OK(simclr_module_param(m, i, NULL, &v, &g, NULL));
        sf_put_tensor(b, grads ? g : v);
    }
}

/* The optimizer's state tensors and step counter. */
static inline void sf_put_optimizer(sf_blob *b, simclr_optimizer *opt)
{
    for (int i = 0; i < simclr_optimizer_state_count(opt); i++) {
        simclr_tensor *t;
        CHECK_OK(simclr_optimizer_state(opt, i, NULL, &t));
        sf_put_tensor(b, t);
    }
    double v;
    CHECK_OK(simclr_optimizer_get(opt, SIMCLR_OPT_STEP, &v));
    sf_put(b, &v, sizeof v);
}

/* The sections "gradients" (of the trained modules enc and head) and
 * "optimizer state or step". */
static inline void sf_put_training(sf_blob *b, simclr_module *enc, simclr_module *head, simclr_optimizer *opt)
{
    sf_put_module(b, enc, 1);
    sf_put_module(b, head, 1);
    sf_section(b, "gradients");
    sf_put_optimizer(b, opt);
    sf_section(b, "optimizer state or step");
}

/* The trainer's statistics; images/s only with `timing` (two trainers differ in it). */
static inline void sf_put_stats(sf_blob *b, simclr_trainer *tr, int timing)
{
    const simclr_stat keys[] = {SIMCLR_STAT_LOSS,          SIMCLR_STAT_ACCURACY,  SIMCLR_STAT_LR,
                                SIMCLR_STAT_GRAD_NORM,     SIMCLR_STAT_STEP,      SIMCLR_STAT_COMM_BYTES,
                                SIMCLR_STAT_MICRO_BATCHES, SIMCLR_STAT_IMAGES_PER_SEC};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] - (timing ? 0 : 1); i++) {
        double v;
        CHECK_OK(simclr_trainer_stat(tr, keys[i], &v));
        sf_put(b, &v, sizeof v);
    }
}

/* The whole state of a SimCLR-like trainer (encoder and head parameters
 * and BN statistics, their gradients and the optimizer state, the
 * statistics; timing adds images/s), as a failed step must leave it. */
static inline sf_blob sf_trainer_state(simclr_trainer *tr, simclr_module *enc, simclr_module *head,
                                       simclr_optimizer *opt, int timing)
{
    sf_blob b = {0};
    sf_put_module(&b, enc, 0);
    sf_put_module(&b, head, 0);
    sf_section(&b, "parameters or BN running statistics");
    sf_put_training(&b, enc, head, opt);
    sf_put_stats(&b, tr, timing);
    sf_section(&b, "trainer statistics");
    return b;
}

/* A pretend rank 1 of 2 whose peer holds the same data (a sum is twice the
 * data, a gather two copies). Collective call number fail_at and every later
 * one fail (a peer that died), counting all three kinds of call. */
typedef struct sf_fake_comm {
    long calls, fail_at;
} sf_fake_comm;

static inline int sf_f_rank(void *u) { (void)u; return 1; }
static inline int sf_f_size(void *u) { (void)u; return 2; }
static inline int sf_f_fails(void *u)
{
    sf_fake_comm *f = u;
    f->calls++;
    return f->fail_at && f->calls >= f->fail_at;
}
static inline int sf_f_reduce(void *u, float *d, int64_t n)
{
    if (sf_f_fails(u)) return 7;
    for (int64_t i = 0; i < n; i++) d[i] *= 2;
    return 0;
}
static inline int sf_f_gather(void *u, const float *s, int64_t n, float *r)
{
    if (sf_f_fails(u)) return 7;
    memcpy(r, s, (size_t)n * sizeof(float));
    memcpy(r + n, s, (size_t)n * sizeof(float));
    return 0;
}
static inline int sf_f_bcast(void *u, float *d, int64_t n, int root)
{
    (void)d, (void)n, (void)root;
    return sf_f_fails(u) ? 7 : 0;
}
static inline const char *sf_f_error(void *u, int code) { (void)u; return code == 7 ? "link down" : "?"; }
static inline void sf_arm_comm(void *u, long k) { *(sf_fake_comm *)u = (sf_fake_comm){0, k}; }

/* The fake communicator over f. */
static inline simclr_comm sf_fake(sf_fake_comm *f)
{
    return (simclr_comm){sf_f_rank, sf_f_size, sf_f_reduce, sf_f_gather, sf_f_bcast, sf_f_error, f};
}

/* The whole state of a MoCo trainer tr (query modules enc, head trained by
 * opt; key modules kenc, khead): four modules, gradients, optimizer, queue,
 * its position, the key order of the last step (batches of 4 or 8), the
 * statistics. */
static inline sf_blob sf_moco_state(simclr_trainer *tr, simclr_module *enc, simclr_module *head, simclr_module *kenc,
                                    simclr_module *khead, simclr_optimizer *opt, int timing)
{
    sf_blob b = {0};
    simclr_module *mods[4] = {enc, head, kenc, khead};
    for (int k = 0; k < 4; k++) sf_put_module(&b, mods[k], 0);
    sf_section(&b, "parameters or BN running statistics (four modules)");
    sf_put_training(&b, enc, head, opt);
    simclr_tensor *q;
    CHECK_OK(simclr_moco_queue(tr, &q));
    sf_put_tensor(&b, q);
    double pos;
    CHECK_OK(simclr_moco_get(tr, SIMCLR_MOCO_QUEUE_POS, &pos));
    sf_put(&b, &pos, sizeof pos);
    int64_t order[8];
    for (int64_t n = 4; n <= 8; n += 4)
        if (simclr_moco_key_order(tr, order, n) == SIMCLR_OK) sf_put(&b, order, (size_t)n * sizeof *order);
    sf_section(&b, "queue, its position or the key order");
    sf_put_stats(&b, tr, timing);
    sf_section(&b, "trainer statistics");
    return b;
}

/* NULL when equal, else the name of the first section that differs. */
static inline const char *sf_diff(const sf_blob *a, const sf_blob *b)
{
    if (a->sections != b->sections) return "number of sections";
    for (int s = 0; s < a->sections; s++) {
        size_t from = s ? a->cut[s - 1] : 0;
        if (a->cut[s] != b->cut[s] || memcmp(a->p + from, b->p + from, a->cut[s] - from) != 0) return a->name[s];
    }
    return NULL;
}

/* A trainer under test (tr, on ctx, with encoder enc and a counting
 * allocator ta) and its twin that never fails (ref); state(rig, timing)
 * takes the whole state of the trainer of a rig. */
typedef struct sf_target {
    simclr_trainer *tr, *ref;
    simclr_context *ctx;
    simclr_module *enc;
    test_alloc *ta;
    void *rig, *ref_rig;
    sf_blob (*state)(void *rig, int timing);
} sf_target;

/* Steps t->tr on (img, seed) with failure k = 1, 2, ... armed until a step
 * succeeds. Each failure must return `want` and leave every byte of the
 * state as before, with no batch-norm hook left on the context; the step
 * that succeeds must give the state the same step gives t->ref. Returns the
 * number of failures. */
static inline long sf_sweep(const sf_target *t, simclr_tensor *img, uint64_t seed, simclr_status want,
                            const char *what, void (*arm)(void *, long), void *u)
{
    long failures = 0;
    for (long k = 1;; k++) {
        sf_blob before = t->state(t->rig, 1);
        arm(u, k);
        simclr_status st = simclr_trainer_step(t->tr, img, seed, NULL);
        arm(u, 0);
        if (st == SIMCLR_OK) {
            free(before.p);
            break;
        }
        if (st != want)
            fail_msg("%s: failure %ld -> %s (want %s): %s", what, k, simclr_status_string(st),
                     simclr_status_string(want), simclr_last_error());
        if (t->ctx->bn_hook) fail_msg("%s: failure %ld left the batch-norm hook installed", what, k);
        char message[512];
        snprintf(message, sizeof message, "%s", simclr_last_error()); /* taking the state may set another */
        sf_blob after = t->state(t->rig, 1);
        const char *diff = sf_diff(&before, &after);
        if (diff) fail_msg("%s: failure %ld (%s) changed the %s", what, k, message, diff);
        free(before.p), free(after.p);
        failures++;
        if (k > 100000) fail_msg("%s: no success after %ld failures", what, k);
    }
    CHECK_OK(simclr_trainer_step(t->ref, img, seed, NULL));
    sf_blob x = t->state(t->rig, 0), y = t->state(t->ref_rig, 0);
    const char *diff = sf_diff(&x, &y);
    if (diff)
        fail_msg("%s: the step after %ld failures differs from a trainer that never failed in the %s", what, failures,
                 diff);
    free(x.p), free(y.p);
    return failures;
}

/* The failures of every kind, in turn, on trainers whose gradients,
 * optimizer state, BN statistics and counters are all set (one good step on
 * img4 first): a stop at each poll of the progress callback (2: before the
 * forward pass and before the optimizer commits), a NaN weight (1), the
 * extra kind when arm_extra is not NULL (a communicator: want SIMCLR_E_IO),
 * then allocation 1, 2, ... failing at a new batch size (img8; at least
 * one) and again at that size. */
typedef struct sf_counts {
    long stops, nans, extra, allocs_new, allocs;
} sf_counts;

static inline sf_counts sf_sweep_all(const sf_target *t, simclr_tensor *img4, simclr_tensor *img8,
                                     void (*arm_extra)(void *, long), void *extra)
{
    sf_canceller cn = {0, 0};
    CHECK_OK(simclr_context_set_progress_cancel(t->ctx, sf_cancel_fn, &cn));
    CHECK_OK(simclr_trainer_step(t->tr, img4, 1, NULL));
    CHECK_OK(simclr_trainer_step(t->ref, img4, 1, NULL));
    simclr_tensor *w;
    CHECK_OK(simclr_module_param(t->enc, 0, NULL, &w, NULL, NULL));
    sf_nan nw = {simclr_tensor_data(w), 0};
    sf_counts c = {0, 0, 0, 0, 0};
    c.stops = sf_sweep(t, img4, 2, SIMCLR_E_CANCELLED, "stop", sf_arm_cancel, &cn);
    assert_int_equal(c.stops, 2);
    c.nans = sf_sweep(t, img4, 3, SIMCLR_E_NUMERIC, "NaN weight", sf_arm_nan, &nw);
    assert_int_equal(c.nans, 1);
    if (arm_extra) c.extra = sf_sweep(t, img4, 4, SIMCLR_E_IO, "communicator", arm_extra, extra);
    c.allocs_new = sf_sweep(t, img8, 5, SIMCLR_E_NOMEM, "allocation (new batch size)", sf_arm_alloc, t->ta);
    assert_true(c.allocs_new > 0);
    c.allocs = sf_sweep(t, img8, 6, SIMCLR_E_NOMEM, "allocation", sf_arm_alloc, t->ta);
    CHECK_OK(simclr_context_set_progress_cancel(t->ctx, NULL, NULL));
    return c;
}

/* sf_sweep_all with both trainers of t set to micro-batches of 2,
 * synchronized BN and a fake communicator whose collectives fail in turn
 * (detached again at the end): prints the counts under `method`'s name and
 * requires collective failures to have been met. */
static inline sf_counts sf_sweep_combined(const char *method, const sf_target *t, simclr_tensor *img4,
                                          simclr_tensor *img8)
{
    sf_fake_comm fa = {0, 0}, fr = {0, 0};
    simclr_comm ca = sf_fake(&fa), cr = sf_fake(&fr);
    simclr_trainer *trs[2] = {t->tr, t->ref};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(simclr_trainer_set(trs[k], SIMCLR_TRAINER_MICRO_BATCH, 2));
        CHECK_OK(simclr_trainer_set(trs[k], SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_SYNC));
        CHECK_OK(simclr_trainer_set_comm(trs[k], k ? &cr : &ca));
    }
    sf_counts c = sf_sweep_all(t, img4, img8, sf_arm_comm, &fa);
    print_message("%s + micro-batches + sync BN + communicator, failed steps: %ld stops, %ld NaN, %ld collective, "
                  "%ld + %ld allocation failures; each left the trainer as it was\n",
                  method, c.stops, c.nans, c.extra, c.allocs_new, c.allocs);
    assert_true(c.extra > 0);
    for (int k = 0; k < 2; k++) CHECK_OK(simclr_trainer_set_comm(trs[k], NULL));
    return c;
}

#endif
