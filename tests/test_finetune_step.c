/* The supervised fine-tuning step (simclr_finetune_trainer_create,
 * simclr_trainer_step_labels): it learns a separable toy set, resumes
 * bit-identically from a checkpoint, leaves everything as it was after any
 * failure (cancel, allocation, NaN), refuses bad labels naming the row, and
 * a frozen encoder (an optimizer over the head only) stays untouched. The
 * distillation step (simclr_trainer_step_distill): a student learns a
 * fine-tuned teacher, the teacher is never touched, failures roll back. */
#include "step_faults.h"

#include <unistd.h>

enum { IMG = 8, CH = 1, N = 8, CLASSES = 2 };

typedef struct rig {
    simclr_context *ctx;
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;
    simclr_trainer *tr;
    simclr_module *t_enc, *t_head; /* a distillation student's teacher (borrowed), else NULL */
} rig;

/* The rig's step: with labels, or from its teacher. */
static simclr_status rig_step(rig *r, simclr_tensor *img, const int32_t *labels, int64_t n, uint64_t seed,
                              float *loss)
{
    if (r->t_enc) return simclr_trainer_step_distill(r->tr, img, r->t_enc, r->t_head, labels, n, seed, loss);
    return simclr_trainer_step_labels(r->tr, img, labels, n, seed, loss);
}

static simclr_status rig_try_kind(rig *r, const simclr_allocator *alloc, int frozen, int distill)
{
    memset(r, 0, sizeof *r);
    simclr_status st = simclr_context_create("cpu", 2, alloc, &r->ctx);
    if (st) return st;
    if ((st = simclr_resnet_create_v2(r->ctx, 18, 2, CH, SIMCLR_STEM_CIFAR, 3, &r->enc))) return st;
    if ((st = simclr_linear_head_create(r->ctx, simclr_module_output_dim(r->enc), CLASSES, 4, &r->head))) return st;
    if ((st = simclr_augment_create_v2(r->ctx, SIMCLR_AUG_PRESET_FINETUNE, IMG, IMG, &r->aug))) return st;
    if ((st = distill ? simclr_distill_create(r->ctx, CLASSES, 1.0, &r->loss)
                      : simclr_cross_entropy_create(r->ctx, CLASSES, &r->loss)))
        return st;
    simclr_module *mods[2] = {r->enc, r->head};
    if ((st = simclr_optimizer_create(r->ctx, SIMCLR_OPT_SGD, frozen ? mods + 1 : mods, frozen ? 1 : 2, &r->opt)))
        return st;
    if ((st = simclr_optimizer_set(r->opt, SIMCLR_OPT_LR, 0.05))) return st;
    if ((st = simclr_optimizer_set(r->opt, SIMCLR_OPT_MOMENTUM, 0.9))) return st;
    if ((st = simclr_optimizer_set(r->opt, SIMCLR_OPT_WEIGHT_DECAY, 1e-4))) return st;
    return simclr_finetune_trainer_create(r->ctx, r->enc, r->head, r->aug, r->loss, r->opt, &r->tr);
}

static simclr_status rig_try(rig *r, const simclr_allocator *alloc, int frozen)
{
    return rig_try_kind(r, alloc, frozen, 0);
}

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

static void rig_make(rig *r, int frozen) { CHECK_OK(rig_try(r, NULL, frozen)); }

/* A separable toy set: class 0 dark images, class 1 bright ones, with noise;
 * labels alternate. */
static simclr_tensor *toy_images(simclr_context *ctx, int32_t *labels, uint64_t seed)
{
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, (const int64_t[]){N, IMG, IMG, CH}, &t));
    uint8_t *p = simclr_tensor_data(t);
    uint64_t s = seed;
    for (int i = 0; i < N; i++) {
        labels[i] = i % 2;
        for (int j = 0; j < IMG * IMG * CH; j++)
            p[i * IMG * IMG * CH + j] = (uint8_t)((labels[i] ? 170 : 30) + (int)(test_rand_next(&s) % 56));
    }
    return t;
}

static sf_blob rig_state(void *u, int timing)
{
    rig *r = u;
    return sf_trainer_state(r->tr, r->enc, r->head, r->opt, timing);
}

static void test_loss_decreases(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 0);
    int32_t labels[N];
    simclr_tensor *img = toy_images(r.ctx, labels, 1);
    float first = 0, last = 0; /* last: the mean of the last 4 steps' losses */
    for (int s = 0; s < 12; s++) {
        float l;
        CHECK_OK(simclr_trainer_step_labels(r.tr, img, labels, N, (uint64_t)s, &l));
        assert_true(isfinite(l));
        if (getenv("FT_VERBOSE")) fprintf(stderr, "step %d loss %g\n", s, l);
        if (s == 0) first = l;
        if (s >= 8) last += l / 4;
    }
    double acc, step;
    CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_ACCURACY, &acc));
    CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_STEP, &step));
    assert_true(step == 12);
    assert_true(acc >= 0 && acc <= 1 && acc * N == floor(acc * N));
    /* Two classes at chance start near log 2; a learned separable set ends well below. */
    if (!(last < 0.5 * first)) fail_msg("loss %g -> %g: did not halve", first, last);
    if (acc < 0.75) fail_msg("top-1 %g after 12 steps on a separable set", acc);
    double frozen;
    CHECK_OK(simclr_trainer_get(r.tr, SIMCLR_TRAINER_FREEZE_ENCODER, &frozen));
    assert_true(frozen == 0);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

static void test_resume_bit_identical(void **state)
{
    (void)state;
    char dir[256], path[300];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "ftstep"), 0);
    snprintf(path, sizeof path, "%s/ft.ckpt", dir);
    rig a, b;
    rig_make(&a, 0);
    rig_make(&b, 0);
    int32_t labels[N];
    simclr_tensor *img = toy_images(a.ctx, labels, 2);
    for (int s = 0; s < 3; s++) CHECK_OK(simclr_trainer_step_labels(a.tr, img, labels, N, 100 + (uint64_t)s, NULL));
    CHECK_OK(simclr_trainer_save(a.tr, path));
    for (int s = 3; s < 5; s++) CHECK_OK(simclr_trainer_step_labels(a.tr, img, labels, N, 100 + (uint64_t)s, NULL));
    /* b: a fresh trainer (other weights would do), resumed, then the same two steps */
    CHECK_OK(simclr_trainer_load(b.tr, path));
    for (int s = 3; s < 5; s++) CHECK_OK(simclr_trainer_step_labels(b.tr, img, labels, N, 100 + (uint64_t)s, NULL));
    sf_blob x = rig_state(&a, 0), y = rig_state(&b, 0);
    const char *diff = sf_diff(&x, &y);
    if (diff) fail_msg("resumed run differs from the uninterrupted one in the %s", diff);
    free(x.p), free(y.p);
    /* A frozen trainer's checkpoint is another architecture: refused. */
    rig f;
    rig_make(&f, 1);
    CHECK_STATUS(simclr_trainer_load(f.tr, path), SIMCLR_E_SHAPE);
    rig_free(&f);
    unlink(path);
    test_tmpdir_remove(dir);
    simclr_tensor_destroy(img);
    rig_free(&a);
    rig_free(&b);
}

/* Steps r->tr with failure k = 1, 2, ... armed until a step succeeds: every
 * failure returns want and leaves the state byte for byte; the success
 * equals the same step on ref. */
static long sweep(rig *r, rig *ref, simclr_tensor *img, const int32_t *labels, uint64_t seed, simclr_status want,
                  const char *what, void (*arm)(void *, long), void *u)
{
    long failures = 0;
    for (long k = 1;; k++) {
        sf_blob before = rig_state(r, 1);
        arm(u, k);
        simclr_status st = rig_step(r, img, labels, N, seed, NULL);
        arm(u, 0);
        if (st == SIMCLR_OK) {
            free(before.p);
            break;
        }
        if (st != want)
            fail_msg("%s: failure %ld -> %s (want %s): %s", what, k, simclr_status_string(st),
                     simclr_status_string(want), simclr_last_error());
        if (r->ctx->bn_hook) fail_msg("%s: failure %ld left the batch-norm hook installed", what, k);
        sf_blob after = rig_state(r, 1);
        const char *diff = sf_diff(&before, &after);
        if (diff) fail_msg("%s: failure %ld changed the %s", what, k, diff);
        free(before.p), free(after.p);
        failures++;
        if (k > 100000) fail_msg("%s: no success after %ld failures", what, k);
    }
    CHECK_OK(rig_step(ref, img, labels, N, seed, NULL));
    sf_blob x = rig_state(r, 0), y = rig_state(ref, 0);
    const char *diff = sf_diff(&x, &y);
    if (diff) fail_msg("%s: the step after %ld failures differs from a trainer that never failed in the %s", what,
                       failures, diff);
    free(x.p), free(y.p);
    return failures;
}

static void test_failures_roll_back(void **state)
{
    (void)state;
    for (int micro = 0; micro <= 4; micro += 4) {
        test_alloc ta = {0, 0, 0, 0};
        simclr_allocator hooks = test_allocator(&ta);
        rig r, ref;
        CHECK_OK(rig_try(&r, &hooks, 0));
        rig_make(&ref, 0);
        CHECK_OK(simclr_trainer_set(r.tr, SIMCLR_TRAINER_MICRO_BATCH, micro));
        CHECK_OK(simclr_trainer_set(ref.tr, SIMCLR_TRAINER_MICRO_BATCH, micro));
        int32_t labels[N];
        simclr_tensor *img = toy_images(ref.ctx, labels, 3);
        /* one good step first, so that momentum and statistics are not zero */
        CHECK_OK(simclr_trainer_step_labels(r.tr, img, labels, N, 1, NULL));
        CHECK_OK(simclr_trainer_step_labels(ref.tr, img, labels, N, 1, NULL));
        sf_canceller c = {0, 0};
        CHECK_OK(simclr_context_set_progress_cancel(r.ctx, sf_cancel_fn, &c));
        sf_canceller never = {0, 0}; /* outlives the macro's block: the context keeps the pointer */
        CHECK_OK(simclr_context_set_progress_cancel(ref.ctx, sf_cancel_fn, &never));
        long n = sweep(&r, &ref, img, labels, 2, SIMCLR_E_CANCELLED, "cancel", sf_arm_cancel, &c);
        assert_true(n >= 2); /* polled before the views and before the commit */
        n = sweep(&r, &ref, img, labels, 3, SIMCLR_E_NOMEM, "allocation", sf_arm_alloc, &ta);
        (void)n; /* a warm step may allocate nothing */
        /* a NaN weight of the head: the loss refuses its logits */
        simclr_tensor *w;
        CHECK_OK(simclr_module_param(r.head, 0, NULL, &w, NULL, NULL));
        sf_nan nan_w = {simclr_tensor_data(w), 0};
        n = sweep(&r, &ref, img, labels, 4, SIMCLR_E_NUMERIC, "NaN", sf_arm_nan, &nan_w);
        assert_int_equal(n, 1);
        /* a batch of another size: the buffers are rebuilt, and allocation failures then happen */
        simclr_tensor *half;
        CHECK_OK(simclr_tensor_create(ref.ctx, SIMCLR_U8, 4, (const int64_t[]){N / 2, IMG, IMG, CH}, &half));
        memcpy(simclr_tensor_data(half), simclr_tensor_data(img), simclr_tensor_bytes(half));
        sf_blob before = rig_state(&r, 1);
        for (long k = 1; k < 200; k++) {
            sf_arm_alloc(&ta, k);
            simclr_status st = simclr_trainer_step_labels(r.tr, half, labels, N / 2, 5, NULL);
            sf_arm_alloc(&ta, 0);
            if (st == SIMCLR_OK) break;
            assert_int_equal(st, SIMCLR_E_NOMEM);
            sf_blob after = rig_state(&r, 1);
            const char *diff = sf_diff(&before, &after);
            if (diff) fail_msg("allocation failure %ld of a new shape changed the %s", k, diff);
            free(after.p);
        }
        free(before.p);
        simclr_tensor_destroy(half);
        simclr_tensor_destroy(img);
        rig_free(&ref);
        rig_free(&r);
        assert_int_equal(ta.live, 0);
    }
}

static void test_bad_input_refused(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 0);
    int32_t labels[N];
    simclr_tensor *img = toy_images(r.ctx, labels, 4);
    CHECK_OK(simclr_trainer_step_labels(r.tr, img, labels, N, 1, NULL));
    sf_blob before = rig_state(&r, 1);
    float loss = 42;
    labels[5] = 2; /* one past the last class */
    CHECK_STATUS(simclr_trainer_step_labels(r.tr, img, labels, N, 2, &loss), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "labels[5] = 2"));
    labels[5] = -1; /* unlabelled rows are for distillation only */
    CHECK_STATUS(simclr_trainer_step_labels(r.tr, img, labels, N, 2, &loss), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "labels[5] = -1"));
    labels[5] = 1;
    CHECK_STATUS(simclr_trainer_step_labels(r.tr, img, labels, N - 1, 2, &loss), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_trainer_step_labels(r.tr, img, NULL, N, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_step_labels(NULL, img, labels, N, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_step(r.tr, img, 2, &loss), SIMCLR_E_INVALID); /* needs labels */
    assert_non_null(strstr(simclr_last_error(), "simclr_trainer_step_labels"));
    assert_true(loss == 42);
    /* what the method cannot combine with, refused before anything changes */
    simclr_comm comm;
    CHECK_OK(simclr_comm_single(&comm));
    CHECK_STATUS(simclr_trainer_set_comm(r.tr, &comm), SIMCLR_E_UNSUPPORTED);
    simclr_image_list *list;
    CHECK_OK(simclr_image_list_create(r.ctx, CH, &list));
    CHECK_OK(simclr_image_list_add_tensor(list, img));
    CHECK_STATUS(simclr_trainer_step_list(r.tr, list, 2, &loss), SIMCLR_E_UNSUPPORTED);
    simclr_image_list_destroy(list);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_FREEZE_ENCODER, 1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_FREEZE_ENCODER, 0.5), SIMCLR_E_INVALID);
    CHECK_OK(simclr_trainer_set(r.tr, SIMCLR_TRAINER_FREEZE_ENCODER, 0));
    sf_blob after = rig_state(&r, 1);
    const char *diff = sf_diff(&before, &after);
    if (diff) fail_msg("a refused call changed the %s", diff);
    free(before.p), free(after.p);

    /* creation: NT-Xent, a head of another class count */
    simclr_trainer *tr = NULL;
    simclr_loss *nt, *dist, *ce3;
    CHECK_OK(simclr_ntxent_create(r.ctx, 0.5, 2, &nt));
    CHECK_OK(simclr_distill_create(r.ctx, CLASSES, 1.0, &dist));
    /* a distillation trainer takes a teacher, not simclr_trainer_step_labels */
    CHECK_OK(simclr_finetune_trainer_create(r.ctx, r.enc, r.head, r.aug, dist, r.opt, &tr));
    CHECK_STATUS(simclr_trainer_step_labels(tr, img, labels, N, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_step(tr, img, 2, &loss), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_trainer_step_distill"));
    /* the student's own modules cannot be its teacher */
    CHECK_STATUS(simclr_trainer_step_distill(tr, img, r.enc, r.head, NULL, 0, 2, &loss), SIMCLR_E_INVALID);
    simclr_trainer_destroy(tr);
    tr = NULL;
    /* a cross-entropy trainer takes no teacher */
    CHECK_STATUS(simclr_trainer_step_distill(r.tr, img, r.enc, r.head, NULL, 0, 2, &loss), SIMCLR_E_INVALID);
    CHECK_OK(simclr_cross_entropy_create(r.ctx, 3, &ce3));
    CHECK_STATUS(simclr_finetune_trainer_create(r.ctx, r.enc, r.head, r.aug, nt, r.opt, &tr), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_finetune_trainer_create(r.ctx, r.enc, r.head, r.aug, ce3, r.opt, &tr), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_finetune_trainer_create(r.ctx, r.enc, r.enc, r.aug, r.loss, r.opt, &tr), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_finetune_trainer_create(r.ctx, r.enc, r.head, r.aug, r.loss, NULL, &tr), SIMCLR_E_INVALID);
    assert_null(tr);
    /* a SimCLR trainer takes no labels and cannot freeze */
    simclr_module *proj;
    simclr_optimizer *o2;
    CHECK_OK(simclr_mlp_head_create(r.ctx, (int)simclr_module_output_dim(r.enc), 8, 4, 2, 1, 5, &proj));
    simclr_module *mods[2] = {r.enc, proj};
    CHECK_OK(simclr_optimizer_create(r.ctx, SIMCLR_OPT_SGD, mods, 2, &o2));
    CHECK_OK(simclr_trainer_create(r.ctx, r.enc, proj, r.aug, nt, o2, &tr));
    CHECK_STATUS(simclr_trainer_step_labels(tr, img, labels, N, 2, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_trainer_set(tr, SIMCLR_TRAINER_FREEZE_ENCODER, 1), SIMCLR_E_UNSUPPORTED);
    double v = 7;
    CHECK_OK(simclr_trainer_get(tr, SIMCLR_TRAINER_FREEZE_ENCODER, &v));
    assert_true(v == 0);
    simclr_trainer_destroy(tr);
    simclr_optimizer_destroy(o2);
    simclr_module_destroy(proj);
    simclr_loss_destroy(nt);
    simclr_loss_destroy(dist);
    simclr_loss_destroy(ce3);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

static void test_frozen_encoder(void **state)
{
    (void)state;
    rig r;
    rig_make(&r, 1);
    double frozen;
    CHECK_OK(simclr_trainer_get(r.tr, SIMCLR_TRAINER_FREEZE_ENCODER, &frozen));
    assert_true(frozen == 1);
    CHECK_STATUS(simclr_trainer_set(r.tr, SIMCLR_TRAINER_FREEZE_ENCODER, 0), SIMCLR_E_INVALID);
    int32_t labels[N];
    simclr_tensor *img = toy_images(r.ctx, labels, 5);
    sf_blob enc0 = {0}, head0 = {0}, grad0 = {0};
    sf_put_module(&enc0, r.enc, 0); /* parameters and BN running statistics */
    sf_put_module(&grad0, r.enc, 1);
    sf_put_module(&head0, r.head, 0);
    for (int s = 0; s < 3; s++) CHECK_OK(simclr_trainer_step_labels(r.tr, img, labels, N, (uint64_t)s, NULL));
    sf_blob enc1 = {0}, head1 = {0}, grad1 = {0};
    sf_put_module(&enc1, r.enc, 0);
    sf_put_module(&grad1, r.enc, 1);
    sf_put_module(&head1, r.head, 0);
    assert_true(enc0.n == enc1.n && memcmp(enc0.p, enc1.p, enc0.n) == 0);
    assert_true(grad0.n == grad1.n && memcmp(grad0.p, grad1.p, grad0.n) == 0);
    assert_true(head0.n == head1.n && memcmp(head0.p, head1.p, head0.n) != 0);
    free(enc0.p), free(enc1.p), free(head0.p), free(head1.p), free(grad0.p), free(grad1.p);
    simclr_tensor_destroy(img);
    rig_free(&r);
}

/* Micro-batches: with SIMCLR_BN_FROZEN (no batch statistics) a step in
 * micro-batches of 2 has the whole batch's gradient, up to float rounding
 * of the sums; the step counts its micro-batches. */
static void test_micro_batches_match_whole(void **state)
{
    (void)state;
    rig a, b;
    rig_make(&a, 0);
    rig_make(&b, 0);
    CHECK_OK(simclr_trainer_set(a.tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_FROZEN));
    CHECK_OK(simclr_trainer_set(b.tr, SIMCLR_TRAINER_BN_MODE, SIMCLR_BN_FROZEN));
    CHECK_OK(simclr_trainer_set(b.tr, SIMCLR_TRAINER_MICRO_BATCH, 2));
    int32_t labels[N];
    simclr_tensor *img = toy_images(a.ctx, labels, 6);
    float la, lb;
    CHECK_OK(simclr_trainer_step_labels(a.tr, img, labels, N, 9, &la));
    CHECK_OK(simclr_trainer_step_labels(b.tr, img, labels, N, 9, &lb));
    /* the same logits up to rounding (a GEMM's blocking may depend on the batch) */
    if (fabs((double)la - lb) > 1e-5 * fabs((double)la)) fail_msg("loss %g whole, %g in micro-batches", la, lb);
    double micro;
    CHECK_OK(simclr_trainer_stat(b.tr, SIMCLR_STAT_MICRO_BATCHES, &micro));
    assert_true(micro == N / 2);
    simclr_module *mods[2][2] = {{a.enc, a.head}, {b.enc, b.head}};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < simclr_module_param_count(mods[0][m]); i++) {
            simclr_tensor *ga, *gb;
            CHECK_OK(simclr_module_param(mods[0][m], i, NULL, NULL, &ga, NULL));
            CHECK_OK(simclr_module_param(mods[1][m], i, NULL, NULL, &gb, NULL));
            if (!ga) continue;
            const int64_t n = (int64_t)(simclr_tensor_bytes(ga) / sizeof(float));
            double err = test_norm_err(simclr_tensor_data(gb), simclr_tensor_data(ga), n);
            if (err > 1e-5) fail_msg("module %d gradient %d: micro-batches differ by %g (relative)", m, i, err);
        }
    simclr_tensor_destroy(img);
    rig_free(&a);
    rig_free(&b);
}

/* A teacher fine-tuned on the toy set (steps of cross-entropy), and a
 * distillation student rig borrowing it. */
static void teacher_and_student(rig *teacher, rig *student, const simclr_allocator *alloc)
{
    rig_make(teacher, 0);
    int32_t labels[N];
    simclr_tensor *img = toy_images(teacher->ctx, labels, 11);
    /* 40 steps: the running statistics its EVAL forward uses have settled (BN momentum 0.1) */
    for (int s = 0; s < 40; s++) CHECK_OK(simclr_trainer_step_labels(teacher->tr, img, labels, N, (uint64_t)s, NULL));
    simclr_tensor_destroy(img);
    CHECK_OK(rig_try_kind(student, alloc, 0, 1));
    /* the teacher's modules, copied into modules of the student's context */
    simclr_module *te, *th;
    CHECK_OK(simclr_resnet_create_v2(student->ctx, 18, 2, CH, SIMCLR_STEM_CIFAR, 3, &te));
    CHECK_OK(simclr_linear_head_create(student->ctx, simclr_module_output_dim(te), CLASSES, 4, &th));
    simclr_module *from[2] = {teacher->enc, teacher->head}, *to[2] = {te, th};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < simclr_module_param_count(from[m]); i++) {
            simclr_tensor *a, *b;
            CHECK_OK(simclr_module_param(from[m], i, NULL, &a, NULL, NULL));
            CHECK_OK(simclr_module_param(to[m], i, NULL, &b, NULL, NULL));
            assert_int_equal(simclr_tensor_bytes(a), simclr_tensor_bytes(b));
            memcpy(simclr_tensor_data(b), simclr_tensor_data(a), simclr_tensor_bytes(a));
        }
    student->t_enc = te, student->t_head = th;
}

static void student_free(rig *student)
{
    simclr_module *te = student->t_enc, *th = student->t_head;
    simclr_trainer_destroy(student->tr);
    student->tr = NULL;
    simclr_module_destroy(te);
    simclr_module_destroy(th);
    rig_free(student);
}

static void test_distill_learns_teacher(void **state)
{
    (void)state;
    rig teacher, st;
    teacher_and_student(&teacher, &st, NULL);
    int32_t labels[N];
    simclr_tensor *img = toy_images(st.ctx, labels, 12);
    sf_blob t0 = {0};
    sf_put_module(&t0, st.t_enc, 0), sf_put_module(&t0, st.t_head, 0);
    sf_put_module(&t0, st.t_enc, 1), sf_put_module(&t0, st.t_head, 1);
    float first = 0, last = 0;
    for (int s = 0; s < 12; s++) {
        float l;
        /* unlabelled (NULL), then partly labelled (-1 marks the unlabelled rows) */
        int32_t part[N];
        for (int i = 0; i < N; i++) part[i] = i < N / 2 ? labels[i] : -1;
        CHECK_OK(rig_step(&st, img, s % 2 ? part : NULL, s % 2 ? N : 0, (uint64_t)s, &l));
        assert_true(isfinite(l));
        if (getenv("FT_VERBOSE")) fprintf(stderr, "distill step %d loss %g\n", s, l);
        if (s == 0) first = l;
        if (s >= 8) last += l / 4;
    }
    /* The loss is a cross-entropy with the teacher's softened probabilities:
     * its floor is their entropy (tau = 1), small for this confident teacher. */
    if (!(last < 0.5 * first)) fail_msg("distillation loss %g -> %g: did not halve", first, last);
    double agree;
    CHECK_OK(simclr_trainer_stat(st.tr, SIMCLR_STAT_ACCURACY, &agree));
    if (agree < 0.75) fail_msg("student agrees with its teacher on %g of the batch", agree);
    /* The teacher was only read: parameters, BN statistics and gradients as before. */
    sf_blob t1 = {0};
    sf_put_module(&t1, st.t_enc, 0), sf_put_module(&t1, st.t_head, 0);
    sf_put_module(&t1, st.t_enc, 1), sf_put_module(&t1, st.t_head, 1);
    assert_true(t0.n == t1.n && memcmp(t0.p, t1.p, t0.n) == 0);
    free(t0.p), free(t1.p);
    float loss = 42;
    labels[3] = -2;
    CHECK_STATUS(rig_step(&st, img, labels, N, 1, &loss), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "labels[3] = -2"));
    CHECK_STATUS(rig_step(&st, img, NULL, N, 1, &loss), SIMCLR_E_INVALID);
    CHECK_STATUS(rig_step(&st, img, labels, N - 1, 1, &loss), SIMCLR_E_SHAPE);
    assert_true(loss == 42);
    simclr_tensor_destroy(img);
    student_free(&st);
    rig_free(&teacher);
}

static void test_distill_failures_roll_back(void **state)
{
    (void)state;
    test_alloc ta = {0, 0, 0, 0};
    simclr_allocator hooks = test_allocator(&ta);
    rig teacher, r, ref, teacher2;
    teacher_and_student(&teacher, &r, &hooks);
    teacher_and_student(&teacher2, &ref, NULL);
    int32_t labels[N];
    simclr_tensor *img = toy_images(ref.ctx, labels, 13);
    for (int i = 0; i < N; i += 3) labels[i] = -1;
    CHECK_OK(rig_step(&r, img, labels, N, 1, NULL));
    CHECK_OK(rig_step(&ref, img, labels, N, 1, NULL));
    sf_canceller c = {0, 0};
    CHECK_OK(simclr_context_set_progress_cancel(r.ctx, sf_cancel_fn, &c));
    assert_true(sweep(&r, &ref, img, labels, 2, SIMCLR_E_CANCELLED, "distill cancel", sf_arm_cancel, &c) >= 2);
    /* the teacher's scratch is allocated by every call: failures do happen */
    assert_true(sweep(&r, &ref, img, labels, 3, SIMCLR_E_NOMEM, "distill allocation", sf_arm_alloc, &ta) >= 3);
    simclr_tensor *w;
    CHECK_OK(simclr_module_param(r.t_head, 0, NULL, &w, NULL, NULL)); /* a NaN in the teacher */
    sf_nan nan_w = {simclr_tensor_data(w), 0};
    assert_int_equal(sweep(&r, &ref, img, labels, 4, SIMCLR_E_NUMERIC, "teacher NaN", sf_arm_nan, &nan_w), 1);
    simclr_tensor_destroy(img);
    student_free(&ref);
    student_free(&r);
    rig_free(&teacher2);
    rig_free(&teacher);
    assert_int_equal(ta.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_decreases),
        cmocka_unit_test(test_resume_bit_identical),
        cmocka_unit_test(test_failures_roll_back),
        cmocka_unit_test(test_bad_input_refused),
        cmocka_unit_test(test_frozen_encoder),
        cmocka_unit_test(test_micro_batches_match_whole),
        cmocka_unit_test(test_distill_learns_teacher),
        cmocka_unit_test(test_distill_failures_roll_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
