/* The image list's internals, read by the augmentation, the trainer and the
 * embedder. */
#ifndef SIMCLR_CORE_IMAGE_LIST_H
#define SIMCLR_CORE_IMAGE_LIST_H

#include "context.h"

typedef struct simclr__image {
    const uint8_t *pixels; /* borrowed, [h, w, channels] */
    int64_t h, w;
} simclr__image;

struct simclr_image_list {
    simclr_context *ctx;
    int channels;
    simclr__image *items;
    int64_t count, cap;
};

/* The tallest image's height (0 for an empty list). */
int64_t simclr__image_list_max_height(const simclr_image_list *list);

#endif
