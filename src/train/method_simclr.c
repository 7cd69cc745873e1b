/* SimCLR as a method of the pipeline: both views trained, NT-Xent over the
 * global batch (the trainer's borrowed simclr_loss), no key path, no state
 * of its own, nothing to do after commit. It combines with everything. */
#include <math.h>

#include "trainer.h"

static const char *refuse(const void *state, unsigned with)
{
    (void)state, (void)with;
    return NULL;
}

static simclr_status loss(simclr_trainer *tr, void *state, simclr__step *s, double *value, double *accuracy)
{
    (void)state;
    float v = 0, a = 0;
    SIMCLR__TRY(simclr_loss_forward(tr->loss, s->z, &v, &a));
    *value = v;
    *accuracy = a;
    if (!isfinite(v)) return SIMCLR_OK; /* the pipeline refuses it; no backward of a NaN */
    return simclr_loss_backward(tr->loss, s->dz);
}

const simclr__method simclr__simclr_method = {
    .version = SIMCLR__METHOD_VERSION,
    .name = "simclr",
    .trained_views = 2,
    .key_views = 0,
    .refuse = refuse,
    .loss = loss,
};
