/* libsimclr_mpi: the MPI adapter for libsimclr's communicator (simclr_comm).
 *
 * An optional companion: libsimclr itself has no MPI dependency. Build with
 * `make mpi` (Open MPI from Debian: libopenmpi-dev); `make install` installs
 * it when mpicc is found. This header includes <mpi.h>, so compile the host
 * with mpicc (or the MPI include flags) and link -lsimclr_mpi -lsimclr and
 * MPI: `mpicc app.c $(pkg-config --cflags --libs libsimclr_mpi)`.
 *
 *   MPI_Init(&argc, &argv);
 *   simclr_mpi *mpi;
 *   simclr_mpi_create(MPI_COMM_WORLD, 300.0, &mpi);      // 5-minute timeout
 *   simclr_trainer_set_comm(trainer, simclr_mpi_comm(mpi)); // every rank
 *   ... simclr_trainer_step(trainer, my_shard, seed, &loss) ...
 *   on SIMCLR_E_IO from a step: print simclr_last_error(), MPI_Abort(MPI_COMM_WORLD, 1)
 *   simclr_mpi_destroy(mpi); MPI_Finalize();
 *
 * The collectives are MPI's non-blocking ones (MPI_Ireduce + MPI_Ibcast for
 * the sum, so every rank gets the bits rank 0 computed; MPI_Iallgather;
 * MPI_Ibcast) completed by polling MPI_Test until the timeout: a peer that
 * died or stopped calling becomes an error code (SIMCLR_MPI_E_TIMEOUT), not a
 * hang. After any failure the adapter refuses further calls
 * (SIMCLR_MPI_E_BROKEN): the abandoned requests still reference their
 * buffers and the job can only be ended (MPI_Abort).
 *
 * Errors follow libsimclr's model, as libsimclr_image's do: a fallible call
 * returns a simclr_status and sets simclr_last_error() for the calling thread
 * with a message that starts with the function's name
 * ("simclr_mpi_create: timeout 0 s, need > 0"). A collective that fails
 * returns one of the codes below to libsimclr, whose call (e.g.
 * simclr_trainer_step) then fails with SIMCLR_E_IO and a simclr_last_error()
 * naming the collective, the rank and the adapter's text, which starts with
 * "simclr_mpi: ".
 *
 * Threads: an adapter is used from one thread at a time (MPI_THREAD_SINGLE
 * or FUNNELED suffices when that is the thread that initialized MPI). */
#ifndef SIMCLR_MPI_H
#define SIMCLR_MPI_H

#include <mpi.h>

#include "simclr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Codes the collectives return (simclr_comm's error convention: 0 is
 * success); simclr_comm's error_string gives the text of the last failure. */
#define SIMCLR_MPI_E_TIMEOUT 1 /* the collective did not complete within the timeout */
#define SIMCLR_MPI_E_MPI     2 /* MPI returned an error (its text is in the message) */
#define SIMCLR_MPI_E_COUNT   3 /* a count too large for MPI's int counts, or a bad root */
#define SIMCLR_MPI_E_BROKEN  4 /* an earlier collective failed: no further calls */

typedef struct simclr_mpi simclr_mpi;

/* Creates an adapter over a duplicate of comm (MPI_Comm_dup, so a collective
 * call over comm; errors on the duplicate return instead of aborting).
 * timeout_seconds: how long one collective may wait for its peers (> 0 and
 * < 1e9; choose more than the longest step imbalance between ranks, e.g. 300).
 * Returns SIMCLR_OK; on error SIMCLR_E_INVALID (out NULL, comm MPI_COMM_NULL,
 * a bad timeout, MPI not initialized or already finalized), SIMCLR_E_NOMEM or SIMCLR_E_IO (an MPI call failed, with
 * MPI's text), with simclr_last_error() set, and *out untouched.
 * out may not be NULL. *out is owned by the caller (simclr_mpi_destroy).
 * Threads: the thread that calls MPI for the process, once per rank at the
 * same point (collective). */
SIMCLR_API simclr_status simclr_mpi_create(MPI_Comm comm, double timeout_seconds, simclr_mpi **out);

/* Frees the adapter and its duplicate communicator (MPI_Comm_free, a
 * collective call) unless a collective failed, in which case the duplicate
 * is left to MPI_Abort / MPI_Finalize. NULL is a no-op. Never fails.
 * Every rank calls it (collective) once the trainers using its communicator
 * are destroyed or detached. Threads: one thread at a time per adapter,
 * the thread that calls MPI. */
SIMCLR_API void simclr_mpi_destroy(simclr_mpi *mpi);

/* Returns the communicator to hand to simclr_trainer_set_comm; owned by the
 * adapter and valid until simclr_mpi_destroy (not to be freed). NULL for a
 * NULL mpi. Never fails. Threads: one thread at a time per adapter. */
SIMCLR_API const simclr_comm *simclr_mpi_comm(const simclr_mpi *mpi);

/* Return the adapter's rank and size in its communicator; -1 and 0 for a
 * NULL mpi. Never fail. Threads: one thread at a time per adapter. */
SIMCLR_API int simclr_mpi_rank(const simclr_mpi *mpi);
SIMCLR_API int simclr_mpi_size(const simclr_mpi *mpi);

/* Deprecated since 0.2: use simclr_last_error(), which simclr_mpi_create
 * sets too. Returns the message of the last failure of simclr_mpi_create on
 * this thread ("" when none). Never NULL; per-thread storage owned by the
 * adapter library (not to be freed), valid until the next simclr_mpi_create
 * on this thread, which clears it (so after a successful create it is "").
 * Never fails. Threads: any thread, any time; each reads its own message. */
SIMCLR_API const char *simclr_mpi_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* SIMCLR_MPI_H */
