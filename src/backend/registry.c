/* The registry: one row per backend, each with its copies per instruction
 * set (NULL where a copy does not exist). Adding a backend is adding a row;
 * the context constructor, simclr_backend_count/_name and the kernel tests
 * read this table only. */
#include <string.h>

#include "backend.h"

static const simclr__backend *const ref_copies[SIMCLR__ISA_COUNT] = {&simclr__backend_ref, NULL, NULL};

static const struct {
    const char *name;
    const simclr__backend *const *copies; /* [SIMCLR__ISA_COUNT], narrowest first */
} backends[] = {
    {"cpu", simclr__backend_cpu_variants},
    {"ref", ref_copies},
};
#define N_BACKENDS ((int)(sizeof backends / sizeof backends[0]))

const simclr__backend *simclr__backend_find(const char *name, int max_isa)
{
    for (int b = 0; b < N_BACKENDS; b++) {
        if (strcmp(name, backends[b].name) != 0) continue;
        /* The widest copy allowed; a backend without ISA copies has only
         * its portable one. */
        for (int isa = max_isa < SIMCLR__ISA_COUNT ? max_isa : SIMCLR__ISA_COUNT - 1; isa >= 0; isa--)
            if (backends[b].copies[isa]) return backends[b].copies[isa];
        return NULL;
    }
    return NULL;
}

int simclr_backend_count(void) { return N_BACKENDS; }

const char *simclr_backend_name(int index) { return (index >= 0 && index < N_BACKENDS) ? backends[index].name : NULL; }
