/* libsimclr_medical: the optional medical-image companion of libsimclr.
 *
 * DICOM files (through DCMTK, and OpenJPEG for JPEG 2000) and TIFF files
 * (through libtiff) decoded to
 * float32 [H, W, C] images in physical units -- Hounsfield units for a CT
 * with Rescale Slope/Intercept, the stored 16-bit value of a microscopy
 * TIFF -- plus the window that maps them to [0, 1] or to 8 bits. Nothing is
 * quantized on the way: 12- and 16-bit values reach the caller exactly.
 * libsimclr itself stays free of these libraries: a host that decodes
 * medical images links -lsimclr_medical -lsimclr (pkg-config:
 * libsimclr_medical).
 *
 * Errors follow libsimclr's model: every fallible call returns a
 * simclr_status and sets simclr_last_error() for the calling thread. The
 * messages start with "medical: " and name the file (its path, or the name
 * given for a buffer); they never contain a value of a patient-identifying
 * DICOM attribute (names, IDs, dates, UIDs): only structure (sizes, bit
 * depths, the transfer syntax UID, the photometric interpretation). The
 * library prints nothing: at the first DICOM decode it switches DCMTK's
 * logger off (OFLog, which would print warnings on stderr) and registers
 * DCMTK's JPEG and JPEG-LS decoders (process-wide in DCMTK; a host that
 * uses DCMTK itself may configure its logger again). OpenJPEG and libtiff
 * report to this library's own handlers.
 *
 * Decoding functions are thread-safe (no shared state of this library); an
 * image is used from one thread at a time, or read-only from many. */
#ifndef SIMCLR_MEDICAL_H
#define SIMCLR_MEDICAL_H

#include "simclr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PIL's decompression-bomb limit, as libsimclr_image's: a larger declared
 * pixel count is refused before any pixel memory is allocated. */
#define SIMCLR_MEDICAL_DEFAULT_MAX_PIXELS 89478485

/* What a decoded image came from (simclr_medical_image_format). */
typedef enum simclr_medical_format {
    SIMCLR_MEDICAL_DICOM = 1,
    SIMCLR_MEDICAL_TIFF  = 2
} simclr_medical_format;

/* One decoded frame (DICOM) or page (TIFF) and what the file says about it.
 * Opaque; read through the accessors below. */
typedef struct simclr_medical_image simclr_medical_image;

/* ---- decoding ---- */

/* Decodes frame `frame` (0-based) of a DICOM file or page `frame` of a TIFF
 * file held in memory. The format is told by the signature: "II*\0" or
 * "MM\0*" is TIFF, anything else is read as DICOM (with or without the
 * 128-byte preamble and "DICM").
 *
 * DICOM (DCMTK; RLE decoded by this library, JPEG 2000 by OpenJPEG):
 * transfer syntaxes Implicit VR Little Endian, Explicit VR
 * Little and Big Endian, Deflated Explicit VR Little Endian, RLE Lossless,
 * JPEG Baseline (process 1), JPEG Extended (2 & 4), JPEG Lossless (process
 * 14 and its selection value 1), JPEG-LS (lossless and near-lossless) and
 * JPEG 2000 (lossless and lossy, through OpenJPEG); any other is refused
 * (SIMCLR_E_UNSUPPORTED naming its UID). Samples of 8, 16 or 32 bits
 * allocated, any Bits Stored (the bits Bits Stored / High Bit select, sign
 * extended when Pixel Representation is 1), 1 sample (MONOCHROME1,
 * MONOCHROME2) or 3 (RGB, planar configuration 0 or 1; YBR_FULL,
 * YBR_FULL_422 only in JPEG baseline/extended files and YBR_RCT, YBR_ICT
 * only in JPEG 2000 files, whose decoders return RGB). One frame is
 * decoded: the others stay compressed. A gray value is Rescale Slope x stored + Rescale
 * Intercept, computed in double and rounded once to float (slope 1,
 * intercept 0 when absent; an enhanced multi-frame file's Pixel Value
 * Transformation Sequence, per frame before shared, takes precedence); RGB
 * samples are the stored values. MONOCHROME1 values are not inverted here
 * (they are physical values): simclr_medical_image_inverted tells, and the
 * window functions invert. Refused: Modality LUT Sequence, palette color
 * and other photometric interpretations, 1-bit or float pixel data
 * (SIMCLR_E_UNSUPPORTED).
 *
 * TIFF (libtiff): 8-, 16- or 32-bit unsigned or signed integer and 32-bit
 * IEEE float samples, gray (MinIsBlack, or MinIsWhite: reported as
 * MONOCHROME1) or RGB (extra samples such as alpha are dropped), contiguous
 * or separate planes, striped or tiled, any compression this libtiff
 * decodes (none, LZW, Deflate, PackBits, JPEG, ...); the values are the
 * stored samples (32-bit integers rounded to float). Palette, CMYK, 1-bit
 * and 64-bit samples are refused (SIMCLR_E_UNSUPPORTED).
 *
 * max_pixels (0 = SIMCLR_MEDICAL_DEFAULT_MAX_PIXELS, < 0 invalid) bounds
 * the pixel count of the frame or page (rows x columns), checked on the
 * declared size before any pixel memory is allocated. name (NULL = "<memory>") is used in messages.
 *
 * *out is a new image owned by the caller (simclr_medical_image_destroy).
 * Errors: SIMCLR_E_INVALID (data, out NULL; frame < 0; max_pixels < 0;
 * frame beyond the file's frames/pages, naming their number);
 * SIMCLR_E_FORMAT (empty, not DICOM/TIFF, a truncated file, a value length
 * running past its container -- checked on every DICOM element before DCMTK
 * reads the file, which would allocate it --, corrupt or truncated pixel
 * data -- native pixel data shorter than rows x columns x frames x samples x
 * bits allocated, a TIFF strip or tile shorter than its rows --, Pixel Data
 * of a VR other than OB/OW, 0 pixels, more than max_pixels); SIMCLR_E_UNSUPPORTED (see
 * above); SIMCLR_E_NOMEM. On error *out is untouched and nothing is
 * allocated. data is only read. Threads: any thread, any time. */
SIMCLR_API simclr_status simclr_medical_decode_memory(const void *data, size_t size, const char *name,
                                                      int64_t frame, int64_t max_pixels,
                                                      simclr_medical_image **out);
/* The same for a file. SIMCLR_E_IO when it cannot be opened or read, and
 * when it is not a regular file (a symlink is followed): a directory, FIFO,
 * socket or device is refused without being read and without blocking,
 * with the message "medical: PATH: not a regular file (a FIFO)" (or "a
 * directory", "a socket", "a character device", "a block device"). The
 * file is then read by DCMTK from the path (large values, such as the
 * pixel data, only when needed) or by libtiff from the checked descriptor
 * (the pages and strips it needs). path NULL is SIMCLR_E_INVALID; *out
 * untouched on every error. Threads: any thread, any time. */
SIMCLR_API simclr_status simclr_medical_decode_file(const char *path, int64_t frame, int64_t max_pixels,
                                                    simclr_medical_image **out);
/* Frees an image. NULL is a no-op. Threads: any thread (not twice, and not
 * while another thread reads the image). */
SIMCLR_API void simclr_medical_image_destroy(simclr_medical_image *img);

/* ---- the decoded image ---- */

/* The pixels: float32 [height, width, channels], row-major, in physical
 * units (see simclr_medical_decode_memory), owned by the image and valid
 * until it is destroyed. NULL for NULL. Threads: read-only, any thread. */
SIMCLR_API const float *simclr_medical_image_data(const simclr_medical_image *img);
/* Height (rows), width (columns), channels (1 gray, 3 RGB); 0 for NULL.
 * Threads: any thread. */
SIMCLR_API int64_t simclr_medical_image_height(const simclr_medical_image *img);
SIMCLR_API int64_t simclr_medical_image_width(const simclr_medical_image *img);
SIMCLR_API int simclr_medical_image_channels(const simclr_medical_image *img);
/* The number of frames (DICOM Number of Frames, 1 when absent) or pages
 * (TIFF directories) in the file, and which one this is (0-based); 0 and -1
 * for NULL. Threads: any thread. */
SIMCLR_API int64_t simclr_medical_image_frames(const simclr_medical_image *img);
SIMCLR_API int64_t simclr_medical_image_frame(const simclr_medical_image *img);
/* SIMCLR_MEDICAL_DICOM or SIMCLR_MEDICAL_TIFF; 0 for NULL. Threads: any thread. */
SIMCLR_API int simclr_medical_image_format(const simclr_medical_image *img);
/* The photometric interpretation of data: "MONOCHROME1" (the lowest value
 * is displayed white: DICOM MONOCHROME1, TIFF MinIsWhite), "MONOCHROME2"
 * or "RGB" (also for a JPEG's YBR_* that its decoder turned into RGB).
 * A static string, "" for NULL. Threads: any thread. */
SIMCLR_API const char *simclr_medical_image_photometric(const simclr_medical_image *img);
/* 1 when the image is MONOCHROME1 (pass it as `invert` to the window
 * functions), else 0 (and for NULL). Threads: any thread. */
SIMCLR_API int simclr_medical_image_inverted(const simclr_medical_image *img);
/* Bits per stored sample (DICOM Bits Stored; TIFF BitsPerSample) and
 * whether the samples are signed (DICOM Pixel Representation 1, TIFF
 * SampleFormat int or float); 0 for NULL. Threads: any thread. */
SIMCLR_API int simclr_medical_image_bits_stored(const simclr_medical_image *img);
SIMCLR_API int simclr_medical_image_is_signed(const simclr_medical_image *img);
/* The Rescale Slope and Intercept applied to gray values (1 and 0 when the
 * file has none, for RGB and TIFF). Either pointer may be NULL; for a NULL
 * image 1 and 0. Threads: any thread. */
SIMCLR_API void simclr_medical_image_rescale(const simclr_medical_image *img, double *slope,
                                             double *intercept);
/* The file's VOI window, in the units of data (after the rescale): Window
 * Center and Width (0028,1050/1051), their first values, or the enhanced
 * file's Frame VOI LUT Sequence for this frame. Returns 1 and sets *center
 * and *width (either may be NULL) when the file gives one with a width
 * >= 1; returns 0 and leaves them untouched otherwise (TIFF, no window,
 * NULL image). Threads: any thread. */
SIMCLR_API int simclr_medical_image_window(const simclr_medical_image *img, double *center, double *width);
/* SOP Instance UID (0008,0018) and the group ID for patient-level splits:
 * Patient ID (0010,0020), both without trailing spaces. "" when absent, for
 * TIFF and for NULL. Owned by the image. The library never writes either
 * into a message or anywhere else; a host should use the group ID only to
 * keep one patient's images on one side of a split, never log it.
 * Threads: any thread. */
SIMCLR_API const char *simclr_medical_image_sop_instance_uid(const simclr_medical_image *img);
SIMCLR_API const char *simclr_medical_image_group_id(const simclr_medical_image *img);

/* ---- windowing ---- */

/* Maps count values through the VOI window (center, width) with DICOM's
 * LINEAR function (PS3.3 C.11.2.1.2.1) to [0, 1]:
 *   x <= center - 0.5 - (width - 1) / 2  ->  0
 *   x >  center - 0.5 + (width - 1) / 2  ->  1
 *   otherwise ((x - (center - 0.5)) / (width - 1) + 0.5), in double,
 * then 1 - y when invert is nonzero (MONOCHROME1); NaN maps to 0 (with or
 * without invert). _f32 writes float [0, 1]; _u8 writes floor(255 y + 0.5).
 * out may be values (in place) for _f32. Errors: SIMCLR_E_INVALID for NULL
 * values or out (with count > 0), count < 0, a non-finite center or width,
 * width < 1; out untouched. Threads: any thread. */
SIMCLR_API simclr_status simclr_medical_window_f32(const float *values, int64_t count, double center,
                                                   double width, int invert, float *out);
SIMCLR_API simclr_status simclr_medical_window_u8(const float *values, int64_t count, double center,
                                                  double width, int invert, uint8_t *out);

#ifdef __cplusplus
}
#endif
#endif /* SIMCLR_MEDICAL_H */
