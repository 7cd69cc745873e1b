/* The loss object inside the library: what the trainer may ask of it beyond
 * the public forward/backward. */
#ifndef SIMCLR_LOSS_LOSS_H
#define SIMCLR_LOSS_LOSS_H

#include "../core/context.h"
#include "../core/tensor.h"

/* Other kinds of loss (supervised.c: cross-entropy, distillation) share the
 * simclr_loss handle with NT-Xent: ntxent.c owns the struct, and a loss
 * whose ops are not NULL is of another kind, its state in impl. The public
 * simclr_loss_destroy, simclr_loss_backward and simclr_loss_set/get
 * dispatch through ops; simclr_loss_forward (NT-Xent's) refuses them. */
typedef struct simclr__loss_ops {
    const char *kind;    /* "cross-entropy", "distillation" */
    const char *forward; /* the public forward of the kind, for messages */
    void (*destroy)(simclr_context *ctx, void *impl);
    /* d validated as non-NULL; the kind checks its shape and state. */
    simclr_status (*backward)(void *impl, simclr_tensor *d);
    /* Unknown or inapplicable keys: SIMCLR_E_INVALID with fn in the message. */
    simclr_status (*set)(void *impl, const char *fn, simclr_loss_param key, double value);
    simclr_status (*get)(const void *impl, const char *fn, simclr_loss_param key, double *value);
} simclr__loss_ops;

/* A loss handle of another kind; takes ownership of impl (freed by
 * ops->destroy also when this fails with SIMCLR_E_NOMEM). */
simclr_status simclr__loss_new_kind(simclr_context *ctx, const char *fn, const simclr__loss_ops *ops, void *impl,
                                    simclr_loss **out);
/* The kind's ops (NULL for NT-Xent) and state. */
const simclr__loss_ops *simclr__loss_ops_of(const simclr_loss *loss);
void *simclr__loss_impl(const simclr_loss *loss);

/* Views per sample the loss was created for (the trainer needs 2; 0 for the
 * other kinds). */
int simclr__loss_n_views(const simclr_loss *loss);
double simclr__loss_temperature(const simclr_loss *loss);
/* The context the loss was created from. */
simclr_context *simclr__loss_ctx(const simclr_loss *loss);

/* Grows the scratch buffers for z of `rows` x `dim` ahead of the first step,
 * so a trainer can fail early (SIMCLR_E_NOMEM) and stay allocation-free after. */
simclr_status simclr__loss_reserve(simclr_loss *loss, int64_t rows, int64_t dim);

#endif
