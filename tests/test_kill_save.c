/* Crash during save: a child process saves a trainer checkpoint over an
 * older one and is killed with SIGKILL at a random moment (before, during
 * or after the save); every time, the file at the path must be byte for
 * byte the old checkpoint or the new one, and load. 120 trials, the kill
 * time drawn uniformly over 3 times the measured duration of a save, so
 * kills land before the save starts, in every part of it, and after it. */
#include <signal.h>
#include <dirent.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define TRIALS 120

static char dir[64];

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(*n ? *n : 1);
    assert_int_equal(fread(d, 1, *n, f), *n);
    fclose(f);
    return d;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Removes temporaries a killed save left behind; returns how many. */
static int sweep_temps(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    char p[400];
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
            n++;
        }
    closedir(d);
    return n;
}

typedef struct rig {
    simclr_context *ctx;
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;
    simclr_trainer *tr;
} rig;

static void rig_make(rig *r)
{
    /* One thread: the forked child has no pool workers, and saving needs none. */
    CHECK_OK(simclr_context_create("ref", 1, NULL, &r->ctx));
    CHECK_OK(simclr_resnet_create(r->ctx, 18, 4, 1, SIMCLR_STEM_CIFAR, 1, &r->enc));
    CHECK_OK(simclr_mlp_head_create(r->ctx, 32, 32, 16, 2, 0, 2, &r->head));
    CHECK_OK(simclr_augment_create(r->ctx, SIMCLR_AUG_PRESET_GRAYSCALE, 8, 8, &r->aug));
    CHECK_OK(simclr_ntxent_create(r->ctx, 0.5, 2, &r->loss));
    simclr_module *mods[2] = {r->enc, r->head};
    CHECK_OK(simclr_optimizer_create(r->ctx, SIMCLR_OPT_LARS, mods, 2, &r->opt));
    CHECK_OK(simclr_trainer_create(r->ctx, r->enc, r->head, r->aug, r->loss, r->opt, &r->tr));
}

static void rig_free(rig *r)
{
    simclr_trainer_destroy(r->tr);
    simclr_optimizer_destroy(r->opt);
    simclr_loss_destroy(r->loss);
    simclr_augment_destroy(r->aug);
    simclr_module_destroy(r->head);
    simclr_module_destroy(r->enc);
    simclr_context_destroy(r->ctx);
}

static void step(rig *r, uint64_t seed)
{
    int64_t is[4] = {4, 8, 8, 1};
    simclr_tensor *img;
    CHECK_OK(simclr_tensor_create(r->ctx, SIMCLR_U8, 4, is, &img));
    unsigned char *px = simclr_tensor_data(img);
    for (int64_t i = 0; i < simclr_tensor_numel(img); i++) px[i] = (unsigned char)(i * 23 + seed);
    CHECK_OK(simclr_trainer_step(r->tr, img, seed, NULL));
    simclr_tensor_destroy(img);
}

static void test_kill_during_save(void **state)
{
    (void)state;
    char path[128], old_path[128], new_path[128];
    snprintf(path, sizeof path, "%s/run.simclr", dir);
    snprintf(old_path, sizeof old_path, "%s/old.simclr", dir);
    snprintf(new_path, sizeof new_path, "%s/new.simclr", dir);
    rig r;
    rig_make(&r);
    step(&r, 1);
    CHECK_OK(simclr_trainer_save(r.tr, old_path));
    step(&r, 2); /* the trainer now holds the new state, which the children save */
    double t0 = now();
    for (int i = 0; i < 3; i++) CHECK_OK(simclr_trainer_save(r.tr, new_path));
    double save_s = (now() - t0) / 3;
    size_t n_old, n_new;
    unsigned char *old_b = read_all(old_path, &n_old), *new_b = read_all(new_path, &n_new);
    assert_non_null(old_b);
    assert_non_null(new_b);
    assert_true(n_old != n_new || memcmp(old_b, new_b, n_old) != 0);

    rig check;
    rig_make(&check);
    int saw_old = 0, saw_new = 0, temps = 0;
    uint64_t rs = 12345;
    for (int t = 0; t < TRIALS; t++) {
        /* the old checkpoint in place, complete (its bytes, renamed into place) */
        char staged[160];
        snprintf(staged, sizeof staged, "%s/staged", dir);
        FILE *f = fopen(staged, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(old_b, 1, n_old, f), n_old);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(rename(staged, path), 0);
        /* Up to 3x the parent's save time: a forked child saves slower (its
         * first writes to shared pages copy them; under ASan much slower), and
         * a third of the range must still let saves finish. */
        double delay = save_s * 3.0 * (double)(test_rand_next(&rs) % 10000) / 10000.0;
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            simclr_status st = simclr_trainer_save(r.tr, path);
            _exit(st == SIMCLR_OK ? 0 : 1);
        }
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int wst;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        if (WIFEXITED(wst)) assert_int_equal(WEXITSTATUS(wst), 0); /* finished before the kill */
        size_t n;
        unsigned char *b = read_all(path, &n);
        if (!b) fail_msg("trial %d: the checkpoint is gone", t);
        int is_old = n == n_old && memcmp(b, old_b, n) == 0, is_new = n == n_new && memcmp(b, new_b, n) == 0;
        free(b);
        if (!is_old && !is_new)
            fail_msg("trial %d (kill after %.2f ms of a %.2f ms save): the file is neither the old nor the new "
                     "checkpoint (%zu bytes)", t, delay * 1e3, save_s * 1e3, n);
        CHECK_OK(simclr_trainer_load(check.tr, path)); /* complete and loadable */
        saw_old += is_old;
        saw_new += is_new;
        temps += sweep_temps();
    }
    print_message("kill during save: %d trials (save %.1f ms): %d old, %d new, %d killed mid-save "
                  "(temporary left behind)\n", TRIALS, save_s * 1e3, saw_old, saw_new, temps);
    /* the kills really landed before, during and after saves */
    assert_true(saw_old > 0 && saw_new > 0 && temps > 0);
    free(old_b);
    free(new_b);
    rig_free(&check);
    rig_free(&r);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "kill");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_during_save)};
    return cmocka_run_group_tests_name("kill_save", tests, setup, teardown);
}
