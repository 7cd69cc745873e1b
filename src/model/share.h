/* Shadow modules for concurrent inference (see share.c). */
#ifndef SIMCLR_MODEL_SHARE_H
#define SIMCLR_MODEL_SHARE_H

#include "module.h"

/* Builds on ctx a ResNet or ViT of src's architecture whose parameters and buffers
 * borrow src's memory (never written by an EVAL forward; its gradients are
 * absent: the shadow must only run EVAL forwards). src is only read.
 * SIMCLR_E_INVALID when src is neither; SIMCLR_E_NOMEM. */
simclr_status simclr__module_share(simclr_context *ctx, const simclr_module *src, simclr_module **out);

#endif
