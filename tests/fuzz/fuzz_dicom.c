/* libFuzzer: the DICOM decoder of libsimclr_medical (DCMTK, OpenJPEG;
 * fuzz_medical.h has the checks). Inputs the companion would read as TIFF
 * are rejected (return -1: libFuzzer keeps them out of the corpus), so the
 * executions this harness reports are the DICOM path's own; make fuzz
 * reports them separately from fuzz_tiff's. */
#include "fuzz_medical.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 1 && fuzz_medical_is_tiff(data + 1, size - 1)) return -1;
    return fuzz_medical_one(data, size);
}
