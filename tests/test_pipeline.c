/* The one trainer pipeline (src/train/pipeline.c) over its method table:
 * combinations that used to be refused now run and give the mathematics'
 * answer. MoCo with micro-batches (gradient caching over the query path)
 * equals MoCo without, and MoCo on 2 ranks (two threads joined by a
 * shared-memory communicator) equals one process with both shards, within
 * float tolerance, with BN frozen and every ReLU input of the query path
 * kept clear of zero (tests/relu_margin.h); MoCo over an image list equals
 * MoCo over the same images as a tensor bit for bit, micro-batches
 * included (the list's draws keyed by the global index); every way a MoCo
 * step with micro-batches, synchronized BN and a communicator can fail
 * leaves the trainer byte for byte as it was; a warm step allocates
 * nothing, for either method and any setting; a method that cannot combine
 * with a setting is refused at the setter with its reason. */
#include "test_util.h"

#include <pthread.h>

#include "core/context.h"
#include "train/trainer.h"
#include "relu_margin.h"
#include "step_faults.h"

#define IMG 12
#define N 8
#define QUEUE 16

typedef struct {
    simclr_context *ctx;
    simclr_module *enc, *head, *kenc, *khead;
    simclr_augment *aug;
    simclr_optimizer *opt;
    simclr_trainer *tr;
} rig;

static void rig_make_alloc(rig *r, const simclr_allocator *alloc)
{
    memset(r, 0, sizeof *r);
    CHECK_OK(simclr_context_create("cpu", 2, alloc, &r->ctx));
    CHECK_OK(simclr_resnet_create(r->ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 21, &r->enc));
    CHECK_OK(simclr_resnet_create(r->ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 31, &r->kenc));
    int d = (int)simclr_module_output_dim(r->enc);
    CHECK_OK(simclr_mlp_head_create(r->ctx, d, d, 16, 3, 1, 22, &r->head));
    CHECK_OK(simclr_mlp_head_create(r->ctx, d, d, 16, 3, 1, 32, &r->khead));
    CHECK_OK(simclr_augment_create(r->ctx, SIMCLR_AUG_PRESET_CIFAR, IMG, IMG, &r->aug));
    simclr_module *mods[2] = {r->enc, r->head};
    CHECK_OK(simclr_optimizer_create(r->ctx, SIMCLR_OPT_SGD, mods, 2, &r->opt));
    CHECK_OK(simclr_optimizer_set(r->opt, SIMCLR_OPT_LR, 0.005));
    CHECK_OK(simclr_optimizer_set(r->opt, SIMCLR_OPT_MOMENTUM, 0.9));
    CHECK_OK(simclr_moco_trainer_create(r->ctx, r->enc, r->head, r->kenc, r->khead, r->aug, r->opt, QUEUE, 5,
                                        &r->tr));
    CHECK_OK(simclr_moco_set(r->tr, SIMCLR_MOCO_KEY_SPLITS, 2));
    CHECK_OK(simclr_moco_set(r->tr, SIMCLR_MOCO_MOMENTUM, 0.9));
}

static void rig_make(rig *r) { rig_make_alloc(r, NULL); }

static void rig_free(rig *r)
{
    simclr_trainer_destroy(r->tr);
    simclr_optimizer_destroy(r->opt);
    simclr_augment_destroy(r->aug);
    simclr_module_destroy(r->khead);
    simclr_module_destroy(r->kenc);
    simclr_module_destroy(r->head);
    simclr_module_destroy(r->enc);
    simclr_context_destroy(r->ctx);
}

/* Colour gradients with mild noise: images that differ from each other. */
static uint8_t pixels[N * IMG * IMG * 3];

static void make_pixels(void)
{
    uint64_t s = 77;
    for (int i = 0; i < N; i++) {
        double base[3], gx[3];
        for (int c = 0; c < 3; c++) base[c] = 60 + 120 * (test_randf(&s) + 1) / 2, gx[c] = 60 * test_randf(&s);
        for (int p = 0; p < IMG * IMG; p++)
            for (int c = 0; c < 3; c++) {
                double v = base[c] + gx[c] * (p % IMG) / IMG + 20 * test_randf(&s);
                pixels[((size_t)i * IMG * IMG + p) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
}

/* Images first .. first+n-1 as a borrowed tensor. */
static simclr_tensor *shard(simclr_context *ctx, int first, int n)
{
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_wrap(ctx, SIMCLR_U8, 4, (const int64_t[]){n, IMG, IMG, 3},
                                pixels + (size_t)first * IMG * IMG * 3, &t));
    return t;
}

/* Every gradient of encoder and head, concatenated. */
static float *grads(rig *r, int64_t *count)
{
    simclr_module *mods[2] = {r->enc, r->head};
    float *out = NULL;
    int64_t n = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < simclr_module_param_count(mods[k]); i++) {
            simclr_tensor *g;
            CHECK_OK(simclr_module_param(mods[k], i, NULL, NULL, &g, NULL));
            if (!g) continue;
            out = realloc(out, (size_t)(n + simclr_tensor_numel(g)) * sizeof(float));
            memcpy(out + n, simclr_tensor_data(g), simclr_tensor_bytes(g));
            n += simclr_tensor_numel(g);
        }
    *count = n;
    return out;
}

/* ---- a communicator between two threads --------------------------------- */

typedef struct shared {
    pthread_barrier_t bar;
    const float *post[2];
} shared;

typedef struct tcomm {
    shared *sh;
    int rank;
} tcomm;

static int t_rank(void *u) { return ((tcomm *)u)->rank; }
static int t_size(void *u) { (void)u; return 2; }

/* Sums in rank order on both ranks: the same bits everywhere. */
static int t_reduce(void *u, float *d, int64_t n)
{
    tcomm *c = u;
    float *sum = malloc((size_t)(n ? n : 1) * sizeof(float));
    c->sh->post[c->rank] = d;
    pthread_barrier_wait(&c->sh->bar);
    for (int64_t i = 0; i < n; i++) sum[i] = c->sh->post[0][i] + c->sh->post[1][i];
    pthread_barrier_wait(&c->sh->bar);
    memcpy(d, sum, (size_t)n * sizeof(float));
    free(sum);
    return 0;
}

static int t_gather(void *u, const float *s, int64_t n, float *r)
{
    tcomm *c = u;
    c->sh->post[c->rank] = s;
    pthread_barrier_wait(&c->sh->bar);
    for (int k = 0; k < 2; k++) memcpy(r + k * n, c->sh->post[k], (size_t)n * sizeof(float));
    pthread_barrier_wait(&c->sh->bar);
    return 0;
}

static int t_bcast(void *u, float *d, int64_t n, int root)
{
    tcomm *c = u;
    c->sh->post[c->rank] = d;
    pthread_barrier_wait(&c->sh->bar);
    if (c->rank != root) memcpy(d, c->sh->post[root], (size_t)n * sizeof(float));
    pthread_barrier_wait(&c->sh->bar);
    return 0;
}

/* One rank's work: attach (first call) or one step on its shard. */
typedef struct rank_job {
    rig *r;
    tcomm comm;
    simclr_tensor *img;
    uint64_t seed;
    int attach;
    simclr_status st;
    float loss;
    char message[512];
} rank_job;

static void *rank_main(void *arg)
{
    rank_job *j = arg;
    if (j->attach) {
        simclr_comm comm = {t_rank, t_size, t_reduce, t_gather, t_bcast, NULL, &j->comm};
        j->st = simclr_trainer_set_comm(j->r->tr, &comm);
    } else {
        j->st = simclr_trainer_step(j->r->tr, j->img, j->seed, &j->loss);
    }
    if (j->st != SIMCLR_OK) snprintf(j->message, sizeof j->message, "%s", simclr_last_error());
    return NULL;
}

static void run_ranks(rank_job *jobs)
{
    pthread_t t[2];
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&t[k], NULL, rank_main, &jobs[k]), 0);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++)
        if (jobs[k].st != SIMCLR_OK) fail_msg("rank %d: %s", k, jobs[k].message);
}

/* ---- MoCo with micro-batches and on ranks equals MoCo alone ------------- */

/* Runs: one process with the whole batch (reference), micro-batches of 2
 * and of 4, and 2 ranks with 4 images each. With BN frozen the query path is
 * per image, so all must give the reference's loss, gradients and queue up
 * to float summation order, step after step (3 steps). Before each step the
 * ReLU biases of the query path of every run are shifted alike so that no
 * ReLU input is near zero, and the margin is asserted: else a mask could
 * flip between runs and the comparison would hold or fail by luck. (The key
 * path has no backward: a ReLU input near zero there moves a key by no more
 * than rounding.) */
static void test_moco_micro_and_ranks_equal_whole(void **state)
{
    (void)state;
    enum { STEPS = 3, RUNS = 5 }; /* whole, micro 2, micro 4, rank 0, rank 1 */
    static const char *const names[RUNS] = {"whole batch", "micro-batches of 2", "micro-batches of 4", "rank 0 of 2",
                                            "rank 1 of 2"};
    make_pixels();
    rig r[RUNS];
    for (int k = 0; k < RUNS; k++) {
        rig_make(&r[k]);
        CHECK_OK(simclr_trainer_set(r[k].tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_FROZEN));
    }
    CHECK_OK(simclr_trainer_set(r[1].tr, SIMCLR_TRAINER_MICRO_BATCH, 2));
    CHECK_OK(simclr_trainer_set(r[2].tr, SIMCLR_TRAINER_MICRO_BATCH, 4));
    shared sh;
    pthread_barrier_init(&sh.bar, NULL, 2);
    rank_job jobs[2];
    for (int k = 0; k < 2; k++)
        jobs[k] = (rank_job){&r[3 + k], {&sh, k}, shard(r[3 + k].ctx, 4 * k, N / 2), 0, 1, SIMCLR_OK, 0, ""};
    run_ranks(jobs);
    simclr_tensor *img = shard(r[0].ctx, 0, N);

    /* The query views each step trains on, for the margin. */
    static float views[2 * N * 3 * IMG * IMG], feat[N * 64], z[N * 16];
    simclr_tensor *tv0, *tv1;
    CHECK_OK(simclr_tensor_wrap(r[0].ctx, SIMCLR_F32, 4, (const int64_t[]){N, 3, IMG, IMG}, views, &tv0));
    CHECK_OK(simclr_tensor_wrap(r[0].ctx, SIMCLR_F32, 4, (const int64_t[]){N, 3, IMG, IMG}, views + N * 3 * IMG * IMG,
                                &tv1));
    assert_true(simclr_module_output_dim(r[0].enc) <= 64 && simclr_module_output_dim(r[0].head) <= 16);
    rm_net net;
    rm_init(&net, r[0].enc, r[0].head, 1);
    double shifts[4096];
    for (int s = 0; s < STEPS; s++) {
        const uint64_t seed = 5 + (uint64_t)s;
        CHECK_OK(simclr_augment_pair(r[0].aug, img, seed, tv0, tv1));
        CHECK_OK(rm_library_forward(r[0].ctx, r[0].enc, r[0].head, tv0, 1, feat, z));
        rm_reload(&net);
        rm_calibrate(&net, views, N, 3, IMG, IMG, feat, z);
        int64_t shifted = rm_repair(&net, views, N, 3, IMG, IMG, shifts, 4096);
        for (int k = 0; k < RUNS; k++) rm_apply(&net, r[k].enc, r[k].head, shifts);
        rm_report rep;
        CHECK_OK(rm_library_forward(r[0].ctx, r[0].enc, r[0].head, tv0, 1, feat, z));
        if (rm_check(&net, views, N, 3, IMG, IMG, feat, z, &rep)) fail_msg("step %d: %s", s, rep.message);
        printf("moco, frozen BN, step %d: ReLU inputs %lld channels shifted, min|x|/max|x| %.3g, min|x|/noise %.3g\n",
               s, (long long)shifted, rep.margin, rep.noise);

        float loss[RUNS];
        for (int k = 0; k < 3; k++) CHECK_OK(simclr_trainer_step(r[k].tr, img, seed, &loss[k]));
        for (int k = 0; k < 2; k++) jobs[k].attach = 0, jobs[k].seed = seed;
        run_ranks(jobs);
        loss[3] = jobs[0].loss, loss[4] = jobs[1].loss;
        int64_t n;
        float *g0 = grads(&r[0], &n);
        double gmax = 0;
        for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g0[i]));
        assert_true(gmax > 1e-3); /* a real gradient */
        simclr_tensor *q0;
        CHECK_OK(simclr_moco_queue(r[0].tr, &q0));
        const float *qd0 = simclr_tensor_data(q0);
        for (int k = 1; k < RUNS; k++) {
            int64_t n2;
            float *gk = grads(&r[k], &n2);
            assert_int_equal(n, n2);
            double err = 0, qerr = 0;
            for (int64_t i = 0; i < n; i++) err = fmax(err, fabs((double)gk[i] - g0[i]));
            simclr_tensor *q;
            CHECK_OK(simclr_moco_queue(r[k].tr, &q));
            const float *qd = simclr_tensor_data(q);
            for (int64_t i = 0; i < simclr_tensor_numel(q); i++) qerr = fmax(qerr, fabs((double)qd[i] - qd0[i]));
            double pos, pos0, micro;
            CHECK_OK(simclr_moco_get(r[k].tr, SIMCLR_MOCO_QUEUE_POS, &pos));
            CHECK_OK(simclr_moco_get(r[0].tr, SIMCLR_MOCO_QUEUE_POS, &pos0));
            CHECK_OK(simclr_trainer_stat(r[k].tr, SIMCLR_STAT_MICRO_BATCHES, &micro));
            printf("  %-18s loss %.7f vs %.7f, gradient max |diff| %.3g (largest %.3g), queue max |diff| %.3g, "
                   "%g micro-batches\n", names[k], (double)loss[k], (double)loss[0], err, gmax, qerr, micro);
            assert_true(fabs((double)loss[k] - loss[0]) <= 1e-6);
            assert_true(err <= 1e-5 * gmax);
            assert_true(qerr <= 1e-5);
            assert_true(pos == pos0);
            assert_true(micro == (k == 1 ? 4 : k == 2 ? 2 : 1));
            free(gk);
        }
        free(g0);
    }
    /* Every rank pushed the global batch's keys: the two queues are the same bits. */
    simclr_tensor *qa, *qb;
    CHECK_OK(simclr_moco_queue(r[3].tr, &qa));
    CHECK_OK(simclr_moco_queue(r[4].tr, &qb));
    assert_memory_equal(simclr_tensor_data(qa), simclr_tensor_data(qb), simclr_tensor_bytes(qa));
    rm_free(&net);
    simclr_tensor_destroy(tv0), simclr_tensor_destroy(tv1), simclr_tensor_destroy(img);
    for (int k = 0; k < 2; k++) simclr_tensor_destroy(jobs[k].img);
    for (int k = 0; k < RUNS; k++) rig_free(&r[k]);
    pthread_barrier_destroy(&sh.bar);
}

/* ---- MoCo over an image list -------------------------------------------- */

/* The same images as a list and as a tensor give the same steps bit for
 * bit, with micro-batches of 2 too: the list's views are drawn with the
 * global image index of each micro-batch (a list step used to be refused
 * for MoCo). */
static void test_moco_list_equals_tensor(void **state)
{
    (void)state;
    make_pixels();
    for (int micro = 0; micro <= 2; micro += 2) {
        rig a, b;
        rig_make(&a);
        rig_make(&b);
        CHECK_OK(simclr_trainer_set(a.tr, SIMCLR_TRAINER_MICRO_BATCH, micro));
        CHECK_OK(simclr_trainer_set(b.tr, SIMCLR_TRAINER_MICRO_BATCH, micro));
        simclr_tensor *img = shard(a.ctx, 0, N);
        simclr_image_list *list;
        CHECK_OK(simclr_image_list_create(b.ctx, 3, &list));
        for (int i = 0; i < N; i++) CHECK_OK(simclr_image_list_add(list, pixels + (size_t)i * IMG * IMG * 3, IMG, IMG));
        for (int s = 0; s < 2; s++) {
            float la, lb;
            CHECK_OK(simclr_trainer_step(a.tr, img, 9 + (uint64_t)s, &la));
            CHECK_OK(simclr_trainer_step_list(b.tr, list, 9 + (uint64_t)s, &lb));
            assert_true(la == lb);
        }
        sf_blob x = {0}, y = {0};
        simclr_module *ma[4] = {a.enc, a.head, a.kenc, a.khead}, *mb[4] = {b.enc, b.head, b.kenc, b.khead};
        for (int k = 0; k < 4; k++) sf_put_module(&x, ma[k], 0), sf_put_module(&y, mb[k], 0);
        simclr_tensor *qa, *qb;
        CHECK_OK(simclr_moco_queue(a.tr, &qa));
        CHECK_OK(simclr_moco_queue(b.tr, &qb));
        sf_put_tensor(&x, qa), sf_put_tensor(&y, qb);
        assert_int_equal(x.n, y.n);
        assert_memory_equal(x.p, y.p, x.n);
        free(x.p), free(y.p);
        simclr_image_list_destroy(list);
        simclr_tensor_destroy(img);
        rig_free(&a), rig_free(&b);
    }
}

/* ---- failed steps of MoCo on the combined path -------------------------- */

/* Everything a failed MoCo step must leave alone. */
static sf_blob moco_state(void *u, int timing)
{
    rig *r = u;
    return sf_moco_state(r->tr, r->enc, r->head, r->kenc, r->khead, r->opt, timing);
}

/* MoCo with micro-batches of 2, synchronized BN and a communicator: a stop
 * at each poll, a NaN weight, each collective call failing, each
 * allocation failing (new batch size, then the same): every failure leaves
 * the trainer as it was, and the step that succeeds equals a trainer's that
 * never failed. */
static void test_moco_combined_failures(void **state)
{
    (void)state;
    make_pixels();
    test_alloc ta = {0, 0, 0, 0};
    simclr_allocator hooks = test_allocator(&ta);
    rig a, ref;
    rig_make_alloc(&a, &hooks);
    rig_make(&ref);
    /* A queue of 16 takes the global batch of 2 x 4 and of 2 x 8. */
    simclr_tensor *img4 = shard(a.ctx, 0, 4), *img8 = shard(a.ctx, 0, 8);
    const sf_target t = {a.tr, ref.tr, a.ctx, a.enc, &ta, &a, &ref, moco_state};
    sf_sweep_combined("moco", &t, img4, img8);
    simclr_tensor_destroy(img4), simclr_tensor_destroy(img8);
    rig_free(&a), rig_free(&ref);
    assert_int_equal(ta.live, 0);
}

/* ---- a warm step allocates nothing -------------------------------------- */

/* After a first step at a batch shape, the next steps at that shape make no
 * allocation, whatever the method and setting: the sub-batches and key rows
 * the pipeline hands on are windows on the stack, and the buffer set, the
 * method's scratch and the modules' arenas are kept. (The micro-batched step
 * used to wrap a tensor per micro-batch.) */
static void test_warm_step_allocates_nothing(void **state)
{
    (void)state;
    make_pixels();
    for (int c = 0; c < 5; c++) {
        const char *what = (const char *[]){"simclr", "simclr, micro-batches of 2", "moco", "moco, micro-batches of 2",
                                            "moco, micro-batches of 2, image list"}[c];
        test_alloc ta = {0, 0, 0, 0};
        simclr_allocator hooks = test_allocator(&ta);
        rig r;
        rig_make_alloc(&r, &hooks);
        simclr_trainer *tr = r.tr;
        simclr_loss *loss = NULL;
        if (c < 2) {
            CHECK_OK(simclr_ntxent_create(r.ctx, 0.5, 2, &loss));
            CHECK_OK(simclr_trainer_create(r.ctx, r.enc, r.head, r.aug, loss, r.opt, &tr));
        }
        if (c == 1 || c >= 3) CHECK_OK(simclr_trainer_set(tr, SIMCLR_TRAINER_MICRO_BATCH, 2));
        simclr_tensor *img = shard(r.ctx, 0, N);
        simclr_image_list *list;
        CHECK_OK(simclr_image_list_create(r.ctx, 3, &list));
        for (int i = 0; i < N; i++) CHECK_OK(simclr_image_list_add(list, pixels + (size_t)i * IMG * IMG * 3, IMG, IMG));
        for (int s = 0; s < 3; s++) {
            long before = ta.allocs;
            if (c == 4) CHECK_OK(simclr_trainer_step_list(tr, list, 1 + (uint64_t)s, NULL));
            else CHECK_OK(simclr_trainer_step(tr, img, 1 + (uint64_t)s, NULL));
            if (s > 0 && ta.allocs != before) fail_msg("%s: warm step %d made %ld allocations", what, s, ta.allocs - before);
        }
        simclr_image_list_destroy(list);
        simclr_tensor_destroy(img);
        if (c < 2) simclr_trainer_destroy(tr), simclr_loss_destroy(loss);
        rig_free(&r);
        assert_int_equal(ta.live, 0);
    }
}

/* ---- refusals ----------------------------------------------------------- */

/* A method that cannot run micro-batches, image lists or ranks: SimCLR's
 * table with a refuse hook, so that the refusal path is exercised (neither
 * SimCLR nor MoCo refuses anything today). The setter refuses with the
 * method's reason and changes nothing; so do simclr_trainer_set_comm and a
 * list step. */
static const char *no_combinations(const void *st, unsigned with)
{
    (void)st;
    if (with & SIMCLR__WITH_MICRO) return "cannot cache gradients (test method)";
    if (with & SIMCLR__WITH_RANKS) return "cannot run on several ranks (test method)";
    if (with & SIMCLR__WITH_LIST) return "cannot take image lists (test method)";
    return NULL;
}

static void test_refusals_name_the_reason(void **state)
{
    (void)state;
    make_pixels();
    simclr__method picky = simclr__simclr_method;
    picky.name = "picky";
    picky.refuse = no_combinations;
    rig r;
    rig_make(&r);
    simclr_loss *loss;
    CHECK_OK(simclr_ntxent_create(r.ctx, 0.5, 2, &loss));
    simclr_trainer *tr;
    CHECK_OK(simclr_trainer_create(r.ctx, r.enc, r.head, r.aug, loss, r.opt, &tr));
    tr->method = &picky;
    CHECK_STATUS(simclr_trainer_set(tr, SIMCLR_TRAINER_MICRO_BATCH, 2), SIMCLR_E_UNSUPPORTED);
    assert_non_null(strstr(simclr_last_error(), "simclr_trainer_set: a picky trainer cannot cache gradients"));
    double v;
    CHECK_OK(simclr_trainer_get(tr, SIMCLR_TRAINER_MICRO_BATCH, &v));
    assert_true(v == 0);
    CHECK_OK(simclr_trainer_set(tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_FROZEN)); /* this one it takes */
    simclr_comm single;
    CHECK_OK(simclr_comm_single(&single));
    CHECK_STATUS(simclr_trainer_set_comm(tr, &single), SIMCLR_E_UNSUPPORTED);
    assert_non_null(strstr(simclr_last_error(), "simclr_trainer_set_comm: a picky trainer cannot run on several ranks"));
    simclr_image_list *list;
    CHECK_OK(simclr_image_list_create(r.ctx, 3, &list));
    CHECK_OK(simclr_image_list_add(list, pixels, IMG, IMG));
    CHECK_OK(simclr_image_list_add(list, pixels, IMG, IMG));
    CHECK_STATUS(simclr_trainer_step_list(tr, list, 1, NULL), SIMCLR_E_UNSUPPORTED);
    assert_non_null(strstr(simclr_last_error(), "cannot take image lists"));
    CHECK_OK(simclr_trainer_stat(tr, SIMCLR_STAT_STEP, &v));
    assert_true(v == 0);
    simclr_image_list_destroy(list);
    simclr_trainer_destroy(tr);
    simclr_loss_destroy(loss);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moco_micro_and_ranks_equal_whole),
        cmocka_unit_test(test_moco_list_equals_tensor),
        cmocka_unit_test(test_moco_combined_failures),
        cmocka_unit_test(test_warm_step_allocates_nothing),
        cmocka_unit_test(test_refusals_name_the_reason),
    };
    return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
