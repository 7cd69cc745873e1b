/* Cancellation and logging: the stoppable progress callback stops feature
 * extraction, the kNN monitor, the linear probe (plain and with its decay
 * chosen on validation) and a trainer step with
 * SIMCLR_E_CANCELLED and leaves every handle and output as it was; the old
 * progress callback keeps working beside it; the log callback hears the
 * library's warnings (a rolled-back step, constant probe features) and
 * infos (ignored safetensors extras, cancellations), filtered by level. */
#include <unistd.h>

#include "test_util.h"

#define IMG 8

static char dir[64];

/* ---- callbacks ---------------------------------------------------------- */

typedef struct stopper {
    int polls, stop_at; /* stop on poll number stop_at (1-based; 0 = never) */
    int64_t last_done, last_total;
    char what[16];
} stopper;

static int on_cancel(void *user, const char *what, int64_t done, int64_t total)
{
    stopper *s = user;
    s->polls++;
    s->last_done = done, s->last_total = total;
    snprintf(s->what, sizeof s->what, "%s", what);
    return s->stop_at && s->polls >= s->stop_at;
}

typedef struct plain {
    int calls;
} plain;

static void on_progress(void *user, const char *what, int64_t done, int64_t total)
{
    (void)what, (void)done, (void)total;
    ((plain *)user)->calls++;
}

typedef struct logbook {
    int n, warn, info;
    char last[512];
} logbook;

static void on_log(void *user, simclr_log_level level, const char *message)
{
    logbook *l = user;
    l->n++;
    l->warn += level == SIMCLR_LOG_WARN;
    l->info += level == SIMCLR_LOG_INFO;
    snprintf(l->last, sizeof l->last, "%s", message);
}

/* ---- a small world ------------------------------------------------------ */

typedef struct rig {
    simclr_context *ctx;
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;
    simclr_trainer *tr;
    simclr_tensor *img;
} rig;

static void rig_make(rig *r)
{
    memset(r, 0, sizeof *r);
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &r->ctx));
    CHECK_OK(simclr_resnet_create(r->ctx, 18, 2, 1, SIMCLR_STEM_CIFAR, 1, &r->enc));
    CHECK_OK(simclr_mlp_head_create(r->ctx, 16, 16, 8, 2, 0, 2, &r->head));
    CHECK_OK(simclr_augment_create(r->ctx, SIMCLR_AUG_PRESET_GRAYSCALE, IMG, IMG, &r->aug));
    CHECK_OK(simclr_ntxent_create(r->ctx, 0.5, 2, &r->loss));
    simclr_module *mods[2] = {r->enc, r->head};
    CHECK_OK(simclr_optimizer_create(r->ctx, SIMCLR_OPT_LARS, mods, 2, &r->opt));
    CHECK_OK(simclr_trainer_create(r->ctx, r->enc, r->head, r->aug, r->loss, r->opt, &r->tr));
    int64_t is[4] = {6, IMG, IMG, 1};
    CHECK_OK(simclr_tensor_create(r->ctx, SIMCLR_U8, 4, is, &r->img));
    unsigned char *px = simclr_tensor_data(r->img);
    for (int64_t i = 0; i < simclr_tensor_numel(r->img); i++) px[i] = (unsigned char)(i * 37 + i / 11);
}

static void rig_free(rig *r)
{
    simclr_tensor_destroy(r->img);
    simclr_trainer_destroy(r->tr);
    simclr_optimizer_destroy(r->opt);
    simclr_loss_destroy(r->loss);
    simclr_augment_destroy(r->aug);
    simclr_module_destroy(r->head);
    simclr_module_destroy(r->enc);
    simclr_context_destroy(r->ctx);
}

/* Every parameter, gradient, optimizer state tensor, the optimizer step and
 * the trainer's step count, as bytes. */
static unsigned char *state_of(rig *r, size_t *n)
{
    size_t cap = 1 << 20, k = 0;
    unsigned char *b = malloc(cap);
#define PUT(p, len)                                         \
    do {                                                    \
        assert_true(k + (len) <= cap);                      \
        memcpy(b + k, (p), (len));                          \
        k += (len);                                         \
    } while (0)
    simclr_module *mods[2] = {r->enc, r->head};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < simclr_module_param_count(mods[m]); i++) {
            simclr_tensor *v, *g;
            CHECK_OK(simclr_module_param(mods[m], i, NULL, &v, &g, NULL));
            PUT(simclr_tensor_data(v), simclr_tensor_bytes(v));
            if (g) PUT(simclr_tensor_data(g), simclr_tensor_bytes(g));
        }
    for (int i = 0; i < simclr_optimizer_state_count(r->opt); i++) {
        simclr_tensor *t;
        CHECK_OK(simclr_optimizer_state(r->opt, i, NULL, &t));
        PUT(simclr_tensor_data(t), simclr_tensor_bytes(t));
    }
    double v[2];
    CHECK_OK(simclr_optimizer_get(r->opt, SIMCLR_OPT_STEP, &v[0]));
    CHECK_OK(simclr_trainer_stat(r->tr, SIMCLR_STAT_STEP, &v[1]));
    PUT(v, sizeof v);
#undef PUT
    *n = k;
    return b;
}

static void test_trainer_step_cancel(void **state)
{
    (void)state;
    rig r;
    rig_make(&r);
    CHECK_OK(simclr_optimizer_set(r.opt, SIMCLR_OPT_TOTAL_STEPS, 10));
    CHECK_OK(simclr_trainer_step(r.tr, r.img, 1, NULL)); /* gradients and momentum non-zero */
    stopper s = {0};
    plain p = {0};
    logbook lg = {0};
    CHECK_OK(simclr_context_set_progress_cancel(r.ctx, on_cancel, &s));
    CHECK_OK(simclr_context_set_progress(r.ctx, on_progress, &p));
    CHECK_OK(simclr_context_set_log(r.ctx, on_log, &lg, SIMCLR_LOG_INFO));
    for (int stop_at = 1; stop_at <= 2; stop_at++) { /* before the forward; before the optimizer commits */
        size_t n0, n1;
        unsigned char *before = state_of(&r, &n0);
        s = (stopper){0, stop_at, 0, 0, ""};
        float loss = -1;
        CHECK_STATUS(simclr_trainer_step(r.tr, r.img, 2, &loss), SIMCLR_E_CANCELLED);
        assert_non_null(strstr(simclr_last_error(), "simclr_trainer_step: cancelled"));
        assert_true(loss == -1.0f);
        assert_int_equal(s.polls, stop_at);
        assert_string_equal(s.what, "train");
        assert_int_equal(s.last_done, 1); /* steps done so far */
        assert_int_equal(s.last_total, 10);
        unsigned char *after = state_of(&r, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(before, after, n0);
        free(before);
        free(after);
    }
    assert_int_equal(p.calls, 0); /* no step finished: no plain report */
    assert_true(lg.info >= 2 && strstr(lg.last, "cancelled"));
    /* not stopping: two polls and the report after the step, which both see */
    s = (stopper){0, 0, 0, 0, ""};
    CHECK_OK(simclr_trainer_step(r.tr, r.img, 2, NULL));
    assert_int_equal(s.polls, 3);
    assert_int_equal(s.last_done, 2);
    assert_int_equal(p.calls, 1);
    /* a stop request in the report after a finished step cannot undo it */
    s = (stopper){0, 3, 0, 0, ""};
    CHECK_OK(simclr_trainer_step(r.tr, r.img, 3, NULL));
    double steps;
    CHECK_OK(simclr_trainer_stat(r.tr, SIMCLR_STAT_STEP, &steps));
    assert_true(steps == 3);
    /* removing the callback */
    CHECK_OK(simclr_context_set_progress_cancel(r.ctx, NULL, NULL));
    s = (stopper){0, 1, 0, 0, ""};
    CHECK_OK(simclr_trainer_step(r.tr, r.img, 4, NULL));
    assert_int_equal(s.polls, 0);
    CHECK_STATUS(simclr_context_set_progress_cancel(NULL, on_cancel, &s), SIMCLR_E_INVALID);
    rig_free(&r);
}

static void write_idx(const char *path, int n)
{
    unsigned char *d = malloc(16 + (size_t)n * IMG * IMG);
    uint32_t hdr[4] = {0x803, (uint32_t)n, IMG, IMG};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++) d[4 * i + b] = (unsigned char)(hdr[i] >> (24 - 8 * b));
    for (int i = 0; i < n * IMG * IMG; i++) d[16 + i] = (unsigned char)(i * 13 + 5);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(d, 1, 16 + (size_t)n * IMG * IMG, f);
    fclose(f);
    free(d);
}

static void test_extract_cancel(void **state)
{
    (void)state;
    rig r;
    rig_make(&r);
    char path[128];
    snprintf(path, sizeof path, "%s/images.idx", dir);
    write_idx(path, 10);
    simclr_dataset *ds;
    CHECK_OK(simclr_dataset_open_idx(r.ctx, path, NULL, &ds));
    int64_t os[2] = {10, 16};
    simclr_tensor *out;
    CHECK_OK(simclr_tensor_create(r.ctx, SIMCLR_F32, 2, os, &out));
    float *o = simclr_tensor_data(out);
    for (int i = 0; i < 160; i++) o[i] = 42.0f;
    stopper s = {0, 3, 0, 0, ""}; /* polls: 0 (start), 3, 6 -> stop */
    plain p = {0};
    CHECK_OK(simclr_context_set_progress_cancel(r.ctx, on_cancel, &s));
    CHECK_OK(simclr_context_set_progress(r.ctx, on_progress, &p));
    CHECK_STATUS(simclr_extract_features(r.enc, ds, NULL, 3, out), SIMCLR_E_CANCELLED);
    assert_non_null(strstr(simclr_last_error(), "at image 6 of 10"));
    assert_int_equal(p.calls, 3); /* the plain callback got every report */
    for (int i = 0; i < 160; i++) assert_true(o[i] == 42.0f);
    s = (stopper){0, 0, 0, 0, ""};
    CHECK_OK(simclr_extract_features(r.enc, ds, NULL, 3, out));
    assert_int_equal(s.polls, 5); /* 0, 3, 6, 9, 10 */
    assert_true(o[0] != 42.0f);
    /* a stop request at the very end changes nothing: the work is done */
    s = (stopper){0, 5, 0, 0, ""};
    CHECK_OK(simclr_extract_features(r.enc, ds, NULL, 3, out));
    simclr_tensor_destroy(out);
    simclr_dataset_destroy(ds);
    rig_free(&r);
}

static void test_knn_and_probe_cancel(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &ctx));
    /* 3000 train rows: the similarity blocks hold 1398 test rows, so 3000
     * test rows take three blocks and give two stopping points */
    enum { NTR = 3000, NTE = 3000, D = 4 };
    int64_t trs[2] = {NTR, D}, tes[2] = {NTE, D};
    simclr_tensor *tr, *te;
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, trs, &tr));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 2, tes, &te));
    test_fill(simclr_tensor_data(tr), NTR * D, 1);
    test_fill(simclr_tensor_data(te), NTE * D, 2);
    static int32_t ytr[NTR], yte[NTE];
    for (int i = 0; i < NTR; i++) ytr[i] = i % 3;
    for (int i = 0; i < NTE; i++) yte[i] = (i / 7) % 3;
    stopper s = {0, 1, 0, 0, ""};
    CHECK_OK(simclr_context_set_progress_cancel(ctx, on_cancel, &s));
    double top1 = -5;
    CHECK_STATUS(simclr_knn_eval(ctx, tr, ytr, te, yte, 3, 5, 0.1, &top1), SIMCLR_E_CANCELLED);
    assert_true(top1 == -5);
    assert_string_equal(s.what, "knn");
    assert_true(s.last_done > 0 && s.last_done < NTE && s.last_total == NTE);
    s = (stopper){0, 0, 0, 0, ""};
    CHECK_OK(simclr_knn_eval_n(ctx, tr, ytr, NTR, te, yte, NTE, 3, 5, 0.1, &top1));
    assert_true(s.polls >= 3 && s.last_done == NTE);

    s = (stopper){0, 4, 0, 0, ""};
    top1 = -5;
    CHECK_STATUS(simclr_linear_probe(ctx, tr, ytr, te, yte, 3, 50, 1e-4, &top1), SIMCLR_E_CANCELLED);
    assert_true(top1 == -5);
    assert_int_equal(s.polls, 4);
    assert_string_equal(s.what, "probe");
    assert_non_null(strstr(simclr_last_error(), "simclr_linear_probe: cancelled by the progress callback at iteration 4 of 50"));
    s = (stopper){0, 0, 0, 0, ""};
    CHECK_OK(simclr_linear_probe_n(ctx, tr, ytr, NTR, te, yte, NTE, 3, 50, 1e-4, &top1));
    assert_int_equal(s.polls, 50);

    /* the validated probe: 2 validation fits and the refit, 10 iterations
     * each, one count over all 30; a stop in a validation fit or in the
     * refit cancels, the report of the last iteration cannot */
    const double grid[] = {1e-4, 1e-2};
    double decay = -7;
    for (int stop_at = 12; stop_at <= 25; stop_at += 13) {
        s = (stopper){0, stop_at, 0, 0, ""};
        top1 = -5;
        CHECK_STATUS(simclr_linear_probe_select(ctx, tr, ytr, NTR, te, yte, NTE, 3, 10, grid, 2, &top1, &decay),
                     SIMCLR_E_CANCELLED);
        assert_true(top1 == -5 && decay == -7);
        assert_int_equal(s.polls, stop_at);
        assert_string_equal(s.what, "probe_select");
        char want[128];
        snprintf(want, sizeof want,
                 "simclr_linear_probe_select: cancelled by the progress callback at iteration %d of 30", stop_at);
        assert_non_null(strstr(simclr_last_error(), want));
    }
    s = (stopper){0, 30, 0, 0, ""};
    CHECK_OK(simclr_linear_probe_select(ctx, tr, ytr, NTR, te, yte, NTE, 3, 10, grid, 2, &top1, &decay));
    assert_true(s.polls == 30 && s.last_done == 30 && s.last_total == 30);
    assert_true(decay == grid[0] || decay == grid[1]);
    simclr_tensor_destroy(tr);
    simclr_tensor_destroy(te);
    simclr_context_destroy(ctx);
}

static void test_log_receives_warnings(void **state)
{
    (void)state;
    rig r;
    rig_make(&r);
    logbook lg = {0};
    CHECK_OK(simclr_context_set_log(r.ctx, on_log, &lg, SIMCLR_LOG_WARN));
    /* a rolled-back step is a warning */
    CHECK_OK(simclr_trainer_step(r.tr, r.img, 1, NULL));
    assert_int_equal(lg.n, 0); /* a good step logs nothing */
    simclr_tensor *w;
    CHECK_OK(simclr_module_param(r.head, 0, NULL, &w, NULL, NULL));
    float keep = ((float *)simclr_tensor_data(w))[0];
    ((float *)simclr_tensor_data(w))[0] = NAN;
    CHECK_STATUS(simclr_trainer_step(r.tr, r.img, 2, NULL), SIMCLR_E_NUMERIC);
    assert_int_equal(lg.warn, 1);
    assert_non_null(strstr(lg.last, "simclr_trainer_step: step 2 rolled back (non-finite number)"));
    ((float *)simclr_tensor_data(w))[0] = keep;

    /* constant features the probe ignores are a warning */
    int64_t s[2] = {20, 3};
    simclr_tensor *f;
    CHECK_OK(simclr_tensor_create(r.ctx, SIMCLR_F32, 2, s, &f));
    float *x = simclr_tensor_data(f);
    int32_t y[20];
    for (int i = 0; i < 20; i++) x[3 * i] = (float)(i % 2), x[3 * i + 1] = 0.5f, x[3 * i + 2] = 0.25f, y[i] = i % 2;
    double top1;
    CHECK_OK(simclr_linear_probe(r.ctx, f, y, f, y, 2, 10, 0, &top1));
    assert_int_equal(lg.warn, 2);
    assert_non_null(strstr(lg.last, "2 of 3 features are constant"));

    /* ignored safetensors extras are info: filtered at WARN, heard at INFO */
    char path[128];
    snprintf(path, sizeof path, "%s/enc.safetensors", dir);
    /* a 2-layer head's file holds layers.0.* (16 -> 16) and layers.2.*; a
     * 1-layer 16 -> 16 head takes layers.0.* and ignores the two others */
    simclr_module *small, *big;
    CHECK_OK(simclr_mlp_head_create(r.ctx, 16, 16, 8, 2, 0, 3, &big));
    CHECK_OK(simclr_module_export_safetensors(big, path));
    int before = lg.n;
    CHECK_OK(simclr_mlp_head_create(r.ctx, 16, 16, 16, 1, 0, 3, &small));
    CHECK_OK(simclr_module_import_safetensors(small, path));
    assert_int_equal(lg.n, before); /* INFO is above the WARN level */
    CHECK_OK(simclr_context_set_log(r.ctx, on_log, &lg, SIMCLR_LOG_INFO));
    CHECK_OK(simclr_module_import_safetensors(small, path));
    assert_int_equal(lg.info, 1);
    assert_non_null(strstr(lg.last, "2 tensors the module does not have were ignored"));
    CHECK_OK(simclr_context_set_log(r.ctx, NULL, NULL, SIMCLR_LOG_DEBUG));
    CHECK_STATUS(simclr_trainer_step(r.tr, NULL, 1, NULL), SIMCLR_E_INVALID); /* no sink: nothing to call */
    simclr_module_destroy(small);
    simclr_module_destroy(big);
    simclr_tensor_destroy(f);
    rig_free(&r);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "cancel");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trainer_step_cancel),
        cmocka_unit_test(test_extract_cancel),
        cmocka_unit_test(test_knn_and_probe_cancel),
        cmocka_unit_test(test_log_receives_warnings),
    };
    return cmocka_run_group_tests_name("cancel_log", tests, setup, teardown);
}
