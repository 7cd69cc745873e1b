/* Instruction sets the "cpu" backend is built for, and which one runs.
 *
 * The machine's widest set is read once from the CPU (cpuid through the
 * compiler's builtins, which also check that the OS saves the wide
 * registers). A context may be asked for a narrower one through the
 * SIMCLR_ISA environment variable (read by simclr_context_create in
 * backend/context_create.c, parsed by simclr__isa_parse here), so that a
 * test run on an AVX-512 machine also exercises the AVX2 and portable code. */
#include <string.h>

#include "backend.h"

static const char *const isa_names[SIMCLR__ISA_COUNT] = {"portable", "avx2", "avx512"};

/* Copies of the cpu backend, built by the Makefile per ISA (cpu/kernels.h). */
extern const simclr__backend simclr__backend_cpu_portable;
#if defined(__x86_64__) && !defined(SIMCLR_PORTABLE_ONLY)
extern const simclr__backend simclr__backend_cpu_avx2;
extern const simclr__backend simclr__backend_cpu_avx512;
const simclr__backend *const simclr__backend_cpu_variants[SIMCLR__ISA_COUNT] = {
    &simclr__backend_cpu_portable, &simclr__backend_cpu_avx2, &simclr__backend_cpu_avx512};
#else
const simclr__backend *const simclr__backend_cpu_variants[SIMCLR__ISA_COUNT] = {&simclr__backend_cpu_portable, NULL,
                                                                               NULL};
#endif

int simclr__isa_machine(void)
{
    int best = SIMCLR__ISA_PORTABLE;
#if defined(__x86_64__) && !defined(SIMCLR_PORTABLE_ONLY) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = SIMCLR__ISA_AVX2;
    /* The AVX-512 copy is compiled with F, VL, BW and DQ (Skylake-X and
     * later, AMD Zen 4 and later). */
    if (best == SIMCLR__ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        best = SIMCLR__ISA_AVX512;
#endif
    return best;
}

int simclr__isa_parse(const char *name)
{
    for (int i = 0; i < SIMCLR__ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0) return i;
    return -1;
}

const char *simclr__isa_name(int isa) { return isa >= 0 && isa < SIMCLR__ISA_COUNT ? isa_names[isa] : NULL; }

int simclr_isa_supported(const char *isa)
{
    int v = isa ? simclr__isa_parse(isa) : -1;
    return v >= 0 && v <= simclr__isa_machine() && simclr__backend_cpu_variants[v] != NULL;
}
