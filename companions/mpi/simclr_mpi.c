/* libsimclr_mpi: simclr_comm over MPI non-blocking collectives with a
 * deadline. See include/simclr_mpi.h. Built with -fvisibility=hidden: only
 * the SIMCLR_API functions are exported (and simclr_mpi.map lists them). */
#include "simclr_mpi.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct simclr_mpi {
    simclr_comm comm; /* its user is this struct */
    MPI_Comm mc;      /* our duplicate */
    int rank, size;
    double timeout;
    int broken;       /* a collective failed: requests may still hold buffers */
    char text[MPI_MAX_ERROR_STRING + 128]; /* the last failure's text */
};

static _Thread_local char create_error[MPI_MAX_ERROR_STRING + 64];

const char *simclr_mpi_last_error(void) { return create_error; }

/* A failed create: the message goes to simclr_last_error() (the channel of
 * every libsimclr call) and to the deprecated simclr_mpi_last_error(). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static simclr_status create_fail(simclr_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(create_error, sizeof create_error, fmt, ap);
    va_end(ap);
    return simclr_error_set(status, create_error);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail_mpi(simclr_mpi *m, const char *what, int err)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", err);
    snprintf(m->text, sizeof m->text, "simclr_mpi: %s: %s", what, s);
    m->broken = 1;
    return SIMCLR_MPI_E_MPI;
}

/* Polls a request until it completes or the deadline passes. The first
 * thousand tests spin (a collective between live peers completes in
 * microseconds to milliseconds); then the poll sleeps, growing to 1 ms, so a
 * waiting rank leaves the cores to the ranks still computing. */
static int wait_for(simclr_mpi *m, MPI_Request *req, const char *what)
{
    double start = now_seconds();
    long sleep_ns = 0;
    for (long i = 0;; i++) {
        int done = 0, err = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS) return fail_mpi(m, what, err);
        if (done) return 0;
        if (i >= 1000) {
            if (now_seconds() - start > m->timeout) {
                snprintf(m->text, sizeof m->text,
                         "simclr_mpi: %s did not complete within %.1f s on rank %d of %d (a peer died, hangs or is much slower)",
                         what, m->timeout, m->rank, m->size);
                m->broken = 1;
                return SIMCLR_MPI_E_TIMEOUT;
            }
            sleep_ns = sleep_ns ? (sleep_ns * 2 > 1000000 ? 1000000 : sleep_ns * 2) : 1000;
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
        }
    }
}

static int guard(simclr_mpi *m, int64_t count, int64_t limit)
{
    if (m->broken) {
        snprintf(m->text, sizeof m->text, "simclr_mpi: an earlier collective failed on rank %d; the job must end", m->rank);
        return SIMCLR_MPI_E_BROKEN;
    }
    if (count < 0 || count > limit) {
        snprintf(m->text, sizeof m->text, "simclr_mpi: count %lld out of MPI's range", (long long)count);
        return SIMCLR_MPI_E_COUNT;
    }
    return 0;
}

static int op_rank(void *user) { return ((simclr_mpi *)user)->rank; }
static int op_size(void *user) { return ((simclr_mpi *)user)->size; }

/* Reduce to rank 0, then broadcast: every rank holds rank 0's bits (an
 * all-reduce may round differently on different ranks). Large arrays go in
 * chunks that fit MPI's int counts. */
static int op_all_reduce(void *user, float *data, int64_t count)
{
    simclr_mpi *m = user;
    int code = guard(m, count, INT64_MAX / 4);
    if (code) return code;
    const int64_t chunk = (int64_t)1 << 28;
    for (int64_t off = 0; off < count; off += chunk) {
        int len = (int)(count - off < chunk ? count - off : chunk);
        MPI_Request req;
        void *send = m->rank == 0 ? MPI_IN_PLACE : data + off;
        int err = MPI_Ireduce(send, m->rank == 0 ? data + off : NULL, len, MPI_FLOAT, MPI_SUM, 0, m->mc, &req);
        if (err != MPI_SUCCESS) return fail_mpi(m, "MPI_Ireduce", err);
        if ((code = wait_for(m, &req, "all_reduce_sum (MPI_Ireduce)"))) return code;
        err = MPI_Ibcast(data + off, len, MPI_FLOAT, 0, m->mc, &req);
        if (err != MPI_SUCCESS) return fail_mpi(m, "MPI_Ibcast", err);
        if ((code = wait_for(m, &req, "all_reduce_sum (MPI_Ibcast)"))) return code;
    }
    return 0;
}

static int op_all_gather(void *user, const float *send, int64_t count, float *recv)
{
    simclr_mpi *m = user;
    int code = guard(m, count, INT_MAX / m->size);
    if (code) return code;
    MPI_Request req;
    int err = MPI_Iallgather(send, (int)count, MPI_FLOAT, recv, (int)count, MPI_FLOAT, m->mc, &req);
    if (err != MPI_SUCCESS) return fail_mpi(m, "MPI_Iallgather", err);
    return wait_for(m, &req, "all_gather (MPI_Iallgather)");
}

static int op_broadcast(void *user, float *data, int64_t count, int root)
{
    simclr_mpi *m = user;
    int code = guard(m, count, INT64_MAX / 4);
    if (code) return code;
    if (root < 0 || root >= m->size) {
        snprintf(m->text, sizeof m->text, "simclr_mpi: broadcast root %d outside 0..%d", root, m->size - 1);
        return SIMCLR_MPI_E_COUNT;
    }
    const int64_t chunk = (int64_t)1 << 28;
    for (int64_t off = 0; off < count; off += chunk) {
        int len = (int)(count - off < chunk ? count - off : chunk);
        MPI_Request req;
        int err = MPI_Ibcast(data + off, len, MPI_FLOAT, root, m->mc, &req);
        if (err != MPI_SUCCESS) return fail_mpi(m, "MPI_Ibcast", err);
        if ((code = wait_for(m, &req, "broadcast (MPI_Ibcast)"))) return code;
    }
    return 0;
}

static const char *op_error_string(void *user, int code)
{
    (void)code;
    return ((simclr_mpi *)user)->text;
}

simclr_status simclr_mpi_create(MPI_Comm comm, double timeout_seconds, simclr_mpi **out)
{
    static const char fn[] = "simclr_mpi_create";
    create_error[0] = '\0';
    if (!out) return create_fail(SIMCLR_E_INVALID, "%s: out is NULL", fn);
    if (!(timeout_seconds > 0 && timeout_seconds < 1e9))
        return create_fail(SIMCLR_E_INVALID, "%s: timeout %g s, need > 0 and < 1e9", fn, timeout_seconds);
    if (comm == MPI_COMM_NULL) return create_fail(SIMCLR_E_INVALID, "%s: comm is MPI_COMM_NULL", fn);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized)
        return create_fail(SIMCLR_E_INVALID, "%s: MPI is %s", fn,
                           finalized ? "already finalized" : "not initialized (call MPI_Init first)");
    simclr_mpi *m = calloc(1, sizeof *m);
    if (!m) return create_fail(SIMCLR_E_NOMEM, "%s: no memory for the adapter", fn);
    int err = MPI_Comm_dup(comm, &m->mc);
    int duped = err == MPI_SUCCESS;
    if (err == MPI_SUCCESS) err = MPI_Comm_set_errhandler(m->mc, MPI_ERRORS_RETURN);
    if (err == MPI_SUCCESS) err = MPI_Comm_rank(m->mc, &m->rank);
    if (err == MPI_SUCCESS) err = MPI_Comm_size(m->mc, &m->size);
    if (err != MPI_SUCCESS) {
        char s[MPI_MAX_ERROR_STRING];
        int len = 0;
        if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", err);
        if (duped) MPI_Comm_free(&m->mc);
        free(m);
        return create_fail(SIMCLR_E_IO, "%s: %s", fn, s);
    }
    m->timeout = timeout_seconds;
    m->comm = (simclr_comm){op_rank, op_size, op_all_reduce, op_all_gather, op_broadcast, op_error_string, m};
    *out = m;
    return SIMCLR_OK;
}

void simclr_mpi_destroy(simclr_mpi *m)
{
    if (!m) return;
    if (!m->broken) MPI_Comm_free(&m->mc);
    free(m);
}

const simclr_comm *simclr_mpi_comm(const simclr_mpi *m) { return m ? &m->comm : NULL; }
int simclr_mpi_rank(const simclr_mpi *m) { return m ? m->rank : -1; }
int simclr_mpi_size(const simclr_mpi *m) { return m ? m->size : 0; }
