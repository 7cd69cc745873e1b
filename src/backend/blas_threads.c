/* OpenBLAS's thread count is process-wide, and the "cpu" backend needs it at
 * 1: Debian's OpenBLAS is the pthread build, does not notice that our pool
 * already runs its products on every core, and its idle workers spin after
 * each call (measured: a training step 35% slower on 2 cores). 0.1.0 set
 * it to 1 before every product, which silently left a host's NumPy
 * single-threaded for good. Now the first live "cpu" context saves the
 * host's count and sets 1, and the last one to go puts the host's count
 * back (unless the host changed it meanwhile). This is the library's only
 * process-wide state; the header says so at simclr_context_create. */
#include <pthread.h>

#include "backend.h"

#ifdef SIMCLR_OPENBLAS
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int live_contexts;
static int host_threads = 1;

void simclr__blas_threads_acquire(void)
{
    pthread_mutex_lock(&lock);
    if (live_contexts++ == 0) {
#ifdef SIMCLR_OPENBLAS
        host_threads = openblas_get_num_threads();
        if (host_threads != 1) openblas_set_num_threads(1);
#endif
    }
    pthread_mutex_unlock(&lock);
}

void simclr__blas_threads_release(void)
{
    pthread_mutex_lock(&lock);
    if (live_contexts > 0 && --live_contexts == 0) {
#ifdef SIMCLR_OPENBLAS
        /* A host that set its own count while we ran keeps it. */
        if (host_threads != 1 && openblas_get_num_threads() == 1) openblas_set_num_threads(host_threads);
#endif
    }
    pthread_mutex_unlock(&lock);
}
