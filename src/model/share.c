/* A ResNet that reads another ResNet's parameters and buffers in place:
 * the embedder's private copy of the network structure (its own activation
 * arena, geometry and context) over shared, read-only weights. */
#include <stdio.h>
#include <string.h>

#include "share.h"

simclr_status simclr__resnet_share(simclr_context *ctx, const simclr_module *src, simclr_module **out)
{
    static const char fn[] = "simclr_embedder_create";
    int depth = 0, width = 0, in = 0;
    char stem[16] = "";
    if (strcmp(src->ops->kind, "resnet") != 0 ||
        sscanf(src->arch, "resnet%d width=%d in=%d stem=%15s", &depth, &width, &in, stem) != 4)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the encoder '%s' is not a ResNet from simclr_resnet_create", fn,
                            src->arch);
    simclr_stem s = strcmp(stem, "imagenet") == 0 ? SIMCLR_STEM_IMAGENET : SIMCLR_STEM_CIFAR;
    simclr_module *m;
    SIMCLR__TRY(simclr_resnet_create(ctx, depth, width, in, s, 0, &m));
    if (m->n_params != src->n_params) {
        simclr_module_destroy(m);
        return simclr__fail(SIMCLR_E_INTERNAL, "%s: the rebuilt '%s' has %d tensors, the encoder %d", fn, src->arch,
                            m->n_params, src->n_params);
    }
    for (int i = 0; i < m->n_params; i++) {
        simclr__param *p = &m->params[i];
        const simclr__param *q = &src->params[i];
        if (strcmp(p->name, q->name) != 0 || p->value->numel != q->value->numel) {
            simclr_module_destroy(m);
            return simclr__fail(SIMCLR_E_INTERNAL, "%s: tensor %d is '%s' in the rebuilt network, '%s' in the encoder",
                                fn, i, p->name, q->name);
        }
    }
    /* Only now swap: the shadow frees its own copies and borrows the encoder's. */
    for (int i = 0; i < m->n_params; i++) {
        simclr__param *p = &m->params[i];
        if (p->value->owned) simclr__free(m->ctx, p->value->data);
        p->value->data = src->params[i].value->data;
        p->value->owned = 0;
        if (p->grad) { /* never used by an EVAL forward */
            if (p->grad->owned) simclr__free(m->ctx, p->grad->data);
            p->grad->data = NULL;
            p->grad->owned = 0;
        }
    }
    *out = m;
    return SIMCLR_OK;
}
