/* Internal access to a data set's pixels for the evaluation layer. */
#ifndef SIMCLR_IO_DATASET_H
#define SIMCLR_IO_DATASET_H

#include "simclr.h"

/* The pixels of image i (0 <= i < count, unchecked), [H, W, C] bytes. */
const unsigned char *simclr__dataset_image(const simclr_dataset *ds, int64_t i);

#endif
