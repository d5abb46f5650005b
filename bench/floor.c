/*
 * floor: the least a durable, multi-process, one-file-per-message queue must do.
 *
 * It is the physical floor the benchmark compares spool with: the same disk work
 * (a new file per message, its data synced before it is published, a rename under a
 * lock, a directory sync before success is reported) and nothing else: no queue
 * names, no claims, no recovery, no priorities, no junk checks, no buckets.
 *
 * Layout of DIR (created on first push):
 *   DIR/tmp/       messages being written
 *   DIR/q/SEQ      waiting messages, SEQ in decimal from 1
 *   DIR/tail       flock = producer lock; its length is the next SEQ
 *   DIR/head       flock = consumer lock; its length is the oldest SEQ that may wait
 *
 * Commands:
 *   floor push DIR [PAYLOAD]  one message: PAYLOAD, or all of standard input
 *   floor pop DIR             the oldest message to standard output; exit 1 when empty
 *   floor batch DIR           one message per line of standard input: all files written,
 *                             one syncfs, renames under one lock, one directory sync
 *   floor popn DIR N          up to N messages, one per line, under one lock, one sync
 *   floor list DIR            id, size, mtime, 48-byte preview of each waiting message
 *   floor stats DIR           count, bytes and oldest mtime of the waiting messages
 *
 * Every system call's result is checked; any failure prints the step and exits 2.
 * Build: gcc -O2 -o floor floor.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

static const char *dir_path;

static void die(const char *step, const char *what)
{
    fprintf(stderr, "floor: %s %s/%s: %s\n", step, dir_path, what, strerror(errno));
    exit(2);
}

static void die_msg(const char *msg)
{
    fprintf(stderr, "floor: %s\n", msg);
    exit(2);
}

static void xclose(int fd, const char *what)
{
    if (close(fd) != 0)
        die("close", what);
}

static void write_all(int fd, const char *buf, size_t n, const char *what)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("write", what);
        }
        buf += w;
        n -= (size_t)w;
    }
}

static ssize_t read_some(int fd, char *buf, size_t n, const char *what)
{
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            die("read", what);
    }
}

static int open_root(void)
{
    int fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            die("open", ".");
        if (mkdir(dir_path, 0700) != 0 && errno != EEXIST)
            die("mkdir", ".");
        fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            die("open", ".");
    }
    return fd;
}

static void make_layout(int root)
{
    if (mkdirat(root, "tmp", 0700) != 0 && errno != EEXIST)
        die("mkdir", "tmp");
    if (mkdirat(root, "q", 0700) != 0 && errno != EEXIST)
        die("mkdir", "q");
    if (fsync(root) != 0)
        die("fsync", ".");
}

/* Opens and locks a length file (the producer or consumer lock); *value = max(length, 1). */
static int lock_length_file(int root, const char *name, uint64_t *value)
{
    int fd = openat(root, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        die("open", name);
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR)
            die("flock", name);
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat", name);
    *value = st.st_size > 0 ? (uint64_t)st.st_size : 1;
    return fd;
}

static void set_length(int fd, uint64_t value, const char *name)
{
    if (ftruncate(fd, (off_t)value) != 0)
        die("ftruncate", name);
}

static void sync_dir(int root, const char *name)
{
    int fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        die("open", name);
    if (fsync(fd) != 0)
        die("fsync", name);
    xclose(fd, name);
}

static uint64_t token(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        die("clock_gettime", "");
    return ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
}

/* Creates tmp/NAME exclusively, creating the layout on first use. */
static int create_tmp(int root, char *name, size_t cap, uint64_t tok, uint64_t i)
{
    for (int attempt = 0; attempt < 8; attempt++, tok++) {
        snprintf(name, cap, "tmp/%016" PRIx64 ".%" PRIu64, tok, i);
        int fd = openat(root, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno == ENOENT)
            make_layout(root);
        else if (errno != EEXIST)
            die("create", name);
    }
    die_msg("no free temporary name");
    return -1;
}

/* Renames tmp file NAME to q/SEQ without replacing anything; returns the SEQ used. */
static uint64_t publish(int root, const char *name, uint64_t seq)
{
    char dst[64];
    for (;;) {
        snprintf(dst, sizeof dst, "q/%" PRIu64, seq);
        if (renameat2(root, name, root, dst, RENAME_NOREPLACE) == 0)
            return seq;
        if (errno != EEXIST)
            die("rename", name);
        seq++; /* never overwrite */
    }
}

static int cmd_push(int argc, char **argv)
{
    int root = open_root();
    char name[96];
    int fd = create_tmp(root, name, sizeof name, token(), 0);
    if (argc > 3) {
        write_all(fd, argv[3], strlen(argv[3]), name);
    } else {
        static char buf[1 << 16];
        ssize_t r;
        while ((r = read_some(0, buf, sizeof buf, "stdin")) > 0)
            write_all(fd, buf, (size_t)r, name);
    }
    if (fsync(fd) != 0)
        die("fsync", name);
    xclose(fd, name);

    uint64_t seq;
    int tail = lock_length_file(root, "tail", &seq);
    seq = publish(root, name, seq);
    set_length(tail, seq + 1, "tail");
    xclose(tail, "tail"); /* unlock */
    sync_dir(root, "q");
    xclose(root, ".");
    return 0;
}

/* Opens q/SEQ of the oldest message at or after *head; -1 when the queue is empty. */
static int open_oldest(int root, uint64_t *head, char *name, size_t cap)
{
    for (;;) {
        snprintf(name, cap, "q/%" PRIu64, *head);
        int fd = openat(root, name, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != ENOENT)
            die("open", name);
        /* A miss: empty (the head is at the tail: nothing was published from here on), or
         * a gap left by a skipped id. Telling a gap from a push that is publishing *head
         * right now needs the tail lock: a push renames before it moves the tail. */
        struct stat st;
        if (fstatat(root, "tail", &st, 0) != 0) {
            if (errno == ENOENT)
                return -1;
            die("stat", "tail");
        }
        if (*head >= (uint64_t)st.st_size)
            return -1;
        uint64_t tail;
        int lock = lock_length_file(root, "tail", &tail);
        fd = openat(root, name, O_RDONLY | O_CLOEXEC);
        int missing = fd < 0;
        if (missing && errno != ENOENT)
            die("open", name);
        xclose(lock, "tail");
        if (!missing)
            return fd;
        if (*head >= tail)
            return -1;
        (*head)++; /* a real gap: published ids only ever go up */
    }
}

static void copy_out(int fd, const char *name)
{
    static char buf[1 << 16];
    ssize_t r;
    while ((r = read_some(fd, buf, sizeof buf, name)) > 0)
        write_all(1, buf, (size_t)r, "stdout");
}

/* As spool does: output to a regular file is synced before the message is deleted. */
static void sync_output(void)
{
    struct stat st;
    if (fstat(1, &st) != 0)
        die("fstat", "stdout");
    if (S_ISREG(st.st_mode) && fdatasync(1) != 0)
        die("fdatasync", "stdout");
}

static int cmd_pop(void)
{
    int root = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        if (errno == ENOENT)
            return 1;
        die("open", ".");
    }
    uint64_t head;
    int lock = lock_length_file(root, "head", &head);
    char name[64];
    int fd = open_oldest(root, &head, name, sizeof name);
    if (fd < 0) {
        xclose(lock, "head");
        xclose(root, ".");
        return 1;
    }
    copy_out(fd, name);
    xclose(fd, name);
    sync_output();
    if (unlinkat(root, name, 0) != 0)
        die("unlink", name);
    set_length(lock, head + 1, "head");
    xclose(lock, "head"); /* unlock */
    sync_dir(root, "q");
    xclose(root, ".");
    return 0;
}

static int cmd_popn(int argc, char **argv)
{
    if (argc < 4)
        die_msg("usage: floor popn DIR N");
    uint64_t n = strtoull(argv[3], NULL, 10);
    int root = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        if (errno == ENOENT)
            return 1;
        die("open", ".");
    }
    uint64_t head, first, got = 0;
    int lock = lock_length_file(root, "head", &head);
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        die_msg("out of memory");
    char name[64];
    static char out[1 << 16];
    size_t used = 0;
    first = head;
    /* Deliver everything first (buffered), then delete: never delete before delivering. */
    for (; got < n; got++, head++) {
        int fd = open_oldest(root, &head, name, sizeof name);
        if (fd < 0)
            break;
        ids[got] = head;
        for (;;) {
            if (used == sizeof out) {
                write_all(1, out, used, "stdout");
                used = 0;
            }
            ssize_t r = read_some(fd, out + used, sizeof out - used, name);
            if (r == 0)
                break;
            used += (size_t)r;
        }
        if (used == sizeof out) {
            write_all(1, out, used, "stdout");
            used = 0;
        }
        out[used++] = '\n';
        xclose(fd, name);
    }
    write_all(1, out, used, "stdout");
    sync_output();
    for (uint64_t i = 0; i < got; i++) {
        snprintf(name, sizeof name, "q/%" PRIu64, ids[i]);
        if (unlinkat(root, name, 0) != 0)
            die("unlink", name);
    }
    if (head != first)
        set_length(lock, head, "head");
    xclose(lock, "head");
    sync_dir(root, "q");
    xclose(root, ".");
    free(ids);
    return got ? 0 : 1;
}

static int cmd_batch(void)
{
    int root = open_root();
    uint64_t tok = token();
    size_t count = 0, cap = 1024;
    char (*names)[48] = malloc(cap * sizeof *names);
    if (!names)
        die_msg("out of memory");
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    errno = 0;
    while ((len = getline(&line, &linecap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (count == cap) {
            cap *= 2;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                die_msg("out of memory");
        }
        int fd = create_tmp(root, names[count], sizeof names[count], tok, count);
        write_all(fd, line, (size_t)len, names[count]);
        xclose(fd, names[count]);
        count++;
    }
    if (ferror(stdin))
        die("read", "stdin");
    free(line);
    if (count == 0)
        return 0;

    int tmp = openat(root, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tmp < 0)
        die("open", "tmp");
    if (syncfs(tmp) != 0)
        die("syncfs", "tmp");
    xclose(tmp, "tmp");

    uint64_t seq;
    int tail = lock_length_file(root, "tail", &seq);
    for (size_t i = 0; i < count; i++) {
        seq = publish(root, names[i], seq) + 1;
        set_length(tail, seq, "tail");
    }
    xclose(tail, "tail");
    sync_dir(root, "q");
    xclose(root, ".");
    free(names);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads q/ and returns its message ids, sorted. */
static uint64_t *read_ids(int root, size_t *count)
{
    int qfd = openat(root, "q", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qfd < 0) {
        if (errno == ENOENT) {
            *count = 0;
            return NULL;
        }
        die("open", "q");
    }
    DIR *d = fdopendir(qfd);
    if (!d)
        die("fdopendir", "q");
    size_t n = 0, cap = 1024;
    uint64_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        die_msg("out of memory");
    struct dirent *e;
    for (;;) {
        errno = 0;
        if (!(e = readdir(d))) {
            if (errno)
                die("readdir", "q");
            break;
        }
        char *end;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        uint64_t id = strtoull(e->d_name, &end, 10);
        if (*end)
            continue;
        if (n == cap) {
            cap *= 2;
            ids = realloc(ids, cap * sizeof *ids);
            if (!ids)
                die_msg("out of memory");
        }
        ids[n++] = id;
    }
    if (closedir(d) != 0)
        die("closedir", "q");
    qsort(ids, n, sizeof *ids, cmp_u64);
    *count = n;
    return ids;
}

static int cmd_list(void)
{
    int root = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        die("open", ".");
    size_t n;
    uint64_t *ids = read_ids(root, &n);
    for (size_t i = 0; i < n; i++) {
        char name[64], preview[49], esc[49 * 4 + 4], when[32];
        snprintf(name, sizeof name, "q/%" PRIu64, ids[i]);
        int fd = openat(root, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* popped meanwhile */
            die("open", name);
        }
        struct stat st;
        if (fstat(fd, &st) != 0)
            die("fstat", name);
        ssize_t r = pread(fd, preview, 48, 0);
        if (r < 0)
            die("read", name);
        xclose(fd, name);
        size_t k = 0;
        for (ssize_t j = 0; j < r; j++) {
            unsigned char c = (unsigned char)preview[j];
            if (c == '\n') {
                esc[k++] = '\\';
                esc[k++] = 'n';
            } else if (c < 0x20 || c == 0x7f || c == '\\') {
                k += (size_t)sprintf(esc + k, "\\x%02x", c);
            } else {
                esc[k++] = (char)c;
            }
        }
        esc[k] = 0;
        struct tm tm;
        if (!gmtime_r(&st.st_mtime, &tm))
            die_msg("gmtime");
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (printf("%" PRIu64 "\t%lld\t%s\t%s%s\n", ids[i], (long long)st.st_size, when, esc,
                   st.st_size > 48 ? "..." : "") < 0)
            die("write", "stdout");
    }
    if (fflush(stdout) != 0)
        die("write", "stdout");
    free(ids);
    return 0;
}

static int cmd_stats(void)
{
    int root = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        die("open", ".");
    int qfd = openat(root, "q", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qfd < 0)
        die("open", "q");
    DIR *d = fdopendir(qfd);
    if (!d)
        die("fdopendir", "q");
    uint64_t count = 0, bytes = 0;
    time_t oldest = 0;
    struct dirent *e;
    for (;;) {
        errno = 0;
        if (!(e = readdir(d))) {
            if (errno)
                die("readdir", "q");
            break;
        }
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        struct stat st;
        if (fstatat(qfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue;
            die("stat", e->d_name);
        }
        count++;
        bytes += (uint64_t)st.st_size;
        if (!oldest || st.st_mtime < oldest)
            oldest = st.st_mtime;
    }
    if (closedir(d) != 0)
        die("closedir", "q");
    uint64_t head = 1, tail = 1;
    struct stat st;
    if (fstatat(root, "head", &st, 0) == 0 && st.st_size > 0)
        head = (uint64_t)st.st_size;
    if (fstatat(root, "tail", &st, 0) == 0 && st.st_size > 0)
        tail = (uint64_t)st.st_size;
    printf("waiting: %" PRIu64 "\nbytes:   %" PRIu64 "\noldest:  %lld\nhead:    %" PRIu64
           "\nnext id: %" PRIu64 "\n",
           count, bytes, (long long)oldest, head, tail);
    if (fflush(stdout) != 0)
        die("write", "stdout");
    xclose(root, ".");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        die_msg("usage: floor push|pop|batch|popn|list|stats DIR [ARG]");
    dir_path = argv[2];
    const char *cmd = argv[1];
    if (!strcmp(cmd, "push"))
        return cmd_push(argc, argv);
    if (!strcmp(cmd, "pop"))
        return cmd_pop();
    if (!strcmp(cmd, "batch"))
        return cmd_batch();
    if (!strcmp(cmd, "popn"))
        return cmd_popn(argc, argv);
    if (!strcmp(cmd, "list"))
        return cmd_list();
    if (!strcmp(cmd, "stats"))
        return cmd_stats();
    die_msg("unknown command");
    return 2;
}
