/* simclr_trainer_save / simclr_trainer_load for a MoCo trainer.
 *
 * Groups as in a SimCLR file ("encoder.", "head.", "optim.", "optim.step",
 * "trainer.steps") plus "key_encoder.<param>", "key_head.<param>", the queue
 * "moco.queue" [K, P] and its position "moco.queue_pos". Settings
 * (momentum, schedule, temperature, splits) are the host's configuration,
 * as the optimizer's learning rate is. The architecture string starts with
 * "moco-trainer", so SimCLR and MoCo files never load into each other. */
#include <stdio.h>
#include <string.h>

#include "../io/ckpt.h"
#include "../model/module.h"
#include "moco.h"

static const char *const kind_names[] = {"sgd", "adamw", "lars"};

static void moco_arch(const simclr_trainer *tr, char *buf, size_t size)
{
    snprintf(buf, size, "moco-trainer v1; encoder: %s; head: %s; optimizer: %s; queue: %lld x %lld",
             tr->encoder->arch, tr->head->arch, kind_names[tr->opt->kind], (long long)tr->moco->queue_size,
             (long long)tr->head->out_dim);
}

static simclr_status add_module(simclr__ckpt *ck, const char *prefix, const simclr_module *m)
{
    for (int i = 0; i < m->n_params; i++)
        SIMCLR__TRY(simclr__ckpt_add_tensor(ck, prefix, m->params[i].name, m->params[i].value));
    return SIMCLR_OK;
}

simclr_status simclr__moco_save(const simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_save (moco)";
    const struct simclr__moco *mc = tr->moco;
    char arch[1024];
    moco_arch(tr, arch, sizeof arch);
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_new(tr->ctx, arch, &ck));
    simclr_status st = add_module(ck, "encoder.", tr->encoder);
    if (st == SIMCLR_OK) st = add_module(ck, "head.", tr->head);
    if (st == SIMCLR_OK) st = add_module(ck, "key_encoder.", mc->key_encoder);
    if (st == SIMCLR_OK) st = add_module(ck, "key_head.", mc->key_head);
    for (int i = 0; i < tr->opt->n_states && st == SIMCLR_OK; i++)
        st = simclr__ckpt_add_tensor(ck, "optim.", tr->opt->states[i].name, tr->opt->states[i].tensor);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_i64(ck, "optim.", "step", tr->opt->step);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_i64(ck, "trainer.", "steps", tr->steps);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_tensor(ck, "moco.", "queue", mc->queue);
    if (st == SIMCLR_OK) st = simclr__ckpt_add_i64(ck, "moco.", "queue_pos", mc->queue_pos);
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

simclr_status simclr__moco_load(simclr_trainer *tr, const char *path)
{
    static const char fn[] = "simclr_trainer_load (moco)";
    struct simclr__moco *mc = tr->moco;
    char arch[1024];
    moco_arch(tr, arch, sizeof arch);
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_load(tr->ctx, fn, path, &ck));
    simclr_status st = SIMCLR_OK;
    if (strcmp(simclr__ckpt_arch(ck), arch) != 0)
        st = simclr__fail(SIMCLR_E_SHAPE, "%s: '%s' holds '%s', this trainer is '%s'", fn, path,
                          simclr__ckpt_arch(ck), arch);
    /* Everything is validated before anything is copied. */
    if (st == SIMCLR_OK) st = expect_module(ck, fn, "encoder.", tr->encoder);
    if (st == SIMCLR_OK) st = expect_module(ck, fn, "head.", tr->head);
    if (st == SIMCLR_OK) st = expect_module(ck, fn, "key_encoder.", mc->key_encoder);
    if (st == SIMCLR_OK) st = expect_module(ck, fn, "key_head.", mc->key_head);
    for (int i = 0; i < tr->opt->n_states && st == SIMCLR_OK; i++)
        st = simclr__ckpt_expect_tensor(ck, fn, "optim.", tr->opt->states[i].name, tr->opt->states[i].tensor);
    if (st == SIMCLR_OK) st = simclr__ckpt_expect_tensor(ck, fn, "moco.", "queue", mc->queue);
    int64_t opt_step = 0, steps = 0, pos = 0;
    if (st == SIMCLR_OK) st = simclr__ckpt_get_i64(ck, fn, "optim.", "step", &opt_step);
    if (st == SIMCLR_OK) st = simclr__ckpt_get_i64(ck, fn, "trainer.", "steps", &steps);
    if (st == SIMCLR_OK) st = simclr__ckpt_get_i64(ck, fn, "moco.", "queue_pos", &pos);
    if (st == SIMCLR_OK && (opt_step < 0 || steps < 0))
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' holds a negative step count", fn, path);
    if (st == SIMCLR_OK && (pos < 0 || pos >= mc->queue_size))
        st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' holds queue position %lld, the queue has %lld rows", fn, path,
                          (long long)pos, (long long)mc->queue_size);
    if (st == SIMCLR_OK) {
        copy_module(ck, "encoder.", tr->encoder);
        copy_module(ck, "head.", tr->head);
        copy_module(ck, "key_encoder.", mc->key_encoder);
        copy_module(ck, "key_head.", mc->key_head);
        for (int i = 0; i < tr->opt->n_states; i++)
            simclr__ckpt_copy_into(simclr__ckpt_find(ck, "optim.", tr->opt->states[i].name), tr->opt->states[i].tensor);
        simclr__ckpt_copy_into(simclr__ckpt_find(ck, "moco.", "queue"), mc->queue);
        tr->opt->step = opt_step;
        tr->steps = steps;
        mc->queue_pos = pos;
    }
    simclr__ckpt_free(ck);
    return st;
}
