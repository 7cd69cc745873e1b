/* A ResNet (or ViT) that reads another one's parameters and buffers in place:
 * the embedder's private copy of the network structure (its own activation
 * arena, geometry and context) over shared, read-only weights. */
#include <stdio.h>
#include <string.h>

#include "share.h"

/* A fresh network of src's architecture (read back from its arch string). */
static simclr_status rebuild(simclr_context *ctx, const simclr_module *src, const char *fn, simclr_module **m)
{
    if (strcmp(src->ops->kind, "resnet") == 0) {
        int depth = 0, width = 0, in = 0;
        char stem[16] = "";
        if (sscanf(src->arch, "resnet%d width=%d in=%d stem=%15s", &depth, &width, &in, stem) == 4)
            return simclr_resnet_create(ctx, depth, width, in,
                                        strcmp(stem, "imagenet") == 0 ? SIMCLR_STEM_IMAGENET : SIMCLR_STEM_CIFAR, 0,
                                        m);
    } else if (strcmp(src->ops->kind, "vit") == 0) {
        int image = 0, patch = 0, in = 0, d = 0, depth = 0, heads = 0, mlp = 0;
        char pool[8] = "";
        if (sscanf(src->arch, "vit image=%d patch=%d in=%d d=%d depth=%d heads=%d mlp=%d pool=%7s", &image, &patch,
                   &in, &d, &depth, &heads, &mlp, pool) == 8)
            return simclr_vit_create(ctx, image, patch, in, d, depth, heads, mlp,
                                     strcmp(pool, "mean") == 0 ? SIMCLR_VIT_POOL_MEAN : SIMCLR_VIT_POOL_CLS, 0, m);
    }
    return simclr__fail(SIMCLR_E_INVALID,
                        "%s: the encoder '%s' is neither a ResNet from simclr_resnet_create nor a ViT from "
                        "simclr_vit_create",
                        fn, src->arch);
}

simclr_status simclr__module_share(simclr_context *ctx, const simclr_module *src, simclr_module **out)
{
    static const char fn[] = "simclr_embedder_create";
    simclr_module *m;
    SIMCLR__TRY(rebuild(ctx, src, fn, &m));
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
