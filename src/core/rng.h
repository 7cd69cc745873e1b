/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 * A draw is a pure function of (seed, stream, index, counter): no state is
 * shared between threads or calls, so results never depend on scheduling.
 * Streams separate users of one seed (augmentation views, initialization of
 * each layer, ...); index is typically the sample or parameter number. */
#ifndef SIMCLR_CORE_RNG_H
#define SIMCLR_CORE_RNG_H

#include <stdint.h>

/* The raw block function: 4 x 32 random bits for a 128-bit counter and a
 * 64-bit key. */
void simclr__philox4x32(const uint32_t ctr[4], uint64_t key, uint32_t out[4]);

/* A cursor over the sequence of one (seed, stream, index): draws come out in
 * counter order, four per block. Cheap to make on the stack. */
typedef struct simclr__rng {
    uint64_t key;
    uint32_t stream;
    uint32_t index;
    uint64_t counter;
    uint32_t block[4];
    int used; /* words of block already returned; 4 = block empty */
} simclr__rng;

void simclr__rng_init(simclr__rng *r, uint64_t seed, uint32_t stream, uint64_t index);
uint32_t simclr__rng_u32(simclr__rng *r);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float simclr__rng_uniform(simclr__rng *r);
double simclr__rng_uniform_d(simclr__rng *r);
/* Uniform in [lo, hi). */
double simclr__rng_range(simclr__rng *r, double lo, double hi);
/* Standard normal (Box-Muller on two uniform doubles). */
double simclr__rng_normal(simclr__rng *r);
/* Uniform integer in [0, n) without modulo bias; n >= 1. */
uint32_t simclr__rng_below(simclr__rng *r, uint32_t n);

/* Stream numbers in use, so two users never share a sequence. */
enum {
    SIMCLR__STREAM_INIT = 1,      /* parameter initialization; index = parameter number */
    SIMCLR__STREAM_AUGMENT = 16,  /* + view (0..15, SIMCLR__AUG_MAX_VIEWS); index = image index */
    SIMCLR__STREAM_MOCO_QUEUE = 32,   /* MoCo's initial queue; index = queue row */
    SIMCLR__STREAM_MOCO_SHUFFLE = 33, /* MoCo's key permutation (shuffling BN); index 0 */
    SIMCLR__STREAM_LABEL_SUBSET = 48, /* label fractions' keys; index = label index */
    SIMCLR__STREAM_TEST = 0x7fff0000u
};

#endif
