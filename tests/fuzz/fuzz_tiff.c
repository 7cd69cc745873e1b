/* libFuzzer: the TIFF decoder of libsimclr_medical (libtiff;
 * fuzz_medical.h has the checks). Inputs without a TIFF signature are
 * rejected (return -1), so the executions are the TIFF path's own. */
#include "fuzz_medical.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || !fuzz_medical_is_tiff(data + 1, size - 1)) return -1;
    return fuzz_medical_one(data, size);
}
