/* Promises of the per-function comments in include/simclr.h that no other
 * program checks: what accessors return for NULL, that failing calls leave
 * their outputs and handles as they were (simclr_embedder_run included),
 * that a refused log setting keeps the installed sink and that the sink's
 * level filters; and the 0.2.0 conventions: int64_t shapes (the _v2
 * constructors), double settings, the old enum names as aliases. */
#include "test_util.h"

typedef struct sink {
    int calls;
    simclr_log_level worst;
} sink;

static void on_log(void *user, simclr_log_level level, const char *message)
{
    (void)message;
    sink *s = user;
    s->calls++;
    s->worst = level;
}

static void test_null_accessors(void **state)
{
    (void)state;
    assert_null(simclr_context_backend(NULL));
    assert_int_equal(simclr_context_threads(NULL), 0);
    assert_null(simclr_context_isa(NULL));
    assert_null(simclr_tensor_data(NULL));
    assert_int_equal(simclr_tensor_ndim(NULL), 0);
    assert_int_equal(simclr_tensor_dtype(NULL), -1);
    assert_int_equal(simclr_tensor_bytes(NULL), 0);
    assert_int_equal(simclr_module_output_dim(NULL), 0);
    assert_null(simclr_module_arch(NULL));
    assert_int_equal(simclr_module_param_count(NULL), 0);
    assert_int_equal(simclr_module_param_scalars(NULL), 0);
    assert_int_equal(simclr_optimizer_state_count(NULL), 0);
    assert_int_equal(simclr_dataset_count(NULL), 0);
    assert_null(simclr_dataset_labels(NULL));
    assert_int_equal(simclr_dataset_class_count(NULL), 0);
    assert_int_equal(simclr_image_list_count(NULL), 0);
    assert_int_equal(simclr_image_list_channels(NULL), 0);
    assert_non_null(simclr_version_string());
    assert_non_null(simclr_status_string((simclr_status)12345));
    assert_int_equal(simclr_error_set(SIMCLR_E_IO, "x"), SIMCLR_E_IO);
    assert_string_equal(simclr_last_error(), "x");
    assert_int_equal(simclr_error_set(SIMCLR_OK, "y"), SIMCLR_OK);
    assert_string_equal(simclr_last_error(), "x"); /* OK leaves the message */
    CHECK_STATUS(simclr_comm_validate(NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_comm_single(NULL), SIMCLR_E_INVALID);
    double lo = 7, hi = 8;
    CHECK_STATUS(simclr_augment_bounds((simclr_aug_param)9999, &lo, &hi), SIMCLR_E_INVALID);
    assert_true(lo == 7 && hi == 8);
    CHECK_STATUS(simclr_context_set_progress(NULL, NULL, NULL), SIMCLR_E_INVALID);
}

static void test_failures_leave_outputs(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    int64_t shape[2] = {2, 3};
    simclr_tensor *t;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, shape, &t));
    float *x = simclr_tensor_data(t);
    for (int i = 0; i < 6; i++) x[i] = (float)i;
    CHECK_STATUS(simclr_tensor_copy_from(t, NULL, 24), SIMCLR_E_INVALID);
    CHECK_OK(simclr_tensor_copy_from(t, x, 24)); /* src may be the tensor's own data */
    for (int i = 0; i < 6; i++) assert_true(x[i] == (float)i);
    float dst[7] = {9, 9, 9, 9, 9, 9, 9};
    CHECK_STATUS(simclr_tensor_copy_to(t, dst, 28), SIMCLR_E_SHAPE);
    for (int i = 0; i < 7; i++) assert_true(dst[i] == 9);
    int64_t bad[2] = {4, 2}, zero[2] = {6, 0};
    CHECK_STATUS(simclr_tensor_reshape(t, 2, bad), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_tensor_reshape(t, 2, zero), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_tensor_reshape(t, 2, NULL), SIMCLR_E_INVALID);
    assert_true(simclr_tensor_dim(t, 0) == 2 && simclr_tensor_dim(t, 1) == 3);
    for (int i = 0; i < 6; i++) assert_true(x[i] == (float)i);
    simclr_tensor *w = (simclr_tensor *)&dst;
    CHECK_STATUS(simclr_tensor_wrap(ctx, SIMCLR_F32, 2, shape, NULL, &w), SIMCLR_E_INVALID);
    assert_ptr_equal(w, (simclr_tensor *)&dst);

    simclr_module *m;
    CHECK_OK(simclr_mlp_head_create(ctx, 3, 4, 2, 2, 0, 1, &m));
    const char *name = "keep";
    simclr_tensor *v = t, *g = t;
    int flags = 77;
    CHECK_STATUS(simclr_module_param(m, simclr_module_param_count(m), &name, &v, &g, &flags), SIMCLR_E_INVALID);
    assert_true(strcmp(name, "keep") == 0 && v == t && g == t && flags == 77);
    CHECK_STATUS(simclr_module_save(m, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_module_zero_grad(NULL), SIMCLR_E_INVALID);

    simclr_loss *loss;
    CHECK_OK(simclr_ntxent_create(ctx, 0.5, 2, &loss));
    float acc = 5;
    CHECK_STATUS(simclr_loss_forward(loss, t, NULL, &acc), SIMCLR_E_INVALID);
    assert_true(acc == 5);
    float lv;
    CHECK_OK(simclr_loss_forward(loss, t, &lv, NULL)); /* accuracy may be NULL */
    CHECK_STATUS(simclr_loss_backward(loss, NULL), SIMCLR_E_INVALID);

    simclr_module *mods[1] = {m};
    simclr_optimizer *opt;
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, mods, 1, &opt));
    double val = 3.5;
    CHECK_STATUS(simclr_optimizer_get(opt, (simclr_opt_param)9999, &val), SIMCLR_E_INVALID);
    assert_true(val == 3.5);
    CHECK_STATUS(simclr_optimizer_lr(opt, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_step(NULL), SIMCLR_E_INVALID);
    int sc = simclr_optimizer_state_count(opt);
    const char *sname = "keep";
    simclr_tensor *sv = t;
    CHECK_STATUS(simclr_optimizer_state(opt, sc, &sname, &sv), SIMCLR_E_INVALID);
    assert_true(strcmp(sname, "keep") == 0 && sv == t);

    simclr_augment *aug;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_NONE, 4, 4, &aug));
    CHECK_STATUS(simclr_augment_get(aug, (simclr_aug_param)9999, &val), SIMCLR_E_INVALID);
    assert_true(val == 3.5);

    simclr_image_list *list;
    CHECK_OK(simclr_image_list_create(ctx, 1, &list));
    int64_t lh = -3, lw = -4;
    CHECK_STATUS(simclr_image_list_size(list, 0, &lh, &lw), SIMCLR_E_INVALID);
    assert_true(lh == -3 && lw == -4);
    CHECK_STATUS(simclr_image_list_clear(NULL), SIMCLR_E_INVALID);
    simclr_image_list_destroy(list);

    simclr_augment_destroy(aug);
    simclr_optimizer_destroy(opt);
    simclr_loss_destroy(loss);
    simclr_module_destroy(m);
    simclr_tensor_destroy(t);
    simclr_context_destroy(ctx);
}

/* n rows of 3 features, two classes by row parity; the third feature is
 * constant (2.0), which the linear probe warns about (SIMCLR_LOG_WARN). */
static simclr_tensor *rows_with_constant_feature(simclr_context *ctx, int n, int32_t *labels)
{
    int64_t shape[2] = {n, 3};
    simclr_tensor *tr;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, shape, &tr));
    float *x = simclr_tensor_data(tr);
    for (int i = 0; i < n; i++) {
        labels[i] = i & 1;
        x[i * 3] = (float)(i & 1) + 0.1f * (float)i, x[i * 3 + 1] = (float)i, x[i * 3 + 2] = 2.0f;
    }
    return tr;
}

/* A probe on those rows: a cheap way to make the library log. */
static void probe_with_constant_feature(simclr_context *ctx)
{
    int32_t labels[8];
    simclr_tensor *tr = rows_with_constant_feature(ctx, 8, labels);
    double top1;
    CHECK_OK(simclr_linear_probe_n(ctx, tr, labels, 8, tr, labels, 8, 2, 5, 0.0, &top1));
    simclr_tensor_destroy(tr);
}

static void test_log_level_and_refused_setting(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    sink a = {0, SIMCLR_LOG_DEBUG}, b = {0, SIMCLR_LOG_DEBUG};
    CHECK_OK(simclr_context_set_log(ctx, on_log, &a, SIMCLR_LOG_WARN));
    probe_with_constant_feature(ctx);
    assert_true(a.calls >= 1 && a.worst == SIMCLR_LOG_WARN);
    /* a refused level keeps the installed sink and level */
    int before = a.calls;
    CHECK_STATUS(simclr_context_set_log(ctx, on_log, &b, (simclr_log_level)7), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_context_set_log(NULL, on_log, &b, SIMCLR_LOG_WARN), SIMCLR_E_INVALID);
    probe_with_constant_feature(ctx);
    assert_true(a.calls > before);
    assert_int_equal(b.calls, 0);
    /* max_level ERROR: a warning is above it and not delivered */
    CHECK_OK(simclr_context_set_log(ctx, on_log, &b, SIMCLR_LOG_ERROR));
    probe_with_constant_feature(ctx);
    assert_int_equal(b.calls, 0);
    simclr_context_destroy(ctx);
}

/* simclr_linear_probe_select: one INFO line naming the chosen decay, and
 * the constant-feature warning once (for the refit on every train row), not
 * once per fit. */
typedef struct lines {
    int warn, info;
    char last_info[256];
} lines;

static void on_line(void *user, simclr_log_level level, const char *message)
{
    lines *l = user;
    if (level == SIMCLR_LOG_WARN) l->warn++;
    if (level == SIMCLR_LOG_INFO) l->info++, snprintf(l->last_info, sizeof l->last_info, "%s", message);
}

static void test_probe_select_logs(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    lines l = {0, 0, ""};
    CHECK_OK(simclr_context_set_log(ctx, on_line, &l, SIMCLR_LOG_INFO));
    int32_t labels[10];
    simclr_tensor *tr = rows_with_constant_feature(ctx, 10, labels);
    const double grid[] = {0.0, 0.5};
    double top1, chosen;
    CHECK_OK(simclr_linear_probe_select(ctx, tr, labels, 10, tr, labels, 10, 2, 5, grid, 2, &top1, &chosen));
    assert_int_equal(l.warn, 1);
    assert_int_equal(l.info, 1);
    char want[128];
    snprintf(want, sizeof want, "simclr_linear_probe_select: weight_decay %g chosen (", chosen);
    assert_non_null(strstr(l.last_info, want));
    assert_non_null(strstr(l.last_info, "of 2 validation rows right)"));
    simclr_tensor_destroy(tr);
    simclr_context_destroy(ctx);
}

/* simclr_embedder_run leaves out untouched on error (0.2.0): with a batch
 * of 2 and 5 images a run takes three forwards, and an allocation that
 * fails in the second or third must not leave the first batch's rows
 * written. Every allocation of the run is failed in turn. */
#define EMB_N 5
typedef struct embed_fixture {
    simclr_module *enc;
    simclr_embedder *emb;
    simclr_image_list *list;
    simclr_tensor *out;
    uint8_t px[EMB_N][12 * 10];
    int failed, succeeded;
} embed_fixture;

static void embed_prepare(simclr_context *ctx, void *user)
{
    embed_fixture *f = user;
    CHECK_OK(simclr_resnet_create_v2(ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 7, &f->enc));
    CHECK_OK(simclr_embedder_create(ctx, f->enc, 8, 8, &f->emb));
    CHECK_OK(simclr_embedder_set(f->emb, SIMCLR_EMBED_BATCH, 2));
    CHECK_OK(simclr_image_list_create(ctx, 1, &f->list));
    for (int i = 0; i < EMB_N; i++) {
        for (int p = 0; p < 12 * 10; p++) f->px[i][p] = (uint8_t)(p * 7 + i * 31);
        CHECK_OK(simclr_image_list_add(f->list, f->px[i], 12, 10));
    }
    int64_t shape[2] = {EMB_N, simclr_module_output_dim(f->enc)};
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, shape, &f->out));
    float *o = simclr_tensor_data(f->out);
    for (int64_t i = 0; i < simclr_tensor_numel(f->out); i++) o[i] = -7.5f;
}

static simclr_status embed_call(simclr_context *ctx, void *user)
{
    (void)ctx;
    embed_fixture *f = user;
    return simclr_embedder_run(f->emb, f->list, f->out);
}

static void embed_finish(simclr_context *ctx, simclr_status st, void *user)
{
    (void)ctx;
    embed_fixture *f = user;
    const float *o = simclr_tensor_data(f->out);
    int64_t sentinels = 0, n = simclr_tensor_numel(f->out);
    for (int64_t i = 0; i < n; i++) sentinels += o[i] == -7.5f;
    if (st != SIMCLR_OK) {
        f->failed++;
        if (sentinels != n)
            fail_msg("simclr_embedder_run failed (%s) after writing %lld of %lld values of out",
                     simclr_last_error(), (long long)(n - sentinels), (long long)n);
    } else {
        f->succeeded++;
        assert_int_equal(sentinels, 0);
    }
    simclr_tensor_destroy(f->out);
    simclr_image_list_destroy(f->list);
    simclr_embedder_destroy(f->emb);
    simclr_module_destroy(f->enc);
}

static void test_embedder_failure_leaves_out(void **state)
{
    (void)state;
    static embed_fixture f; /* static: the pixels outlive every call */
    memset(&f, 0, sizeof f);
    test_alloc_sweep sw = {embed_prepare, embed_call, embed_finish, &f};
    test_sweep_alloc_failures(400, &sw);
    assert_int_equal(f.succeeded, 1);
    assert_true(f.failed >= 3); /* the batches' allocations were reached */
}

/* 0.2.0: every set/get family takes doubles; the context's whole-number
 * key refuses fractions and NaN and keeps its value. */
static void test_context_settings_are_doubles(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    double v = -1;
    CHECK_OK(simclr_context_get(ctx, SIMCLR_CTX_CONV_ALGO, &v));
    assert_true(v == SIMCLR_CONV_AUTO);
    CHECK_OK(simclr_context_set(ctx, SIMCLR_CTX_CONV_ALGO, SIMCLR_CONV_WINOGRAD));
    CHECK_STATUS(simclr_context_set(ctx, SIMCLR_CTX_CONV_ALGO, 1.5), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "1.5"));
    CHECK_STATUS(simclr_context_set(ctx, SIMCLR_CTX_CONV_ALGO, NAN), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_context_set(ctx, SIMCLR_CTX_CONV_ALGO, 2.0 + 1e-12), SIMCLR_E_INVALID);
    CHECK_OK(simclr_context_get(ctx, SIMCLR_CTX_CONV_ALGO, &v));
    assert_true(v == SIMCLR_CONV_WINOGRAD);
    simclr_context_destroy(ctx);
}

/* The arch string and every named tensor of two modules are equal. */
static void assert_same_module(simclr_module *a, simclr_module *b)
{
    assert_string_equal(simclr_module_arch(a), simclr_module_arch(b));
    assert_int_equal(simclr_module_param_count(a), simclr_module_param_count(b));
    for (int i = 0; i < simclr_module_param_count(a); i++) {
        simclr_tensor *ta, *tb;
        const char *na, *nb;
        CHECK_OK(simclr_module_param(a, i, &na, &ta, NULL, NULL));
        CHECK_OK(simclr_module_param(b, i, &nb, &tb, NULL, NULL));
        assert_string_equal(na, nb);
        assert_int_equal(simclr_tensor_bytes(ta), simclr_tensor_bytes(tb));
        assert_memory_equal(simclr_tensor_data(ta), simclr_tensor_data(tb), simclr_tensor_bytes(ta));
    }
}

/* 0.2.0: shapes are int64_t. The _v2 constructors make what the deprecated
 * int forms make, each naming itself in its messages; a size beyond int's
 * range is refused, not truncated (1 << 32 | 1 would be 1 as an int). */
static void test_int64_shapes(void **state)
{
    (void)state;
    const int64_t huge = ((int64_t)1 << 32) | 1;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("ref", 1, NULL, &ctx));
    simclr_module *a, *b, *keep = (simclr_module *)&ctx;

    CHECK_OK(simclr_resnet_create_v2(ctx, 18, 4, 3, SIMCLR_STEM_IMAGENET, 11, &a));
    CHECK_OK(simclr_resnet_create(ctx, 18, 4, 3, SIMCLR_STEM_IMAGENET, 11, &b));
    assert_same_module(a, b);
    simclr_module_destroy(a);
    simclr_module_destroy(b);
    b = keep;
    CHECK_STATUS(simclr_resnet_create_v2(ctx, 18, huge, 1, SIMCLR_STEM_CIFAR, 1, &b), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_resnet_create_v2: width 4294967297"));
    CHECK_STATUS(simclr_resnet_create_v2(ctx, 18, 4, huge, SIMCLR_STEM_CIFAR, 1, &b), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_resnet_create(ctx, 18, 0, 1, SIMCLR_STEM_CIFAR, 1, &b), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_resnet_create: width 0"));
    assert_ptr_equal(b, keep);

    CHECK_OK(simclr_mlp_head_create_v2(ctx, 6, 5, 3, 2, 1, 4, &a));
    CHECK_OK(simclr_mlp_head_create(ctx, 6, 5, 3, 2, 1, 4, &b));
    assert_same_module(a, b);
    simclr_module_destroy(a);
    simclr_module_destroy(b);
    b = keep;
    CHECK_STATUS(simclr_mlp_head_create_v2(ctx, huge, 5, 3, 2, 0, 4, &b), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_mlp_head_create_v2: in_dim 4294967297"));
    CHECK_STATUS(simclr_mlp_head_create_v2(ctx, 6, huge, 3, 2, 0, 4, &b), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_mlp_head_create_v2(ctx, 6, 5, huge, 2, 0, 4, &b), SIMCLR_E_INVALID);
    CHECK_OK(simclr_mlp_head_create_v2(ctx, 6, huge, 3, 1, 0, 4, &a)); /* hidden_dim unused with one layer */
    simclr_module_destroy(a);
    assert_ptr_equal(b, keep);

    simclr_augment *g1, *g2, *gkeep = (simclr_augment *)&ctx, *g3 = gkeep;
    CHECK_OK(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_CIFAR, 6, 5, &g1));
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 6, 5, &g2));
    int64_t ishape[4] = {2, 9, 7, 3}, vshape[4] = {2, 3, 6, 5};
    simclr_tensor *img, *v1, *v2;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_U8, 4, ishape, &img));
    uint8_t *px = simclr_tensor_data(img);
    for (int64_t i = 0; i < simclr_tensor_numel(img); i++) px[i] = (uint8_t)(i * 37);
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, vshape, &v1));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, vshape, &v2));
    CHECK_OK(simclr_augment_apply(g1, img, 5, 0, v1));
    CHECK_OK(simclr_augment_apply(g2, img, 5, 0, v2));
    assert_memory_equal(simclr_tensor_data(v1), simclr_tensor_data(v2), simclr_tensor_bytes(v1));
    CHECK_STATUS(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_CIFAR, huge, 5, &g3), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_augment_create_v2: output size 4294967297 x 5"));
    CHECK_STATUS(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_CIFAR, 0, 5, &g3), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "simclr_augment_create: output size 0 x 5"));
    assert_ptr_equal(g3, gkeep);
    simclr_tensor_destroy(v1);
    simclr_tensor_destroy(v2);
    simclr_tensor_destroy(img);
    simclr_augment_destroy(g1);
    simclr_augment_destroy(g2);

    /* the 0.2 functions changed in place */
    b = keep;
    CHECK_STATUS(simclr_vit_create(ctx, huge, 4, 3, 8, 1, 2, 16, SIMCLR_VIT_POOL_CLS, 1, &b), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "image_size 4294967297"));
    CHECK_STATUS(simclr_vit_create(ctx, 8, 4, 3, 8, 1, 2, huge, SIMCLR_VIT_POOL_CLS, 1, &b), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_vit_create_preset(ctx, SIMCLR_VIT_TINY_CIFAR, huge, 1, &b), SIMCLR_E_INVALID);
    assert_ptr_equal(b, keep);
    simclr_image_list *list = (simclr_image_list *)&ctx;
    CHECK_STATUS(simclr_image_list_create(ctx, huge, &list), SIMCLR_E_INVALID);
    assert_ptr_equal(list, (simclr_image_list *)&ctx);
    CHECK_OK(simclr_image_list_create(ctx, 3, &list));
    assert_true(simclr_image_list_channels(list) == 3);
    simclr_image_list_destroy(list);
    CHECK_OK(simclr_resnet_create_v2(ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 1, &a));
    simclr_embedder *e = (simclr_embedder *)&ctx;
    CHECK_STATUS(simclr_embedder_create(ctx, a, huge, 8, &e), SIMCLR_E_INVALID);
    assert_ptr_equal(e, (simclr_embedder *)&ctx);
    simclr_module_destroy(a);
    simclr_context_destroy(ctx);
}

/* The 0.1 enum type names stay usable: each is an alias of the new name. */
static void test_old_type_names(void **state)
{
    (void)state;
    simclr_stat s = SIMCLR_STAT_LOSS;
    simclr_trainer_stat_key k = s;
    simclr_aug_param ap = SIMCLR_AUG_FLIP_P;
    simclr_augment_param ap2 = ap;
    simclr_aug_preset pr = SIMCLR_AUG_PRESET_CIFAR;
    simclr_augment_preset pr2 = pr;
    simclr_opt_param op = SIMCLR_OPT_LR;
    simclr_optimizer_param op2 = op;
    simclr_opt_kind ok = SIMCLR_OPT_LARS;
    simclr_optimizer_kind ok2 = ok;
    simclr_embed_param ep = SIMCLR_EMBED_BATCH;
    simclr_embedder_param ep2 = ep;
    simclr_ctx_param cp = SIMCLR_CTX_CONV_ALGO;
    simclr_context_param cp2 = cp;
    assert_true(sizeof s == sizeof k && k == SIMCLR_STAT_LOSS && ap2 == SIMCLR_AUG_FLIP_P &&
                pr2 == SIMCLR_AUG_PRESET_CIFAR && op2 == SIMCLR_OPT_LR && ok2 == SIMCLR_OPT_LARS &&
                ep2 == SIMCLR_EMBED_BATCH && cp2 == SIMCLR_CTX_CONV_ALGO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_accessors),
        cmocka_unit_test(test_failures_leave_outputs),
        cmocka_unit_test(test_log_level_and_refused_setting),
        cmocka_unit_test(test_probe_select_logs),
        cmocka_unit_test(test_embedder_failure_leaves_out),
        cmocka_unit_test(test_context_settings_are_doubles),
        cmocka_unit_test(test_int64_shapes),
        cmocka_unit_test(test_old_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
