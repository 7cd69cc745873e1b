/* simclr_trainer_save / simclr_trainer_load on the checkpoint container,
 * one walk for every method.
 *
 * Groups: "<module prefix><param>" for every module the trainer steps
 * ("encoder.", "head.", then the method's, e.g. MoCo's "key_encoder.",
 * "key_head."; parameters and buffers), "optim.<state name>" (momentum /
 * Adam moments), the scalars "optim.step" and "trainer.steps", then the
 * method's section (MoCo: "moco.queue", "moco.queue_pos"). The trainer keeps
 * no random state of its own (every draw is keyed by the caller's per-step
 * seed), so these are all a resumed run needs to continue bit-identically.
 * The architecture string names the method, both modules, the optimizer
 * kind and the method's shape ("simclr-trainer v1; ..." or
 * "moco-trainer v1; ...; queue: K x P"): a checkpoint of anything else,
 * another method's included, is refused before a byte is copied. */
#include <stdio.h>
#include <string.h>

#include "../io/ckpt.h"
#include "../model/module.h"
#include "distributed.h"

static const char *const kind_names[] = {"sgd", "adamw", "lars"};

static void trainer_arch(const simclr_trainer *tr, char *buf, size_t size)
{
    char tail[512] = "";
    if (tr->method->arch) tr->method->arch(tr, tr->method_state, tail, sizeof tail);
    snprintf(buf, size, "%s-trainer v1; encoder: %s; head: %s; optimizer: %s%s", tr->method->name,
             tr->encoder->arch, tr->head->arch, kind_names[tr->opt->kind], tail);
}

/* The method's section. */
typedef struct section {
    int n_tensors, n_counters;
    const char *tensor_names[SIMCLR__METHOD_MAX_ENTRIES], *counter_names[SIMCLR__METHOD_MAX_ENTRIES];
    const char *what[SIMCLR__METHOD_MAX_ENTRIES];
    simclr_tensor *tensors[SIMCLR__METHOD_MAX_ENTRIES];
    int64_t *counters[SIMCLR__METHOD_MAX_ENTRIES], limits[SIMCLR__METHOD_MAX_ENTRIES];
} section;

static section method_section(const simclr_trainer *tr)
{
    section s = {0};
    const simclr__method *m = tr->method;
    if (m->tensors) s.n_tensors = m->tensors(tr->method_state, s.tensor_names, s.tensors);
    if (m->counters) s.n_counters = m->counters(tr->method_state, s.counter_names, s.counters, s.limits, s.what);
    return s;
}

static simclr_status save_file(const simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_save";
    char arch[1024];
    trainer_arch(tr, arch, sizeof arch);
    const section sec = method_section(tr);
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_new(tr->ctx, arch, &ck));
    simclr_status st = SIMCLR_OK;
    for (int k = 0; k < tr->n_mods; k++) {
        const simclr_module *m = tr->mods[k].m;
        for (int i = 0; i < m->n_params && st == SIMCLR_OK; i++)
            st = simclr__ckpt_add_tensor(ck, tr->mods[k].prefix, m->params[i].name, m->params[i].value);
    }
    for (int i = 0; i < tr->opt->n_states && st == SIMCLR_OK; i++)
        st = simclr__ckpt_add_tensor(ck, "optim.", tr->opt->states[i].name, tr->opt->states[i].tensor);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_i64(ck, "optim.", "step", tr->opt->step);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_i64(ck, "trainer.", "steps", tr->steps);
    for (int i = 0; i < sec.n_tensors && st == SIMCLR_OK; i++)
        st = simclr__ckpt_add_tensor(ck, tr->method->section, sec.tensor_names[i], sec.tensors[i]);
    for (int i = 0; i < sec.n_counters && st == SIMCLR_OK; i++)
        st = simclr__ckpt_add_i64(ck, tr->method->section, sec.counter_names[i], *sec.counters[i]);
    if (st == SIMCLR_OK) st = simclr__ckpt_save(ck, fn, path);
    simclr__ckpt_free(ck);
    return st;
}

simclr_status simclr_trainer_save(const simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_save";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    /* With a communicator rank 0 writes and every rank gets its status. */
    if (simclr__trainer_ext_ranks(tr) > 1) return simclr__trainer_save_once(tr, path, save_file);
    return save_file(tr, path);
}

/* Everything in the file is checked against the trainer; counters read into
 * values (optim.step, trainer.steps, then the method's). */
static simclr_status check(const simclr_trainer *tr, const simclr__ckpt *ck, const section *sec, const char *fn,
                           const char *path, int64_t *values)
{
    char arch[1024];
    trainer_arch(tr, arch, sizeof arch);
    if (strcmp(simclr__ckpt_arch(ck), arch) != 0)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: '%s' holds '%s', this trainer is '%s'", fn, path,
                            simclr__ckpt_arch(ck), arch);
    for (int k = 0; k < tr->n_mods; k++) {
        const simclr_module *m = tr->mods[k].m;
        for (int i = 0; i < m->n_params; i++)
            SIMCLR__TRY(simclr__ckpt_expect_tensor(ck, fn, tr->mods[k].prefix, m->params[i].name, m->params[i].value));
    }
    for (int i = 0; i < tr->opt->n_states; i++)
        SIMCLR__TRY(simclr__ckpt_expect_tensor(ck, fn, "optim.", tr->opt->states[i].name, tr->opt->states[i].tensor));
    for (int i = 0; i < sec->n_tensors; i++)
        SIMCLR__TRY(simclr__ckpt_expect_tensor(ck, fn, tr->method->section, sec->tensor_names[i], sec->tensors[i]));
    SIMCLR__TRY(simclr__ckpt_get_i64(ck, fn, "optim.", "step", &values[0]));
    SIMCLR__TRY(simclr__ckpt_get_i64(ck, fn, "trainer.", "steps", &values[1]));
    for (int i = 0; i < sec->n_counters; i++)
        SIMCLR__TRY(simclr__ckpt_get_i64(ck, fn, tr->method->section, sec->counter_names[i], &values[2 + i]));
    if (values[0] < 0 || values[1] < 0)
        return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' holds a negative step count", fn, path);
    for (int i = 0; i < sec->n_counters; i++)
        if (values[2 + i] < 0 || values[2 + i] >= sec->limits[i])
            return simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' holds %s %lld, outside 0..%lld", fn, path, sec->what[i],
                                (long long)values[2 + i], (long long)sec->limits[i] - 1);
    return SIMCLR_OK;
}

simclr_status simclr_trainer_load(simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_load";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    const section sec = method_section(tr);
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_load(tr->ctx, fn, path, &ck));
    int64_t values[2 + SIMCLR__METHOD_MAX_ENTRIES];
    /* Everything is validated before anything is copied. */
    simclr_status st = check(tr, ck, &sec, fn, path, values);
    if (st == SIMCLR_OK) {
        for (int k = 0; k < tr->n_mods; k++) {
            simclr_module *m = tr->mods[k].m;
            for (int i = 0; i < m->n_params; i++)
                simclr__ckpt_copy_into(simclr__ckpt_find(ck, tr->mods[k].prefix, m->params[i].name),
                                       m->params[i].value);
        }
        for (int i = 0; i < tr->opt->n_states; i++)
            simclr__ckpt_copy_into(simclr__ckpt_find(ck, "optim.", tr->opt->states[i].name), tr->opt->states[i].tensor);
        for (int i = 0; i < sec.n_tensors; i++)
            simclr__ckpt_copy_into(simclr__ckpt_find(ck, tr->method->section, sec.tensor_names[i]), sec.tensors[i]);
        tr->opt->step = values[0];
        tr->steps = values[1];
        for (int i = 0; i < sec.n_counters; i++) *sec.counters[i] = values[2 + i];
    }
    simclr__ckpt_free(ck);
    return st;
}
