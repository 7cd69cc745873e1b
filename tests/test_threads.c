/* The header's threading rules, exercised so ThreadSanitizer (make tsan) can
 * watch them:
 *  - distinct contexts are independent and may be used from different
 *    threads at once: many threads each build a context (with its own pool)
 *    and a whole small trainer, train, extract, evaluate, save and load;
 *  - the library keeps no global mutable state: stateless functions
 *    (versions, status strings, backend names, augmentation bounds) run from
 *    every thread at once;
 *  - the error message is per thread: each thread makes its own call fail
 *    and reads back its own message while the others do the same;
 *  - a context's pool survives repeated create/destroy, also with threads
 *    created and destroyed concurrently.
 * Results must also be identical across threads (same seeds, same bits). */
#include <pthread.h>
#include <unistd.h>

#include "test_util.h"

#define N_THREADS 4
#define IMG 8

static char dir[64];

typedef struct job {
    int id;
    float loss;
    double knn;
    unsigned char digest[32]; /* first bytes of the trained head's weights */
    int failed;
    char msg[256];
} job;

#define JOB_CHECK(j, expr)                                                                            \
    do {                                                                                              \
        simclr_status s_ = (expr);                                                                    \
        if (s_ != SIMCLR_OK && !(j)->failed) {                                                        \
            (j)->failed = 1;                                                                          \
            snprintf((j)->msg, sizeof (j)->msg, "%s -> %s: %s", #expr, simclr_status_string(s_),      \
                     simclr_last_error());                                                            \
        }                                                                                             \
    } while (0)

/* One whole small SimCLR run on its own context. */
static void *run_trainer(void *arg)
{
    job *j = arg;
    simclr_context *ctx = NULL;
    simclr_module *enc = NULL, *head = NULL;
    simclr_augment *aug = NULL;
    simclr_loss *loss = NULL;
    simclr_optimizer *opt = NULL;
    simclr_trainer *tr = NULL;
    simclr_tensor *img = NULL, *feats = NULL;
    JOB_CHECK(j, simclr_context_create("cpu", 2, NULL, &ctx));
    if (j->failed) return NULL;
    JOB_CHECK(j, simclr_resnet_create(ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 7, &enc));
    JOB_CHECK(j, simclr_mlp_head_create(ctx, 16, 16, 8, 2, 0, 8, &head));
    JOB_CHECK(j, simclr_augment_create(ctx, SIMCLR_AUG_PRESET_GRAYSCALE, IMG, IMG, &aug));
    JOB_CHECK(j, simclr_ntxent_create(ctx, 0.5, 2, &loss));
    simclr_module *mods[2] = {enc, head};
    JOB_CHECK(j, simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, mods, 2, &opt));
    JOB_CHECK(j, simclr_trainer_create(ctx, enc, head, aug, loss, opt, &tr));
    int64_t is[4] = {6, IMG, IMG, 1};
    JOB_CHECK(j, simclr_tensor_create(ctx, SIMCLR_U8, 4, is, &img));
    if (j->failed) goto out;
    unsigned char *px = simclr_tensor_data(img);
    for (int64_t i = 0; i < simclr_tensor_numel(img); i++) px[i] = (unsigned char)(i * 29 + i / 5);
    for (int s = 0; s < 3; s++) JOB_CHECK(j, simclr_trainer_step(tr, img, (uint64_t)s, &j->loss));
    char path[128];
    snprintf(path, sizeof path, "%s/trainer_%d.simclr", dir, j->id);
    JOB_CHECK(j, simclr_trainer_save(tr, path));
    JOB_CHECK(j, simclr_trainer_load(tr, path));
    /* kNN on the encoder's features of the training images (as U8 -> F32) */
    int64_t xs[4] = {6, 1, IMG, IMG}, fs[2] = {6, 16};
    simclr_tensor *x = NULL;
    JOB_CHECK(j, simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &x));
    JOB_CHECK(j, simclr_tensor_create(ctx, SIMCLR_F32, 2, fs, &feats));
    if (!j->failed) {
        float *xd = simclr_tensor_data(x);
        for (int64_t i = 0; i < simclr_tensor_numel(x); i++) xd[i] = px[i] / 255.0f;
        JOB_CHECK(j, simclr_module_forward(enc, x, SIMCLR_EVAL, feats));
        int32_t labels[6] = {0, 1, 0, 1, 0, 1};
        JOB_CHECK(j, simclr_knn_eval_n(ctx, feats, labels, 6, feats, labels, 6, 2, 3, 0.1, &j->knn));
        simclr_tensor *w;
        JOB_CHECK(j, simclr_module_param(head, 0, NULL, &w, NULL, NULL));
        if (!j->failed) memcpy(j->digest, simclr_tensor_data(w), sizeof j->digest);
    }
    simclr_tensor_destroy(x);
    remove(path);
out:
    simclr_tensor_destroy(feats);
    simclr_tensor_destroy(img);
    simclr_trainer_destroy(tr);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_augment_destroy(aug);
    simclr_module_destroy(head);
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    return NULL;
}

static void test_contexts_in_threads(void **state)
{
    (void)state;
    job jobs[N_THREADS];
    pthread_t th[N_THREADS];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, run_trainer, &jobs[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_THREADS; i++)
        if (jobs[i].failed) fail_msg("thread %d: %s", i, jobs[i].msg);
    /* the same work on every thread gives the same bits */
    for (int i = 1; i < N_THREADS; i++) {
        assert_true(jobs[i].loss == jobs[0].loss);
        assert_true(jobs[i].knn == jobs[0].knn);
        assert_memory_equal(jobs[i].digest, jobs[0].digest, sizeof jobs[0].digest);
    }
    assert_true(isfinite(jobs[0].loss));
}

/* Stateless calls and per-thread error messages, from every thread at once. */
static void *stateless_and_errors(void *arg)
{
    job *j = arg;
    char want[64];
    snprintf(want, sizeof want, "n_threads %d out of range", 1000 + j->id);
    for (int rep = 0; rep < 200 && !j->failed; rep++) {
        double lo, hi;
        if (simclr_version_number() != SIMCLR_VERSION_NUMBER || strcmp(simclr_status_string(SIMCLR_E_IO), "") == 0 ||
            simclr_backend_count() < 2 || !simclr_backend_name(0) ||
            simclr_augment_bounds(SIMCLR_AUG_CROP_SCALE_MIN, &lo, &hi) != SIMCLR_OK || !(lo < hi) ||
            simclr_isa_supported("portable") != 1 || simclr_lr_linear_scaling(0.3, 512) != 0.6) {
            j->failed = 1;
            snprintf(j->msg, sizeof j->msg, "a stateless call misbehaved");
        }
        /* simclr_error_set and simclr_comm_single: any thread (header) */
        simclr_comm cs;
        char own[32];
        snprintf(own, sizeof own, "thread %d's own", j->id);
        if (simclr_comm_single(&cs) != SIMCLR_OK || simclr_error_set(SIMCLR_E_STATE, own) != SIMCLR_E_STATE ||
            strcmp(simclr_last_error(), own) != 0) {
            j->failed = 1;
            snprintf(j->msg, sizeof j->msg, "thread %d: error_set/comm_single: '%s'", j->id, simclr_last_error());
        }
        simclr_context *c = NULL;
        if (simclr_context_create("cpu", 1000 + j->id, NULL, &c) != SIMCLR_E_INVALID || c ||
            !strstr(simclr_last_error(), want)) {
            j->failed = 1;
            snprintf(j->msg, sizeof j->msg, "thread %d read '%s'", j->id, simclr_last_error());
        }
    }
    return NULL;
}

static void test_stateless_and_thread_local_errors(void **state)
{
    (void)state;
    job jobs[8];
    pthread_t th[8];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 8; i++) {
        jobs[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, stateless_and_errors, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++)
        if (jobs[i].failed) fail_msg("thread %d: %s", i, jobs[i].msg);
}

/* Contexts (and their pools) created, used and destroyed over and over,
 * from several threads at once, with different thread counts. */
static void *pool_churn(void *arg)
{
    job *j = arg;
    for (int rep = 0; rep < 25 && !j->failed; rep++) {
        simclr_context *ctx = NULL;
        JOB_CHECK(j, simclr_context_create("cpu", 1 + (rep + j->id) % 4, NULL, &ctx));
        if (j->failed) break;
        if (rep % 2) { /* half the time, run a parallel call before destroying */
            int64_t s[4] = {3, 5, 5, 1}, o[4] = {3, 1, 4, 4};
            simclr_tensor *in = NULL, *out = NULL;
            simclr_augment *aug = NULL;
            JOB_CHECK(j, simclr_tensor_create(ctx, SIMCLR_U8, 4, s, &in));
            JOB_CHECK(j, simclr_tensor_create(ctx, SIMCLR_F32, 4, o, &out));
            JOB_CHECK(j, simclr_augment_create(ctx, SIMCLR_AUG_PRESET_GRAYSCALE, 4, 4, &aug));
            if (!j->failed) JOB_CHECK(j, simclr_augment_apply(aug, in, (uint64_t)rep, 0, out));
            simclr_augment_destroy(aug);
            simclr_tensor_destroy(in);
            simclr_tensor_destroy(out);
        }
        simclr_context_destroy(ctx);
    }
    return NULL;
}

/* simclr_context_isa: "Any thread", also while another thread runs a call
 * on the same context (it reads what creation fixed). */
typedef struct busy {
    simclr_context *ctx;
    int failed;
} busy;

static void *augment_loop(void *arg)
{
    busy *b = arg;
    int64_t s[4] = {4, 9, 9, 3}, o[4] = {4, 3, 6, 6};
    simclr_tensor *in = NULL, *out = NULL;
    simclr_augment *aug = NULL;
    if (simclr_tensor_create(b->ctx, SIMCLR_U8, 4, s, &in) != SIMCLR_OK ||
        simclr_tensor_create(b->ctx, SIMCLR_F32, 4, o, &out) != SIMCLR_OK ||
        simclr_augment_create(b->ctx, SIMCLR_AUG_PRESET_SIMCLR_V1, 6, 6, &aug) != SIMCLR_OK)
        b->failed = 1;
    for (int rep = 0; rep < 40 && !b->failed; rep++)
        if (simclr_augment_apply(aug, in, (uint64_t)rep, 0, out) != SIMCLR_OK) b->failed = 1;
    simclr_augment_destroy(aug);
    simclr_tensor_destroy(in);
    simclr_tensor_destroy(out);
    return NULL;
}

static void test_isa_while_a_call_runs(void **state)
{
    (void)state;
    busy b = {NULL, 0};
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &b.ctx));
    const char *isa = simclr_context_isa(b.ctx);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, augment_loop, &b), 0);
    for (int i = 0; i < 2000; i++) assert_ptr_equal(simclr_context_isa(b.ctx), isa);
    pthread_join(th, NULL);
    assert_false(b.failed);
    simclr_context_destroy(b.ctx);
}

static void test_pool_create_destroy(void **state)
{
    (void)state;
    job jobs[N_THREADS];
    pthread_t th[N_THREADS];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, pool_churn, &jobs[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_THREADS; i++)
        if (jobs[i].failed) fail_msg("thread %d: %s", i, jobs[i].msg);
}

/* One context handed from thread to thread (used by one at a time, as the
 * header allows): the hand-over is a join, so TSan sees the ordering. */
static simclr_context *shared_ctx;
static simclr_augment *shared_aug;

static void *use_shared(void *arg)
{
    job *j = arg;
    int64_t s[4] = {2, 6, 6, 1}, o[4] = {2, 1, 4, 4};
    simclr_tensor *in = NULL, *out = NULL;
    JOB_CHECK(j, simclr_tensor_create(shared_ctx, SIMCLR_U8, 4, s, &in));
    JOB_CHECK(j, simclr_tensor_create(shared_ctx, SIMCLR_F32, 4, o, &out));
    if (!j->failed) JOB_CHECK(j, simclr_augment_apply(shared_aug, in, (uint64_t)j->id, 0, out));
    simclr_tensor_destroy(in);
    simclr_tensor_destroy(out);
    return NULL;
}

static void test_context_handed_over(void **state)
{
    (void)state;
    CHECK_OK(simclr_context_create("cpu", 3, NULL, &shared_ctx));
    CHECK_OK(simclr_augment_create(shared_ctx, SIMCLR_AUG_PRESET_GRAYSCALE, 4, 4, &shared_aug));
    for (int i = 0; i < 6; i++) {
        job j;
        memset(&j, 0, sizeof j);
        j.id = i;
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, use_shared, &j), 0);
        pthread_join(th, NULL);
        if (j.failed) fail_msg("hand-over %d: %s", i, j.msg);
    }
    simclr_augment_destroy(shared_aug);
    simclr_context_destroy(shared_ctx);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "threads");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contexts_in_threads),
        cmocka_unit_test(test_stateless_and_thread_local_errors),
        cmocka_unit_test(test_pool_create_destroy),
        cmocka_unit_test(test_isa_while_a_call_runs),
        cmocka_unit_test(test_context_handed_over),
    };
    return cmocka_run_group_tests_name("threads", tests, setup, teardown);
}
