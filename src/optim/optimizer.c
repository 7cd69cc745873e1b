/* The optimizer object: slots over the modules' trained tensors, state
 * tensors allocated (zeroed) at creation so a checkpoint can hold them
 * before the first step, enum-keyed settings validated per kind, and the
 * all-or-nothing step (gradients checked before anything is written). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optimizer.h"

static const char *kind_name(simclr_opt_kind kind)
{
    return kind == SIMCLR_OPT_SGD ? "SGD" : kind == SIMCLR_OPT_ADAMW ? "AdamW" : "LARS";
}

static int n_state_tensors(simclr_opt_kind kind) { return kind == SIMCLR_OPT_ADAMW ? 2 : 1; }

static const char *state_prefix(simclr_opt_kind kind, int which)
{
    if (kind != SIMCLR_OPT_ADAMW) return "momentum";
    return which == 0 ? "exp_avg" : "exp_avg_sq"; /* torch.optim.AdamW's names */
}

void simclr_optimizer_destroy(simclr_optimizer *opt)
{
    if (!opt) return;
    for (int i = 0; i < opt->n_slots; i++) {
        simclr_tensor_destroy(opt->slots[i].state[0]);
        simclr_tensor_destroy(opt->slots[i].state[1]);
    }
    for (int i = 0; i < opt->n_states; i++) simclr__free(opt->ctx, opt->states[i].name);
    simclr__free(opt->ctx, opt->slots);
    simclr__free(opt->ctx, opt->states);
    simclr__free(opt->ctx, opt);
}

static int trained(const simclr__param *p) { return !(p->flags & SIMCLR_PARAM_BUFFER) && p->grad; }

/* Fills slots and state entries; on failure the caller destroys opt, which
 * frees whatever was made (counts advance only with complete entries). */
static simclr_status build(simclr_optimizer *opt, simclr_module *const *modules, int n_modules)
{
    static const char fn[] = "simclr_optimizer_create";
    int total = 0;
    for (int k = 0; k < n_modules; k++)
        for (int i = 0; i < modules[k]->n_params; i++) total += trained(&modules[k]->params[i]);
    int per = n_state_tensors(opt->kind);
    opt->slots = simclr__calloc(opt->ctx, (size_t)total + 1, sizeof *opt->slots);
    if (!opt->slots) return simclr__nomem(fn, ((size_t)total + 1) * sizeof *opt->slots);
    opt->states = simclr__calloc(opt->ctx, (size_t)(total * per) + 1, sizeof *opt->states);
    if (!opt->states) return simclr__nomem(fn, ((size_t)(total * per) + 1) * sizeof *opt->states);
    for (int k = 0; k < n_modules; k++) {
        for (int i = 0; i < modules[k]->n_params; i++) {
            const simclr__param *p = &modules[k]->params[i];
            if (!trained(p)) continue;
            simclr__opt_slot *slot = &opt->slots[opt->n_slots++];
            slot->name = p->name;
            slot->value = p->value;
            slot->grad = p->grad;
            slot->no_decay = (p->flags & SIMCLR_PARAM_NO_DECAY) != 0;
            for (int w = 0; w < per; w++) {
                SIMCLR__TRY(simclr__tensor_f32(opt->ctx, p->value->ndim, p->value->dims, &slot->state[w]));
                char prefix[16] = "";
                if (n_modules > 1) snprintf(prefix, sizeof prefix, "%d.", k);
                const char *sp = state_prefix(opt->kind, w);
                size_t len = strlen(prefix) + strlen(sp) + 1 + strlen(p->name) + 1;
                char *name = simclr__malloc(opt->ctx, len);
                if (!name) return simclr__nomem(fn, len);
                snprintf(name, len, "%s%s.%s", prefix, sp, p->name);
                opt->states[opt->n_states++] = (simclr__opt_state_entry){name, slot->state[w]};
            }
        }
    }
    return SIMCLR_OK;
}

simclr_status simclr_optimizer_create(simclr_context *ctx, simclr_opt_kind kind, simclr_module *const *modules,
                                      int n_modules, simclr_optimizer **out)
{
    static const char fn[] = "simclr_optimizer_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    SIMCLR__CHECK_ARG(modules, fn, "modules is NULL");
    if (kind != SIMCLR_OPT_SGD && kind != SIMCLR_OPT_ADAMW && kind != SIMCLR_OPT_LARS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: unknown optimizer kind %d", fn, (int)kind);
    if (n_modules < 1 || n_modules > SIMCLR__OPT_MAX_MODULES)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_modules %d out of range 1..%d", fn, n_modules,
                            SIMCLR__OPT_MAX_MODULES);
    for (int k = 0; k < n_modules; k++) {
        if (!modules[k]) return simclr__fail(SIMCLR_E_INVALID, "%s: modules[%d] is NULL", fn, k);
        if (modules[k]->ctx != ctx)
            return simclr__fail(SIMCLR_E_INVALID, "%s: modules[%d] belongs to another context", fn, k);
        for (int q = 0; q < k; q++)
            if (modules[q] == modules[k])
                return simclr__fail(SIMCLR_E_INVALID, "%s: modules[%d] and modules[%d] are the same module "
                                    "(its parameters would be updated twice)", fn, q, k);
    }
    simclr_optimizer *opt = simclr__calloc(ctx, 1, sizeof *opt);
    if (!opt) return simclr__nomem(fn, sizeof *opt);
    opt->ctx = ctx;
    opt->kind = kind;
    opt->lr = kind == SIMCLR_OPT_ADAMW ? 1e-3 : 0.1;
    opt->momentum = 0.9;
    opt->weight_decay = kind == SIMCLR_OPT_ADAMW ? 1e-2 : 1e-6;
    opt->exclude_no_decay = 1;
    opt->beta1 = 0.9;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
    opt->eta = 0.001;
    simclr_status st = build(opt, modules, n_modules);
    if (st != SIMCLR_OK) {
        simclr_optimizer_destroy(opt);
        return st;
    }
    *out = opt;
    return SIMCLR_OK;
}

/* Which kinds a key applies to: bit (1 << kind). */
static int key_kinds(simclr_opt_param key)
{
    const int sgd = 1 << SIMCLR_OPT_SGD, adamw = 1 << SIMCLR_OPT_ADAMW, lars = 1 << SIMCLR_OPT_LARS;
    switch (key) {
    case SIMCLR_OPT_LR:
    case SIMCLR_OPT_WEIGHT_DECAY:
    case SIMCLR_OPT_EXCLUDE_NO_DECAY:
    case SIMCLR_OPT_WARMUP_STEPS:
    case SIMCLR_OPT_TOTAL_STEPS:
    case SIMCLR_OPT_STEP: return sgd | adamw | lars;
    case SIMCLR_OPT_MOMENTUM:
    case SIMCLR_OPT_NESTEROV: return sgd | lars;
    case SIMCLR_OPT_BETA1:
    case SIMCLR_OPT_BETA2:
    case SIMCLR_OPT_EPS: return adamw;
    case SIMCLR_OPT_LARS_ETA: return lars;
    }
    return 0;
}

static simclr_status check_key(const simclr_optimizer *opt, simclr_opt_param key, const char *fn)
{
    SIMCLR__CHECK_ARG(opt, fn, "optimizer is NULL");
    int kinds = key_kinds(key);
    if (!kinds) return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    if (!(kinds & (1 << opt->kind)))
        return simclr__fail(SIMCLR_E_INVALID, "%s: key %d does not apply to %s", fn, (int)key, kind_name(opt->kind));
    return SIMCLR_OK;
}

/* Step counts travel as doubles: whole numbers up to 2^53. */
static simclr_status to_count(double v, const char *fn, const char *what, int64_t *out)
{
    if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s %g must be a whole number in [0, 2^53]", fn, what, v);
    *out = (int64_t)v;
    return SIMCLR_OK;
}

static simclr_status in_range(double v, double lo, int lo_open, double hi, int hi_open, const char *fn,
                              const char *what)
{
    int ok = isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok)
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s %g out of range %c%g, %g%c", fn, what, v, lo_open ? '(' : '[',
                            lo, hi, hi_open ? ')' : ']');
    return SIMCLR_OK;
}

static simclr_status to_flag(double v, const char *fn, const char *what, int *out)
{
    if (v != 0.0 && v != 1.0) return simclr__fail(SIMCLR_E_INVALID, "%s: %s %g must be 0 or 1", fn, what, v);
    *out = v == 1.0;
    return SIMCLR_OK;
}

simclr_status simclr_optimizer_set(simclr_optimizer *opt, simclr_opt_param key, double value)
{
    static const char fn[] = "simclr_optimizer_set";
    SIMCLR__TRY(check_key(opt, key, fn));
    switch (key) {
    case SIMCLR_OPT_LR:
        SIMCLR__TRY(in_range(value, 0, 0, 1e6, 0, fn, "learning rate"));
        opt->lr = value;
        break;
    case SIMCLR_OPT_MOMENTUM:
        SIMCLR__TRY(in_range(value, 0, 0, 1, 1, fn, "momentum"));
        opt->momentum = value;
        break;
    case SIMCLR_OPT_NESTEROV: return to_flag(value, fn, "nesterov", &opt->nesterov);
    case SIMCLR_OPT_WEIGHT_DECAY:
        SIMCLR__TRY(in_range(value, 0, 0, 1e6, 0, fn, "weight decay"));
        opt->weight_decay = value;
        break;
    case SIMCLR_OPT_EXCLUDE_NO_DECAY: return to_flag(value, fn, "exclude_no_decay", &opt->exclude_no_decay);
    case SIMCLR_OPT_BETA1:
        SIMCLR__TRY(in_range(value, 0, 0, 1, 1, fn, "beta1"));
        opt->beta1 = value;
        break;
    case SIMCLR_OPT_BETA2:
        SIMCLR__TRY(in_range(value, 0, 0, 1, 1, fn, "beta2"));
        opt->beta2 = value;
        break;
    case SIMCLR_OPT_EPS:
        SIMCLR__TRY(in_range(value, 0, 1, 1, 0, fn, "eps"));
        opt->eps = value;
        break;
    case SIMCLR_OPT_LARS_ETA:
        SIMCLR__TRY(in_range(value, 0, 1, 1e6, 0, fn, "LARS eta"));
        opt->eta = value;
        break;
    case SIMCLR_OPT_WARMUP_STEPS: return to_count(value, fn, "warmup steps", &opt->warmup_steps);
    case SIMCLR_OPT_TOTAL_STEPS: return to_count(value, fn, "total steps", &opt->total_steps);
    case SIMCLR_OPT_STEP: return to_count(value, fn, "step", &opt->step);
    }
    return SIMCLR_OK;
}

simclr_status simclr_optimizer_get(const simclr_optimizer *opt, simclr_opt_param key, double *value)
{
    static const char fn[] = "simclr_optimizer_get";
    SIMCLR__TRY(check_key(opt, key, fn));
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    switch (key) {
    case SIMCLR_OPT_LR: *value = opt->lr; break;
    case SIMCLR_OPT_MOMENTUM: *value = opt->momentum; break;
    case SIMCLR_OPT_NESTEROV: *value = opt->nesterov; break;
    case SIMCLR_OPT_WEIGHT_DECAY: *value = opt->weight_decay; break;
    case SIMCLR_OPT_EXCLUDE_NO_DECAY: *value = opt->exclude_no_decay; break;
    case SIMCLR_OPT_BETA1: *value = opt->beta1; break;
    case SIMCLR_OPT_BETA2: *value = opt->beta2; break;
    case SIMCLR_OPT_EPS: *value = opt->eps; break;
    case SIMCLR_OPT_LARS_ETA: *value = opt->eta; break;
    case SIMCLR_OPT_WARMUP_STEPS: *value = (double)opt->warmup_steps; break;
    case SIMCLR_OPT_TOTAL_STEPS: *value = (double)opt->total_steps; break;
    case SIMCLR_OPT_STEP: *value = (double)opt->step; break;
    }
    return SIMCLR_OK;
}

simclr_status simclr_optimizer_lr(const simclr_optimizer *opt, double *lr)
{
    static const char fn[] = "simclr_optimizer_lr";
    SIMCLR__CHECK_ARG(opt, fn, "optimizer is NULL");
    SIMCLR__CHECK_ARG(lr, fn, "lr is NULL");
    *lr = simclr__schedule_lr(opt->lr, opt->warmup_steps, opt->total_steps, opt->step);
    return SIMCLR_OK;
}

int simclr_optimizer_state_count(const simclr_optimizer *opt) { return opt ? opt->n_states : 0; }

simclr_status simclr_optimizer_state(simclr_optimizer *opt, int index, const char **name, simclr_tensor **value)
{
    static const char fn[] = "simclr_optimizer_state";
    SIMCLR__CHECK_ARG(opt, fn, "optimizer is NULL");
    if (index < 0 || index >= opt->n_states)
        return simclr__fail(SIMCLR_E_INVALID, "%s: index %d out of range 0..%d", fn, index, opt->n_states - 1);
    if (name) *name = opt->states[index].name;
    if (value) *value = opt->states[index].tensor;
    return SIMCLR_OK;
}

double simclr__optimizer_last_grad_norm(const simclr_optimizer *opt) { return opt->last_grad_norm; }
double simclr__optimizer_last_lr(const simclr_optimizer *opt) { return opt->last_lr; }

simclr_status simclr_optimizer_step(simclr_optimizer *opt)
{
    SIMCLR__CHECK_ARG(opt, "simclr_optimizer_step", "optimizer is NULL");
    double norm;
    SIMCLR__TRY(simclr__optimizer_grad_norm(opt, &norm));
    double lr = simclr__schedule_lr(opt->lr, opt->warmup_steps, opt->total_steps, opt->step);
    for (int i = 0; i < opt->n_slots; i++) simclr__opt_update_slot(opt, &opt->slots[i], lr);
    opt->step++;
    opt->last_grad_norm = norm;
    opt->last_lr = lr;
    return SIMCLR_OK;
}
