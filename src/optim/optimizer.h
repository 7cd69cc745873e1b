/* Optimizers inside the library: the object shared by the key/state code
 * (optimizer.c), the schedule (schedule.c) and the update rules (step.c), and
 * what the trainer may call beyond the public API. */
#ifndef SIMCLR_OPTIM_OPTIMIZER_H
#define SIMCLR_OPTIM_OPTIMIZER_H

#include "../core/context.h"
#include "../core/tensor.h"
#include "../model/module.h"

#define SIMCLR__OPT_MAX_MODULES 16

/* One trained tensor: borrowed value/grad of a module parameter, and its
 * state (owned; state[1] only for AdamW). */
typedef struct simclr__opt_slot {
    const char *name; /* the module's parameter name (borrowed) */
    simclr_tensor *value, *grad;
    int no_decay; /* SIMCLR_PARAM_NO_DECAY */
    simclr_tensor *state[2];
} simclr__opt_slot;

typedef struct simclr__opt_state_entry {
    char *name; /* owned */
    simclr_tensor *tensor; /* one of the slots' state tensors */
} simclr__opt_state_entry;

struct simclr_optimizer {
    simclr_context *ctx;
    simclr_opt_kind kind;
    double lr, momentum, weight_decay, beta1, beta2, eps, eta;
    int nesterov, exclude_no_decay;
    int64_t warmup_steps, total_steps, step;
    simclr__opt_slot *slots;
    int n_slots;
    simclr__opt_state_entry *states;
    int n_states;
    double last_grad_norm; /* of the last successful step; 0 before any */
    double last_lr;        /* rate the last successful step used */
};

/* The scheduled rate at a given step (warmup, then cosine), see schedule.c. */
double simclr__schedule_lr(double base, int64_t warmup, int64_t total, int64_t step);

/* Global L2 norm of every trained gradient, without changing anything.
 * SIMCLR_E_NUMERIC (message naming the first offending tensor's position)
 * when a gradient holds a NaN or infinity. The trainer may call it to decide
 * before it commits anything; simclr_optimizer_step runs the same check first
 * and, passing it, cannot fail: step is all-or-nothing without snapshots. */
simclr_status simclr__optimizer_grad_norm(const simclr_optimizer *opt, double *norm);

/* Global gradient L2 norm and learning rate of the last successful step (0 before any). */
double simclr__optimizer_last_grad_norm(const simclr_optimizer *opt);
double simclr__optimizer_last_lr(const simclr_optimizer *opt);

/* The update of one slot at rate lr (step.c); grads already checked finite. */
void simclr__opt_update_slot(const simclr_optimizer *opt, simclr__opt_slot *slot, double lr);

#endif
