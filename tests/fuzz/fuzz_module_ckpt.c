/* libFuzzer: simclr_module_load on arbitrary bytes, into a small module
 * (fuzz_models.h) whose checkpoint the seed corpus holds. A failing load
 * must leave the module unchanged, which the harness checks by hashing the
 * tensors. */
#include "fuzz_models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load_into_module(simclr_module_load, "module", data, size);
    return 0;
}
