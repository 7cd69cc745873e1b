#include "rng.h"

#include <math.h>

/* Constants from the Philox paper (Random123). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void simclr__philox4x32(const uint32_t ctr[4], uint64_t key, uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void simclr__rng_init(simclr__rng *r, uint64_t seed, uint32_t stream, uint64_t index)
{
    /* The index takes 64 bits of counter space folded into one word with the
     * stream's: counter words are (draw lo, draw hi, index lo, index hi ^ stream). */
    r->key = seed;
    r->stream = stream ^ (uint32_t)(index >> 32);
    r->index = (uint32_t)index;
    r->counter = 0;
    r->used = 4;
}

uint32_t simclr__rng_u32(simclr__rng *r)
{
    if (r->used == 4) {
        uint32_t ctr[4] = {(uint32_t)r->counter, (uint32_t)(r->counter >> 32), r->index, r->stream};
        simclr__philox4x32(ctr, r->key, r->block);
        r->counter++;
        r->used = 0;
    }
    return r->block[r->used++];
}

float simclr__rng_uniform(simclr__rng *r) { return (float)(simclr__rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double simclr__rng_uniform_d(simclr__rng *r)
{
    uint64_t hi = simclr__rng_u32(r) >> 5, lo = simclr__rng_u32(r) >> 6;
    return (double)(hi * 67108864u + lo) * (1.0 / 9007199254740992.0);
}

double simclr__rng_range(simclr__rng *r, double lo, double hi) { return lo + (hi - lo) * simclr__rng_uniform_d(r); }

double simclr__rng_normal(simclr__rng *r)
{
    double u1 = simclr__rng_uniform_d(r), u2 = simclr__rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t simclr__rng_below(simclr__rng *r, uint32_t n)
{
    uint32_t limit = (uint32_t)(-n) % n; /* 2^32 mod n: values below it are biased */
    for (;;) {
        uint32_t x = simclr__rng_u32(r);
        uint64_t m = (uint64_t)x * n;
        if ((uint32_t)m >= limit) return (uint32_t)(m >> 32);
    }
}
