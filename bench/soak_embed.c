/* Soak test of an embedding service (issue 24, "Reliability figures"):
 * THREADS threads, each with its own context and embedder over one shared
 * encoder, embed requests of random host images (random sizes, random batch
 * sizes) for SECONDS seconds, while the main thread samples the process's
 * resident set (/proc/self/statm) and its peak (VmHWM in /proc/self/status)
 * every INTERVAL seconds and prints a table. Not a test of `make test`: run
 * it with `make soak` (bench/soak_embed.sh).
 *
 *   soak_embed SECONDS [THREADS [INTERVAL [WARMUP [REQUESTS]]]]
 *
 * REQUESTS "varying" (default): 1..16 images a request, as a service gets
 * them; "fixed": always 16, so every encoder forward has the embedder's
 * batch (a control: it separates growth that depends on the batch size
 * changing from growth that does not).
 *
 * The service's own buffers are allocated once per thread (one arena of
 * pixels refilled per request), so what can grow is the library's: the
 * embedder's workspace, the per-request output tensor, the image list, the
 * thread pool, the allocator's arenas. The first request of every thread
 * has the largest batch and image sides, so each workspace reaches its
 * high-water mark at once.
 *
 * Verdict after the run: warm-up is WARMUP seconds (default 10% of the run,
 * at most 60 s, at least one interval). Against the sample at the end of
 * warm-up, the resident set of every later sample and the final peak
 * (VmHWM) may exceed it by at most 2% + 4 MB; and every thread embeds a
 * fixed probe batch at its start and at its end, which must give the same
 * bytes (long running does not corrupt the shared encoder or a workspace).
 * Exit 0 when both hold, 1 otherwise (2: bad arguments or a library error).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "simclr.h"

/* The encoder and the requests: a ResNet-18 of width 16 with the ImageNet
 * stem on 96 x 96 crops of 3-channel images whose sides are 48..320 pixels,
 * 1..16 images per request (the embedder's batch is 8, so a request is one
 * or two encoder forwards). */
enum { DEPTH = 18, WIDTH = 16, CHANNELS = 3, CROP = 96, MIN_SIDE = 48, MAX_SIDE = 320, MAX_BATCH = 16,
       EMBED_BATCH = 8, PROBE_N = 5 };

#define GROWTH_FRACTION 0.02
#define GROWTH_MB 4.0

typedef struct worker {
    int id;
    const simclr_module *enc;
    atomic_int *stop;
    atomic_llong done;     /* images embedded */
    atomic_llong requests;
    simclr_status st;      /* first failure */
    char msg[512];
    int probe_same;        /* the end's probe features equal the start's */
    int fixed;             /* every request MAX_BATCH images */
} worker;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int64_t uniform(uint64_t *s, int64_t lo, int64_t hi) { return lo + (int64_t)(splitmix(s) % (uint64_t)(hi - lo + 1)); }

static void fill(uint8_t *p, size_t n, uint64_t *s)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t r = splitmix(s);
        memcpy(p + i, &r, 8);
    }
    for (; i < n; i++) p[i] = (uint8_t)splitmix(s);
}

/* Fills list with n images carved from arena, sides from the generator
 * (or all MAX_SIDE when largest). */
static simclr_status make_request(simclr_image_list *list, uint8_t *arena, int n, int largest, uint64_t *s)
{
    simclr_status st = simclr_image_list_clear(list);
    size_t off = 0;
    for (int i = 0; i < n && st == SIMCLR_OK; i++) {
        int64_t h = largest ? MAX_SIDE : uniform(s, MIN_SIDE, MAX_SIDE);
        int64_t w = largest ? MAX_SIDE : uniform(s, MIN_SIDE, MAX_SIDE);
        size_t bytes = (size_t)(h * w * CHANNELS);
        fill(arena + off, bytes, s);
        st = simclr_image_list_add(list, arena + off, h, w);
        off += bytes;
    }
    return st;
}

/* Embeds the list into a tensor created for this request (as a service
 * would), copying the features to feats when not NULL. */
static simclr_status embed(simclr_context *ctx, simclr_embedder *e, const simclr_image_list *list, int64_t dim,
                           float *feats)
{
    int64_t shape[2] = {simclr_image_list_count(list), dim};
    simclr_tensor *y = NULL;
    simclr_status st = simclr_tensor_create(ctx, SIMCLR_F32, 2, shape, &y);
    if (st == SIMCLR_OK) st = simclr_embedder_run(e, list, y);
    if (st == SIMCLR_OK && feats) st = simclr_tensor_copy_to(y, feats, simclr_tensor_bytes(y));
    simclr_tensor_destroy(y);
    return st;
}

static void *serve(void *arg)
{
    worker *wk = arg;
    simclr_context *ctx = NULL;
    simclr_embedder *e = NULL;
    simclr_image_list *list = NULL;
    const int64_t dim = simclr_module_output_dim(wk->enc);
    uint8_t *arena = malloc((size_t)MAX_BATCH * MAX_SIDE * MAX_SIDE * CHANNELS);
    uint8_t *probe_px = malloc((size_t)PROBE_N * MAX_SIDE * MAX_SIDE * CHANNELS);
    float *probe0 = malloc((size_t)(PROBE_N * dim) * sizeof(float));
    float *probe1 = malloc((size_t)(PROBE_N * dim) * sizeof(float));
    uint64_t seed = 0x50a4u + 7919u * (uint64_t)wk->id, probe_seed = 0x9b0bu;
    simclr_status st = arena && probe_px && probe0 && probe1 ? SIMCLR_OK : SIMCLR_E_NOMEM;
    if (st == SIMCLR_OK) st = simclr_context_create(NULL, 1, NULL, &ctx);
    if (st == SIMCLR_OK) st = simclr_embedder_create(ctx, wk->enc, CROP, CROP, &e);
    if (st == SIMCLR_OK) st = simclr_embedder_set(e, SIMCLR_EMBED_BATCH, EMBED_BATCH);
    if (st == SIMCLR_OK) st = simclr_image_list_create(ctx, CHANNELS, &list);
    /* the probe: the same images (same seed) in every thread, at start */
    if (st == SIMCLR_OK) st = make_request(list, probe_px, PROBE_N, 0, &probe_seed);
    if (st == SIMCLR_OK) st = embed(ctx, e, list, dim, probe0);
    for (long r = 0; st == SIMCLR_OK && !atomic_load(wk->stop); r++) {
        int n = r == 0 || wk->fixed ? MAX_BATCH : (int)uniform(&seed, 1, MAX_BATCH);
        st = make_request(list, arena, n, r == 0, &seed);
        if (st == SIMCLR_OK) st = embed(ctx, e, list, dim, NULL);
        if (st == SIMCLR_OK) {
            atomic_fetch_add(&wk->done, n);
            atomic_fetch_add(&wk->requests, 1);
        }
    }
    /* the probe again: the same images, regenerated from the same seed */
    if (st == SIMCLR_OK) {
        probe_seed = 0x9b0bu;
        st = make_request(list, probe_px, PROBE_N, 0, &probe_seed);
    }
    if (st == SIMCLR_OK) st = embed(ctx, e, list, dim, probe1);
    if (st == SIMCLR_OK) wk->probe_same = memcmp(probe0, probe1, (size_t)(PROBE_N * dim) * sizeof(float)) == 0;
    wk->st = st;
    if (st != SIMCLR_OK) snprintf(wk->msg, sizeof wk->msg, "%s", simclr_last_error());
    simclr_image_list_destroy(list);
    simclr_embedder_destroy(e);
    simclr_context_destroy(ctx);
    free(arena);
    free(probe_px);
    free(probe0);
    free(probe1);
    return NULL;
}

/* Resident set and its peak, in MB; -1 when /proc cannot be read. */
static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = -1;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static double hwm_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The resident set is read every SAMPLE_PERIOD seconds: a request's
 * activations come and go within milliseconds, so one reading every few
 * seconds would catch a random point of that sawtooth. The table prints one
 * row per INTERVAL with the highest reading in it. */
#define SAMPLE_PERIOD 0.25

typedef struct sample {
    double t, rss;
} sample;

/* The highest reading with t in [from, to]; -1 when none. */
static double window_max(const sample *smp, int n, double from, double to)
{
    double m = -1;
    for (int i = 0; i < n; i++)
        if (smp[i].t >= from && smp[i].t <= to && smp[i].rss > m) m = smp[i].rss;
    return m;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: soak_embed SECONDS [THREADS [INTERVAL [WARMUP [varying|fixed]]]]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    double interval = argc > 3 ? atof(argv[3]) : 5;
    double warmup = argc > 4 ? atof(argv[4]) : 0;
    const char *mode = argc > 5 ? argv[5] : "varying";
    int fixed = strcmp(mode, "fixed") == 0;
    if (!fixed && strcmp(mode, "varying") != 0) {
        fprintf(stderr, "soak_embed: REQUESTS must be varying or fixed, not '%s'\n", mode);
        return 2;
    }
    if (!(seconds > 0 && seconds < 1e6) || threads < 1 || threads > 64 || !(interval >= SAMPLE_PERIOD) ||
        !(warmup >= 0)) {
        fprintf(stderr, "soak_embed: need SECONDS in (0, 1e6), THREADS 1..64, INTERVAL >= %g, WARMUP >= 0\n",
                SAMPLE_PERIOD);
        return 2;
    }
    if (warmup == 0) {
        warmup = seconds * 0.1 > 60 ? 60 : seconds * 0.1;
        if (warmup < interval) warmup = interval;
    }
    if (warmup >= seconds) {
        fprintf(stderr, "soak_embed: warm-up %.0f s leaves nothing of a %.0f s run to judge\n", warmup, seconds);
        return 2;
    }
    /* the two windows compared: right after warm-up and at the end, each as
     * long as warm-up (at most half of what follows it) */
    double win = warmup < (seconds - warmup) / 2 ? warmup : (seconds - warmup) / 2;
    double rss_start = rss_mb();
    if (rss_start < 0 || hwm_mb() < 0) {
        fprintf(stderr, "soak_embed: cannot read /proc/self/statm or VmHWM in /proc/self/status\n");
        return 2;
    }

    simclr_context *ctx;
    simclr_module *enc;
    if (simclr_context_create(NULL, 1, NULL, &ctx) != SIMCLR_OK ||
        simclr_resnet_create(ctx, DEPTH, WIDTH, CHANNELS, SIMCLR_STEM_IMAGENET, 42, &enc) != SIMCLR_OK) {
        fprintf(stderr, "soak_embed: %s\n", simclr_last_error());
        return 2;
    }
    printf("# soak_embed: libsimclr %s, %d threads (each its own 1-thread context and embedder), one encoder "
           "(ResNet-%d width %d, ImageNet stem, %d-dim features), %d x %d crops of RGB images %d..%d px a side, "
           "%s per request (embedder batch %d); %.0f s, RSS read every %.2f s, a row every %.0f s, "
           "warm-up %.0f s\n",
           simclr_version_string(), threads, DEPTH, WIDTH, (int)simclr_module_output_dim(enc), CROP, CROP,
           MIN_SIDE, MAX_SIDE, fixed ? "16" : "1..16", EMBED_BATCH, seconds, SAMPLE_PERIOD, interval, warmup);
    printf("# RSS %.1f MB before the encoder\n", rss_start);

    atomic_int stop = 0;
    int cap = (int)(seconds / SAMPLE_PERIOD) + 64;
    worker *wk = calloc((size_t)threads, sizeof *wk);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    sample *smp = calloc((size_t)cap, sizeof *smp);
    if (!wk || !th || !smp) {
        fprintf(stderr, "soak_embed: out of memory\n");
        return 2;
    }
    int started = 0;
    for (int t = 0; t < threads; t++) {
        wk[t].id = t, wk[t].enc = enc, wk[t].stop = &stop, wk[t].fixed = fixed;
        atomic_init(&wk[t].done, 0);
        atomic_init(&wk[t].requests, 0);
        if (pthread_create(&th[t], NULL, serve, &wk[t]) != 0) break;
        started++;
    }
    if (started < threads) {
        fprintf(stderr, "soak_embed: could start only %d of %d threads\n", started, threads);
        atomic_store(&stop, 1);
        for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        return 2;
    }

    printf("%8s  %12s  %9s  %9s  %11s  %9s\n", "time s", "embeddings", "img/s", "RSS MB", "highest MB", "peak MB");
    fflush(stdout);
    const double t0 = bench_now();
    int n = 0, rows = 0, failed = 0;
    long long last_done = 0, done = 0;
    double last_row = 0, row_max = 0, hwm_warm = -1;
    while (!failed && n < cap) {
        double wait = t0 + (n + 1) * SAMPLE_PERIOD - bench_now();
        if (wait > 0) sleep_seconds(wait);
        double now = bench_now() - t0;
        smp[n] = (sample){now, rss_mb()};
        if (smp[n].rss > row_max) row_max = smp[n].rss;
        n++;
        if (hwm_warm < 0 && now >= warmup) hwm_warm = hwm_mb();
        for (int t = 0; t < threads; t++) failed |= wk[t].st != SIMCLR_OK;
        int last = now >= seconds;
        if (now >= (rows + 1) * interval - 1e-9 || last || failed) {
            done = 0;
            for (int t = 0; t < threads; t++) done += atomic_load(&wk[t].done);
            printf("%8.1f  %12lld  %9.1f  %9.1f  %11.1f  %9.1f\n", now, done,
                   (double)(done - last_done) / (now - last_row), smp[n - 1].rss, row_max, hwm_mb());
            fflush(stdout);
            last_done = done, last_row = now, row_max = 0;
            rows++;
        }
        if (last) break;
    }
    double hwm_end = hwm_mb(), elapsed = smp[n - 1].t, rss_end = smp[n - 1].rss;
    atomic_store(&stop, 1);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);

    int ok = 1, errors = 0, probes_ok = 1;
    long long requests = 0;
    for (int t = 0; t < threads; t++) {
        requests += atomic_load(&wk[t].requests);
        if (wk[t].st != SIMCLR_OK) {
            printf("thread %d failed: %s: %s\n", t, simclr_status_string(wk[t].st), wk[t].msg);
            errors = 1;
        } else if (!wk[t].probe_same) {
            printf("thread %d: the probe batch's features changed between the start and the end\n", t);
            ok = probes_ok = 0;
        }
    }
    simclr_module_destroy(enc);
    simclr_context_destroy(ctx);
    if (errors) return 2;

    double rss_warm = -1;
    for (int i = 0; i < n && rss_warm < 0; i++)
        if (smp[i].t >= warmup) rss_warm = smp[i].rss;
    double first_win = window_max(smp, n, warmup, warmup + win);
    double last_win = window_max(smp, n, elapsed - win, elapsed);
    double win_limit = first_win * (1 + GROWTH_FRACTION) + GROWTH_MB;
    double hwm_limit = hwm_warm * (1 + GROWTH_FRACTION) + GROWTH_MB;
    printf("# %lld embeddings in %lld requests over %.0f s (%.1f img/s)\n", done, requests, elapsed,
           (double)done / elapsed);
    printf("# RSS: %.1f MB at the end of warm-up (t = %.0f s), %.1f MB at the end (one reading each)\n", rss_warm,
           warmup, rss_end);
    printf("# highest RSS in the %.0f s after warm-up %.1f MB, in the last %.0f s %.1f MB (%+.1f MB, %+.2f%%; "
           "limit %.1f MB)\n",
           win, first_win, win, last_win, last_win - first_win, 100 * (last_win - first_win) / first_win, win_limit);
    printf("# peak RSS (VmHWM): %.1f MB at the end of warm-up, %.1f MB at the end (%+.1f MB; limit %.1f MB)\n",
           hwm_warm, hwm_end, hwm_end - hwm_warm, hwm_limit);
    if (last_win > win_limit) {
        printf("# FAIL: RSS grew after warm-up (%.1f MB > %.1f MB)\n", last_win, win_limit);
        ok = 0;
    }
    if (hwm_end > hwm_limit) {
        printf("# FAIL: peak RSS grew after warm-up (%.1f MB > %.1f MB)\n", hwm_end, hwm_limit);
        ok = 0;
    }
    printf("# probe features identical at start and end in all %d threads: %s\n", threads, probes_ok ? "yes" : "NO");
    printf("soak_embed: %s\n", ok ? "RSS and its peak flat after warm-up" : "FAILED");
    free(wk);
    free(th);
    free(smp);
    return ok ? 0 : 1;
}
