/* Error reporting inside the library: every failing path sets the calling
 * thread's message and returns its status in one expression. */
#ifndef SIMCLR_CORE_ERROR_H
#define SIMCLR_CORE_ERROR_H

#include "simclr.h"

#if defined(__GNUC__)
#define SIMCLR__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SIMCLR__PRINTF(a, b)
#endif

/* Formats the thread-local message and returns status. */
simclr_status simclr__fail(simclr_status status, const char *fmt, ...) SIMCLR__PRINTF(2, 3);

/* Propagates a failing status from a call that has already set the message. */
#define SIMCLR__TRY(expr)                                   \
    do {                                                    \
        simclr_status simclr__st_ = (expr);                 \
        if (simclr__st_ != SIMCLR_OK) return simclr__st_;   \
    } while (0)

/* The common guard for a NULL argument. */
#define SIMCLR__CHECK_ARG(cond, fn, what)                                        \
    do {                                                                         \
        if (!(cond)) return simclr__fail(SIMCLR_E_INVALID, "%s: %s", fn, what); \
    } while (0)

#endif
