#include "error.h"

#include <stdarg.h>
#include <stdio.h>

/* One message per thread: callers on different contexts never see each
 * other's errors, and there is no lock. */
static _Thread_local char last_error[512];

const char *simclr_last_error(void) { return last_error; }

simclr_status simclr__fail(simclr_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *simclr_status_string(simclr_status status)
{
    switch (status) {
    case SIMCLR_OK: return "ok";
    case SIMCLR_E_INVALID: return "invalid argument";
    case SIMCLR_E_SHAPE: return "shape mismatch";
    case SIMCLR_E_NOMEM: return "out of memory";
    case SIMCLR_E_IO: return "input/output error";
    case SIMCLR_E_FORMAT: return "bad file format";
    case SIMCLR_E_NUMERIC: return "non-finite number";
    case SIMCLR_E_UNSUPPORTED: return "unsupported";
    case SIMCLR_E_STATE: return "wrong call order";
    case SIMCLR_E_INTERNAL: return "internal error";
    case SIMCLR_E_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

#define SIMCLR__STR2(x) #x
#define SIMCLR__STR(x) SIMCLR__STR2(x)

unsigned simclr_version_number(void) { return SIMCLR_VERSION_NUMBER; }

const char *simclr_version_string(void)
{
    return SIMCLR__STR(SIMCLR_VERSION_MAJOR) "." SIMCLR__STR(SIMCLR_VERSION_MINOR) "." SIMCLR__STR(
        SIMCLR_VERSION_PATCH);
}
