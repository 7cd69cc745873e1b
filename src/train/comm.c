/* The host's communicator as the library uses it: validation, the
 * single-process default, and wrappers that count the payload and turn a
 * host failure into one SIMCLR_E_IO per library call (after the first
 * failure no further collective reaches the host: the other ranks are by then
 * failing or timing out, and waiting on them again would only add delay). */
#include <stdio.h>
#include <string.h>

#include "distributed.h"

static int single_rank(void *user)
{
    (void)user;
    return 0;
}

static int single_size(void *user)
{
    (void)user;
    return 1;
}

static int single_reduce(void *user, float *data, int64_t count)
{
    (void)user, (void)data, (void)count;
    return 0;
}

static int single_gather(void *user, const float *send, int64_t count, float *recv)
{
    (void)user;
    if (count > 0) memmove(recv, send, (size_t)count * sizeof *recv);
    return 0;
}

static int single_bcast(void *user, float *data, int64_t count, int root)
{
    (void)user, (void)data, (void)count;
    return root == 0 ? 0 : 1;
}

static const char *single_error(void *user, int code)
{
    (void)user;
    return code == 1 ? "broadcast root out of range (single process)" : "unknown error";
}

simclr_status simclr_comm_single(simclr_comm *out)
{
    SIMCLR__CHECK_ARG(out, "simclr_comm_single", "out is NULL");
    *out = (simclr_comm){single_rank, single_size, single_reduce, single_gather, single_bcast, single_error, NULL};
    return SIMCLR_OK;
}

static simclr_status check(const simclr_comm *comm, const char *fn, int *rank, int *size)
{
    SIMCLR__CHECK_ARG(comm, fn, "comm is NULL");
    const struct {
        int missing;
        const char *name;
    } fields[] = {{!comm->rank, "rank"},
                  {!comm->size, "size"},
                  {!comm->all_reduce_sum, "all_reduce_sum"},
                  {!comm->all_gather, "all_gather"},
                  {!comm->broadcast, "broadcast"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].missing)
            return simclr__fail(SIMCLR_E_INVALID, "%s: the communicator's %s function is NULL", fn, fields[i].name);
    int s = comm->size(comm->user), r = comm->rank(comm->user);
    if (s < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: the communicator has size %d, need >= 1", fn, s);
    if (r < 0 || r >= s)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the communicator's rank %d is outside 0..%d", fn, r, s - 1);
    *rank = r;
    *size = s;
    return SIMCLR_OK;
}

simclr_status simclr_comm_validate(const simclr_comm *comm)
{
    int r, s;
    return check(comm, "simclr_comm_validate", &r, &s);
}

simclr_status simclr__comm_init(simclr__comm_state *s, const simclr_comm *comm, const char *fn)
{
    int rank, size;
    SIMCLR__TRY(check(comm, fn, &rank, &size));
    memset(s, 0, sizeof *s);
    s->c = *comm;
    s->rank = rank;
    s->size = size;
    return SIMCLR_OK;
}

void simclr__comm_begin(simclr__comm_state *s)
{
    s->failed = 0;
    s->st = SIMCLR_OK;
    s->message[0] = '\0';
    s->bytes = 0;
}

simclr_status simclr__comm_raise(const simclr__comm_state *s)
{
    return simclr__fail(s->st, "%s", s->message);
}

static simclr_status failed(simclr__comm_state *s, const char *fn, const char *what, int code)
{
    const char *text = s->c.error_string ? s->c.error_string(s->c.user, code) : NULL;
    snprintf(s->message, sizeof s->message, "%s: %s failed on rank %d of %d (code %d: %s)", fn, what, s->rank,
             s->size, code, text ? text : "no error text");
    s->failed = 1;
    s->st = SIMCLR_E_IO;
    return simclr__comm_raise(s);
}

simclr_status simclr__comm_all_reduce(simclr__comm_state *s, const char *fn, float *data, int64_t count)
{
    if (s->failed) return simclr__comm_raise(s);
    s->bytes += count * (int64_t)sizeof(float);
    int code = s->c.all_reduce_sum(s->c.user, data, count);
    return code ? failed(s, fn, "all_reduce_sum", code) : SIMCLR_OK;
}

simclr_status simclr__comm_all_gather(simclr__comm_state *s, const char *fn, const float *send, int64_t count,
                                      float *recv)
{
    if (s->failed) return simclr__comm_raise(s);
    s->bytes += count * (int64_t)sizeof(float);
    int code = s->c.all_gather(s->c.user, send, count, recv);
    return code ? failed(s, fn, "all_gather", code) : SIMCLR_OK;
}

simclr_status simclr__comm_broadcast(simclr__comm_state *s, const char *fn, float *data, int64_t count, int root)
{
    if (s->failed) return simclr__comm_raise(s);
    /* Only the root sends the payload. */
    if (s->rank == root) s->bytes += count * (int64_t)sizeof(float);
    int code = s->c.broadcast(s->c.user, data, count, root);
    return code ? failed(s, fn, "broadcast", code) : SIMCLR_OK;
}
