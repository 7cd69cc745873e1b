/* libsimclr_image: what an image folder's walk meets besides images
 * (issue 24, defect 4) -- symlink loops, links to folders listed elsewhere,
 * FIFOs, sockets, devices, dangling links, a folder named like an image --
 * and the decoder refusing anything but a regular file.
 *
 * Every folder open and decode here runs in a child process that an alarm
 * kills after TIMEOUT seconds and whose address space is bounded: a walk
 * that never ends (two symlink loops grow it exponentially) or an open that
 * blocks (a FIFO) fails the test instead of hanging it. */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simclr_image.h"
#include "test_util.h"

#define TIMEOUT 10 /* seconds: every case here takes milliseconds */

static char dir[256];

/* ---- the bounded child ---- */

/* Address space now, in bytes (/proc/self/statm), so that the child's limit
 * is relative to what the process already maps. */
static rlim_t address_space_now(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

/* Runs fn(arg, out) in a child killed after TIMEOUT seconds, with at most
 * 1 GB more address space than now, and copies its `out` (size bytes) back.
 * Once the child has shown that it ends, fn runs again in this process,
 * where the sanitizers see its leaks and errors (a child leaves by _exit),
 * and must give the same bytes. */
static void run_bounded(void (*fn)(const void *arg, void *out), const void *arg, void *out, size_t size,
                        const char *what)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(stdout);
    fflush(stderr);
    rlim_t limit = address_space_now() + ((rlim_t)1 << 30);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        alarm(TIMEOUT);
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_AS, &rl);
        memset(out, 0, size);
        fn(arg, out);
        const char *p = out;
        for (size_t left = size; left;) {
            ssize_t k = write(fd[1], p, left);
            if (k <= 0) _exit(3);
            p += k, left -= (size_t)k;
        }
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < size) {
        ssize_t k = read(fd[0], (char *)out + got, size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(ws))
        fail_msg("%s: killed by signal %d (%s)", what, WTERMSIG(ws),
                 WTERMSIG(ws) == SIGALRM ? "no answer in TIMEOUT seconds: a walk that never ends or an open that blocks"
                                         : "crashed");
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0 || got != size)
        fail_msg("%s: the child exited with %d after sending %zu of %zu bytes", what, WEXITSTATUS(ws), got, size);
    void *again = calloc(1, size);
    assert_non_null(again);
    fn(arg, again);
    if (memcmp(again, out, size) != 0) fail_msg("%s: a second run in the test process gave other results", what);
    free(again);
}

/* ---- a folder, opened and loaded in the child ---- */

#define MAX_IMAGES 16

typedef struct probe {
    int open_st;
    char open_msg[512];
    int64_t count;
    int n_classes;
    char classes[256];              /* "name\n" per class */
    char listing[4096];             /* "label relpath\n" per image, relative to the root */
    int st[MAX_IMAGES];             /* each image loaded alone, SIMCLR_FOLDER_FAIL */
    char msg[MAX_IMAGES][256];      /* its message when it failed */
    int skip_st;                    /* all images at once, SIMCLR_FOLDER_SKIP */
    int64_t n_kept, skipped;
    char bad[512];                  /* "relpath\n" per image marked bad */
} probe;

typedef struct probe_arg {
    const char *root;
    int labels;
} probe_arg;

static void cat(char *buf, size_t size, const char *s)
{
    size_t n = strlen(buf);
    snprintf(buf + n, size - n, "%s", s);
}

static void probe_child(const void *argp, void *outp)
{
    const probe_arg *a = argp;
    probe *r = outp;
    simclr_context *ctx;
    simclr_image_list *l = NULL;
    simclr_image_folder *f = NULL;
    r->open_st = simclr_context_create("ref", 1, NULL, &ctx);
    if (r->open_st == SIMCLR_OK) {
        r->open_st = simclr_image_list_create(ctx, 3, &l);
        if (r->open_st != SIMCLR_OK) simclr_context_destroy(ctx);
    }
    if (r->open_st != SIMCLR_OK) {
        snprintf(r->open_msg, sizeof r->open_msg, "the context or list: %s", simclr_last_error());
        return;
    }
    r->open_st = simclr_image_folder_open(ctx, a->root, 3, a->labels, &f);
    if (r->open_st != SIMCLR_OK) {
        snprintf(r->open_msg, sizeof r->open_msg, "%s", simclr_last_error());
        simclr_image_list_destroy(l);
        simclr_context_destroy(ctx);
        return;
    }
    size_t skip = strlen(a->root) + 1;
    r->count = simclr_image_folder_count(f);
    r->n_classes = simclr_image_folder_class_count(f);
    for (int k = 0; k < r->n_classes; k++) {
        cat(r->classes, sizeof r->classes, simclr_image_folder_class_name(f, k));
        cat(r->classes, sizeof r->classes, "\n");
    }
    char line[600];
    for (int64_t i = 0; i < r->count; i++) {
        snprintf(line, sizeof line, "%d %s\n", (int)simclr_image_folder_label(f, i),
                 simclr_image_folder_path(f, i) + skip);
        cat(r->listing, sizeof r->listing, line);
    }
    int64_t n = r->count < MAX_IMAGES ? r->count : MAX_IMAGES, all[MAX_IMAGES], kept[MAX_IMAGES];
    for (int64_t i = 0; i < n; i++) {
        all[i] = i;
        r->st[i] = simclr_image_folder_load(f, &all[i], 1, l, NULL, NULL);
        if (r->st[i] != SIMCLR_OK) snprintf(r->msg[i], sizeof r->msg[i], "%s", simclr_last_error());
    }
    simclr_image_folder_set(f, SIMCLR_FOLDER_ON_ERROR, SIMCLR_FOLDER_SKIP);
    r->skip_st = n ? simclr_image_folder_load(f, all, n, l, kept, &r->n_kept) : SIMCLR_OK;
    r->skipped = simclr_image_folder_skipped(f);
    for (int64_t i = 0; i < n; i++)
        if (simclr_image_folder_is_bad(f, i)) {
            cat(r->bad, sizeof r->bad, simclr_image_folder_path(f, i) + skip);
            cat(r->bad, sizeof r->bad, "\n");
        }
    simclr_image_list_clear(l);
    simclr_image_list_destroy(l);
    simclr_image_folder_destroy(f);
    simclr_context_destroy(ctx);
}

static void probe_folder(const char *root, int labels, probe *r)
{
    char what[700];
    snprintf(what, sizeof what, "simclr_image_folder_open/load of %s (labels %d)", root, labels);
    probe_arg a = {root, labels};
    run_bounded(probe_child, &a, r, sizeof *r, what);
}

/* Opens root in both modes: each must succeed and list exactly `want`
 * ("label relpath\n" per image; labels -1 for the unlabelled listing, taken
 * from want_labelled with every label replaced), every image decoding. */
static void expect_listing(const char *root, const char *want_classes, const char *want_labelled,
                           const char *want_plain)
{
    probe *r = malloc(sizeof *r);
    assert_non_null(r);
    for (int labels = 0; labels <= 1; labels++) {
        probe_folder(root, labels, r);
        if (r->open_st != SIMCLR_OK)
            fail_msg("open (labels %d) -> %s: %s", labels, simclr_status_string(r->open_st), r->open_msg);
        const char *want = labels ? want_labelled : want_plain;
        if (strcmp(r->listing, want) != 0)
            fail_msg("labels %d: listed\n%swant\n%s", labels, r->listing, want);
        assert_string_equal(r->classes, labels ? want_classes : "");
        for (int64_t i = 0; i < r->count; i++)
            if (r->st[i] != SIMCLR_OK) fail_msg("image %lld: %s", (long long)i, r->msg[i]);
        assert_int_equal(r->skip_st, SIMCLR_OK);
        assert_int_equal(r->n_kept, r->count);
        assert_int_equal(r->skipped, 0);
    }
    free(r);
}

/* ---- building trees ---- */

static void at(char *out, size_t size, const char *rel)
{
    if ((size_t)snprintf(out, size, "%s/%s", dir, rel) >= size) fail_msg("path %s/%s too long", dir, rel);
}

static void make_dir(const char *rel)
{
    char p[512];
    at(p, sizeof p, rel);
    if (mkdir(p, 0755) != 0) fail_msg("mkdir %s: %s", p, strerror(errno));
}

static void make_png(const char *rel)
{
    char p[512];
    at(p, sizeof p, rel);
    uint8_t px[4 * 6 * 3];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 7);
    CHECK_OK(simclr_image_write_png(p, px, 4, 6, 3));
}

static void make_link(const char *target, const char *rel)
{
    char p[512];
    at(p, sizeof p, rel);
    if (symlink(target, p) != 0) fail_msg("symlink %s -> %s: %s", p, target, strerror(errno));
}

static void make_fifo(const char *rel)
{
    char p[512];
    at(p, sizeof p, rel);
    if (mkfifo(p, 0644) != 0) fail_msg("mkfifo %s: %s", p, strerror(errno));
}

/* A bound UNIX socket at rel (the descriptor is closed; the entry stays). */
static void make_socket(const char *rel)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    at(sa.sun_path, sizeof sa.sun_path, rel);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0) fail_msg("bind %s: %s", sa.sun_path, strerror(errno));
    close(s);
}

/* ---- symlinks to folders ---- */

/* The case: two loops in one folder (x -> ., y -> .) made the walk
 * list r/a/x/y/x/... until the kernel's 40-link limit: 2^40 folders. */
static void test_two_loops_in_one_folder(void **state)
{
    (void)state;
    make_dir("loops");
    make_dir("loops/a");
    make_png("loops/a/x.png");
    make_link(".", "loops/a/x");
    make_link(".", "loops/a/y");
    char root[512];
    at(root, sizeof root, "loops");
    expect_listing(root, "a\n", "0 a/x.png\n", "-1 a/x.png\n");
}

/* Links to the parent, to the root, to a sibling, to a subfolder, across
 * classes and twice to one folder outside the tree: every folder is walked
 * once, by its real path when it has one inside the tree, else by the first
 * link (in walk order) that reaches it. */
static void test_links_to_folders_walked_once(void **state)
{
    (void)state;
    make_dir("outside");
    make_png("outside/o.png");
    make_link(".", "outside/self");
    make_dir("links");
    make_dir("links/a");
    make_dir("links/b");
    make_dir("links/b/sub");
    make_png("links/a/1.png");
    make_png("links/b/2.png");
    make_png("links/b/sub/3.png");
    make_link("..", "links/a/up");           /* the root */
    make_link("../b", "links/a/tob");        /* a sibling class */
    make_link("sub", "links/b/tosub");       /* its own subfolder */
    make_link("../../a", "links/b/sub/back"); /* another class, two levels up */
    make_link("../..", "links/b/sub/root");
    char outside[512], rel[600];
    at(outside, sizeof outside, "outside");
    snprintf(rel, sizeof rel, "%s", outside);
    make_link(rel, "links/a/ext1");          /* absolute, twice to one folder */
    make_link(rel, "links/b/ext2");
    make_link("../../outside", "links/b/sub/ext3"); /* relative, a third time */
    char root[512];
    at(root, sizeof root, "links");
    expect_listing(root, "a\nb\n",
                   "0 a/1.png\n0 a/ext1/o.png\n1 b/2.png\n1 b/sub/3.png\n",
                   "-1 a/1.png\n-1 a/ext1/o.png\n-1 b/2.png\n-1 b/sub/3.png\n");
}

/* Many folders, each with loops to itself and to the root: the set of
 * walked folders grows past its first size. */
static void test_many_folders_with_loops(void **state)
{
    (void)state;
    make_dir("many");
    char want_l[4096] = "", want_p[4096] = "", rel[256], line[300];
    for (int k = 0; k < 150; k++) {
        snprintf(rel, sizeof rel, "many/d%03d", k);
        make_dir(rel);
        snprintf(rel, sizeof rel, "many/d%03d/self", k);
        make_link(".", rel);
        snprintf(rel, sizeof rel, "many/d%03d/root", k);
        make_link("..", rel);
        if (k % 30 == 0) {
            snprintf(rel, sizeof rel, "many/d%03d/i.png", k);
            make_png(rel);
            snprintf(line, sizeof line, "%d d%03d/i.png\n", k, k);
            cat(want_l, sizeof want_l, line);
            snprintf(line, sizeof line, "-1 d%03d/i.png\n", k);
            cat(want_p, sizeof want_p, line);
        }
    }
    /* labels: classes without images fail the open, so only unlabelled */
    char root[512];
    at(root, sizeof root, "many");
    probe *r = malloc(sizeof *r);
    probe_folder(root, 0, r);
    if (r->open_st != SIMCLR_OK) fail_msg("open -> %s: %s", simclr_status_string(r->open_st), r->open_msg);
    assert_string_equal(r->listing, want_p);
    probe_folder(root, 1, r);
    assert_int_equal(r->open_st, SIMCLR_E_FORMAT); /* d001 holds no image */
    assert_non_null(strstr(r->open_msg, "'d001'"));
    free(r);
}

/* Two class folders that are one folder (kitty -> cat): refused, naming
 * both, instead of the same images under two labels; unlabelled, listed once. */
static void test_class_folder_twice(void **state)
{
    (void)state;
    make_dir("alias");
    make_dir("alias/cat");
    make_png("alias/cat/c.png");
    make_link("cat", "alias/kitty");
    char root[512];
    at(root, sizeof root, "alias");
    probe *r = malloc(sizeof *r);
    probe_folder(root, 1, r);
    if (r->open_st != SIMCLR_E_FORMAT)
        fail_msg("open -> %s (want SIMCLR_E_FORMAT): %s; listed\n%s", simclr_status_string(r->open_st), r->open_msg,
                 r->listing);
    if (!strstr(r->open_msg, "'kitty'") || !strstr(r->open_msg, "'cat'") || !strstr(r->open_msg, root))
        fail_msg("message '%s' names neither both classes nor the root", r->open_msg);
    probe_folder(root, 0, r);
    assert_int_equal(r->open_st, SIMCLR_OK);
    assert_string_equal(r->listing, "-1 cat/c.png\n");
    free(r);
}

/* ---- entries that are not regular files ---- */

/* A FIFO named p.png blocked the load forever in fopen; a socket, a link to
 * a device, a dangling link are refused the same way, naming the file: the
 * folder lists every entry named like an image that is not a folder (a
 * folder named y.png is walked as a folder), and the load refuses those
 * that are not regular files -- failing the call (SIMCLR_FOLDER_FAIL) or
 * skipped and counted (SIMCLR_FOLDER_SKIP), as unreadable and corrupt files
 * are. */
static void test_non_regular_entries(void **state)
{
    (void)state;
    make_dir("odd");
    make_png("odd/ok.png");
    make_link("ok.png", "odd/l.png");       /* a link to an image: an image */
    make_fifo("odd/p.png");
    make_socket("odd/s.png");
    make_link("/dev/null", "odd/n.png");    /* a character device */
    make_link("nowhere.png", "odd/d.png");  /* dangling */
    make_link("z.png", "odd/z.png");        /* a link to itself */
    make_dir("odd/y.png");
    make_png("odd/y.png/inner.png");
    char root[512];
    at(root, sizeof root, "odd");
    probe *r = malloc(sizeof *r);
    probe_folder(root, 0, r);
    if (r->open_st != SIMCLR_OK) fail_msg("open -> %s: %s", simclr_status_string(r->open_st), r->open_msg);
    assert_string_equal(r->listing, "-1 d.png\n-1 l.png\n-1 n.png\n-1 ok.png\n-1 p.png\n-1 s.png\n-1 z.png\n"
                                    "-1 y.png/inner.png\n");
    static const struct {
        const char *name, *why; /* NULL why: decodes */
    } want[] = {{"d.png", "No such file or directory"},
                {"l.png", NULL},
                {"n.png", "not a regular file (a character device)"},
                {"ok.png", NULL},
                {"p.png", "not a regular file (a FIFO)"},
                {"s.png", "not a regular file (a socket)"},
                {"z.png", "Too many levels of symbolic links"},
                {"inner.png", NULL}};
    assert_int_equal(r->count, 8);
    for (int i = 0; i < 8; i++) {
        if (!want[i].why) {
            if (r->st[i] != SIMCLR_OK) fail_msg("%s: %s", want[i].name, r->msg[i]);
            continue;
        }
        if (r->st[i] != SIMCLR_E_IO)
            fail_msg("%s -> %s (want SIMCLR_E_IO): %s", want[i].name, simclr_status_string(r->st[i]), r->msg[i]);
        char named[600];
        snprintf(named, sizeof named, "%s/%s", root, want[i].name);
        if (!strstr(r->msg[i], named) || !strstr(r->msg[i], want[i].why))
            fail_msg("%s: message '%s' lacks '%s' / '%s'", want[i].name, r->msg[i], named, want[i].why);
    }
    assert_int_equal(r->skip_st, SIMCLR_OK);
    assert_int_equal(r->n_kept, 3);
    assert_int_equal(r->skipped, 5);
    assert_string_equal(r->bad, "d.png\nn.png\np.png\ns.png\nz.png\n");
    free(r);
}

/* chmod 000 makes a file unreadable for anyone but root (who reads it
 * anyway): then skipped. */
static void test_unreadable_file(void **state)
{
    (void)state;
    if (geteuid() == 0) {
        printf("      (skipped: running as root, who reads a mode-000 file; the dangling link and the\n"
               "       link loop of test_non_regular_entries are the unreadable files then)\n");
        skip();
    }
    make_dir("locked");
    make_png("locked/a.png");
    make_png("locked/u.png");
    char p[512], root[512];
    at(p, sizeof p, "locked/u.png");
    assert_int_equal(chmod(p, 0), 0);
    at(root, sizeof root, "locked");
    probe *r = malloc(sizeof *r);
    probe_folder(root, 0, r);
    assert_int_equal(r->open_st, SIMCLR_OK);
    assert_string_equal(r->listing, "-1 a.png\n-1 u.png\n");
    assert_int_equal(r->st[0], SIMCLR_OK);
    assert_int_equal(r->st[1], SIMCLR_E_IO);
    assert_non_null(strstr(r->msg[1], p));
    assert_non_null(strstr(r->msg[1], "Permission denied"));
    assert_int_equal(r->n_kept, 1);
    assert_int_equal(r->skipped, 1);
    free(r);
}

/* ---- simclr_image_decode_file on what is not a regular file ---- */

typedef struct decoded {
    int st;
    char msg[512];
    int untouched;
} decoded;

static void decode_child(const void *argp, void *outp)
{
    decoded *r = outp;
    uint8_t *px = (uint8_t *)&px;
    int64_t h = -7, w = -7;
    r->st = simclr_image_decode_file(argp, 3, 0, 0, &px, &h, &w);
    snprintf(r->msg, sizeof r->msg, "%s", r->st == SIMCLR_OK ? "" : simclr_last_error());
    r->untouched = px == (uint8_t *)&px && h == -7 && w == -7;
    if (r->st == SIMCLR_OK) simclr_image_free(px);
}

/* Refused with SIMCLR_E_IO and a message naming the path and its kind,
 * promptly: a FIFO is not opened for a writer to come, /dev/zero is not
 * read until memory runs out, a folder is not read as a file. */
static void test_decode_file_refuses_non_regular(void **state)
{
    (void)state;
    make_dir("dec");
    make_fifo("dec/f.png");
    make_socket("dec/s.png");
    make_dir("dec/d.png");
    char fifo[512], sock[512], folder[512];
    at(fifo, sizeof fifo, "dec/f.png");
    at(sock, sizeof sock, "dec/s.png");
    at(folder, sizeof folder, "dec/d.png");
    const struct {
        const char *path, *why;
    } cases[] = {{fifo, "(a FIFO)"},
                 {sock, "(a socket)"},
                 {folder, "(a directory)"},
                 {"/dev/null", "(a character device)"},
                 {"/dev/zero", "(a character device)"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        decoded r;
        char what[600];
        snprintf(what, sizeof what, "simclr_image_decode_file(%s)", cases[i].path);
        run_bounded(decode_child, cases[i].path, &r, sizeof r, what);
        if (r.st != SIMCLR_E_IO)
            fail_msg("%s -> %s (want SIMCLR_E_IO): %s", what, simclr_status_string(r.st), r.msg);
        if (!strstr(r.msg, cases[i].path) || !strstr(r.msg, "not a regular file") || !strstr(r.msg, cases[i].why))
            fail_msg("%s: message '%s' lacks the path, 'not a regular file' or '%s'", what, r.msg, cases[i].why);
        assert_true(r.untouched);
    }
    /* a link to a regular image decodes */
    make_png("dec/real.png");
    make_link("real.png", "dec/link.png");
    char link[512];
    at(link, sizeof link, "dec/link.png");
    decoded r;
    run_bounded(decode_child, link, &r, sizeof r, "simclr_image_decode_file(link.png)");
    if (r.st != SIMCLR_OK) fail_msg("link.png: %s", r.msg);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "imgfolder");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_loops_in_one_folder),
        cmocka_unit_test(test_links_to_folders_walked_once),
        cmocka_unit_test(test_many_folders_with_loops),
        cmocka_unit_test(test_class_folder_twice),
        cmocka_unit_test(test_non_regular_entries),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_decode_file_refuses_non_regular),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
