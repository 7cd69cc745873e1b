#include "pool.h"

#include <pthread.h>
#include <string.h>

#include "context.h"

struct simclr__pool {
    simclr_context *ctx;
    int n_threads;
    pthread_t *threads;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    /* The job being run, published under mu. */
    uint64_t generation;
    int shutdown;
    int pending;
    int n_chunks;
    int64_t n;
    simclr__task_fn fn;
    void *arg;
};

/* A thread that is running a task must not start another parallel region. */
static _Thread_local int in_task;

static void chunk_range(const simclr__pool *p, int chunk, int64_t *b, int64_t *e)
{
    int64_t per = p->n / p->n_chunks, rem = p->n % p->n_chunks;
    *b = chunk * per + (chunk < rem ? chunk : rem);
    *e = *b + per + (chunk < rem ? 1 : 0);
}

typedef struct {
    simclr__pool *pool;
    int index;
} worker_arg;

static void *worker_main(void *argp)
{
    simclr__pool *p = ((worker_arg *)argp)->pool;
    int me = ((worker_arg *)argp)->index;
    uint64_t seen = 0;
    in_task = 1;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->shutdown && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->shutdown) break;
        seen = p->generation;
        if (me < p->n_chunks) {
            int64_t b, e;
            chunk_range(p, me, &b, &e);
            simclr__task_fn fn = p->fn;
            void *arg = p->arg;
            pthread_mutex_unlock(&p->mu);
            fn(arg, b, e, me);
            pthread_mutex_lock(&p->mu);
            if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Worker arguments live after the pool struct in the same allocation. */
simclr_status simclr__pool_create(simclr_context *ctx, int n_threads, simclr__pool **out)
{
    static const char fn[] = "simclr_context_create";
    size_t size = sizeof(simclr__pool) + (size_t)n_threads * (sizeof(pthread_t) + sizeof(worker_arg));
    simclr__pool *p = simclr__malloc(ctx, size);
    if (!p) return simclr__nomem(fn, size);
    memset(p, 0, size);
    p->ctx = ctx;
    p->n_threads = n_threads;
    p->threads = (pthread_t *)(p + 1);
    worker_arg *args = (worker_arg *)(p->threads + n_threads);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (int i = 1; i < n_threads; i++) {
        args[i] = (worker_arg){p, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, &args[i]) != 0) {
            simclr__pool_destroy(p);
            return simclr__fail(SIMCLR_E_NOMEM, "%s: could not start worker thread %d of %d", fn, i,
                                n_threads);
        }
        p->n_started = i;
    }
    *out = p;
    return SIMCLR_OK;
}

void simclr__pool_destroy(simclr__pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->n_started; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    simclr__free(p->ctx, p);
}

int simclr__pool_size(const simclr__pool *p) { return p->n_threads; }

void simclr__pool_for(simclr__pool *p, int64_t n, int64_t grain, simclr__task_fn fn, void *arg)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    if (chunks > p->n_threads) chunks = p->n_threads;
    if (chunks <= 1 || in_task) {
        fn(arg, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->n = n;
    p->n_chunks = (int)chunks;
    p->fn = fn;
    p->arg = arg;
    p->pending = (int)chunks - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    int64_t b, e;
    chunk_range(p, 0, &b, &e);
    in_task = 1;
    fn(arg, b, e, 0);
    in_task = 0;

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
