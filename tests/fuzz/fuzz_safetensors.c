/* libFuzzer: simclr_module_import_safetensors on arbitrary bytes into a
 * small module (fuzz_models.h). A failing import must leave the module
 * unchanged. */
#include "fuzz_util.h"
#include "fuzz_models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static simclr_context *ctx;
    static simclr_module *m;
    if (!ctx) {
        FUZZ_OK(simclr_context_create("ref", 1, NULL, &ctx));
        FUZZ_OK(fuzz_encoder(ctx, &m));
    }
    const char *path = fuzz_path("safetensors");
    fuzz_write(path, data, size);
    uint64_t before = fuzz_module_hash(m);
    simclr_status st = simclr_module_import_safetensors(m, path);
    fuzz_expect_load_status(st);
    if (st != SIMCLR_OK && fuzz_module_hash(m) != before) {
        fprintf(stderr, "a failed import changed the module: %s\n", simclr_last_error());
        abort();
    }
    return 0;
}
