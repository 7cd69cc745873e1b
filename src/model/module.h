/* The generic module: a named list of parameter/buffer tensors plus the
 * forward/backward of one concrete kind (ResNet, MLP head). Public
 * simclr_module_* calls validate their arguments here, then dispatch. */
#ifndef SIMCLR_MODEL_MODULE_H
#define SIMCLR_MODEL_MODULE_H

#include "../core/context.h"
#include "../core/tensor.h"
#include "../nn/nn.h"

typedef struct simclr__module_ops {
    const char *kind; /* "resnet", "mlp_head" */
    /* x and y are validated as non-NULL F32; shapes are the kind's to check. */
    simclr_status (*forward)(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y);
    /* dy non-NULL F32; dx may be NULL. */
    simclr_status (*backward)(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx);
    /* Frees m->impl (the parameters are freed by the generic code). */
    void (*destroy)(simclr_module *m);
} simclr__module_ops;

typedef struct simclr__param {
    char *name;            /* torchvision name, owned */
    simclr_tensor *value;  /* owned */
    simclr_tensor *grad;   /* owned; NULL for buffers */
    int flags;             /* SIMCLR_PARAM_* */
} simclr__param;

struct simclr_module {
    simclr_context *ctx;
    const simclr__module_ops *ops;
    void *impl;
    char arch[128];
    int64_t in_dim;  /* input channels (ResNet) or features (head) */
    int64_t out_dim;
    simclr__param *params;
    int n_params; /* parameters and buffers */
    int cap;
    int has_train_forward; /* the last forward was TRAIN and backward may run */
};

/* Makes an empty module of the given kind; arch is copied. */
simclr_status simclr__module_new(simclr_context *ctx, const simclr__module_ops *ops, const char *arch,
                                 simclr_module **out);

/* Appends a named tensor; the module takes ownership of value and grad (both
 * freed by simclr_module_destroy, also when this call fails). grad NULL for
 * buffers. Creating function: on failure destroy the module and return. */
simclr_status simclr__module_add(simclr_module *m, const char *name, simclr_tensor *value,
                                 simclr_tensor *grad, int flags);

/* Creates a zeroed parameter (with a zeroed gradient, or none when flags has
 * SIMCLR_PARAM_BUFFER), adds it, and returns the value tensor. */
simclr_status simclr__module_new_param(simclr_module *m, const char *name, int ndim,
                                       const int64_t *shape, int flags, simclr_tensor **value);

/* The sink through which nn/ layers register their tensors in m. */
simclr__param_sink simclr__module_sink(simclr_module *m);

/* Orders parameters before buffers (stable), as the public enumeration promises.
 * Call once, after the last add. */
void simclr__module_finalize(simclr_module *m);

/* Finds a named tensor; NULL when absent. */
simclr__param *simclr__module_find(simclr_module *m, const char *name);

/* Activation arenas: a first pass with base NULL counts floats, a second
 * pass over the same walk hands out 64-byte aligned slices of base. A size
 * that cannot be represented sets overflow (and returns NULL). */
typedef struct simclr__planner {
    float *base;
    size_t used; /* floats */
    int overflow;
} simclr__planner;

float *simclr__plan_take(simclr__planner *p, int64_t floats);

/* A module's activation arena. It only grows: a plan that fits its
 * capacity is laid out again in the block at hand, so a module whose batch
 * size varies (a service's requests) allocates once, at its largest batch,
 * instead of a new block at every change (which fragments the host's heap).
 * arena_fit makes the capacity at least `floats` (> 0): nothing when it
 * already is, else a block of exactly `floats` replacing the old one (whose
 * contents are lost: plan into the block after this call). On failure
 * (SIMCLR_E_NOMEM naming `who`) the arena is unchanged. */
typedef struct simclr__arena {
    float *base;
    size_t cap; /* floats */
} simclr__arena;

simclr_status simclr__arena_fit(simclr_context *ctx, simclr__arena *a, size_t floats, const char *who);
void simclr__arena_free(simclr_context *ctx, simclr__arena *a);

/* Momentum updates (ema.c). same_layout: SIMCLR_E_SHAPE (fn and both
 * architectures named) unless a and b hold the same names, shapes, flags.
 * momentum_apply: target = m * target + (1 - m) * source for parameters and
 * BN running statistics (num_batches_tracked kept); layouts already checked. */
simclr_status simclr__module_same_layout(const simclr_module *a, const simclr_module *b, const char *fn);
void simclr__module_momentum_apply(simclr_module *target, const simclr_module *source, double m);

#endif
