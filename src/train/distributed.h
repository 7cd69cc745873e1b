/* Distributed training and gradient caching inside the trainer: the state
 * simclr_trainer_set / simclr_trainer_set_comm create, the communicator
 * wrappers that turn a host failure into SIMCLR_E_IO, and the step that
 * runs when a communicator or micro-batches are configured. */
#ifndef SIMCLR_TRAIN_DISTRIBUTED_H
#define SIMCLR_TRAIN_DISTRIBUTED_H

#include "trainer.h"

/* A validated communicator and the per-call bookkeeping (src/train/comm.c). */
typedef struct simclr__comm_state {
    simclr_comm c;
    int rank, size;
    int failed;       /* a collective failed in the current library call */
    simclr_status st; /* its status, re-raised by simclr__comm_raise */
    char message[512];
    int64_t bytes;    /* payload bytes passed to collectives since the last reset */
} simclr__comm_state;

/* Validates comm and fills s (rank, size read once). Message prefixed by fn. */
simclr_status simclr__comm_init(simclr__comm_state *s, const simclr_comm *comm, const char *fn);
/* Starts a library call: clears the failure and the byte count. */
void simclr__comm_begin(simclr__comm_state *s);
/* The collectives. Once one failed in this call, the others return the same
 * status at once, without calling the host. `fn` names the library call. */
simclr_status simclr__comm_all_reduce(simclr__comm_state *s, const char *fn, float *data, int64_t count);
simclr_status simclr__comm_all_gather(simclr__comm_state *s, const char *fn, const float *send, int64_t count,
                                      float *recv);
simclr_status simclr__comm_broadcast(simclr__comm_state *s, const char *fn, float *data, int64_t count, int root);
/* Sets the thread's message again to that of the first failure; returns its status. */
simclr_status simclr__comm_raise(const simclr__comm_state *s);

/* A run of floats: a tensor, a gradient, an optimizer state. */
typedef struct simclr__segment {
    float *data;
    int64_t count;
} simclr__segment;

/* The step buffers of one shape, built aside and swapped in whole (a
 * failed rebuild keeps the old set). */
typedef struct simclr__ext_bufs {
    simclr_tensor *views, *view0, *view1; /* [2k, c, h, w] and its two halves */
    simclr_tensor *feat, *dfeat, *z, *dz; /* [2k, D], [2k, P] */
    simclr_tensor *zg, *dzg;              /* the global batch [2 ranks n, P] */
    float *zl, *gathered;                 /* [2n P] local, [ranks 2n P] as gathered */
    float *bn_send, *bn_recv;             /* [2 C_max], [ranks 2 C_max] */
} simclr__ext_bufs;

/* Frees a set (any member may be NULL) and clears it. */
void simclr__ext_bufs_free(simclr_context *ctx, simclr__ext_bufs *b);

struct simclr__trainer_ext {
    int has_comm;
    simclr__comm_state comm; /* a single-process communicator without one */
    int64_t micro;           /* pairs per micro-batch, 0 = the whole local batch */
    int bn_mode;             /* simclr_bn_mode */
    int64_t bucket_bytes;
    simclr__bn_hook hook;    /* user = this struct */

    /* Step buffers for (n pairs of c channels, micro k, size ranks). */
    int64_t n, c, k, ranks;
    simclr__ext_bufs b;
    float *bucket;  /* bucket_bytes */
    int64_t bn_cap; /* C_max */

    /* Statistics of the last successful step. */
    int64_t last_bytes, last_micro;
};

/* Returns 1 when the trainer must run simclr__trainer_step_ext. */
int simclr__trainer_ext_active(const simclr_trainer *tr);
/* Ranks of the attached communicator (1 without one). */
int simclr__trainer_ext_ranks(const simclr_trainer *tr);
void simclr__trainer_ext_free(simclr_trainer *tr);
simclr_status simclr__trainer_ext_stat(const simclr_trainer *tr, simclr_stat key, double *value);
/* The ext state, created on first use; NULL (and the message set) when out of memory. */
struct simclr__trainer_ext *simclr__trainer_ext_get(simclr_trainer *tr, const char *fn);

/* Sums the gradients of encoder and head over ranks, in buckets, and with
 * them the one float *extra (NULL: none). */
simclr_status simclr__trainer_allreduce_grads(simclr_trainer *tr, const char *fn, float *extra);
/* Broadcasts rank 0's BN running statistics (SIMCLR_BN_LOCAL replicas). */
simclr_status simclr__trainer_broadcast_buffers(simclr_trainer *tr, const char *fn);

/* The step with a communicator and/or micro-batches (src/train/gradcache.c);
 * images are validated by the caller. */
simclr_status simclr__trainer_step_ext(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed,
                                       float *loss);

/* simclr_trainer_save on P > 1 ranks: rank 0 runs save, its status is
 * broadcast and returned everywhere. */
simclr_status simclr__trainer_save_once(const simclr_trainer *tr, const char *path,
                                        simclr_status (*save)(const simclr_trainer *, const char *));

/* The BN hook (src/train/bn_hook.c) for ext->bn_mode. */
void simclr__bn_hook_init(struct simclr__trainer_ext *e);

#endif
