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

/* The step buffers of one shape: n local images of c channels in
 * micro-batches of k on `ranks` ranks, T trained and K key views per image
 * (the method's), P-wide embeddings. Built aside and swapped in whole (a
 * failed rebuild, or a failed step after a rebuild, keeps the old set). */
typedef struct simclr__ext_bufs {
    int64_t n, c, k, ranks, bn_cap;       /* the shape served; bn_cap = C_max */
    simclr_tensor *views;                 /* [T k, c, h, w]: a micro-batch's trained views */
    simclr_tensor *view[2];               /* its T blocks of k rows */
    simclr_tensor *key_views;             /* [K n, c, h, w] (NULL when K = 0) */
    simclr_tensor *feat, *dfeat, *z, *dz; /* [T k, D], [T k, P] */
    simclr_tensor *zg, *dzg;              /* the global batch [T ranks n, P] */
    float *zl, *gathered;                 /* [T n P] local, [ranks T n P] as gathered */
    float *kl, *kgathered, *kg;           /* keys: [K n P], [ranks K n P], [K ranks n P] */
    float *bn_send, *bn_recv;             /* [2 C_max], [ranks 2 C_max] */
    void *method;                         /* the method's scratch (bufs_new) */
} simclr__ext_bufs;

/* Frees a set (any member may be NULL) and clears it. */
void simclr__ext_bufs_free(const simclr_trainer *tr, simclr__ext_bufs *b);
/* Makes tr->ext->b serve (n, c, k) on the current ranks: a new set is built
 * aside; when complete it replaces the trainer's, whose old set goes to
 * *prev (*rebuilt = 1) for simclr__ext_bufs_settle. */
simclr_status simclr__ext_bufs_ensure(simclr_trainer *tr, const char *fn, int64_t n, int64_t c, int64_t k,
                                      simclr__ext_bufs *prev, int *rebuilt);
/* After the step: frees the previous set, first putting it back in place
 * when the step failed (a failed step holds no more memory than before). */
void simclr__ext_bufs_settle(simclr_trainer *tr, simclr__ext_bufs *prev, int rebuilt, simclr_status st);

struct simclr__trainer_ext {
    int has_comm;
    simclr__comm_state comm; /* a single-process communicator without one */
    int64_t micro;           /* pairs per micro-batch, 0 = the whole local batch */
    int bn_mode;             /* simclr_bn_mode */
    int64_t bucket_bytes;
    simclr__bn_hook hook;    /* user = this struct */

    simclr__ext_bufs b; /* the step buffers */
    float *bucket;      /* bucket_bytes */

    /* Statistics of the last successful step. */
    int64_t last_bytes;
};

/* Ranks of the attached communicator (1 without one). */
int simclr__trainer_ext_ranks(const simclr_trainer *tr);
/* The settings state with a single-process communicator (creation). */
simclr_status simclr__trainer_ext_new(simclr_trainer *tr, const char *fn);
void simclr__trainer_ext_free(simclr_trainer *tr);
/* The combinations the current settings make (SIMCLR__WITH_*). */
unsigned simclr__trainer_ext_with(const simclr_trainer *tr);

/* Sums the gradients of the trained modules over ranks, in buckets, and
 * with them the one float *extra (NULL: none). */
simclr_status simclr__trainer_allreduce_grads(simclr_trainer *tr, const char *fn, float *extra);
/* Broadcasts rank 0's BN running statistics of every module (SIMCLR_BN_LOCAL replicas). */
simclr_status simclr__trainer_broadcast_buffers(simclr_trainer *tr, const char *fn);

/* simclr_trainer_save on P > 1 ranks: rank 0 runs save, its status is
 * broadcast and returned everywhere. */
simclr_status simclr__trainer_save_once(const simclr_trainer *tr, const char *path,
                                        simclr_status (*save)(const simclr_trainer *, const char *));

/* The BN hook (src/train/bn_hook.c) for ext->bn_mode. */
void simclr__bn_hook_init(struct simclr__trainer_ext *e);

#endif
