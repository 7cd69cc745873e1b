#include <string.h>

#include "backend.h"

static const simclr__backend *const backends[] = {&simclr__backend_cpu, &simclr__backend_ref};
#define N_BACKENDS ((int)(sizeof backends / sizeof backends[0]))

const simclr__backend *simclr__backend_find(const char *name)
{
    for (int i = 0; i < N_BACKENDS; i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

int simclr_backend_count(void) { return N_BACKENDS; }

const char *simclr_backend_name(int index)
{
    return (index >= 0 && index < N_BACKENDS) ? backends[index]->name : NULL;
}
