/* libFuzzer: the JPEG decoder of libsimclr_image (fuzz_image.h has the
 * checks). Inputs whose file does not start with the JPEG signature are
 * rejected (return -1: libFuzzer keeps them out of the corpus), so the
 * executions this harness reports are the JPEG loader's own; make fuzz
 * reports them separately from fuzz_png's. */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char signature[] = "\xff\xd8";
    if (size < 1 + 2 || memcmp(data + 1, signature, 2) != 0) return -1;
    return fuzz_image_one(data, size);
}
