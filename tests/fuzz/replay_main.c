/* replay_main.c - run a libFuzzer harness over saved inputs without libFuzzer.
 *
 * Linked with any tests/fuzz/fuzz_*.c when the build has no libFuzzer (the default), so
 * every ctest run replays the committed corpora through the ordinary (sanitized) build.
 * Each argument is a file or a directory whose regular files (not recursing, in name
 * order so runs are reproducible) are read and passed to LLVMFuzzerTestOneInput() one by
 * one. Prints "replayed N inputs"; exits 1 if a path cannot be read or no input was found.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole regular file into an exact-size heap buffer (so ASan sees overreads). */
static int read_file(int dirfd, const char *path, uint8_t **ret, size_t *ret_len)
{
        int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint8_t *buf;
        size_t off = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return -EINVAL;
        }
        buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (off < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n < 0 ? -errno : -EIO;
                        free(buf);
                        close(fd);
                        return e;
                }
                off += (size_t)n;
        }
        close(fd);
        *ret = buf;
        *ret_len = off;
        return 0;
}

static int run_one(int dirfd, const char *path, const char *shown)
{
        uint8_t *data = NULL;
        size_t len = 0;
        int r = read_file(dirfd, path, &data, &len);

        if (r < 0) {
                fprintf(stderr, "cannot read %s: %s\n", shown, strerror(-r));
                return r;
        }
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dots(const struct dirent *d)
{
        return d->d_name[0] != '.';
}

/* Replay every regular file directly in dir; returns the count or -errno. */
static long run_dir(const char *dir)
{
        struct dirent **ents;
        long count = 0;
        int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int n;

        if (dirfd < 0)
                return -errno;
        n = scandir(dir, &ents, skip_dots, by_name);
        if (n < 0) {
                int e = -errno;
                close(dirfd);
                return e;
        }
        for (int i = 0; i < n; i++) {
                struct stat st;
                char shown[4096];
                snprintf(shown, sizeof(shown), "%s/%s", dir, ents[i]->d_name);
                if (fstatat(dirfd, ents[i]->d_name, &st, 0) == 0 && S_ISREG(st.st_mode)) {
                        if (run_one(dirfd, ents[i]->d_name, shown) < 0)
                                count = -EIO;
                        else if (count >= 0)
                                count++;
                }
                free(ents[i]);
        }
        free(ents);
        close(dirfd);
        return count;
}

int main(int argc, char **argv)
{
        long total = 0;
        bool failed = false;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "cannot read %s: %s\n", argv[i], strerror(errno));
                        failed = true;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        long n = run_dir(argv[i]);
                        if (n < 0) {
                                if (n != -EIO)
                                        fprintf(stderr, "cannot read %s: %s\n", argv[i],
                                                strerror((int)-n));
                                failed = true;
                        } else {
                                total += n;
                        }
                } else if (run_one(AT_FDCWD, argv[i], argv[i]) < 0) {
                        failed = true;
                } else {
                        total++;
                }
        }
        printf("replayed %ld inputs\n", total);
        if (total == 0)
                fprintf(stderr, "no input found\n");
        return failed || total == 0 ? 1 : 0;
}
