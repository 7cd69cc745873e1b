/* Gradient caching and the communicator, in one process (the mpirun tests
 * are tests/test_mpi.sh): the extended step equals the plain step bit for bit
 * when it has nothing to split; with frozen BN the micro-batched gradients
 * equal the whole-batch ones; the frozen-BN backward against central
 * differences; settings and communicators are validated; a failing
 * collective is SIMCLR_E_IO and changes nothing; every way a step can fail
 * (each poll of the progress callback, a NaN weight, each collective call,
 * each allocation) leaves every byte as it was, under six settings; a
 * peer's stop stops this rank too; SIMCLR_STAT_COMM_BYTES is 0 without a
 * communicator. MoCo on these paths: tests/test_pipeline.c. */
#include "test_util.h"

#include "core/context.h"
#include "train/distributed.h"
#include "relu_margin.h"
#include "step_faults.h"

#define IMG 12
#define N 8

typedef struct {
    simclr_context *ctx;
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;
    simclr_trainer *tr;
} rig;

static void rig_make_alloc(rig *r, int head_bn, const simclr_allocator *alloc)
{
    memset(r, 0, sizeof *r);
    CHECK_OK(simclr_context_create("cpu", 2, alloc, &r->ctx));
    CHECK_OK(simclr_resnet_create(r->ctx, 18, 4, 3, SIMCLR_STEM_CIFAR, 21, &r->enc));
    int d = (int)simclr_module_output_dim(r->enc);
    CHECK_OK(simclr_mlp_head_create(r->ctx, d, d, 16, head_bn ? 3 : 2, head_bn, 22, &r->head));
    CHECK_OK(simclr_augment_create(r->ctx, SIMCLR_AUG_PRESET_CIFAR, IMG, IMG, &r->aug));
    CHECK_OK(simclr_ntxent_create(r->ctx, 0.5, 2, &r->loss));
    simclr_module *mods[2] = {r->enc, r->head};
    CHECK_OK(simclr_optimizer_create(r->ctx, SIMCLR_OPT_SGD, mods, 2, &r->opt));
    CHECK_OK(simclr_optimizer_set(r->opt, SIMCLR_OPT_LR, 0.05));
    CHECK_OK(simclr_optimizer_set(r->opt, SIMCLR_OPT_MOMENTUM, 0.9));
    CHECK_OK(simclr_trainer_create(r->ctx, r->enc, r->head, r->aug, r->loss, r->opt, &r->tr));
}

static void rig_make(rig *r, int head_bn) { rig_make_alloc(r, head_bn, NULL); }

static void rig_free(rig *r)
{
    simclr_trainer_destroy(r->tr);
    simclr_optimizer_destroy(r->opt);
    simclr_loss_destroy(r->loss);
    simclr_augment_destroy(r->aug);
    simclr_module_destroy(r->head);
    simclr_module_destroy(r->enc);
    simclr_context_destroy(r->ctx);
}

/* Colour gradients with mild noise: images that differ from each other. */
static simclr_tensor *make_images(simclr_context *ctx, uint8_t *px, int n)
{
    uint64_t s = 77;
    for (int i = 0; i < n; i++) {
        double base[3], gx[3];
        for (int c = 0; c < 3; c++) base[c] = 60 + 120 * (test_randf(&s) + 1) / 2, gx[c] = 60 * test_randf(&s);
        for (int p = 0; p < IMG * IMG; p++)
            for (int c = 0; c < 3; c++) {
                double v = base[c] + gx[c] * (p % IMG) / IMG + 20 * test_randf(&s);
                px[((size_t)i * IMG * IMG + p) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
    int64_t shape[4] = {n, IMG, IMG, 3};
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_wrap(ctx, SIMCLR_U8, 4, shape, px, &t));
    return t;
}

/* Every value (w = 0), gradient (w = 1) or buffer-and-value of both modules. */
static float *flatten(rig *r, int grads, int64_t *count)
{
    simclr_module *mods[2] = {r->enc, r->head};
    int64_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        float *out = pass ? malloc((size_t)total * sizeof(float)) : NULL, *p = out;
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < simclr_module_param_count(mods[k]); i++) {
                simclr_tensor *v, *g;
                CHECK_OK(simclr_module_param(mods[k], i, NULL, &v, &g, NULL));
                simclr_tensor *t = grads ? g : v;
                if (!t) continue;
                if (pass) {
                    memcpy(p, simclr_tensor_data(t), simclr_tensor_bytes(t));
                    p += simclr_tensor_numel(t);
                } else {
                    total += simclr_tensor_numel(t);
                }
            }
        if (pass) {
            *count = total;
            return out;
        }
    }
    return NULL;
}

/* One micro-batch (micro = N), or the single-process communicator: the
 * extended step has nothing to split and must equal the plain step bit for bit. */
static void test_unsplit_equals_plain(void **state)
{
    (void)state;
    rig a, b, c;
    rig_make(&a, 1);
    rig_make(&b, 1);
    rig_make(&c, 1);
    CHECK_OK(simclr_trainer_set(b.tr, SIMCLR_TRAINER_MICRO_BATCH, N));
    simclr_comm single;
    CHECK_OK(simclr_comm_single(&single));
    CHECK_OK(simclr_trainer_set_comm(c.tr, &single));
    uint8_t px[N * IMG * IMG * 3];
    simclr_tensor *img = make_images(a.ctx, px, N);
    for (int s = 0; s < 3; s++) {
        float la, lb, lc;
        CHECK_OK(simclr_trainer_step(a.tr, img, 40 + (uint64_t)s, &la));
        CHECK_OK(simclr_trainer_step(b.tr, img, 40 + (uint64_t)s, &lb));
        CHECK_OK(simclr_trainer_step(c.tr, img, 40 + (uint64_t)s, &lc));
        assert_true(la == lb && la == lc);
    }
    int64_t na, nb, nc;
    float *va = flatten(&a, 0, &na), *vb = flatten(&b, 0, &nb), *vc = flatten(&c, 0, &nc);
    assert_true(na == nb && na == nc);
    assert_memory_equal(va, vb, (size_t)na * sizeof(float));
    assert_memory_equal(va, vc, (size_t)na * sizeof(float));
    double v;
    CHECK_OK(simclr_trainer_stat(b.tr, SIMCLR_STAT_MICRO_BATCHES, &v));
    assert_true(v == 1.0);
    CHECK_OK(simclr_trainer_stat(c.tr, SIMCLR_STAT_COMM_BYTES, &v));
    assert_true(v > 0); /* the gathered embeddings, counted even for one rank */
    free(va), free(vb), free(vc);
    simclr_tensor_destroy(img);
    rig_free(&a), rig_free(&b), rig_free(&c);
}

/* With BN frozen, every micro-batch split gives the whole batch's loss and
 * gradients (up to float summation order), step after step: 3 steps, the
 * gradients compared at each. Before each step the ReLU biases of all runs
 * are shifted alike so that no ReLU input is near zero, and that margin is
 * asserted (tests/relu_margin.h): else a mask could flip between the runs
 * and the comparison would hold by luck. The measured errors are printed. */
static void test_frozen_micro_equals_full(void **state)
{
    (void)state;
    enum { STEPS = 3, SPLITS = 3 };
    const double LR_SLOW = 0.005;
    const int micro[SPLITS] = {1, 2, 4};
    rig full, r[SPLITS];
    /* LR 0.005: at the rig's 0.05 the first step shrinks the largest
     * gradient 600-fold (units go silent), leaving later steps nothing to
     * compare above rounding. */
    rig_make(&full, 1);
    CHECK_OK(simclr_optimizer_set(full.opt, SIMCLR_OPT_LR, LR_SLOW));
    CHECK_OK(simclr_trainer_set(full.tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_FROZEN));
    for (int m = 0; m < SPLITS; m++) {
        rig_make(&r[m], 1);
        CHECK_OK(simclr_optimizer_set(r[m].opt, SIMCLR_OPT_LR, LR_SLOW));
        CHECK_OK(simclr_trainer_set(r[m].tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_FROZEN));
        CHECK_OK(simclr_trainer_set(r[m].tr, SIMCLR_TRAINER_MICRO_BATCH, micro[m]));
    }
    uint8_t px[N * IMG * IMG * 3];
    simclr_tensor *img = make_images(full.ctx, px, N);

    /* The views each step trains on, for the margin. */
    static float views[2 * N * 3 * IMG * IMG], feat[2 * N * 64], z[2 * N * 16];
    int64_t vshape[4] = {2 * N, 3, IMG, IMG}, hshape[4] = {N, 3, IMG, IMG};
    simclr_tensor *tv, *tv0, *tv1;
    CHECK_OK(simclr_tensor_wrap(full.ctx, SIMCLR_F32, 4, vshape, views, &tv));
    CHECK_OK(simclr_tensor_wrap(full.ctx, SIMCLR_F32, 4, hshape, views, &tv0));
    CHECK_OK(simclr_tensor_wrap(full.ctx, SIMCLR_F32, 4, hshape, views + N * 3 * IMG * IMG, &tv1));
    assert_true(simclr_module_output_dim(full.enc) <= 64 && simclr_module_output_dim(full.head) <= 16);
    rm_net net;
    rm_init(&net, full.enc, full.head, 1);
    double shifts[4096];

    for (int s = 0; s < STEPS; s++) {
        const uint64_t seed = 5 + (uint64_t)s;
        CHECK_OK(simclr_augment_pair(full.aug, img, seed, tv0, tv1));
        CHECK_OK(rm_library_forward(full.ctx, full.enc, full.head, tv, 1, feat, z));
        rm_reload(&net);
        rm_calibrate(&net, views, 2 * N, 3, IMG, IMG, feat, z);
        int64_t shifted = rm_repair(&net, views, 2 * N, 3, IMG, IMG, shifts, 4096);
        rm_apply(&net, full.enc, full.head, shifts);
        for (int m = 0; m < SPLITS; m++) rm_apply(&net, r[m].enc, r[m].head, shifts);
        rm_report rep;
        CHECK_OK(rm_library_forward(full.ctx, full.enc, full.head, tv, 1, feat, z));
        if (rm_check(&net, views, 2 * N, 3, IMG, IMG, feat, z, &rep)) fail_msg("step %d: %s", s, rep.message);
        printf("gradient caching, frozen BN, step %d: ReLU inputs %lld channels shifted, min|x|/max|x| %.3g, "
               "min|x|/noise %.3g, library vs float64 %.2g\n",
               s, (long long)shifted, rep.margin, rep.noise, rep.lib_err);

        float lf;
        CHECK_OK(simclr_trainer_step(full.tr, img, seed, &lf));
        int64_t n;
        float *gf = flatten(&full, 1, &n);
        double gmax = 0;
        for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(gf[i]));
        assert_true(gmax > 1e-3); /* a real gradient */
        for (int m = 0; m < SPLITS; m++) {
            float lm;
            CHECK_OK(simclr_trainer_step(r[m].tr, img, seed, &lm));
            int64_t n2;
            float *gm = flatten(&r[m], 1, &n2);
            assert_int_equal(n, n2);
            double err = 0;
            for (int64_t i = 0; i < n; i++) err = fmax(err, fabs((double)gm[i] - gf[i]));
            double v;
            CHECK_OK(simclr_trainer_stat(r[m].tr, SIMCLR_STAT_MICRO_BATCHES, &v));
            printf("  micro-batch %d (%g of them): loss %.7f vs %.7f, gradient max |diff| %.3g "
                   "(largest |gradient| %.3g)\n",
                   micro[m], v, (double)lm, (double)lf, err, gmax);
            assert_true(v == N / micro[m]);
            assert_true(fabs((double)lm - lf) <= 1e-6);
            assert_true(err <= 1e-5 * gmax);
            free(gm);
        }
        free(gf);
    }
    rm_free(&net);
    simclr_tensor_destroy(tv);
    simclr_tensor_destroy(tv0);
    simclr_tensor_destroy(tv1);
    simclr_tensor_destroy(img);
    for (int m = 0; m < SPLITS; m++) rig_free(&r[m]);
    rig_free(&full);
}

/* The margin assertion is not vacuous: after a repair it holds; an input
 * moved onto the kink (one channel's bias shifted by minus one of its
 * inputs) makes it fail naming the site, and so does a library output that
 * is not the reference's (here 1% off). */
static void test_relu_margin_check_can_fail(void **state)
{
    (void)state;
    rig a;
    rig_make(&a, 0);
    uint8_t px[N * IMG * IMG * 3];
    simclr_tensor *img = make_images(a.ctx, px, N);
    static float views[2 * N * 3 * IMG * IMG], feat[2 * N * 64], z[2 * N * 16];
    int64_t vshape[4] = {2 * N, 3, IMG, IMG}, hshape[4] = {N, 3, IMG, IMG};
    simclr_tensor *tv, *tv0, *tv1;
    CHECK_OK(simclr_tensor_wrap(a.ctx, SIMCLR_F32, 4, vshape, views, &tv));
    CHECK_OK(simclr_tensor_wrap(a.ctx, SIMCLR_F32, 4, hshape, views, &tv0));
    CHECK_OK(simclr_tensor_wrap(a.ctx, SIMCLR_F32, 4, hshape, views + N * 3 * IMG * IMG, &tv1));
    CHECK_OK(simclr_augment_pair(a.aug, img, 3, tv0, tv1));
    rm_net net;
    rm_init(&net, a.enc, a.head, 0);
    double shifts[4096];
    CHECK_OK(rm_library_forward(a.ctx, a.enc, a.head, tv, 0, feat, z));
    rm_calibrate(&net, views, 2 * N, 3, IMG, IMG, feat, z);
    rm_repair(&net, views, 2 * N, 3, IMG, IMG, shifts, 4096);
    rm_apply(&net, a.enc, a.head, shifts);
    rm_report rep;
    CHECK_OK(rm_library_forward(a.ctx, a.enc, a.head, tv, 0, feat, z));
    if (rm_check(&net, views, 2 * N, 3, IMG, IMG, feat, z, &rep)) fail_msg("%s", rep.message);
    assert_true(rep.margin >= RM_MARGIN && rep.noise >= RM_NOISE_FACTOR && rep.sites == 18);
    const double margin = rep.margin, noise = rep.noise;

    /* A library output 1% off the reference. */
    float saved = feat[5];
    feat[5] *= 1.01f;
    assert_int_equal(rm_check(&net, views, 2 * N, 3, IMG, IMG, feat, z, &rep), 1);
    assert_non_null(strstr(rep.message, "differs from the float64 reference"));
    feat[5] = saved;

    /* Site 3 (layer1.1.bn1), channel 0: its first input moved onto zero. */
    const rm_site *site = &net.sites[3];
    assert_string_equal(site->prefix, "layer1.1.bn1");
    memset(shifts, 0, sizeof shifts);
    int64_t off = 0;
    for (int k = 0; k < 3; k++) off += net.sites[k].c;
    shifts[off] = -site->v_d[0];
    rm_apply(&net, a.enc, a.head, shifts);
    CHECK_OK(rm_library_forward(a.ctx, a.enc, a.head, tv, 0, feat, z));
    assert_int_equal(rm_check(&net, views, 2 * N, 3, IMG, IMG, feat, z, &rep), 1);
    assert_non_null(strstr(rep.message, "precondition: ReLU inputs must stay clear of zero, but at layer1.1.bn1"));
    printf("relu margin: after repair min|x|/max|x| %.3g, min|x|/noise %.3g; with one input moved to the kink: %s\n",
           margin, noise, rep.message);

    rm_free(&net);
    simclr_tensor_destroy(tv);
    simclr_tensor_destroy(tv0);
    simclr_tensor_destroy(tv1);
    simclr_tensor_destroy(img);
    rig_free(&a);
}

/* Per-micro-batch BN (the default): the running statistics are updated once
 * per micro-batch, and the gradient differs from the whole batch's (it is
 * another estimator; the test shows the setting matters). */
static void test_local_bn_per_micro_batch(void **state)
{
    (void)state;
    rig a, b;
    rig_make(&a, 0);
    rig_make(&b, 0);
    CHECK_OK(simclr_trainer_set(b.tr, SIMCLR_TRAINER_MICRO_BATCH, 2));
    uint8_t px[N * IMG * IMG * 3];
    simclr_tensor *img = make_images(a.ctx, px, N);
    CHECK_OK(simclr_trainer_step(a.tr, img, 9, NULL));
    CHECK_OK(simclr_trainer_step(b.tr, img, 9, NULL));
    const char *name;
    simclr_tensor *nbt = NULL;
    for (int i = 0; i < simclr_module_param_count(b.enc); i++) {
        simclr_tensor *v;
        CHECK_OK(simclr_module_param(b.enc, i, &name, &v, NULL, NULL));
        if (strcmp(name, "bn1.num_batches_tracked") == 0) nbt = v;
    }
    assert_non_null(nbt);
    assert_true(((float *)simclr_tensor_data(nbt))[0] == 4.0f); /* 8 pairs in micro-batches of 2 */
    int64_t n;
    float *ga = flatten(&a, 1, &n), *gb = flatten(&b, 1, &n);
    double err = 0;
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs((double)ga[i] - gb[i]));
    assert_true(err > 1e-4);
    free(ga), free(gb);
    simclr_tensor_destroy(img);
    rig_free(&a), rig_free(&b);
}

/* The frozen-BN hook on a head of one linear layer + BN (no ReLU, so the
 * function is smooth): TRAIN output equals EVAL output, running statistics
 * stay, and backward matches central differences of L = sum(w * y). */
static void test_frozen_bn_backward_fd(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    simclr_module *m;
    const int in = 6, out = 5, rows = 7;
    CHECK_OK(simclr_mlp_head_create(ctx, in, 8, out, 1, 1, 3, &m));
    uint64_t s = 5;
    for (int i = 0; i < simclr_module_param_count(m); i++) { /* non-trivial running statistics and affine */
        const char *name;
        simclr_tensor *v;
        CHECK_OK(simclr_module_param(m, i, &name, &v, NULL, NULL));
        float *x = simclr_tensor_data(v);
        for (int64_t j = 0; j < simclr_tensor_numel(v); j++) {
            if (strstr(name, "running_var")) x[j] = 0.5f + (test_randf(&s) + 1);
            else if (strstr(name, "running_mean")) x[j] = 0.3f * test_randf(&s);
            else if (strstr(name, ".1.weight")) x[j] = 1.0f + 0.5f * test_randf(&s);
        }
    }
    struct simclr__trainer_ext e;
    memset(&e, 0, sizeof e);
    e.bn_mode = SIMCLR_BN_FROZEN;
    simclr__bn_hook_init(&e);
    int64_t xs[2] = {rows, in}, ys[2] = {rows, out};
    simclr_tensor *x, *y, *y_eval, *dy, *dx;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, xs, &x));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &y));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &y_eval));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &dy));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, xs, &dx));
    float *xd = simclr_tensor_data(x), *w = simclr_tensor_data(dy);
    for (int i = 0; i < rows * in; i++) xd[i] = test_randf(&s);
    for (int i = 0; i < rows * out; i++) w[i] = test_randf(&s);
    int64_t before_n;
    rig dummy = {.enc = m, .head = m};
    float *before = flatten(&dummy, 0, &before_n);
    CHECK_OK(simclr_module_forward(m, x, SIMCLR_EVAL, y_eval));
    ctx->bn_hook = &e.hook;
    CHECK_OK(simclr_module_forward(m, x, SIMCLR_TRAIN, y));
    int64_t after_n;
    float *after = flatten(&dummy, 0, &after_n);
    assert_memory_equal(before, after, (size_t)before_n * sizeof(float)); /* nothing updated */
    double ydiff = 0;
    for (int i = 0; i < rows * out; i++)
        ydiff = fmax(ydiff, fabs((double)((float *)simclr_tensor_data(y))[i] - ((float *)simclr_tensor_data(y_eval))[i]));
    assert_true(ydiff <= 1e-6);
    CHECK_OK(simclr_module_zero_grad(m));
    CHECK_OK(simclr_module_backward(m, dy, dx));
    /* Central differences of L(x) and L(theta), in float with h = 1e-2 (L is
     * linear in each of them here, so the difference is exact up to rounding). */
    double worst = 0;
    for (int i = 0; i < rows * in; i++) {
        float keep = xd[i];
        double l[2];
        for (int k = 0; k < 2; k++) {
            xd[i] = keep + (k ? -0.01f : 0.01f);
            CHECK_OK(simclr_module_forward(m, x, SIMCLR_TRAIN, y));
            l[k] = 0;
            for (int j = 0; j < rows * out; j++) l[k] += (double)w[j] * ((float *)simclr_tensor_data(y))[j];
        }
        xd[i] = keep;
        double fd = (l[0] - l[1]) / 0.02, an = ((float *)simclr_tensor_data(dx))[i];
        worst = fmax(worst, fabs(fd - an) / fmax(1.0, fabs(fd)));
    }
    for (int p = 0; p < simclr_module_param_count(m); p++) {
        simclr_tensor *v, *g;
        CHECK_OK(simclr_module_param(m, p, NULL, &v, &g, NULL));
        if (!g) continue;
        float *vd = simclr_tensor_data(v), *gd = simclr_tensor_data(g);
        for (int64_t i = 0; i < simclr_tensor_numel(v); i++) {
            float keep = vd[i];
            double l[2];
            for (int k = 0; k < 2; k++) {
                vd[i] = keep + (k ? -0.01f : 0.01f);
                CHECK_OK(simclr_module_forward(m, x, SIMCLR_TRAIN, y));
                l[k] = 0;
                for (int j = 0; j < rows * out; j++) l[k] += (double)w[j] * ((float *)simclr_tensor_data(y))[j];
            }
            vd[i] = keep;
            double fd = (l[0] - l[1]) / 0.02;
            worst = fmax(worst, fabs(fd - gd[i]) / fmax(1.0, fabs(fd)));
        }
    }
    printf("frozen BN backward vs central differences: worst error %.3g\n", worst);
    assert_true(worst <= 2e-3);
    ctx->bn_hook = NULL;
    free(before), free(after);
    simclr_tensor_destroy(x), simclr_tensor_destroy(y), simclr_tensor_destroy(y_eval);
    simclr_tensor_destroy(dy), simclr_tensor_destroy(dx);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

static void test_settings(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 0);
    double v;
    CHECK_OK(simclr_trainer_get(r.tr, SIMCLR_TRAINER_MICRO_BATCH, &v));
    assert_true(v == 0);
    CHECK_OK(simclr_trainer_get(r.tr, SIMCLR_TRAINER_BN_MODE, &v));
    assert_true(v == SIMCLR_BN_LOCAL);
    CHECK_OK(simclr_trainer_get(r.tr, SIMCLR_TRAINER_BUCKET_BYTES, &v));
    assert_true(v == 4194304.0);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_MICRO_BATCH, -1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_MICRO_BATCH, 2.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_BN_MODE, 3), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_BUCKET_BYTES, 100), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_BUCKET_BYTES, 4098), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(r.tr, (simclr_trainer_param)999, 1), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "999"));
    CHECK_STATUS(simclr_trainer_get(r.tr, (simclr_trainer_param)999, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(NULL, SIMCLR_TRAINER_MICRO_BATCH, 1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_get(r.tr, SIMCLR_TRAINER_MICRO_BATCH, NULL), SIMCLR_E_INVALID);
    CHECK_OK(simclr_trainer_get(r.tr, SIMCLR_TRAINER_MICRO_BATCH, &v));
    assert_true(v == 0); /* failed sets changed nothing */
    /* A micro-batch that does not divide the batch: refused before any change. */
    CHECK_OK(simclr_trainer_set(r.tr, SIMCLR_TRAINER_MICRO_BATCH, 3));
    uint8_t px[N * IMG * IMG * 3];
    simclr_tensor *img = make_images(r.ctx, px, N);
    int64_t n1, n2;
    float *before = flatten(&r, 0, &n1);
    CHECK_STATUS(simclr_trainer_step(r.tr, img, 1, NULL), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "does not divide"));
    float *after = flatten(&r, 0, &n2);
    assert_memory_equal(before, after, (size_t)n1 * sizeof(float));
    free(before), free(after);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

static int c_rank(void *u) { return ((int *)u)[0]; }
static int c_size(void *u) { return ((int *)u)[1]; }
static int c_ok_reduce(void *u, float *d, int64_t n) { (void)u, (void)d, (void)n; return 0; }
static int c_bcast(void *u, float *d, int64_t n, int root) { (void)u, (void)d, (void)n, (void)root; return 0; }
/* A pretend 2-rank gather: both "ranks" send the same; fails from call fail_at on. */
static int c_gather(void *u, const float *s, int64_t n, float *r)
{
    int *st = u;
    if (st[3] && ++st[2] >= st[3]) return 7;
    for (int k = 0; k < st[1]; k++) memcpy(r + k * n, s, (size_t)n * sizeof(float));
    return 0;
}
static const char *c_err(void *u, int code) { (void)u; return code == 7 ? "link down" : "?"; }

static void test_comm_validation(void **state)
{
    (void)state;
    int st[4] = {0, 2, 0, 0};
    simclr_comm c = {c_rank, c_size, c_ok_reduce, c_gather, c_bcast, NULL, st};
    CHECK_OK(simclr_comm_validate(&c));
    CHECK_STATUS(simclr_comm_validate(NULL), SIMCLR_E_INVALID);
    simclr_comm bad = c;
    bad.all_gather = NULL;
    CHECK_STATUS(simclr_comm_validate(&bad), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "all_gather"));
    st[0] = 2; /* rank 2 of 2 */
    CHECK_STATUS(simclr_comm_validate(&c), SIMCLR_E_INVALID);
    st[0] = 0, st[1] = 0;
    CHECK_STATUS(simclr_comm_validate(&c), SIMCLR_E_INVALID);
    simclr_comm one;
    CHECK_STATUS(simclr_comm_single(NULL), SIMCLR_E_INVALID);
    CHECK_OK(simclr_comm_single(&one));
    CHECK_OK(simclr_comm_validate(&one));
    assert_int_equal(one.size(one.user), 1);
}

/* A collective that fails in the middle of a step: SIMCLR_E_IO naming it and
 * the host's text, and the trainer exactly as before; checkpoints with a
 * communicator are written by rank 0 only. */
static void test_comm_failure_changes_nothing(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 1);
    CHECK_OK(simclr_trainer_set(r.tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_SYNC));
    int st[4] = {1, 2, 0, 0}; /* rank 1 of 2 */
    simclr_comm c = {c_rank, c_size, c_ok_reduce, c_gather, c_bcast, c_err, st};
    CHECK_OK(simclr_trainer_set_comm(r.tr, &c));
    uint8_t px[4 * IMG * IMG * 3];
    simclr_tensor *img = make_images(r.ctx, px, 4);
    CHECK_OK(simclr_trainer_step(r.tr, img, 1, NULL)); /* a pretend rank sees its own rows twice */
    for (int fail_at = 1; fail_at <= 3; fail_at++) {
        int64_t n1, n2;
        float *before = flatten(&r, 0, &n1);
        st[2] = 0, st[3] = fail_at;
        CHECK_STATUS(simclr_trainer_step(r.tr, img, 2, NULL), SIMCLR_E_IO);
        assert_non_null(strstr(simclr_last_error(), "all_gather failed on rank 1 of 2"));
        assert_non_null(strstr(simclr_last_error(), "link down"));
        float *after = flatten(&r, 0, &n2);
        assert_memory_equal(before, after, (size_t)n1 * sizeof(float));
        free(before), free(after);
    }
    st[3] = 0;
    /* Rank 1 does not write the checkpoint (rank 0's status, 0, is "broadcast"). */
    const char *path = "test_gradcache_rank1.ckpt";
    remove(path);
    CHECK_OK(simclr_trainer_save(r.tr, path));
    FILE *f = fopen(path, "rb");
    assert_null(f);
    CHECK_OK(simclr_trainer_set_comm(r.tr, NULL)); /* detached: a single process again */
    CHECK_OK(simclr_trainer_save(r.tr, path));
    f = fopen(path, "rb");
    assert_non_null(f);
    fclose(f);
    remove(path);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

/* ---- failed steps on the gradient-caching and distributed paths -------- */

/* Everything a failed step must leave alone. */
static sf_blob rig_state(void *u, int timing)
{
    rig *r = u;
    return sf_trainer_state(r->tr, r->enc, r->head, r->opt, timing);
}

/* Every way a step on the extended path can fail after it started, on
 * trainers whose gradients, momentum, BN statistics and counters are all
 * non-zero (one good step first): a stop from the progress callback at each
 * of its polls, a NaN weight, a communicator failing at its 1st, 2nd, ...
 * collective call, allocation 1, 2, ... failing (at a new batch size, then
 * at the same one). Each failure leaves the trainer byte for byte as it
 * was; the step that then succeeds equals that of a trainer that never
 * failed. Issue 24: the failed step used to zero every gradient. */
static void test_failed_ext_step_changes_nothing(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int micro, bn, ranks;
    } cfgs[] = {
        {"micro-batches of 2, local BN", 2, SIMCLR_BN_LOCAL, 1},
        {"micro-batches of 2, synchronized BN, no communicator", 2, SIMCLR_BN_SYNC, 1},
        {"frozen BN, no communicator", 0, SIMCLR_BN_FROZEN, 1},
        {"2 ranks, local BN", 0, SIMCLR_BN_LOCAL, 2},
        {"2 ranks, synchronized BN, micro-batches of 2", 2, SIMCLR_BN_SYNC, 2},
        {"2 ranks, frozen BN, micro-batches of 4", 4, SIMCLR_BN_FROZEN, 2},
    };
    uint8_t px4[4 * IMG * IMG * 3], px8[8 * IMG * IMG * 3];
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        test_alloc ta = {0, 0, 0, 0};
        simclr_allocator hooks = test_allocator(&ta);
        rig a, ref;
        rig_make_alloc(&a, 1, &hooks);
        rig_make(&ref, 1);
        sf_fake_comm fa = {0, 0}, fr = {0, 0};
        rig *both[2] = {&a, &ref};
        sf_fake_comm *fc[2] = {&fa, &fr};
        for (int i = 0; i < 2; i++) {
            if (cfgs[c].micro) CHECK_OK(simclr_trainer_set(both[i]->tr, SIMCLR_TRAINER_MICRO_BATCH, cfgs[c].micro));
            CHECK_OK(simclr_trainer_set(both[i]->tr, SIMCLR_TRAINER_BN_MODE, cfgs[c].bn));
            CHECK_OK(simclr_trainer_set(both[i]->tr, SIMCLR_TRAINER_BUCKET_BYTES, 4096)); /* several buckets */
            simclr_comm comm = {sf_f_rank, sf_f_size, sf_f_reduce, sf_f_gather, sf_f_bcast, c_err, fc[i]};
            if (cfgs[c].ranks > 1) CHECK_OK(simclr_trainer_set_comm(both[i]->tr, &comm));
        }
        simclr_tensor *img4 = make_images(a.ctx, px4, 4), *img8 = make_images(a.ctx, px8, 8);
        const sf_target t = {a.tr, ref.tr, a.ctx, a.enc, &ta, &a, &ref, rig_state};
        sf_counts n = sf_sweep_all(&t, img4, img8, cfgs[c].ranks > 1 ? sf_arm_comm : NULL, &fa);
        if (cfgs[c].ranks > 1) assert_true(n.extra >= 3); /* shapes, embeddings, gradients at least */
        printf("failed extended steps, %s: %ld stops, %ld NaN, %ld communicator failures, %ld + %ld allocation "
               "failures; each left the trainer as it was\n",
               cfgs[c].name, n.stops, n.nans, n.extra, n.allocs_new, n.allocs);
        simclr_tensor_destroy(img4), simclr_tensor_destroy(img8);
        rig_free(&a), rig_free(&ref);
        assert_int_equal(ta.live, 0);
    }
}

/* A peer whose progress callback asks to stop (mode 1: before the forward
 * pass, its flag in the shape check, the step's first gather; mode 2: before
 * the optimizer commits, its flag the last float of the gradient sum): this
 * rank stops at the same point, with SIMCLR_E_CANCELLED and nothing changed,
 * instead of waiting in a collective the peer never joins. */
typedef struct peer_stop {
    long gathers;
    int mode;
} peer_stop;

static int p_gather(void *u, const float *s, int64_t n, float *r)
{
    peer_stop *p = u;
    sf_f_gather(&(sf_fake_comm){0, 0}, s, n, r);
    if (p->mode == 1 && ++p->gathers == 1) r[n - 1] = 1; /* rank 0 is the peer */
    return 0;
}

static int p_reduce(void *u, float *d, int64_t n)
{
    peer_stop *p = u;
    sf_f_reduce(&(sf_fake_comm){0, 0}, d, n);
    if (p->mode == 2) d[n - 1] += 1;
    return 0;
}

static void test_cancel_agreed_over_ranks(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 1);
    peer_stop ps = {0, 0};
    simclr_comm comm = {sf_f_rank, sf_f_size, p_reduce, p_gather, sf_f_bcast, c_err, &ps};
    CHECK_OK(simclr_trainer_set(r.tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_SYNC));
    CHECK_OK(simclr_trainer_set(r.tr, SIMCLR_TRAINER_MICRO_BATCH, 2));
    CHECK_OK(simclr_trainer_set_comm(r.tr, &comm));
    uint8_t px[4 * IMG * IMG * 3];
    simclr_tensor *img = make_images(r.ctx, px, 4);
    CHECK_OK(simclr_trainer_step(r.tr, img, 1, NULL));
    for (int mode = 1; mode <= 2; mode++) {
        sf_blob before = rig_state(&r, 1);
        ps = (peer_stop){0, mode};
        CHECK_STATUS(simclr_trainer_step(r.tr, img, 2, NULL), SIMCLR_E_CANCELLED);
        assert_non_null(strstr(simclr_last_error(), "another rank's progress callback"));
        ps.mode = 0;
        sf_blob after = rig_state(&r, 1);
        const char *diff = sf_diff(&before, &after);
        if (diff) fail_msg("a stop of the peer (mode %d) changed the %s", mode, diff);
        free(before.p), free(after.p);
    }
    CHECK_OK(simclr_trainer_step(r.tr, img, 2, NULL));
    simclr_tensor_destroy(img);
    rig_free(&r);
}

/* SIMCLR_STAT_COMM_BYTES is 0 without a communicator, whichever setting
 * sends the step down the extended path; an attached single-process
 * communicator counts its bytes, and detaching it gives 0 again. */
static void test_comm_bytes_zero_without_comm(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        simclr_trainer_param key;
        double value, micro_batches;
    } cases[] = {
        {"synchronized BN", SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_SYNC, 1},
        {"frozen BN", SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_FROZEN, 1},
        {"micro-batches of 2", SIMCLR_TRAINER_MICRO_BATCH, 2, N / 2},
    };
    uint8_t px[N * IMG * IMG * 3];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rig r;
        rig_make(&r, 1);
        simclr_tensor *img = make_images(r.ctx, px, N);
        CHECK_OK(simclr_trainer_set(r.tr, cases[i].key, cases[i].value));
        CHECK_OK(simclr_trainer_step(r.tr, img, 1, NULL));
        double bytes, micro;
        CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_COMM_BYTES, &bytes));
        CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_MICRO_BATCHES, &micro));
        printf("no communicator, %s: SIMCLR_STAT_COMM_BYTES %g, %g micro-batches\n", cases[i].name, bytes, micro);
        assert_true(bytes == 0);
        assert_true(micro == cases[i].micro_batches); /* the extended path ran */
        simclr_comm single;
        CHECK_OK(simclr_comm_single(&single));
        CHECK_OK(simclr_trainer_set_comm(r.tr, &single));
        CHECK_OK(simclr_trainer_step(r.tr, img, 2, NULL));
        CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_COMM_BYTES, &bytes));
        assert_true(bytes > 0); /* the single-process communicator counts */
        CHECK_OK(simclr_trainer_set_comm(r.tr, NULL));
        CHECK_OK(simclr_trainer_step(r.tr, img, 3, NULL));
        CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_COMM_BYTES, &bytes));
        assert_true(bytes == 0);
        simclr_tensor_destroy(img);
        rig_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unsplit_equals_plain),       cmocka_unit_test(test_frozen_micro_equals_full),
        cmocka_unit_test(test_local_bn_per_micro_batch),   cmocka_unit_test(test_frozen_bn_backward_fd),
        cmocka_unit_test(test_settings),                   cmocka_unit_test(test_comm_validation),
        cmocka_unit_test(test_comm_failure_changes_nothing),
        cmocka_unit_test(test_relu_margin_check_can_fail),
        cmocka_unit_test(test_failed_ext_step_changes_nothing),
        cmocka_unit_test(test_cancel_agreed_over_ranks),
        cmocka_unit_test(test_comm_bytes_zero_without_comm),
    };
    return cmocka_run_group_tests_name("gradcache", tests, NULL, NULL);
}
