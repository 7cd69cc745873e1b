/* Antialiased resampling of a window of a U8 image (the filter PIL and
 * torch.nn.functional.interpolate(antialias=True) use for bilinear: a
 * triangle stretched by the downscale factor, weights normalized per output
 * pixel). Used by the full-resolution random resized crop (when
 * SIMCLR_AUG_ANTIALIAS is 1) and by the embedder's evaluation transform
 * (resize of the shorter side + center crop). */
#ifndef SIMCLR_AUGMENT_RESAMPLE_H
#define SIMCLR_AUGMENT_RESAMPLE_H

#include <stdint.h>

/* One axis: an input window of n_in pixels resized to n_resized, of which
 * the n_out outputs starting at `first` are wanted. */
typedef struct simclr__axis {
    int64_t n_in, n_resized, first;
    int n_out;
} simclr__axis;

/* Floats of scratch simclr__resample needs for these axes. */
int64_t simclr__resample_scratch(const simclr__axis *ay, const simclr__axis *ax);

/* Resamples rows [top, top + ay->n_in) x columns [left, left + ax->n_in) of
 * src (U8 [H, W, C], row stride W*C) into dst F32 [C, ay->n_out, ax->n_out]
 * with values v/255 (clamped to [0, 1]). tmp holds simclr__resample_scratch
 * floats. The window must lie inside the image. */
void simclr__resample(const uint8_t *src, int64_t W, int C, int64_t top, int64_t left, const simclr__axis *ay,
                      const simclr__axis *ax, float *dst, float *tmp);

/* The axes of torchvision's evaluation transform for an h x w image: resize
 * so the shorter side is `resize` (the longer int(resize * long / short),
 * as _compute_resized_output_size), then center_crop to out_h x out_w
 * (offsets int(round((size - crop) / 2)), Python's round). resize must be
 * >= out_h and out_w (a longer side truncated below the crop is raised to it). */
void simclr__eval_axes(int64_t h, int64_t w, int64_t resize, int out_h, int out_w, simclr__axis *ay,
                       simclr__axis *ax);

#endif
