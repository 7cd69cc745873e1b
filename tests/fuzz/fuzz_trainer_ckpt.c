/* libFuzzer: simclr_trainer_load on arbitrary bytes into a small trainer
 * (two small MLPs as encoder and head, LARS: loading does not care what the
 * encoder is). A failing load must leave the modules unchanged. */
#include "fuzz_util.h"
#include "fuzz_models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_trainer t;
    if (!t.ctx) fuzz_trainer_make(&t);
    const char *path = fuzz_path("trainer");
    fuzz_write(path, data, size);
    uint64_t before = fuzz_module_hash(t.enc) ^ (fuzz_module_hash(t.head) * 31);
    simclr_status st = simclr_trainer_load(t.tr, path);
    fuzz_expect_load_status(st);
    if (st != SIMCLR_OK && (fuzz_module_hash(t.enc) ^ (fuzz_module_hash(t.head) * 31)) != before) {
        fprintf(stderr, "a failed load changed the trainer: %s\n", simclr_last_error());
        abort();
    }
    return 0;
}
