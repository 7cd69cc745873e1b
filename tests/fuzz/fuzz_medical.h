/* The medical decoder's libFuzzer body, shared by fuzz_dicom.c and
 * fuzz_tiff.c: simclr_medical_decode_memory (libsimclr_medical: DICOM
 * through DCMTK and OpenJPEG, TIFF through libtiff) on arbitrary bytes. The
 * input is [option byte][the file]; bits 0-1 of the option pick the frame
 * or page (0..3), bit 2 decodes through a file instead (DCMTK reads files
 * with its own stream and loads large values late). Checks: only the
 * statuses a bad file may give; on failure *out untouched and a message
 * "medical: NAME: ..."; on success a size within max_pixels, 1 or 3
 * channels, the frame asked for, every value readable (and windowed). */
#ifndef SIMCLR_FUZZ_MEDICAL_H
#define SIMCLR_FUZZ_MEDICAL_H

#include "fuzz_util.h"
#include "simclr_medical.h"

/* Small enough that a bomb is refused quickly under ASan, large enough for
 * every seed. */
#define FUZZ_MAX_PIXELS (1 << 16)

static int fuzz_medical_one(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int64_t frame = data[0] & 3;
    int from_file = (data[0] >> 2) & 1;
    simclr_medical_image *const sentinel = (simclr_medical_image *)&sentinel;
    simclr_medical_image *img = sentinel;
    const char *name = from_file ? fuzz_path("medical") : "fuzz";
    simclr_status st;
    if (from_file) {
        fuzz_write(name, data + 1, size - 1);
        st = simclr_medical_decode_file(name, frame, FUZZ_MAX_PIXELS, &img);
    } else st = simclr_medical_decode_memory(data + 1, size - 1, name, frame, FUZZ_MAX_PIXELS, &img);
    if (st != SIMCLR_OK) {
        if (st != SIMCLR_E_FORMAT && st != SIMCLR_E_UNSUPPORTED && st != SIMCLR_E_NOMEM && st != SIMCLR_E_INVALID &&
            st != SIMCLR_E_IO) {
            fprintf(stderr, "unexpected status %s: %s\n", simclr_status_string(st), simclr_last_error());
            abort();
        }
        if (img != sentinel) {
            fprintf(stderr, "a failed decode wrote its output: %s\n", simclr_last_error());
            abort();
        }
        char want[300];
        snprintf(want, sizeof want, "medical: %s", name);
        if (strncmp(simclr_last_error(), want, strlen(want)) != 0) {
            fprintf(stderr, "a failure must name the file: \"%s\"\n", simclr_last_error());
            abort();
        }
        return 0;
    }
    int64_t h = simclr_medical_image_height(img), w = simclr_medical_image_width(img);
    int c = simclr_medical_image_channels(img);
    if (h < 1 || w < 1 || h * w > FUZZ_MAX_PIXELS || (c != 1 && c != 3) ||
        simclr_medical_image_frame(img) != frame || simclr_medical_image_frames(img) <= frame) {
        fprintf(stderr, "decoded %lld x %lld x %d, frame %lld of %lld: out of bounds\n", (long long)h, (long long)w, c,
                (long long)simclr_medical_image_frame(img), (long long)simclr_medical_image_frames(img));
        abort();
    }
    const float *v = simclr_medical_image_data(img);
    uint8_t *u8 = malloc((size_t)(h * w * c));
    if (!u8) abort();
    double center = 0, width = 0;
    if (!simclr_medical_image_window(img, &center, &width)) center = 0, width = 256;
    FUZZ_OK(simclr_medical_window_u8(v, h * w * c, center, width, simclr_medical_image_inverted(img), u8));
    volatile unsigned sum = 0;
    for (int64_t i = 0; i < h * w * c; i++) sum += u8[i];
    (void)sum;
    (void)strlen(simclr_medical_image_sop_instance_uid(img));
    (void)strlen(simclr_medical_image_group_id(img));
    free(u8);
    simclr_medical_image_destroy(img);
    return 0;
}

static int fuzz_medical_is_tiff(const uint8_t *file, size_t n)
{
    if (n >= 132 && memcmp(file + 128, "DICM", 4) == 0) return 0;
    return n >= 4 && (memcmp(file, "II*\0", 4) == 0 || memcmp(file, "MM\0*", 4) == 0 ||
                      memcmp(file, "II+\0", 4) == 0 || memcmp(file, "MM\0+", 4) == 0);
}

#endif
