/* MoCo v2: InfoNCE against a queue (value and query gradient by finite
 * differences), the momentum update's arithmetic, the trainer's queue
 * wraparound and momentum schedule, bad arguments, all-or-nothing steps (a
 * NaN, a stop, every allocation failing), an allocation-failure sweep of
 * the setup, and bit-identical resume from a checkpoint.
 * The PyTorch cross-check of whole steps is tests/python/test_torch_moco.py. */
#include "test_util.h"

#include <unistd.h>

#include "loss/infonce.h"
#include "step_faults.h"

#define IMG 12
#define CH 1

static char tmpdir[256];

static int group_setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "moco");
}

static int group_teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* ---------------------------------------------------------------- InfoNCE -- */

/* The loss written out directly in double, for the reference value. */
static double ref_loss(const float *q, const float *k, int64_t n, int64_t d, const float *neg, int64_t kq, double t)
{
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double qn = 0, kn = 0;
        for (int64_t c = 0; c < d; c++) qn += (double)q[i * d + c] * q[i * d + c], kn += (double)k[i * d + c] * k[i * d + c];
        qn = sqrt(qn), kn = sqrt(kn);
        double pos = 0;
        for (int64_t c = 0; c < d; c++) pos += q[i * d + c] / qn * (k[i * d + c] / kn);
        pos /= t;
        double sum = exp(pos);
        for (int64_t j = 0; j < kq; j++) {
            double l = 0;
            for (int64_t c = 0; c < d; c++) l += q[i * d + c] / qn * neg[j * d + c];
            sum += exp(l / t);
        }
        total += log(sum) - pos;
    }
    return total / (double)n;
}

static void test_infonce_value_and_gradient(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &ctx));
    simclr__infonce *l;
    CHECK_OK(simclr__infonce_create(ctx, &l));
    const int64_t n = 5, d = 7, kq = 11;
    const double temps[2] = {0.2, 0.07};
    float q[5 * 7], k[5 * 7], neg[11 * 7], dq[5 * 7], ku[5 * 7];
    test_fill(q, n * d, 1);
    test_fill(k, n * d, 2);
    test_fill(neg, kq * d, 3);
    for (int64_t j = 0; j < kq; j++) { /* unit rows, as the queue holds */
        double s = 0;
        for (int64_t c = 0; c < d; c++) s += (double)neg[j * d + c] * neg[j * d + c];
        for (int64_t c = 0; c < d; c++) neg[j * d + c] = (float)(neg[j * d + c] / sqrt(s));
    }
    for (int ti = 0; ti < 2; ti++) {
        double t = temps[ti], value, acc;
        CHECK_OK(simclr__infonce_forward(l, "test", q, k, n, d, neg, kq, t, ku, &value, &acc));
        double want = ref_loss(q, k, n, d, neg, kq, t);
        assert_true(fabs(value - want) < 1e-5 * fmax(1.0, fabs(want)));
        assert_true(acc >= 0 && acc <= 1);
        for (int64_t i = 0; i < n; i++) { /* k_unit is k normalized */
            double s = 0;
            for (int64_t c = 0; c < d; c++) s += (double)ku[i * d + c] * ku[i * d + c];
            assert_true(fabs(s - 1) < 1e-6);
        }
        CHECK_OK(simclr__infonce_backward(l, dq));
        /* Central differences in double on the reference formula. */
        double worst = 0, scale = 0;
        for (int64_t e = 0; e < n * d; e++) {
            const float h = 1e-3f, keep = q[e], hi = keep + h, lo = keep - h;
            q[e] = hi;
            double up = ref_loss(q, k, n, d, neg, kq, t);
            q[e] = lo;
            double down = ref_loss(q, k, n, d, neg, kq, t);
            q[e] = keep;
            double fd = (up - down) / ((double)hi - (double)lo);
            worst = fmax(worst, fabs(fd - dq[e]));
            scale = fmax(scale, fabs(fd));
        }
        print_message("infonce T=%.2f: loss %.6f, max |dq - fd| = %.2e (max |fd| %.2e)\n", t, value, worst, scale);
        assert_true(scale > 1e-3);
        assert_true(worst < 2e-3 * scale);
        /* A second backward of the same forward gives the same gradient. */
        float dq2[5 * 7];
        CHECK_OK(simclr__infonce_backward(l, dq2));
        assert_memory_equal(dq, dq2, sizeof dq);
    }
    /* Non-finite inputs: a clear NUMERIC error. */
    float keep = neg[3];
    neg[3] = NAN;
    double v;
    CHECK_STATUS(simclr__infonce_forward(l, "test", q, k, n, d, neg, kq, 0.2, NULL, &v, NULL), SIMCLR_E_NUMERIC);
    assert_non_null(strstr(simclr_last_error(), "negative"));
    neg[3] = keep;
    simclr__infonce_destroy(l);
    simclr_context_destroy(ctx);
}

/* -------------------------------------------------------- momentum update -- */

static void test_momentum_update_arithmetic(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    simclr_module *a, *b, *other;
    CHECK_OK(simclr_mlp_head_create(ctx, 6, 5, 4, 2, 1, 1, &a)); /* with BN: parameters and buffers */
    CHECK_OK(simclr_mlp_head_create(ctx, 6, 5, 4, 2, 1, 2, &b));
    CHECK_OK(simclr_mlp_head_create(ctx, 6, 5, 3, 2, 1, 2, &other));
    int np = simclr_module_param_count(a);
    float *before[64];
    for (int i = 0; i < np; i++) { /* distinct values everywhere, buffers included */
        simclr_tensor *ta, *tb;
        CHECK_OK(simclr_module_param(a, i, NULL, &ta, NULL, NULL));
        CHECK_OK(simclr_module_param(b, i, NULL, &tb, NULL, NULL));
        test_fill(simclr_tensor_data(ta), simclr_tensor_numel(ta), 10 + (uint64_t)i);
        test_fill(simclr_tensor_data(tb), simclr_tensor_numel(tb), 50 + (uint64_t)i);
        before[i] = malloc(simclr_tensor_bytes(ta));
        memcpy(before[i], simclr_tensor_data(ta), simclr_tensor_bytes(ta));
    }
    const double m = 0.9;
    CHECK_OK(simclr_module_momentum_update(a, b, m));
    int buffers = 0;
    for (int i = 0; i < np; i++) {
        const char *name;
        simclr_tensor *ta, *tb;
        int flags;
        CHECK_OK(simclr_module_param(a, i, &name, &ta, NULL, &flags));
        CHECK_OK(simclr_module_param(b, i, NULL, &tb, NULL, NULL));
        const float *va = simclr_tensor_data(ta), *vb = simclr_tensor_data(tb);
        int count = strstr(name, "num_batches_tracked") != NULL;
        buffers += (flags & SIMCLR_PARAM_BUFFER) && !count;
        for (int64_t e = 0; e < simclr_tensor_numel(ta); e++) {
            float want = count ? before[i][e] : (float)(m * before[i][e] + (1 - m) * vb[e]);
            if (va[e] != want) fail_msg("%s[%lld]: %.9g, want %.9g", name, (long long)e, va[e], want);
        }
        free(before[i]);
    }
    assert_true(buffers >= 4); /* running_mean and running_var of two batch norms were averaged */

    /* 0 copies, 1 keeps. */
    CHECK_OK(simclr_module_momentum_update(a, b, 0.0));
    for (int i = 0; i < np; i++) {
        const char *name;
        simclr_tensor *ta, *tb;
        CHECK_OK(simclr_module_param(a, i, &name, &ta, NULL, NULL));
        CHECK_OK(simclr_module_param(b, i, NULL, &tb, NULL, NULL));
        if (!strstr(name, "num_batches_tracked"))
            assert_memory_equal(simclr_tensor_data(ta), simclr_tensor_data(tb), simclr_tensor_bytes(ta));
    }
    CHECK_OK(simclr_module_momentum_update(b, a, 1.0));

    /* Bad arguments change nothing. */
    CHECK_STATUS(simclr_module_momentum_update(NULL, b, 0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_momentum_update(a, NULL, 0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_momentum_update(a, a, 0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_momentum_update(a, b, 1.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_momentum_update(a, b, NAN), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_momentum_update(a, other, 0.5), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "simclr_module_momentum_update"));
    simclr_module *r1, *r2;
    CHECK_OK(simclr_resnet_create(ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 1, &r1));
    CHECK_OK(simclr_resnet_create(ctx, 18, 2, 3, SIMCLR_STEM_CIFAR, 1, &r2));
    CHECK_STATUS(simclr_module_momentum_update(r1, r2, 0.5), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_module_momentum_update(r1, a, 0.5), SIMCLR_E_SHAPE);
    simclr_module_destroy(r1);
    simclr_module_destroy(r2);
    simclr_module_destroy(other);
    simclr_module_destroy(b);
    simclr_module_destroy(a);
    simclr_context_destroy(ctx);
}

/* ------------------------------------------------------------ the trainer -- */

typedef struct {
    simclr_context *ctx;
    simclr_module *enc, *head, *kenc, *khead;
    simclr_augment *aug;
    simclr_optimizer *opt;
    simclr_trainer *tr;
} rig;

static simclr_status rig_try(rig *r, const simclr_allocator *alloc, int64_t k)
{
    memset(r, 0, sizeof *r);
    simclr_status st = simclr_context_create("cpu", 2, alloc, &r->ctx);
    if (st) return st;
    if ((st = simclr_resnet_create(r->ctx, 18, 2, CH, SIMCLR_STEM_CIFAR, 3, &r->enc))) return st;
    if ((st = simclr_resnet_create(r->ctx, 18, 2, CH, SIMCLR_STEM_CIFAR, 99, &r->kenc))) return st;
    int d = (int)simclr_module_output_dim(r->enc);
    if ((st = simclr_mlp_head_create(r->ctx, d, 16, 8, 2, 1, 4, &r->head))) return st;
    if ((st = simclr_mlp_head_create(r->ctx, d, 16, 8, 2, 1, 98, &r->khead))) return st;
    if ((st = simclr_augment_create(r->ctx, SIMCLR_AUG_PRESET_GRAYSCALE, IMG, IMG, &r->aug))) return st;
    simclr_module *mods[2] = {r->enc, r->head};
    if ((st = simclr_optimizer_create(r->ctx, SIMCLR_OPT_SGD, mods, 2, &r->opt))) return st;
    if ((st = simclr_optimizer_set(r->opt, SIMCLR_OPT_LR, 0.05))) return st;
    return simclr_moco_trainer_create(r->ctx, r->enc, r->head, r->kenc, r->khead, r->aug, r->opt, k, 7, &r->tr);
}

static void rig_free(rig *r)
{
    simclr_trainer_destroy(r->tr);
    simclr_optimizer_destroy(r->opt);
    simclr_augment_destroy(r->aug);
    simclr_module_destroy(r->khead);
    simclr_module_destroy(r->head);
    simclr_module_destroy(r->kenc);
    simclr_module_destroy(r->enc);
    simclr_context_destroy(r->ctx);
}

static void rig_make(rig *r, int64_t k, int splits)
{
    CHECK_OK(rig_try(r, NULL, k));
    CHECK_OK(simclr_moco_set(r->tr, SIMCLR_MOCO_KEY_SPLITS, splits));
}

static simclr_tensor *images(simclr_context *ctx, int n, uint64_t seed)
{
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, (const int64_t[]){n, IMG, IMG, CH}, &t));
    uint8_t *px = simclr_tensor_data(t);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < simclr_tensor_numel(t); i++) px[i] = (uint8_t)(test_rand_next(&s) >> 56);
    return t;
}

/* Every tensor the trainer owns or changes: four modules (and the gradients
 * of the two trained ones), optimizer state, queue. */
typedef struct {
    int n;
    void *data[512];
    size_t bytes[512];
    double pos, steps;
} state_copy;

static void copy_add(state_copy *s, simclr_tensor *t)
{
    assert_true(s->n < 512);
    s->bytes[s->n] = simclr_tensor_bytes(t);
    s->data[s->n] = malloc(s->bytes[s->n]);
    memcpy(s->data[s->n], simclr_tensor_data(t), s->bytes[s->n]);
    s->n++;
}

static void copy_take(state_copy *s, rig *r)
{
    s->n = 0;
    simclr_module *mods[4] = {r->enc, r->head, r->kenc, r->khead};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < simclr_module_param_count(mods[k]); i++) {
            simclr_tensor *v, *g;
            CHECK_OK(simclr_module_param(mods[k], i, NULL, &v, &g, NULL));
            copy_add(s, v);
            if (g && k < 2) copy_add(s, g); /* the step zeroes and refills them */
        }
    for (int i = 0; i < simclr_optimizer_state_count(r->opt); i++) {
        simclr_tensor *v;
        CHECK_OK(simclr_optimizer_state(r->opt, i, NULL, &v));
        copy_add(s, v);
    }
    simclr_tensor *q;
    CHECK_OK(simclr_moco_queue(r->tr, &q));
    copy_add(s, q);
    CHECK_OK(simclr_moco_get(r->tr, SIMCLR_MOCO_QUEUE_POS, &s->pos));
    CHECK_OK(simclr_trainer_stat(r->tr, SIMCLR_STAT_STEP, &s->steps));
}

static int copy_diff(const state_copy *a, const state_copy *b)
{
    assert_int_equal(a->n, b->n);
    int diff = (a->pos != b->pos) + (a->steps != b->steps);
    for (int i = 0; i < a->n; i++) diff += a->bytes[i] != b->bytes[i] || memcmp(a->data[i], b->data[i], a->bytes[i]);
    return diff;
}

static void copy_free(state_copy *s)
{
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    s->n = 0;
}

static void test_create_copies_query_into_key(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 32, 2);
    simclr_module *pairs[2][2] = {{r.enc, r.kenc}, {r.head, r.khead}};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < simclr_module_param_count(pairs[p][0]); i++) {
            simclr_tensor *a, *b;
            CHECK_OK(simclr_module_param(pairs[p][0], i, NULL, &a, NULL, NULL));
            CHECK_OK(simclr_module_param(pairs[p][1], i, NULL, &b, NULL, NULL));
            assert_memory_equal(simclr_tensor_data(a), simclr_tensor_data(b), simclr_tensor_bytes(a));
        }
    /* The initial queue: K unit rows, not all alike. */
    simclr_tensor *q;
    CHECK_OK(simclr_moco_queue(r.tr, &q));
    assert_int_equal(simclr_tensor_dim(q, 0), 32);
    assert_int_equal(simclr_tensor_dim(q, 1), 8);
    const float *qd = simclr_tensor_data(q);
    for (int j = 0; j < 32; j++) {
        double s = 0;
        for (int c = 0; c < 8; c++) s += (double)qd[j * 8 + c] * qd[j * 8 + c];
        assert_true(fabs(s - 1) < 1e-5);
    }
    assert_true(memcmp(qd, qd + 8, 8 * sizeof(float)) != 0);
    double v;
    CHECK_OK(simclr_moco_get(r.tr, SIMCLR_MOCO_MOMENTUM, &v));
    assert_true(v == 0.999);
    CHECK_OK(simclr_moco_get(r.tr, SIMCLR_MOCO_TEMPERATURE, &v));
    assert_true(v == 0.2);
    CHECK_OK(simclr_moco_get(r.tr, SIMCLR_MOCO_QUEUE_SIZE, &v));
    assert_true(v == 32);
    rig_free(&r);
}

/* K = 3N: the write position cycles 0, N, 2N, 0, ...; each step replaces the
 * oldest N rows with unit-norm keys and leaves the others alone. */
static void test_queue_wraparound(void **state)
{
    (void)state;
    const int n = 4, k = 12, p = 8;
    rig r;
    rig_make(&r, k, 2);
    simclr_tensor *img = images(r.ctx, n, 1), *q;
    CHECK_OK(simclr_moco_queue(r.tr, &q));
    const float *qd = simclr_tensor_data(q);
    float prev[12 * 8];
    for (int s = 0; s < 5; s++) {
        memcpy(prev, qd, sizeof prev);
        double pos;
        CHECK_OK(simclr_moco_get(r.tr, SIMCLR_MOCO_QUEUE_POS, &pos));
        assert_int_equal((int)pos, (s * n) % k);
        CHECK_OK(simclr_trainer_step(r.tr, img, 100 + (uint64_t)s, NULL));
        int w0 = (s * n) % k;
        for (int j = 0; j < k; j++) {
            int written = j >= w0 && j < w0 + n;
            int same = memcmp(prev + j * p, qd + j * p, p * sizeof(float)) == 0;
            if (written == same) fail_msg("step %d: queue row %d %s", s, j, written ? "not written" : "overwritten");
            double norm = 0;
            for (int c = 0; c < p; c++) norm += (double)qd[j * p + c] * qd[j * p + c];
            assert_true(fabs(norm - 1) < 1e-5);
        }
    }
    double pos;
    CHECK_OK(simclr_moco_get(r.tr, SIMCLR_MOCO_QUEUE_POS, &pos));
    assert_int_equal((int)pos, (5 * n) % k);
    /* The key order is a permutation; sub-batches of N / splits. */
    int64_t order[4];
    CHECK_OK(simclr_moco_key_order(r.tr, order, n));
    int seen = 0;
    for (int j = 0; j < n; j++) seen |= 1 << order[j];
    assert_int_equal(seen, (1 << n) - 1);
    CHECK_STATUS(simclr_moco_key_order(r.tr, order, 3), SIMCLR_E_SHAPE);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

/* A queue position that is not a multiple of the batch (set by hand, or
 * left by batches of another size: 3 steps of 4 into 16 rows, then 8) wraps:
 * rows 12..15 and 0..3 are written, 4..11 kept, the position is 4. The step
 * used to write rows 12..19, past the end of the queue. */
static void test_queue_wraps_at_any_position(void **state)
{
    (void)state;
    const int k = 16, p = 8;
    for (int by_hand = 0; by_hand < 2; by_hand++) {
        rig r;
        rig_make(&r, k, 2);
        simclr_tensor *img4 = images(r.ctx, 4, 1), *img8 = images(r.ctx, 8, 2), *q;
        if (by_hand) CHECK_OK(simclr_moco_set(r.tr, SIMCLR_MOCO_QUEUE_POS, 12));
        else
            for (int s = 0; s < 3; s++) CHECK_OK(simclr_trainer_step(r.tr, img4, 10 + (uint64_t)s, NULL));
        CHECK_OK(simclr_moco_queue(r.tr, &q));
        const float *qd = simclr_tensor_data(q);
        float prev[16 * 8];
        memcpy(prev, qd, sizeof prev);
        CHECK_OK(simclr_trainer_step(r.tr, img8, 20, NULL));
        for (int j = 0; j < k; j++) {
            int written = j >= 12 || j < 4;
            int same = memcmp(prev + j * p, qd + j * p, p * sizeof(float)) == 0;
            if (written == same)
                fail_msg("%s: queue row %d %s", by_hand ? "position set by hand" : "after batches of 4", j,
                         written ? "not written" : "overwritten");
        }
        double pos;
        CHECK_OK(simclr_moco_get(r.tr, SIMCLR_MOCO_QUEUE_POS, &pos));
        assert_true(pos == 4);
        simclr_tensor_destroy(img4), simclr_tensor_destroy(img8);
        rig_free(&r);
    }
}

/* The key modules follow key = m_t key + (1 - m_t) query after each step,
 * with BYOL's cosine m_t over SIMCLR_MOCO_MOMENTUM_STEPS. The check uses
 * the key head's weights (parameters; its BN buffers also move by the key
 * forward itself). */
static void test_momentum_schedule_in_steps(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 16, 2);
    CHECK_OK(simclr_moco_set(r.tr, SIMCLR_MOCO_MOMENTUM, 0.9));
    CHECK_OK(simclr_moco_set(r.tr, SIMCLR_MOCO_MOMENTUM_STEPS, 3));
    simclr_tensor *img = images(r.ctx, 4, 2);
    const double pi = 3.14159265358979323846;
    simclr_tensor *kw, *qw;
    CHECK_OK(simclr_module_param(r.khead, 0, NULL, &kw, NULL, NULL));
    CHECK_OK(simclr_module_param(r.head, 0, NULL, &qw, NULL, NULL));
    int64_t ne = simclr_tensor_numel(kw);
    float *kb = malloc(ne * sizeof(float));
    for (int t = 0; t < 5; t++) {
        memcpy(kb, simclr_tensor_data(kw), ne * sizeof(float));
        CHECK_OK(simclr_trainer_step(r.tr, img, 7 + (uint64_t)t, NULL));
        double m = t >= 3 ? 1.0 : 1 - (1 - 0.9) * (cos(pi * t / 3) + 1) / 2;
        const float *kd = simclr_tensor_data(kw), *qd = simclr_tensor_data(qw);
        for (int64_t e = 0; e < ne; e++) {
            float want = (float)(m * kb[e] + (1 - m) * qd[e]);
            if (kd[e] != want) fail_msg("step %d, m_t %.6f: key[%lld] %.9g, want %.9g", t, m, (long long)e, kd[e], want);
        }
    }
    free(kb);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 16, 2);
    simclr_trainer *t = NULL;
    CHECK_STATUS(simclr_moco_trainer_create(NULL, r.enc, r.head, r.kenc, r.khead, r.aug, r.opt, 16, 1, &t),
                 SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_trainer_create(r.ctx, r.enc, r.head, NULL, r.khead, r.aug, r.opt, 16, 1, &t),
                 SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_trainer_create(r.ctx, r.enc, r.head, r.enc, r.khead, r.aug, r.opt, 16, 1, &t),
                 SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "distinct"));
    CHECK_STATUS(simclr_moco_trainer_create(r.ctx, r.enc, r.head, r.kenc, r.khead, r.aug, r.opt, 0, 1, &t),
                 SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_trainer_create(r.ctx, r.enc, r.head, r.khead, r.kenc, r.aug, r.opt, 16, 1, &t),
                 SIMCLR_E_SHAPE);
    /* An optimizer that would train the key path. */
    simclr_module *all[3] = {r.enc, r.head, r.kenc};
    simclr_optimizer *bad;
    CHECK_OK(simclr_optimizer_create(r.ctx, SIMCLR_OPT_SGD, all, 3, &bad));
    CHECK_STATUS(simclr_moco_trainer_create(r.ctx, r.enc, r.head, r.kenc, r.khead, r.aug, bad, 16, 1, &t),
                 SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "key module"));
    simclr_optimizer_destroy(bad);
    CHECK_OK(simclr_optimizer_create(r.ctx, SIMCLR_OPT_SGD, all, 1, &bad)); /* encoder only */
    CHECK_STATUS(simclr_moco_trainer_create(r.ctx, r.enc, r.head, r.kenc, r.khead, r.aug, bad, 16, 1, &t),
                 SIMCLR_E_INVALID);
    simclr_optimizer_destroy(bad);
    assert_null(t);

    /* Settings: out of range, read-only, unknown; nothing changes. */
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_MOMENTUM, 1.01), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_MOMENTUM, NAN), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_MOMENTUM_STEPS, 2.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_TEMPERATURE, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_KEY_SPLITS, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_KEY_SPLITS, 257), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_QUEUE_SIZE, 8), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "read-only"));
    CHECK_STATUS(simclr_moco_set(r.tr, SIMCLR_MOCO_QUEUE_POS, 16), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_set(r.tr, (simclr_moco_param)999, 1), SIMCLR_E_INVALID);
    double v;
    CHECK_STATUS(simclr_moco_get(r.tr, (simclr_moco_param)999, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_get(r.tr, SIMCLR_MOCO_MOMENTUM, NULL), SIMCLR_E_INVALID);
    CHECK_OK(simclr_moco_get(r.tr, SIMCLR_MOCO_KEY_SPLITS, &v));
    assert_true(v == 2);
    int64_t order[4];
    CHECK_STATUS(simclr_moco_key_order(r.tr, order, 4), SIMCLR_E_STATE);

    /* MoCo calls on a SimCLR trainer. */
    simclr_loss *nt;
    simclr_trainer *simclr_tr;
    CHECK_OK(simclr_ntxent_create(r.ctx, 0.5, 2, &nt));
    CHECK_OK(simclr_trainer_create(r.ctx, r.enc, r.head, r.aug, nt, r.opt, &simclr_tr));
    CHECK_STATUS(simclr_moco_set(simclr_tr, SIMCLR_MOCO_MOMENTUM, 0.9), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "not a MoCo trainer"));
    simclr_tensor *q;
    CHECK_STATUS(simclr_moco_queue(simclr_tr, &q), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_moco_queue(NULL, &q), SIMCLR_E_INVALID);

    /* Batches that fit neither the queue nor the splits: SHAPE, nothing changes. */
    state_copy a, b;
    copy_take(&a, &r);
    simclr_tensor *img3 = images(r.ctx, 3, 1), *img6 = images(r.ctx, 8, 1);
    CHECK_STATUS(simclr_trainer_step(r.tr, img3, 1, NULL), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "queue size"));
    CHECK_OK(simclr_moco_set(r.tr, SIMCLR_MOCO_KEY_SPLITS, 16));
    CHECK_STATUS(simclr_trainer_step(r.tr, img6, 1, NULL), SIMCLR_E_SHAPE);
    assert_non_null(strstr(simclr_last_error(), "SIMCLR_MOCO_KEY_SPLITS"));
    copy_take(&b, &r);
    assert_int_equal(copy_diff(&a, &b), 0);
    copy_free(&a);
    copy_free(&b);

    /* Checkpoints do not cross methods. */
    char path[300];
    snprintf(path, sizeof path, "%s/simclr.ckpt", tmpdir);
    CHECK_OK(simclr_trainer_save(simclr_tr, path));
    CHECK_STATUS(simclr_trainer_load(r.tr, path), SIMCLR_E_SHAPE);
    snprintf(path, sizeof path, "%s/moco.ckpt", tmpdir);
    CHECK_OK(simclr_trainer_save(r.tr, path));
    CHECK_STATUS(simclr_trainer_load(simclr_tr, path), SIMCLR_E_SHAPE);
    simclr_tensor_destroy(img3);
    simclr_tensor_destroy(img6);
    simclr_trainer_destroy(simclr_tr);
    simclr_loss_destroy(nt);
    rig_free(&r);
}

/* A NaN in the queue makes the loss fail after both forwards: BN statistics
 * of the four modules, parameters, optimizer state, queue, position and
 * counters are all as before, and the next good step works. */
static void test_failed_step_changes_nothing(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 16, 2);
    simclr_tensor *img = images(r.ctx, 4, 3), *q;
    CHECK_OK(simclr_trainer_step(r.tr, img, 1, NULL));
    CHECK_OK(simclr_moco_queue(r.tr, &q));
    float *qd = simclr_tensor_data(q);
    float keep = qd[13 * 8 + 2];
    qd[13 * 8 + 2] = NAN;
    state_copy a, b;
    int64_t order[4], order_after[4];
    CHECK_OK(simclr_moco_key_order(r.tr, order, 4));
    copy_take(&a, &r);
    CHECK_STATUS(simclr_trainer_step(r.tr, img, 2, NULL), SIMCLR_E_NUMERIC);
    assert_non_null(strstr(simclr_last_error(), "moco"));
    /* Also with a new batch size (the step buffers are rebuilt first). */
    simclr_tensor *img8 = images(r.ctx, 8, 4);
    CHECK_STATUS(simclr_trainer_step(r.tr, img8, 2, NULL), SIMCLR_E_NUMERIC);
    simclr_tensor_destroy(img8);
    copy_take(&b, &r);
    assert_int_equal(copy_diff(&a, &b), 0);
    copy_free(&a);
    copy_free(&b);
    CHECK_OK(simclr_moco_key_order(r.tr, order_after, 4));
    assert_memory_equal(order, order_after, sizeof order);
    qd[13 * 8 + 2] = keep;
    float loss;
    CHECK_OK(simclr_trainer_step(r.tr, img, 2, &loss));
    assert_true(isfinite(loss));
    double v;
    CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_STEP, &v));
    assert_true(v == 2);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

/* The whole state of a MoCo trainer, for the step failure sweep. */
static sf_blob moco_state(void *u, int timing)
{
    rig *r = u;
    return sf_moco_state(r->tr, r->enc, r->head, r->kenc, r->khead, r->opt, timing);
}

/* Every way a MoCo step can fail after it started, on a trainer whose
 * gradients, momentum, BN statistics, queue and counters are all set (one
 * good step first): a stop at each poll of the progress callback, a NaN
 * weight, allocation 1, 2, ... failing (at a new batch size, then at the
 * same one). Each failure leaves the trainer byte for byte as it was
 * (gradients included: issue 24, the failed step used to zero them); the
 * step that then succeeds equals that of a trainer that never failed. */
static void test_failed_steps_sweep(void **state)
{
    (void)state;
    test_alloc ta = {0, 0, 0, 0};
    simclr_allocator hooks = test_allocator(&ta);
    rig a, ref;
    CHECK_OK(rig_try(&a, &hooks, 16));
    CHECK_OK(simclr_moco_set(a.tr, SIMCLR_MOCO_KEY_SPLITS, 2));
    rig_make(&ref, 16, 2);
    simclr_tensor *img4 = images(a.ctx, 4, 3), *img8 = images(a.ctx, 8, 4);
    const sf_target t = {a.tr, ref.tr, a.ctx, a.enc, &ta, &a, &ref, moco_state};
    sf_counts n = sf_sweep_all(&t, img4, img8, NULL, NULL);
    print_message("moco failed steps: %ld stops, %ld NaN, %ld + %ld allocation failures; each left the trainer as "
                  "it was\n", n.stops, n.nans, n.allocs_new, n.allocs);
    simclr_tensor_destroy(img4), simclr_tensor_destroy(img8);
    rig_free(&a), rig_free(&ref);
    assert_int_equal(ta.live, 0);
}

/* Save after 2 steps, run 3 more; a fresh trainer (other initial weights and
 * queue) loaded from the file runs the same 3 steps to the same bits. */
static void test_checkpoint_resume_bit_identical(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/resume.ckpt", tmpdir);
    rig a, b;
    rig_make(&a, 16, 2);
    CHECK_OK(simclr_moco_set(a.tr, SIMCLR_MOCO_MOMENTUM, 0.99));
    simclr_tensor *img[5];
    for (int s = 0; s < 5; s++) img[s] = images(a.ctx, 4, 20 + (uint64_t)s);
    for (int s = 0; s < 2; s++) CHECK_OK(simclr_trainer_step(a.tr, img[s], (uint64_t)s, NULL));
    CHECK_OK(simclr_trainer_save(a.tr, path));
    float la[3], lb[3];
    for (int s = 2; s < 5; s++) CHECK_OK(simclr_trainer_step(a.tr, img[s], (uint64_t)s, &la[s - 2]));

    CHECK_OK(rig_try(&b, NULL, 16));
    CHECK_OK(simclr_moco_set(b.tr, SIMCLR_MOCO_KEY_SPLITS, 2));
    CHECK_OK(simclr_moco_set(b.tr, SIMCLR_MOCO_MOMENTUM, 0.99));
    simclr_tensor *qb;
    CHECK_OK(simclr_moco_queue(b.tr, &qb));
    test_fill(simclr_tensor_data(qb), simclr_tensor_numel(qb), 5); /* another queue before loading */
    CHECK_OK(simclr_trainer_load(b.tr, path));
    for (int s = 2; s < 5; s++) CHECK_OK(simclr_trainer_step(b.tr, img[s], (uint64_t)s, &lb[s - 2]));
    assert_memory_equal(la, lb, sizeof la);
    state_copy sa, sb;
    copy_take(&sa, &a);
    copy_take(&sb, &b);
    assert_int_equal(copy_diff(&sa, &sb), 0);
    assert_true(sa.pos == 4 && sa.steps == 5); /* 5 steps of 4 into 16 rows */
    copy_free(&sa);
    copy_free(&sb);

    /* A corrupt file changes nothing. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, -20, SEEK_END);
    fputc(0x5a, f);
    fclose(f);
    copy_take(&sa, &b);
    simclr_status st = simclr_trainer_load(b.tr, path);
    assert_true(st == SIMCLR_E_FORMAT || st == SIMCLR_E_IO);
    copy_take(&sb, &b);
    assert_int_equal(copy_diff(&sa, &sb), 0);
    copy_free(&sa);
    copy_free(&sb);
    for (int s = 0; s < 5; s++) simclr_tensor_destroy(img[s]);
    rig_free(&b);
    rig_free(&a);
}

/* Fail the Nth allocation of the whole setup and first step, N = 1, 2, ...:
 * every failure is a clean NOMEM and nothing leaks. */
static void test_allocation_failures(void **state)
{
    (void)state;
    int failures = 0;
    for (long at = 1; at < 100000; at++) {
        test_alloc counter = {0, 0, 0, at};
        simclr_allocator hooks = test_allocator(&counter);
        rig r;
        simclr_status st = rig_try(&r, &hooks, 8);
        simclr_tensor *img = NULL;
        if (st == SIMCLR_OK) {
            simclr_moco_set(r.tr, SIMCLR_MOCO_KEY_SPLITS, 2);
            st = simclr_tensor_create(r.ctx, SIMCLR_U8, 4, (const int64_t[]){4, IMG, IMG, CH}, &img);
        }
        if (st == SIMCLR_OK) st = simclr_trainer_step(r.tr, img, 1, NULL);
        simclr_tensor_destroy(img);
        if (r.ctx) rig_free(&r);
        assert_int_equal(counter.live, 0);
        if (st == SIMCLR_OK && counter.allocs < at) break;
        if (st != SIMCLR_OK) {
            if (st != SIMCLR_E_NOMEM) fail_msg("allocation %ld: %s: %s", at, simclr_status_string(st), simclr_last_error());
            failures++;
        }
    }
    print_message("moco: %d allocation failures, each a clean SIMCLR_E_NOMEM\n", failures);
    assert_true(failures > 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infonce_value_and_gradient),
        cmocka_unit_test(test_momentum_update_arithmetic),
        cmocka_unit_test(test_create_copies_query_into_key),
        cmocka_unit_test(test_queue_wraparound),
        cmocka_unit_test(test_queue_wraps_at_any_position),
        cmocka_unit_test(test_momentum_schedule_in_steps),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_failed_step_changes_nothing),
        cmocka_unit_test(test_failed_steps_sweep),
        cmocka_unit_test(test_checkpoint_resume_bit_identical),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("moco", tests, group_setup, group_teardown);
}
