/* libsimclr_image: the optional image-decoding companion of libsimclr.
 *
 * PNG (libpng) and JPEG (libjpeg-turbo) files into the U8 [H, W, C] images
 * libsimclr trains on, an image-folder data set decoded on demand, and a
 * small PNG writer. libsimclr itself stays free of image libraries: a host
 * that decodes images already links only libsimclr. Link with
 * -lsimclr_image -lsimclr (pkg-config: libsimclr_image).
 *
 * Errors follow libsimclr's model: every fallible call returns a
 * simclr_status and sets simclr_last_error() for the calling thread, with a
 * message naming the file. Pixel buffers returned to the caller come from
 * malloc and are released with simclr_image_free. Decoding functions are
 * thread-safe (no shared state); a folder is used from one thread at a time. */
#ifndef SIMCLR_IMAGE_H
#define SIMCLR_IMAGE_H

#include "simclr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PIL's decompression-bomb limit: a larger declared size is refused before
 * any pixel memory is allocated. */
#define SIMCLR_IMAGE_DEFAULT_MAX_PIXELS 89478485

/* ---- decoding ---- */

/* Decodes a PNG or JPEG held in memory (told apart by the signature, not by
 * a name) into *pixels, a malloc'ed U8 [*height, *width, channels] buffer
 * owned by the caller (simclr_image_free). channels 1 or 3: gray, RGB,
 * RGBA, gray+alpha, palette and 1..16-bit PNGs and gray, YCbCr and CMYK
 * (Adobe inverted) JPEGs, baseline or progressive, are converted as PIL's
 * convert("RGB") / convert("L") does (alpha dropped, 16-bit scaled to 8 with
 * rounding); the EXIF orientation (JPEG APP1, PNG eXIf) is applied as PIL's
 * ImageOps.exif_transpose. max_pixels (0 = the default above) bounds the
 * declared width x height. min_side > 0 lets JPEGs decode at 1/2, 1/4 or
 * 1/8 scale (in the DCT, much faster) while the shorter side stays
 * >= min_side; 0 decodes at full size. name (NULL = "<memory>") is used in
 * messages. Errors: SIMCLR_E_INVALID (NULLs, channels), SIMCLR_E_FORMAT
 * (empty, not PNG/JPEG, corrupt, truncated -- libjpeg's warnings count as
 * errors --, 0 pixels, over max_pixels), SIMCLR_E_NOMEM; outputs untouched.
 * name may be NULL; data, pixels, height and width may not. Threads: any
 * thread, any time (no shared state; data is only read). */
SIMCLR_API simclr_status simclr_image_decode_memory(const void *data, size_t size, const char *name,
                                                    int channels, int64_t max_pixels, int min_side,
                                                    uint8_t **pixels, int64_t *height,
                                                    int64_t *width);
/* The same for a file; SIMCLR_E_IO when it cannot be opened or read, and
 * (0.2) when it is not a regular file (a symlink is followed): a directory,
 * FIFO, socket or device is refused without being read and without
 * blocking, with the message "PATH: not a regular file (a FIFO)" (or "a
 * directory", "a socket", "a character device", "a block device").
 * path NULL is SIMCLR_E_INVALID; outputs untouched on every error. Threads: any
 * thread, any time. */
SIMCLR_API simclr_status simclr_image_decode_file(const char *path, int channels, int64_t max_pixels,
                                                  int min_side, uint8_t **pixels, int64_t *height,
                                                  int64_t *width);
/* Frees a buffer from the decoders. NULL is a no-op.
 * Threads: any thread (not twice for one buffer). */
SIMCLR_API void simclr_image_free(uint8_t *pixels);

/* Writes U8 [height, width, channels] (1 gray, 3 RGB, 4 RGBA) as an 8-bit
 * PNG, atomically (temporary file in the same folder, fsync, rename): a
 * failure leaves any previous file intact. SIMCLR_E_INVALID, SIMCLR_E_NOMEM,
 * SIMCLR_E_IO naming the path.
 * SIMCLR_E_INVALID covers a NULL path or pixels, channels other than 1, 3, 4
 * and a height or width out of range. pixels is only read. Threads: any thread,
 * any time (two threads must not write one path). */
SIMCLR_API simclr_status simclr_image_write_png(const char *path, const uint8_t *pixels,
                                                int64_t height, int64_t width, int channels);

/* ---- image-folder data set ---- */

typedef struct simclr_image_folder simclr_image_folder;

typedef enum simclr_folder_param {
    SIMCLR_FOLDER_ON_ERROR   = 100, /* SIMCLR_FOLDER_FAIL (default) or SIMCLR_FOLDER_SKIP */
    SIMCLR_FOLDER_MAX_PIXELS = 101, /* >= 1, default SIMCLR_IMAGE_DEFAULT_MAX_PIXELS */
    SIMCLR_FOLDER_MIN_SIDE   = 102, /* 0..65536, default 0: see simclr_image_decode_memory */
    SIMCLR_FOLDER_PREFETCH_THREADS = 103 /* (0.2) 1..64, default 1: threads a prefetch decodes on */
} simclr_folder_param;

enum { SIMCLR_FOLDER_FAIL = 0, SIMCLR_FOLDER_SKIP = 1 };

/* Lists the .png/.jpg/.jpeg files (case-insensitive) under root; decodes
 * nothing yet. labels = 1: torchvision's ImageFolder convention -- the
 * classes are root's subfolders in sorted order (label = position), each
 * holding images at any depth, ordered as sorted(os.walk(class_dir)) with
 * sorted file names; files directly in root are ignored. labels = 0: every
 * image below root, same order, no labels. Images decode to `channels`
 * (1 or 3). The context is borrowed (its threads decode batches) and must
 * outlive the folder.
 * (0.2) Symlinks are followed, but every folder (known by device and inode)
 * is walked once: a link to a folder already walked -- a loop such as
 * x -> ., a link to a parent, a second link to one folder -- is skipped.
 * The real folders are walked before the links, so a folder inside the tree
 * is listed under its real path; one reached only through links, under the
 * first of them in walk order. A class subfolder that is a link to root is
 * not a class; one that is the folder of another class is refused
 * (SIMCLR_E_FORMAT naming both). An entry named like an image is listed
 * unless it is a folder (a folder named y.png is walked as a folder):
 * one that is not a regular file -- a FIFO, socket, device, dangling
 * link -- is listed and refused when loaded, as an unreadable file is (see
 * simclr_image_folder_load). The open reads folders only, never a file,
 * and never blocks.
 * Errors: SIMCLR_E_INVALID (NULLs, channels, labels,
 * root not a folder), SIMCLR_E_IO (root or a folder below it missing or
 * unreadable, naming it), SIMCLR_E_FORMAT (no images at all, no class
 * subfolder, a class folder without images or that is another class's,
 * named; folders nested more than 64 deep), SIMCLR_E_NOMEM.
 * *out is owned by the caller (simclr_image_folder_destroy) and untouched on
 * error. Threads: any thread, but not concurrently with other calls on ctx. */
SIMCLR_API simclr_status simclr_image_folder_open(simclr_context *ctx, const char *root,
                                                  int channels, int labels,
                                                  simclr_image_folder **out);
/* Frees the folder and the pixels of its last batch. NULL is a no-op.
 * Lists filled by the folder's last load then point to freed pixels: clear or
 * destroy them first. Threads: one thread at a time per folder, and not
 * concurrently with other calls on the folder's context; other folders and
 * contexts may be used meanwhile. */
SIMCLR_API void simclr_image_folder_destroy(simclr_image_folder *folder);
/* Sets a parameter; SIMCLR_E_INVALID for an unknown key or a value out of
 * range (the folder is then unchanged).
 * SIMCLR_E_INVALID also for a NULL folder. Threads: one thread at a time per
 * folder, and not concurrently with other calls on the folder's context; other
 * folders and contexts may be used meanwhile. */
SIMCLR_API simclr_status simclr_image_folder_set(simclr_image_folder *folder,
                                                 simclr_folder_param key, int64_t value);

/* Number of images; path of image i (owned by the folder, NULL out of
 * range); its label (-1 without labels or out of range); the classes.
 * For NULL: 0, NULL, -1, 0, NULL. They never fail; the strings are owned by the
 * folder and valid until it is destroyed. Threads: one thread at a time per
 * folder, and not concurrently with other calls on the folder's context; other
 * folders and contexts may be used meanwhile. */
SIMCLR_API int64_t simclr_image_folder_count(const simclr_image_folder *folder);
SIMCLR_API const char *simclr_image_folder_path(const simclr_image_folder *folder, int64_t index);
SIMCLR_API int32_t simclr_image_folder_label(const simclr_image_folder *folder, int64_t index);
SIMCLR_API int simclr_image_folder_class_count(const simclr_image_folder *folder);
SIMCLR_API const char *simclr_image_folder_class_name(const simclr_image_folder *folder, int k);

/* Decodes images indices[0..n) (in parallel over the context's threads) and
 * puts them, in order, into list (cleared first; its channel count must be
 * the folder's, else SIMCLR_E_SHAPE). The pixels belong to the folder and
 * stay valid until the next load or destroy: memory holds this batch and at
 * most one prefetched batch, so a data set larger than memory trains batch
 * by batch. If simclr_image_folder_prefetch was last called with exactly
 * these indices (same n, same order) and the folder's decoding settings are
 * still those it ran with, the load waits for that background decoding and
 * hands out its result instead of decoding again (same pixels, same
 * errors); any other pending prefetch is waited for and discarded. With
 * SIMCLR_FOLDER_FAIL, an image that fails (unreadable, not a regular
 * file -- SIMCLR_E_IO, see simclr_image_decode_file --, not an image,
 * corrupt, truncated, 0 pixels, too large) fails the call with its own
 * message naming the file (the first such image of the batch) and the list
 * left empty. With SIMCLR_FOLDER_SKIP, it is left out of the list, marked
 * bad and counted (simclr_image_folder_skipped, simclr_image_folder_is_bad);
 * kept (n entries, may be NULL) receives the data-set indices of the images
 * in the list and *n_kept (may be NULL) their number, possibly 0.
 * SIMCLR_E_INVALID for NULLs, n < 1, an index out of range; SIMCLR_E_NOMEM
 * always fails.
 * On error kept and *n_kept are untouched. Threads: one thread at a time per
 * folder, and not concurrently with other calls on the folder's context; other
 * folders and contexts may be used meanwhile. */
SIMCLR_API simclr_status simclr_image_folder_load(simclr_image_folder *folder,
                                                  const int64_t *indices, int64_t n,
                                                  simclr_image_list *list, int64_t *kept,
                                                  int64_t *n_kept);
/* Images skipped so far (each counted once), and whether image i was.
 * 0 for NULL (and is_bad 0 for an index out of range); never fail. Threads: one
 * thread at a time per folder, and not concurrently with other calls on the
 * folder's context; other folders and contexts may be used meanwhile. */
SIMCLR_API int64_t simclr_image_folder_skipped(const simclr_image_folder *folder);
/* (0.2) Starts decoding images indices[0..n) in the background and returns
 * at once, so that the next batch decodes while the caller trains on this
 * one; the simclr_image_folder_load with the same indices then takes the
 * result (see there). The decoding runs on SIMCLR_FOLDER_PREFETCH_THREADS
 * threads the folder starts for this batch (not the context's pool, which
 * the training step in between occupies) with the decoding settings of this
 * moment; the indices are copied. Bounded: one batch is prefetched at a
 * time -- a new prefetch first waits for and discards the one pending -- so
 * memory holds at most the loaded batch and the prefetched one. Decoding
 * failures are not reported here but by the load that takes the batch,
 * exactly as if it had decoded them itself. A thread that cannot start is
 * not an error: its share is decoded before this call returns.
 * Returns SIMCLR_OK; SIMCLR_E_INVALID for NULLs, n < 1 or an index out of
 * range (nothing started, any pending prefetch kept); SIMCLR_E_NOMEM (no
 * prefetch is then pending: the next load decodes as without one).
 * Pixels handed out by the last load stay valid. indices is only read.
 * Threads: one thread at a time per folder, as every folder call; the
 * background threads touch only the prefetched batch, and load, prefetch and
 * destroy wait for them, so the caller may meanwhile run anything, including
 * training steps on the folder's context. */
SIMCLR_API simclr_status simclr_image_folder_prefetch(simclr_image_folder *folder, const int64_t *indices,
                                                      int64_t n);
SIMCLR_API int simclr_image_folder_is_bad(const simclr_image_folder *folder, int64_t index);

#ifdef __cplusplus
}
#endif
#endif /* SIMCLR_IMAGE_H */
