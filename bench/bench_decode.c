/* JPEG decode throughput of libsimclr_image (images/s), next to PIL's in
 * bench/bench_decode.py; bench/bench_decode.sh writes the files and runs
 * both. Not a test: run it on an idle machine.
 *
 *   bench_decode DIR [REPEATS] [THREADS]
 *
 * 1) one thread: simclr_image_decode_file on every file of DIR, REPEATS times;
 * 2) the image folder: batches of 64 decoded over a context of THREADS. */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "simclr_image.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_decode DIR [REPEATS] [THREADS]\n");
        return 2;
    }
    int repeats = argc > 2 ? atoi(argv[2]) : 3, threads = argc > 3 ? atoi(argv[3]) : 2;
    simclr_context *ctx;
    simclr_image_folder *f;
    if (simclr_context_create(NULL, threads, NULL, &ctx) != SIMCLR_OK ||
        simclr_image_folder_open(ctx, argv[1], 3, 0, &f) != SIMCLR_OK) {
        fprintf(stderr, "bench_decode: %s\n", simclr_last_error());
        return 1;
    }
    int64_t n = simclr_image_folder_count(f);
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < n; i++) {
            uint8_t *px;
            int64_t h, w;
            if (simclr_image_decode_file(simclr_image_folder_path(f, i), 3, 0, 0, &px, &h, &w) != SIMCLR_OK) {
                fprintf(stderr, "bench_decode: %s\n", simclr_last_error());
                return 1;
            }
            simclr_image_free(px);
        }
        double dt = bench_now() - t0;
        if (dt < best) best = dt;
    }
    printf("libsimclr_image decode, 1 thread: %.0f images/s (%lld files, best of %d)\n", (double)n / best, (long long)n,
           repeats);
    simclr_image_list *list;
    simclr_image_list_create(ctx, 3, &list);
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = bench_now();
        for (int64_t first = 0; first < n; first += 64) {
            int64_t k = n - first < 64 ? n - first : 64;
            if (simclr_image_folder_load(f, idx + first, k, list, NULL, NULL) != SIMCLR_OK) {
                fprintf(stderr, "bench_decode: %s\n", simclr_last_error());
                return 1;
            }
        }
        double dt = bench_now() - t0;
        if (dt < best) best = dt;
    }
    printf("libsimclr_image folder batches of 64, %d threads: %.0f images/s\n", simclr_context_threads(ctx),
           (double)n / best);
    free(idx);
    simclr_image_list_destroy(list);
    simclr_image_folder_destroy(f);
    simclr_context_destroy(ctx);
    return 0;
}
