/* simclr_trainer_step_list: the SimCLR step on images of different sizes,
 * each view cropped from its image's full resolution. */
#include "trainer.h"

#include "../core/image_list.h"
#include "distributed.h"
#include "../model/module.h"

simclr_status simclr_trainer_step_list(simclr_trainer *tr, const simclr_image_list *images, uint64_t seed,
                                       float *loss)
{
    static const char fn[] = "simclr_trainer_step_list";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(images, fn, "images is NULL");
    if (images->count < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: the image list is empty", fn);
    if (tr->moco || simclr__trainer_ext_active(tr))
        return simclr__fail(SIMCLR_E_UNSUPPORTED,
                            "%s: image lists drive the plain SimCLR step only (not MoCo, micro-batches or a "
                            "communicator) yet",
                            fn);
    if (images->channels != tr->encoder->in_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the images have %d channels, the encoder takes %lld", fn,
                            images->channels, (long long)tr->encoder->in_dim);
    return simclr__trainer_step_from(tr, NULL, images, seed, loss);
}
