/* The promises of include/simclr_mpi.h that do not need a trainer, run by
 * tests/test_mpi.sh under `mpirun -np 2`, linked against the shared
 * libsimclr_mpi.so (so its exports are what is tested):
 *  - a refused simclr_mpi_create sets simclr_last_error() (the channel of
 *    every libsimclr call) to a message starting with its name, leaves *out
 *    untouched, and the deprecated simclr_mpi_last_error() says the same;
 *  - MPI_COMM_NULL and a call after MPI_Finalize are refused, not fatal;
 *  - a successful create clears simclr_mpi_last_error() and leaves
 *    simclr_last_error() alone (successful calls never clear it);
 *  - the collectives' error text (simclr_comm.error_string, which libsimclr
 *    puts into its own message) names the layer: "simclr_mpi: ...";
 *  - NULL answers of the accessors.
 * Prints "mpi api: rank R ok" per rank, or the broken promise, exit 1. */
#include <stdio.h>
#include <string.h>

#include "simclr_mpi.h"

static int failures;

#define EXPECT(cond, ...)                                                                     \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "mpi api: line %d: %s: ", __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* A refused create: status, *out untouched, both messages, the words. */
static void refused(MPI_Comm comm, double timeout, int null_out, const char *word)
{
    simclr_error_set(SIMCLR_E_INTERNAL, "stale message");
    simclr_mpi *sentinel = (simclr_mpi *)&failures, *out = sentinel;
    simclr_status st = simclr_mpi_create(comm, timeout, null_out ? NULL : &out);
    const char *msg = simclr_last_error();
    EXPECT(st == SIMCLR_E_INVALID, "status %d (%s)", (int)st, msg);
    EXPECT(out == sentinel, "*out changed on error");
    EXPECT(starts_with(msg, "simclr_mpi_create: ") && strstr(msg, word), "simclr_last_error() is \"%s\", want %s",
           msg, word);
    EXPECT(strcmp(simclr_mpi_last_error(), msg) == 0, "simclr_mpi_last_error() \"%s\" != \"%s\"",
           simclr_mpi_last_error(), msg);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    EXPECT(simclr_mpi_rank(NULL) == -1 && simclr_mpi_size(NULL) == 0 && simclr_mpi_comm(NULL) == NULL,
           "NULL answers");
    simclr_mpi_destroy(NULL);

    refused(MPI_COMM_WORLD, 0.0, 0, "timeout");
    refused(MPI_COMM_WORLD, -1.0, 0, "timeout");
    refused(MPI_COMM_WORLD, 1e300, 0, "timeout");
    refused(MPI_COMM_WORLD, 10.0, 1, "out is NULL");
    refused(MPI_COMM_NULL, 10.0, 0, "MPI_COMM_NULL");

    simclr_error_set(SIMCLR_E_INTERNAL, "kept");
    simclr_mpi *mpi = NULL;
    simclr_status st = simclr_mpi_create(MPI_COMM_WORLD, 10.0, &mpi);
    EXPECT(st == SIMCLR_OK && mpi != NULL, "create: %s", simclr_last_error());
    if (st == SIMCLR_OK) {
        EXPECT(simclr_mpi_last_error()[0] == '\0', "not cleared by a successful create: %s", simclr_mpi_last_error());
        EXPECT(strcmp(simclr_last_error(), "kept") == 0, "simclr_last_error() changed by a success: %s",
               simclr_last_error());
        EXPECT(simclr_mpi_rank(mpi) == rank && simclr_mpi_size(mpi) == size, "rank %d size %d",
               simclr_mpi_rank(mpi), simclr_mpi_size(mpi));
        const simclr_comm *c = simclr_mpi_comm(mpi);
        /* A bad root is refused by every rank alike (no MPI call is made). */
        float x[2] = {1, 2};
        int code = c->broadcast(c->user, x, 2, size);
        const char *text = c->error_string(c->user, code);
        EXPECT(code == SIMCLR_MPI_E_COUNT, "broadcast to root %d returned %d", size, code);
        EXPECT(starts_with(text, "simclr_mpi: ") && strstr(text, "root"), "error text \"%s\"", text);
        /* The adapter still works after a refused call that made no MPI call. */
        x[0] = (float)rank;
        code = c->all_reduce_sum(c->user, x, 1);
        EXPECT(code == 0 && x[0] == (float)(size * (size - 1) / 2), "all_reduce_sum: code %d, %g", code,
               (double)x[0]);
        simclr_mpi_destroy(mpi);
    }

    MPI_Finalize();
    refused(MPI_COMM_WORLD, 10.0, 0, "finalized");
    if (failures) return 1;
    printf("mpi api: rank %d ok\n", rank);
    return 0;
}
