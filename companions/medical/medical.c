/* libsimclr_medical's entry points: the format told by the signature, the
 * file checks (a regular file, read from one descriptor), the image's
 * accessors and the VOI window. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

simclr_status simclr__med_fail(simclr_status status, const char *fmt, ...)
{
    char msg[600];
    int n = snprintf(msg, sizeof msg, "medical: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    return simclr_error_set(status, msg);
}

/* TIFF by its magic -- unless "DICM" follows a 128-byte preamble: a DICOM
 * preamble may itself hold a TIFF header (dual-personality files). */
static int is_tiff(const uint8_t *head, size_t n)
{
    if (n >= 132 && memcmp(head + 128, "DICM", 4) == 0) return 0;
    return n >= 4 && ((head[0] == 'I' && head[1] == 'I' && head[2] == 42 && head[3] == 0) ||
                      (head[0] == 'M' && head[1] == 'M' && head[2] == 0 && head[3] == 42) ||
                      (head[0] == 'I' && head[1] == 'I' && head[2] == 43 && head[3] == 0) || /* BigTIFF */
                      (head[0] == 'M' && head[1] == 'M' && head[2] == 0 && head[3] == 43));
}

static simclr_status decode(const simclr__med_source *src, const uint8_t *head, size_t head_n, int64_t frame,
                            int64_t max_pixels, simclr_medical_image **out)
{
    if (src->size == 0) return simclr__med_fail(SIMCLR_E_FORMAT, "%s: the file is empty", src->name);
    if (max_pixels == 0) max_pixels = SIMCLR_MEDICAL_DEFAULT_MAX_PIXELS;
    simclr_medical_image *img = calloc(1, sizeof *img);
    if (!img) return simclr__med_fail(SIMCLR_E_NOMEM, "%s: no memory for the image", src->name);
    simclr_status st = is_tiff(head, head_n) ? simclr__med_tiff(src, frame, max_pixels, img)
                                             : simclr__med_dicom(src, frame, max_pixels, img);
    if (st != SIMCLR_OK) {
        free(img);
        return st;
    }
    *out = img;
    return SIMCLR_OK;
}

simclr_status simclr_medical_decode_memory(const void *data, size_t size, const char *name, int64_t frame,
                                           int64_t max_pixels, simclr_medical_image **out)
{
    if (!name) name = "<memory>";
    if (!data || !out) return simclr__med_fail(SIMCLR_E_INVALID, "%s: data or out is NULL", name);
    if (frame < 0) return simclr__med_fail(SIMCLR_E_INVALID, "%s: frame %lld is negative", name, (long long)frame);
    if (max_pixels < 0)
        return simclr__med_fail(SIMCLR_E_INVALID, "%s: max_pixels %lld is negative", name, (long long)max_pixels);
    simclr__med_source src = {data, size, -1, name};
    return decode(&src, data, size, frame, max_pixels, out);
}

static const char *kind_of(mode_t mode)
{
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISSOCK(mode) ? "a socket"
         : S_ISCHR(mode) ? "a character device" : S_ISBLK(mode) ? "a block device" : "not a file";
}

/* A regular file is checked before it is opened (a FIFO would block open()
 * until a writer comes, a device may act on open) and again on the opened
 * descriptor, in case the entry changed in between: O_NONBLOCK makes that
 * open return at once whatever it finds. */
simclr_status simclr_medical_decode_file(const char *path, int64_t frame, int64_t max_pixels,
                                         simclr_medical_image **out)
{
    if (!path) return simclr__med_fail(SIMCLR_E_INVALID, "simclr_medical_decode_file: path is NULL");
    if (!out) return simclr__med_fail(SIMCLR_E_INVALID, "%s: out is NULL", path);
    if (frame < 0) return simclr__med_fail(SIMCLR_E_INVALID, "%s: frame %lld is negative", path, (long long)frame);
    if (max_pixels < 0)
        return simclr__med_fail(SIMCLR_E_INVALID, "%s: max_pixels %lld is negative", path, (long long)max_pixels);
    struct stat sb;
    if (stat(path, &sb) != 0) return simclr__med_fail(SIMCLR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return simclr__med_fail(SIMCLR_E_IO, "%s: not a regular file (%s)", path, kind_of(sb.st_mode));
    int fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return simclr__med_fail(SIMCLR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    int flags = fcntl(fd, F_GETFL);
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int saved = errno;
        int regular = S_ISREG(sb.st_mode);
        close(fd);
        return regular ? simclr__med_fail(SIMCLR_E_IO, "%s: cannot open: %s", path, strerror(saved))
                       : simclr__med_fail(SIMCLR_E_IO, "%s: not a regular file (%s)", path, kind_of(sb.st_mode));
    }
    uint8_t head[132];
    ssize_t got;
    do got = pread(fd, head, sizeof head, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        int saved = errno;
        close(fd);
        return simclr__med_fail(SIMCLR_E_IO, "%s: read error: %s", path, strerror(saved));
    }
    simclr__med_source src = {NULL, sb.st_size > 0 ? (size_t)sb.st_size : 0, fd, path};
    simclr_status st = decode(&src, head, (size_t)got, frame, max_pixels, out);
    close(fd);
    return st;
}

void simclr_medical_image_destroy(simclr_medical_image *img)
{
    if (!img) return;
    free(img->data);
    free(img->sop_uid);
    free(img->group_id);
    free(img);
}

const float *simclr_medical_image_data(const simclr_medical_image *img) { return img ? img->data : NULL; }
int64_t simclr_medical_image_height(const simclr_medical_image *img) { return img ? img->h : 0; }
int64_t simclr_medical_image_width(const simclr_medical_image *img) { return img ? img->w : 0; }
int simclr_medical_image_channels(const simclr_medical_image *img) { return img ? img->c : 0; }
int64_t simclr_medical_image_frames(const simclr_medical_image *img) { return img ? img->frames : 0; }
int64_t simclr_medical_image_frame(const simclr_medical_image *img) { return img ? img->frame : -1; }
int simclr_medical_image_format(const simclr_medical_image *img) { return img ? img->format : 0; }
const char *simclr_medical_image_photometric(const simclr_medical_image *img) { return img ? img->photometric : ""; }
int simclr_medical_image_inverted(const simclr_medical_image *img) { return img ? img->inverted : 0; }
int simclr_medical_image_bits_stored(const simclr_medical_image *img) { return img ? img->bits : 0; }
int simclr_medical_image_is_signed(const simclr_medical_image *img) { return img ? img->is_signed : 0; }
const char *simclr_medical_image_sop_instance_uid(const simclr_medical_image *img) { return img ? img->sop_uid : ""; }
const char *simclr_medical_image_group_id(const simclr_medical_image *img) { return img ? img->group_id : ""; }

void simclr_medical_image_rescale(const simclr_medical_image *img, double *slope, double *intercept)
{
    if (slope) *slope = img ? img->slope : 1.0;
    if (intercept) *intercept = img ? img->intercept : 0.0;
}

int simclr_medical_image_window(const simclr_medical_image *img, double *center, double *width)
{
    if (!img || !img->has_window) return 0;
    if (center) *center = img->center;
    if (width) *width = img->width;
    return 1;
}

static simclr_status window_check(const char *fn, const float *values, int64_t count, double center, double width,
                                  const void *out)
{
    if (count < 0) return simclr__med_fail(SIMCLR_E_INVALID, "%s: count %lld is negative", fn, (long long)count);
    if (count > 0 && (!values || !out)) return simclr__med_fail(SIMCLR_E_INVALID, "%s: values or out is NULL", fn);
    if (!isfinite(center) || !isfinite(width))
        return simclr__med_fail(SIMCLR_E_INVALID, "%s: center %g and width %g must be finite", fn, center, width);
    if (width < 1) return simclr__med_fail(SIMCLR_E_INVALID, "%s: width %g is below 1", fn, width);
    return SIMCLR_OK;
}

/* DICOM's LINEAR VOI function to [0, 1]. */
static double window_one(float x, double lo, double hi, double c, double w, int invert)
{
    double y;
    if (isnan(x)) return 0;
    if (x <= lo) y = 0;
    else if (x > hi) y = 1;
    else y = ((double)x - (c - 0.5)) / (w - 1) + 0.5;
    if (y < 0) y = 0; /* w == 1 leaves no room between lo and hi; rounding can leave y just outside */
    if (y > 1) y = 1;
    return invert ? 1 - y : y;
}

simclr_status simclr_medical_window_f32(const float *values, int64_t count, double center, double width, int invert,
                                        float *out)
{
    simclr_status st = window_check("simclr_medical_window_f32", values, count, center, width, out);
    if (st != SIMCLR_OK) return st;
    double lo = center - 0.5 - (width - 1) / 2, hi = center - 0.5 + (width - 1) / 2;
    for (int64_t i = 0; i < count; i++) out[i] = (float)window_one(values[i], lo, hi, center, width, invert);
    return SIMCLR_OK;
}

simclr_status simclr_medical_window_u8(const float *values, int64_t count, double center, double width, int invert,
                                       uint8_t *out)
{
    simclr_status st = window_check("simclr_medical_window_u8", values, count, center, width, out);
    if (st != SIMCLR_OK) return st;
    double lo = center - 0.5 - (width - 1) / 2, hi = center - 0.5 + (width - 1) / 2;
    for (int64_t i = 0; i < count; i++)
        out[i] = (uint8_t)floor(255 * window_one(values[i], lo, hi, center, width, invert) + 0.5);
    return SIMCLR_OK;
}
