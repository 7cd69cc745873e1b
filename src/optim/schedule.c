/* Learning-rate schedule and batch-size scaling, as the official SimCLR code
 * (tf2 WarmUpAndCosineDecay) computes them:
 *   step < warmup:          lr = base * step / warmup   (step 0 runs at rate 0)
 *   total = 0:              lr = base after warmup
 *   warmup <= step < total: lr = base * 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))
 *   step >= total > 0:      lr = 0 (also inside a warmup longer than total). */
#include <math.h>

#include "optimizer.h"

double simclr__schedule_lr(double base, int64_t warmup, int64_t total, int64_t step)
{
    if (total > 0 && step >= total) return 0.0;
    if (step < warmup) return base * (double)step / (double)warmup;
    if (total == 0) return base;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    return base * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
}

double simclr_lr_linear_scaling(double base, int64_t batch)
{
    return batch < 1 ? 0.0 : base * (double)batch / 256.0;
}

double simclr_lr_sqrt_scaling(double base, int64_t batch)
{
    return batch < 1 ? 0.0 : base * sqrt((double)batch);
}
