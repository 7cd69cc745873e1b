/* simclr_trainer_save / simclr_trainer_load on the checkpoint container.
 *
 * Groups: "encoder.<param>", "head.<param>" (parameters and buffers),
 * "optim.<state name>" (momentum / Adam moments), and the scalars
 * "optim.step" and "trainer.steps". The trainer keeps no random state of its
 * own (every draw is keyed by the caller's per-step seed), so these are all a
 * resumed run needs to continue bit-identically. The architecture string
 * names both modules and the optimizer kind; a checkpoint of anything else is
 * refused before a byte is copied. */
#include <stdio.h>
#include <string.h>

#include "../io/ckpt.h"
#include "../model/module.h"
#include "trainer.h"
#include "moco.h"
#include "distributed.h"

static const char *const kind_names[] = {"sgd", "adamw", "lars"};

static void trainer_arch(const simclr_trainer *tr, char *buf, size_t size)
{
    snprintf(buf, size, "simclr-trainer v1; encoder: %s; head: %s; optimizer: %s", tr->encoder->arch,
             tr->head->arch, kind_names[tr->opt->kind]);
}

static simclr_status add_module(simclr__ckpt *ck, const char *prefix, const simclr_module *m)
{
    for (int i = 0; i < m->n_params; i++)
        SIMCLR__TRY(simclr__ckpt_add_tensor(ck, prefix, m->params[i].name, m->params[i].value));
    return SIMCLR_OK;
}

static simclr_status save_file(const simclr_trainer *tr, const char *path);

simclr_status simclr_trainer_save(const simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_save";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    if (tr->moco) return simclr__moco_save(tr, path);
    /* With a communicator rank 0 writes and every rank gets its status. */
    if (simclr__trainer_ext_ranks(tr) > 1) return simclr__trainer_save_once(tr, path, save_file);
    return save_file(tr, path);
}

static simclr_status save_file(const simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_save";
    char arch[1024];
    trainer_arch(tr, arch, sizeof arch);
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_new(tr->ctx, arch, &ck));
    simclr_status st = add_module(ck, "encoder.", tr->encoder);
    if (st == SIMCLR_OK) st = add_module(ck, "head.", tr->head);
    for (int i = 0; i < tr->opt->n_states && st == SIMCLR_OK; i++)
        st = simclr__ckpt_add_tensor(ck, "optim.", tr->opt->states[i].name, tr->opt->states[i].tensor);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_i64(ck, "optim.", "step", tr->opt->step);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_i64(ck, "trainer.", "steps", tr->steps);
    if (st == SIMCLR_OK) st = simclr__ckpt_save(ck, fn, path);
    simclr__ckpt_free(ck);
    return st;
}

static simclr_status expect_module(const simclr__ckpt *ck, const char *fn, const char *prefix, const simclr_module *m)
{
    for (int i = 0; i < m->n_params; i++)
        SIMCLR__TRY(simclr__ckpt_expect_tensor(ck, fn, prefix, m->params[i].name, m->params[i].value));
    return SIMCLR_OK;
}

static void copy_module(const simclr__ckpt *ck, const char *prefix, simclr_module *m)
{
    for (int i = 0; i < m->n_params; i++)
        simclr__ckpt_copy_into(simclr__ckpt_find(ck, prefix, m->params[i].name), m->params[i].value);
}

simclr_status simclr_trainer_load(simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_load";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    if (tr->moco) return simclr__moco_load(tr, path);
    char arch[1024];
    trainer_arch(tr, arch, sizeof arch);
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_load(tr->ctx, fn, path, &ck));
    simclr_status st = SIMCLR_OK;
    if (strcmp(simclr__ckpt_arch(ck), arch) != 0)
        st = simclr__fail(SIMCLR_E_SHAPE, "%s: '%s' holds '%s', this trainer is '%s'", fn, path,
                          simclr__ckpt_arch(ck), arch);
    /* Everything is validated before anything is copied. */
    if (st == SIMCLR_OK) st = expect_module(ck, fn, "encoder.", tr->encoder);
    if (st == SIMCLR_OK) st = expect_module(ck, fn, "head.", tr->head);
    for (int i = 0; i < tr->opt->n_states && st == SIMCLR_OK; i++)
        st = simclr__ckpt_expect_tensor(ck, fn, "optim.", tr->opt->states[i].name, tr->opt->states[i].tensor);
    int64_t opt_step = 0, steps = 0;
    if (st == SIMCLR_OK) st = simclr__ckpt_get_i64(ck, fn, "optim.", "step", &opt_step);
    if (st == SIMCLR_OK) st = simclr__ckpt_get_i64(ck, fn, "trainer.", "steps", &steps);
    if (st == SIMCLR_OK && (opt_step < 0 || steps < 0))
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' holds a negative step count", fn, path);
    if (st == SIMCLR_OK) {
        copy_module(ck, "encoder.", tr->encoder);
        copy_module(ck, "head.", tr->head);
        for (int i = 0; i < tr->opt->n_states; i++)
            simclr__ckpt_copy_into(simclr__ckpt_find(ck, "optim.", tr->opt->states[i].name), tr->opt->states[i].tensor);
        tr->opt->step = opt_step;
        tr->steps = steps;
    }
    simclr__ckpt_free(ck);
    return st;
}
