/* simclr_module_save / simclr_module_load on the checkpoint container. */
#include <string.h>

#include "../model/module.h"
#include "ckpt.h"

simclr_status simclr_module_save(const simclr_module *m, const char *path)
{
    static const char fn[] = "simclr_module_save";
    SIMCLR__CHECK_ARG(m, fn, "module is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_new(m->ctx, m->arch, &ck));
    simclr_status st = SIMCLR_OK;
    for (int i = 0; i < m->n_params && st == SIMCLR_OK; i++)
        st = simclr__ckpt_add_tensor(ck, NULL, m->params[i].name, m->params[i].value);
    if (st == SIMCLR_OK) st = simclr__ckpt_save(ck, fn, path);
    simclr__ckpt_free(ck);
    return st;
}

simclr_status simclr_module_load(simclr_module *m, const char *path)
{
    static const char fn[] = "simclr_module_load";
    SIMCLR__CHECK_ARG(m, fn, "module is NULL");
    SIMCLR__CHECK_ARG(path, fn, "path is NULL");
    simclr__ckpt *ck;
    SIMCLR__TRY(simclr__ckpt_load(m->ctx, fn, path, &ck));
    simclr_status st = SIMCLR_OK;
    if (strcmp(simclr__ckpt_arch(ck), m->arch) != 0)
        st = simclr__fail(SIMCLR_E_SHAPE, "%s: '%s' holds a '%s', the module is a '%s'", fn, path,
                          simclr__ckpt_arch(ck), m->arch);
    /* Every tensor is checked before any is copied: a failed load changes nothing. */
    for (int i = 0; i < m->n_params && st == SIMCLR_OK; i++)
        st = simclr__ckpt_expect_tensor(ck, fn, NULL, m->params[i].name, m->params[i].value);
    if (st == SIMCLR_OK && simclr__ckpt_count(ck) != m->n_params) {
        /* Names are unique on both sides and all of the module's were found. */
        for (int i = 0; i < simclr__ckpt_count(ck); i++) {
            const char *name = simclr__ckpt_at(ck, i)->name;
            if (!simclr__module_find(m, name)) {
                st = simclr__fail(SIMCLR_E_FORMAT, "%s: '%s' holds tensor '%s' the module does not have", fn, path,
                                  name);
                break;
            }
        }
    }
    if (st == SIMCLR_OK)
        for (int i = 0; i < m->n_params; i++)
            simclr__ckpt_copy_into(simclr__ckpt_find(ck, NULL, m->params[i].name), m->params[i].value);
    simclr__ckpt_free(ck);
    return st;
}
