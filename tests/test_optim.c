/* Optimizers: SGD (momentum, nesterov), AdamW and LARS against update rules
 * written here in double from their definitions (torch.optim for SGD/AdamW,
 * the official SimCLR tf2/lars_optimizer.py for LARS), the schedule, keys,
 * state enumeration, the all-or-nothing step, and allocation failures. */
#include "test_util.h"

#include "model/module.h"
#include "optim/optimizer.h"

static const simclr__module_ops dummy_ops = {"dummy", NULL, NULL, NULL};

#define NP 4 /* trained tensors of the dummy module */
static const char *const names[NP] = {"fc.weight", "fc.bias", "bn.weight", "proj.weight"};
static const int flags_of[NP] = {0, SIMCLR_PARAM_NO_DECAY, SIMCLR_PARAM_NO_DECAY, 0};
static const int64_t sizes[NP] = {12, 3, 4, 6};

/* A module like a tiny head: decayed weights, a bias and a BN weight
 * (NO_DECAY), a buffer (never trained). fc.bias starts at 0 so LARS meets
 * ||w|| = 0. */
static simclr_module *make_module(simclr_context *ctx, uint64_t seed)
{
    simclr_module *m;
    CHECK_OK(simclr__module_new(ctx, &dummy_ops, "dummy", &m));
    simclr_tensor *t;
    int64_t rm = 4;
    CHECK_OK(simclr__module_new_param(m, "bn.running_mean", 1, &rm, SIMCLR_PARAM_BUFFER, &t));
    for (int i = 0; i < NP; i++) {
        CHECK_OK(simclr__module_new_param(m, names[i], 1, &sizes[i], flags_of[i], &t));
        if (i != 1) test_fill(simclr__f32(t), sizes[i], seed + (uint64_t)i);
    }
    simclr__module_finalize(m);
    return m;
}

static simclr__param *param(simclr_module *m, int i) { return simclr__module_find(m, names[i]); }

typedef struct {
    simclr_opt_kind kind;
    double lr, mu, wd, b1, b2, eps, eta;
    int nesterov, exclude;
} cfg;

/* One step of the definition for one tensor, in double. s0/s1: state. */
static void ref_update(const cfg *c, double lr, int64_t t_adam, int no_decay, int64_t n, double *w,
                       const double *g, double *s0, double *s1)
{
    int excluded = c->exclude && no_decay;
    double wd = excluded ? 0 : c->wd;
    if (c->kind == SIMCLR_OPT_SGD) {
        for (int64_t i = 0; i < n; i++) {
            double d = g[i] + wd * w[i];
            s0[i] = c->mu * s0[i] + d;
            w[i] -= lr * (c->nesterov ? d + c->mu * s0[i] : s0[i]);
        }
    } else if (c->kind == SIMCLR_OPT_ADAMW) {
        double bc1 = 1 - pow(c->b1, (double)t_adam), bc2 = 1 - pow(c->b2, (double)t_adam);
        for (int64_t i = 0; i < n; i++) {
            w[i] *= 1 - lr * wd;
            s0[i] = c->b1 * s0[i] + (1 - c->b1) * g[i];
            s1[i] = c->b2 * s1[i] + (1 - c->b2) * g[i] * g[i];
            w[i] -= lr / bc1 * s0[i] / (sqrt(s1[i] / bc2) + c->eps);
        }
    } else {
        double *d = malloc(sizeof(double) * (size_t)n), wn = 0, gn = 0;
        for (int64_t i = 0; i < n; i++) {
            d[i] = g[i] + (wd ? wd * w[i] : 0);
            wn += w[i] * w[i];
            gn += d[i] * d[i];
        }
        double ratio = (!excluded && wn > 0 && gn > 0) ? c->eta * sqrt(wn) / sqrt(gn) : 1.0;
        for (int64_t i = 0; i < n; i++) {
            s0[i] = c->mu * s0[i] + lr * ratio * d[i];
            w[i] -= c->nesterov ? c->mu * s0[i] + lr * ratio * d[i] : s0[i];
        }
        free(d);
    }
}

static void apply_cfg(simclr_optimizer *opt, const cfg *c)
{
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_LR, c->lr));
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_WEIGHT_DECAY, c->wd));
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_EXCLUDE_NO_DECAY, c->exclude));
    if (c->kind != SIMCLR_OPT_ADAMW) {
        CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_MOMENTUM, c->mu));
        CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_NESTEROV, c->nesterov));
    } else {
        CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_BETA1, c->b1));
        CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_BETA2, c->b2));
        CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_EPS, c->eps));
    }
    if (c->kind == SIMCLR_OPT_LARS) CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_LARS_ETA, c->eta));
    /* A schedule too, so the rate changes between steps. */
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_WARMUP_STEPS, 2));
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, 7));
}

/* Six steps with fresh gradients, library against the definition after each. */
static void run_against_definition(const cfg *c)
{
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &ctx));
    simclr_module *m = make_module(ctx, 100);
    simclr_optimizer *opt;
    CHECK_OK(simclr_optimizer_create(ctx, c->kind, &m, 1, &opt));
    apply_cfg(opt, c);
    double w[NP][16], s0[NP][16] = {{0}}, s1[NP][16] = {{0}}, g[NP][16];
    for (int p = 0; p < NP; p++)
        for (int64_t i = 0; i < sizes[p]; i++) w[p][i] = simclr__f32(param(m, p)->value)[i];
    int per = c->kind == SIMCLR_OPT_ADAMW ? 2 : 1;
    for (int step = 0; step < 6; step++) {
        double lr;
        CHECK_OK(simclr_optimizer_lr(opt, &lr));
        double want_lr = step < 2 ? c->lr * step / 2 : c->lr * 0.5 * (1 + cos(3.141592653589793 * (step - 2) / 5.0));
        assert_true(fabs(lr - want_lr) <= 1e-12);
        for (int p = 0; p < NP; p++) {
            float *gf = simclr__f32(param(m, p)->grad);
            test_fill(gf, sizes[p], 1000 + (uint64_t)(step * NP + p));
            if (step == 3 && p == 2) memset(gf, 0, sizeof(float) * (size_t)sizes[p]); /* ||g|| = 0 */
            for (int64_t i = 0; i < sizes[p]; i++) g[p][i] = gf[i];
            ref_update(c, lr, step + 1, flags_of[p] & SIMCLR_PARAM_NO_DECAY, sizes[p], w[p], g[p], s0[p], s1[p]);
        }
        CHECK_OK(simclr_optimizer_step(opt));
        double st;
        CHECK_OK(simclr_optimizer_get(opt, SIMCLR_OPT_STEP, &st));
        assert_true(st == step + 1);
        for (int p = 0; p < NP; p++) {
            const float *wf = simclr__f32(param(m, p)->value);
            /* float32 arithmetic over a few steps: ~1e-7 relative per op;
             * normalized by the tensor's scale, 1e-5 leaves a wide margin and
             * still catches any formula slip (those are >= 1e-3). */
            double scale = 1e-3, err = 0;
            for (int64_t i = 0; i < sizes[p]; i++) {
                scale = fmax(scale, fabs(w[p][i]));
                err = fmax(err, fabs(wf[i] - w[p][i]));
            }
            if (err > 1e-5 * scale)
                fail_msg("kind %d nesterov %d exclude %d step %d %s: err %g scale %g", c->kind, c->nesterov,
                         c->exclude, step, names[p], err, scale);
            for (int k = 0; k < per; k++) {
                simclr_tensor *state;
                CHECK_OK(simclr_optimizer_state(opt, p * per + k, NULL, &state));
                const double *want = k == 0 ? s0[p] : s1[p];
                double sc = 1e-6, e = 0;
                for (int64_t i = 0; i < sizes[p]; i++) {
                    sc = fmax(sc, fabs(want[i]));
                    e = fmax(e, fabs(simclr__f32(state)[i] - want[i]));
                }
                if (e > 1e-5 * sc) fail_msg("state %d of %s: err %g scale %g", k, names[p], e, sc);
            }
        }
    }
    simclr_optimizer_destroy(opt);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

static void test_sgd(void **state)
{
    (void)state;
    for (int nesterov = 0; nesterov < 2; nesterov++)
        for (int exclude = 0; exclude < 2; exclude++) {
            cfg c = {SIMCLR_OPT_SGD, 0.5, 0.9, 0.05, 0, 0, 0, 0, nesterov, exclude};
            run_against_definition(&c);
        }
    cfg plain = {SIMCLR_OPT_SGD, 0.3, 0.0, 0.0, 0, 0, 0, 0, 0, 1};
    run_against_definition(&plain);
}

static void test_adamw(void **state)
{
    (void)state;
    for (int exclude = 0; exclude < 2; exclude++) {
        cfg c = {SIMCLR_OPT_ADAMW, 0.01, 0, 0.1, 0.8, 0.95, 1e-6, 0, 0, exclude};
        run_against_definition(&c);
    }
}

static void test_lars(void **state)
{
    (void)state;
    for (int nesterov = 0; nesterov < 2; nesterov++)
        for (int exclude = 0; exclude < 2; exclude++) {
            cfg c = {SIMCLR_OPT_LARS, 2.0, 0.9, 1e-2, 0, 0, 0, 0.02, nesterov, exclude};
            run_against_definition(&c);
        }
    cfg nodecay = {SIMCLR_OPT_LARS, 1.0, 0.9, 0.0, 0, 0, 0, 0.001, 0, 1};
    run_against_definition(&nodecay);
}

static void test_schedule(void **state)
{
    (void)state;
    const double base = 0.3;
    /* Official form: step / warmup (0 at step 0), then cosine over the rest. */
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 0), 0.0, 0);
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 5), 0.15, 1e-15);
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 9), 0.27, 1e-15);
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 10), 0.3, 1e-15);   /* warmup end: peak */
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 60), 0.15, 1e-15);  /* half way: half */
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 35), 0.3 * 0.5 * (1 + cos(3.141592653589793 / 4)), 1e-15);
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 109), 0.3 * 0.5 * (1 + cos(3.141592653589793 * 99 / 100)), 1e-15);
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 110), 0.0, 0);      /* the end */
    assert_float_equal(simclr__schedule_lr(base, 10, 110, 500), 0.0, 0);
    assert_float_equal(simclr__schedule_lr(base, 0, 0, 0), 0.3, 0);            /* constant */
    assert_float_equal(simclr__schedule_lr(base, 0, 0, 1000000), 0.3, 0);
    assert_float_equal(simclr__schedule_lr(base, 4, 0, 2), 0.15, 1e-15);       /* warmup, then constant */
    assert_float_equal(simclr__schedule_lr(base, 4, 0, 40), 0.3, 0);
    assert_float_equal(simclr__schedule_lr(base, 0, 100, 0), 0.3, 0);          /* cosine from the start */
    assert_float_equal(simclr__schedule_lr(base, 20, 10, 5), 0.075, 1e-15);    /* warmup longer than total */
    assert_float_equal(simclr__schedule_lr(base, 20, 10, 10), 0.0, 0);

    assert_float_equal(simclr_lr_linear_scaling(0.3, 4096), 4.8, 1e-12);
    assert_float_equal(simclr_lr_linear_scaling(0.3, 256), 0.3, 1e-15);
    assert_float_equal(simclr_lr_sqrt_scaling(0.075, 4096), 4.8, 1e-12);
    assert_float_equal(simclr_lr_sqrt_scaling(0.075, 256), 1.2, 1e-12);
    assert_float_equal(simclr_lr_linear_scaling(0.3, 0), 0.0, 0);
    assert_float_equal(simclr_lr_sqrt_scaling(0.3, -5), 0.0, 0);
}

/* The optimizer's rate follows STEP, which resuming may set. */
static void test_schedule_through_optimizer(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    simclr_module *m = make_module(ctx, 1);
    simclr_optimizer *opt;
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, &m, 1, &opt));
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_LR, 1.2));
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_WARMUP_STEPS, 4));
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_TOTAL_STEPS, 20));
    double lr;
    CHECK_OK(simclr_optimizer_lr(opt, &lr));
    assert_float_equal(lr, 0.0, 0);
    CHECK_OK(simclr_optimizer_step(opt));
    CHECK_OK(simclr_optimizer_lr(opt, &lr));
    assert_float_equal(lr, 0.3, 1e-15);
    assert_float_equal(simclr__optimizer_last_lr(opt), 0.0, 0);
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_STEP, 12));
    CHECK_OK(simclr_optimizer_lr(opt, &lr));
    assert_float_equal(lr, 0.6, 1e-12);
    CHECK_OK(simclr_optimizer_set(opt, SIMCLR_OPT_STEP, 20));
    CHECK_OK(simclr_optimizer_lr(opt, &lr));
    assert_float_equal(lr, 0.0, 0);
    CHECK_STATUS(simclr_optimizer_lr(NULL, &lr), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_lr(opt, NULL), SIMCLR_E_INVALID);
    simclr_optimizer_destroy(opt);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

static void test_keys(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    simclr_module *m = make_module(ctx, 1);
    simclr_optimizer *sgd, *adam, *lars;
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, &m, 1, &sgd));
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_ADAMW, &m, 1, &adam));
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, &m, 1, &lars));
    double v;
    /* Documented defaults. */
    CHECK_OK(simclr_optimizer_get(sgd, SIMCLR_OPT_LR, &v)); assert_float_equal(v, 0.1, 0);
    CHECK_OK(simclr_optimizer_get(adam, SIMCLR_OPT_LR, &v)); assert_float_equal(v, 1e-3, 0);
    CHECK_OK(simclr_optimizer_get(lars, SIMCLR_OPT_MOMENTUM, &v)); assert_float_equal(v, 0.9, 0);
    CHECK_OK(simclr_optimizer_get(lars, SIMCLR_OPT_LARS_ETA, &v)); assert_float_equal(v, 0.001, 0);
    CHECK_OK(simclr_optimizer_get(lars, SIMCLR_OPT_WEIGHT_DECAY, &v)); assert_float_equal(v, 1e-6, 0);
    CHECK_OK(simclr_optimizer_get(adam, SIMCLR_OPT_WEIGHT_DECAY, &v)); assert_float_equal(v, 1e-2, 0);
    CHECK_OK(simclr_optimizer_get(adam, SIMCLR_OPT_BETA2, &v)); assert_float_equal(v, 0.999, 0);
    CHECK_OK(simclr_optimizer_get(adam, SIMCLR_OPT_EPS, &v)); assert_float_equal(v, 1e-8, 0);
    CHECK_OK(simclr_optimizer_get(sgd, SIMCLR_OPT_NESTEROV, &v)); assert_float_equal(v, 0, 0);
    CHECK_OK(simclr_optimizer_get(sgd, SIMCLR_OPT_EXCLUDE_NO_DECAY, &v)); assert_float_equal(v, 1, 0);
    CHECK_OK(simclr_optimizer_get(sgd, SIMCLR_OPT_TOTAL_STEPS, &v)); assert_float_equal(v, 0, 0);
    CHECK_OK(simclr_optimizer_get(sgd, SIMCLR_OPT_WARMUP_STEPS, &v)); assert_float_equal(v, 0, 0);
    CHECK_OK(simclr_optimizer_get(sgd, SIMCLR_OPT_STEP, &v)); assert_float_equal(v, 0, 0);

    /* Unknown keys and keys of another kind. */
    CHECK_STATUS(simclr_optimizer_set(sgd, (simclr_opt_param)999, 1), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "unknown key 999"));
    CHECK_STATUS(simclr_optimizer_get(sgd, (simclr_opt_param)105, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_set(sgd, SIMCLR_OPT_BETA1, 0.5), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "SGD"));
    CHECK_STATUS(simclr_optimizer_set(sgd, SIMCLR_OPT_LARS_ETA, 0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_set(adam, SIMCLR_OPT_MOMENTUM, 0.5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_get(adam, SIMCLR_OPT_NESTEROV, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_set(lars, SIMCLR_OPT_EPS, 0.5), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "LARS"));
    CHECK_STATUS(simclr_optimizer_set(NULL, SIMCLR_OPT_LR, 1), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_get(NULL, SIMCLR_OPT_LR, &v), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_get(sgd, SIMCLR_OPT_LR, NULL), SIMCLR_E_INVALID);

    /* Ranges; a failing set changes nothing. */
    struct { simclr_optimizer *o; simclr_opt_param k; double bad; } cases[] = {
        {sgd, SIMCLR_OPT_LR, -0.1}, {sgd, SIMCLR_OPT_LR, NAN}, {sgd, SIMCLR_OPT_LR, INFINITY},
        {sgd, SIMCLR_OPT_MOMENTUM, 1.0}, {sgd, SIMCLR_OPT_MOMENTUM, -0.1}, {sgd, SIMCLR_OPT_NESTEROV, 0.5},
        {sgd, SIMCLR_OPT_NESTEROV, 2}, {sgd, SIMCLR_OPT_WEIGHT_DECAY, -1e-6},
        {sgd, SIMCLR_OPT_EXCLUDE_NO_DECAY, -1}, {adam, SIMCLR_OPT_BETA1, 1.0}, {adam, SIMCLR_OPT_BETA2, -0.5},
        {adam, SIMCLR_OPT_EPS, 0.0}, {lars, SIMCLR_OPT_LARS_ETA, 0.0}, {lars, SIMCLR_OPT_WARMUP_STEPS, -1},
        {lars, SIMCLR_OPT_WARMUP_STEPS, 2.5}, {lars, SIMCLR_OPT_TOTAL_STEPS, NAN}, {lars, SIMCLR_OPT_STEP, 1e300},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double before, after;
        CHECK_OK(simclr_optimizer_get(cases[i].o, cases[i].k, &before));
        CHECK_STATUS(simclr_optimizer_set(cases[i].o, cases[i].k, cases[i].bad), SIMCLR_E_INVALID);
        CHECK_OK(simclr_optimizer_get(cases[i].o, cases[i].k, &after));
        assert_true(before == after);
    }
    CHECK_OK(simclr_optimizer_set(lars, SIMCLR_OPT_NESTEROV, 1));
    CHECK_OK(simclr_optimizer_set(lars, SIMCLR_OPT_STEP, 123456));
    CHECK_OK(simclr_optimizer_get(lars, SIMCLR_OPT_STEP, &v)); assert_float_equal(v, 123456, 0);
    simclr_optimizer_destroy(sgd);
    simclr_optimizer_destroy(adam);
    simclr_optimizer_destroy(lars);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

static void test_state_names(void **state)
{
    (void)state;
    simclr_context *ctx, *other;
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &ctx));
    CHECK_OK(simclr_context_create("cpu", 1, NULL, &other));
    simclr_module *mods[2] = {make_module(ctx, 1), make_module(ctx, 2)};
    simclr_optimizer *opt;
    const char *name;
    simclr_tensor *t;

    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, mods, 1, &opt));
    assert_int_equal(simclr_optimizer_state_count(opt), NP); /* the buffer has no state */
    CHECK_OK(simclr_optimizer_state(opt, 0, &name, &t));
    assert_string_equal(name, "momentum.fc.weight");
    CHECK_OK(simclr_optimizer_state(opt, 2, &name, NULL));
    assert_string_equal(name, "momentum.bn.weight");
    for (int i = 0; i < NP; i++) {
        CHECK_OK(simclr_optimizer_state(opt, i, NULL, &t));
        assert_int_equal(simclr_tensor_numel(t), sizes[i]);
        for (int64_t k = 0; k < sizes[i]; k++) assert_true(simclr__f32(t)[k] == 0.0f); /* zeroed at creation */
    }
    CHECK_STATUS(simclr_optimizer_state(opt, NP, &name, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_state(opt, -1, &name, &t), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_state(NULL, 0, &name, &t), SIMCLR_E_INVALID);
    assert_int_equal(simclr_optimizer_state_count(NULL), 0);
    simclr_optimizer_destroy(opt);

    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_ADAMW, mods, 2, &opt));
    assert_int_equal(simclr_optimizer_state_count(opt), 4 * NP);
    CHECK_OK(simclr_optimizer_state(opt, 0, &name, NULL));
    assert_string_equal(name, "0.exp_avg.fc.weight");
    CHECK_OK(simclr_optimizer_state(opt, 1, &name, NULL));
    assert_string_equal(name, "0.exp_avg_sq.fc.weight");
    CHECK_OK(simclr_optimizer_state(opt, 2 * NP + 3, &name, NULL));
    assert_string_equal(name, "1.exp_avg_sq.fc.bias");
    simclr_optimizer_destroy(opt);

    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, mods, 2, &opt));
    CHECK_OK(simclr_optimizer_state(opt, NP, &name, NULL));
    assert_string_equal(name, "1.momentum.fc.weight");
    simclr_optimizer_destroy(opt);

    /* Creation errors. */
    opt = (simclr_optimizer *)0x1;
    simclr_module *dup[2] = {mods[0], mods[0]}, *withnull[2] = {mods[0], NULL};
    simclr_module *many[17];
    for (int i = 0; i < 17; i++) many[i] = mods[0];
    CHECK_STATUS(simclr_optimizer_create(NULL, SIMCLR_OPT_SGD, mods, 1, &opt), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, NULL, 1, &opt), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, mods, 1, NULL), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_create(ctx, (simclr_opt_kind)3, mods, 1, &opt), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, mods, 0, &opt), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, many, 17, &opt), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, dup, 2, &opt), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "same module"));
    CHECK_STATUS(simclr_optimizer_create(ctx, SIMCLR_OPT_SGD, withnull, 2, &opt), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_optimizer_create(other, SIMCLR_OPT_SGD, mods, 1, &opt), SIMCLR_E_INVALID);
    assert_ptr_equal(opt, (simclr_optimizer *)0x1);
    simclr_optimizer_destroy(NULL);
    CHECK_STATUS(simclr_optimizer_step(NULL), SIMCLR_E_INVALID);

    simclr_module_destroy(mods[0]);
    simclr_module_destroy(mods[1]);
    simclr_context_destroy(ctx);
    simclr_context_destroy(other);
}

/* A non-finite gradient anywhere: SIMCLR_E_NUMERIC, and parameters, state
 * and STEP are bit-identical to before. */
static void test_non_finite_changes_nothing(void **state)
{
    (void)state;
    simclr_context *ctx;
    CHECK_OK(simclr_context_create("cpu", 2, NULL, &ctx));
    simclr_module *m = make_module(ctx, 5);
    simclr_optimizer *opt;
    CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_ADAMW, &m, 1, &opt));
    for (int p = 0; p < NP; p++) test_fill(simclr__f32(param(m, p)->grad), sizes[p], 300 + (uint64_t)p);
    CHECK_OK(simclr_optimizer_step(opt));
    double norm_want = 0;
    for (int p = 0; p < NP; p++)
        for (int64_t i = 0; i < sizes[p]; i++) norm_want += pow(simclr__f32(param(m, p)->grad)[i], 2);
    assert_float_equal(simclr__optimizer_last_grad_norm(opt), sqrt(norm_want), 1e-9 * sqrt(norm_want));

    float wsave[NP][16], ssave[2 * NP][16];
    for (int p = 0; p < NP; p++) memcpy(wsave[p], simclr__f32(param(m, p)->value), sizeof(float) * (size_t)sizes[p]);
    for (int s = 0; s < 2 * NP; s++) {
        simclr_tensor *t;
        CHECK_OK(simclr_optimizer_state(opt, s, NULL, &t));
        memcpy(ssave[s], simclr__f32(t), simclr_tensor_bytes(t));
    }
    float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        simclr__f32(param(m, 3)->grad)[5] = bad[b]; /* the last tensor: earlier ones pass the check */
        CHECK_STATUS(simclr_optimizer_step(opt), SIMCLR_E_NUMERIC);
        assert_non_null(strstr(simclr_last_error(), "proj.weight"));
        double norm;
        assert_int_equal(simclr__optimizer_grad_norm(opt, &norm), SIMCLR_E_NUMERIC);
        for (int p = 0; p < NP; p++)
            assert_memory_equal(wsave[p], simclr__f32(param(m, p)->value), sizeof(float) * (size_t)sizes[p]);
        for (int s = 0; s < 2 * NP; s++) {
            simclr_tensor *t;
            CHECK_OK(simclr_optimizer_state(opt, s, NULL, &t));
            assert_memory_equal(ssave[s], simclr__f32(t), simclr_tensor_bytes(t));
        }
        double st;
        CHECK_OK(simclr_optimizer_get(opt, SIMCLR_OPT_STEP, &st));
        assert_true(st == 1);
    }
    /* Huge but finite gradients are not mistaken for overflow. */
    simclr__f32(param(m, 3)->grad)[5] = 3e38f;
    double norm;
    CHECK_OK(simclr__optimizer_grad_norm(opt, &norm));
    assert_true(norm >= 3e38);
    simclr_optimizer_destroy(opt);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
}

/* Thread count must not change results (static chunks, partial sums added
 * in worker order): a tensor large enough to be split across workers. */
static void test_threads_bit_identical(void **state)
{
    (void)state;
    enum { BIG = 100003 };
    float *out[2] = {malloc(sizeof(float) * BIG), malloc(sizeof(float) * BIG)};
    double norms[2];
    for (int run = 0; run < 2; run++) {
        simclr_context *ctx;
        CHECK_OK(simclr_context_create("cpu", run ? 3 : 1, NULL, &ctx));
        simclr_module *m;
        simclr_tensor *w;
        int64_t n = BIG;
        CHECK_OK(simclr__module_new(ctx, &dummy_ops, "dummy", &m));
        CHECK_OK(simclr__module_new_param(m, "big.weight", 1, &n, 0, &w));
        test_fill(simclr__f32(w), BIG, 7);
        simclr_optimizer *opt;
        CHECK_OK(simclr_optimizer_create(ctx, SIMCLR_OPT_LARS, &m, 1, &opt));
        for (int s = 0; s < 3; s++) {
            test_fill(simclr__f32(m->params[0].grad), BIG, 50 + (uint64_t)s);
            CHECK_OK(simclr_optimizer_step(opt));
        }
        norms[run] = simclr__optimizer_last_grad_norm(opt);
        memcpy(out[run], simclr__f32(w), sizeof(float) * BIG);
        simclr_optimizer_destroy(opt);
        simclr_module_destroy(m);
        simclr_context_destroy(ctx);
    }
    assert_memory_equal(out[0], out[1], sizeof(float) * BIG);
    /* The sum order differs between 1 and 3 workers only in double: ~1e-15. */
    assert_float_equal(norms[0], norms[1], 1e-12 * norms[0]);
    free(out[0]), free(out[1]);
}

static void test_oom_sweep(void **state)
{
    (void)state;
    int succeeded = 0;
    for (long n = 1; n < 200 && !succeeded; n++) {
        test_alloc a = {0};
        simclr_allocator h = test_allocator(&a);
        simclr_context *ctx;
        CHECK_OK(simclr_context_create("cpu", 1, &h, &ctx));
        simclr_module *mods[2] = {make_module(ctx, 1), make_module(ctx, 2)};
        a.fail_at = a.allocs + n;
        simclr_optimizer *opt = (simclr_optimizer *)0x1;
        simclr_status st = simclr_optimizer_create(ctx, SIMCLR_OPT_ADAMW, mods, 2, &opt);
        a.fail_at = 0;
        if (st == SIMCLR_OK) {
            succeeded = 1;
            assert_int_equal(simclr_optimizer_state_count(opt), 4 * NP);
            long before = a.allocs;
            CHECK_OK(simclr_optimizer_step(opt)); /* stepping never allocates */
            assert_int_equal(a.allocs, before);
            simclr_optimizer_destroy(opt);
        } else {
            assert_int_equal(st, SIMCLR_E_NOMEM);
            assert_ptr_equal(opt, (simclr_optimizer *)0x1);
        }
        simclr_module_destroy(mods[0]);
        simclr_module_destroy(mods[1]);
        simclr_context_destroy(ctx);
        assert_int_equal(a.live, 0);
    }
    assert_true(succeeded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_lars),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_schedule_through_optimizer),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_non_finite_changes_nothing),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_oom_sweep),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
