#include <string.h>

#include "backend.h"

/* Backends by name; "cpu" resolves to one of its per-ISA copies. */
static const char *const names[] = {"cpu", "ref"};
#define N_BACKENDS ((int)(sizeof names / sizeof names[0]))

const simclr__backend *simclr__backend_find(const char *name, int max_isa)
{
    if (strcmp(name, "ref") == 0) return &simclr__backend_ref;
    if (strcmp(name, "cpu") != 0) return NULL;
    for (int isa = max_isa; isa >= 0; isa--)
        if (isa < SIMCLR__ISA_COUNT && simclr__backend_cpu_variants[isa]) return simclr__backend_cpu_variants[isa];
    return NULL;
}

int simclr_backend_count(void) { return N_BACKENDS; }

const char *simclr_backend_name(int index) { return (index >= 0 && index < N_BACKENDS) ? names[index] : NULL; }
