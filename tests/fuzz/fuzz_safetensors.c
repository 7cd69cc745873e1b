/* libFuzzer: simclr_module_import_safetensors on arbitrary bytes into a
 * small module (fuzz_models.h). A failing import must leave the module
 * unchanged. */
#include "fuzz_models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load_into_module(simclr_module_import_safetensors, "safetensors", data, size);
    return 0;
}
