/* The one EXIF field a loader must honour: IFD0's Orientation (tag 0x0112).
 * Every offset is checked against the payload; anything malformed means
 * "no orientation" (1), never a failure. */
#include <string.h>

#include "internal.h"

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int simclr__img_exif_orientation(const uint8_t *data, size_t size)
{
    if (size >= 6 && memcmp(data, "Exif\0\0", 6) == 0) data += 6, size -= 6;
    if (size < 8) return 1;
    int le;
    if (data[0] == 'I' && data[1] == 'I') le = 1;
    else if (data[0] == 'M' && data[1] == 'M') le = 0;
    else return 1;
    if (rd16(data + 2, le) != 42) return 1;
    uint32_t ifd = rd32(data + 4, le);
    if (ifd > size || size - ifd < 2) return 1;
    unsigned n = rd16(data + ifd, le);
    if ((size - ifd - 2) / 12 < n) return 1;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = data + ifd + 2 + 12 * i;
        if (rd16(e, le) != 0x0112) continue;
        if (rd16(e + 2, le) != 3 || rd32(e + 4, le) != 1) return 1; /* SHORT, count 1 */
        unsigned v = rd16(e + 8, le);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}
