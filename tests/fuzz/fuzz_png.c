/* libFuzzer: the PNG decoder of libsimclr_image (fuzz_image.h has the
 * checks). Inputs whose file does not start with the PNG signature are
 * rejected (return -1: libFuzzer keeps them out of the corpus), so the
 * executions this harness reports are the PNG loader's own; make fuzz
 * reports them separately from fuzz_jpeg's. */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char signature[] = "\x89PNG\r\n\x1a\n";
    if (size < 1 + 8 || memcmp(data + 1, signature, 8) != 0) return -1;
    return fuzz_image_one(data, size);
}
