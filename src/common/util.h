/* util.h - scope guards, error helpers and small utilities shared by every module.
 *
 * Conventions (see docs/architecture.md):
 *  - functions return int: >= 0 on success, negative errno on failure;
 *  - output parameters are named ret_* and written only on success;
 *  - every fd is O_CLOEXEC from birth;
 *  - library code never logs and never exits.
 */
#ifndef WARREN_UTIL_H
#define WARREN_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* free() the pointer when the variable leaves scope. */
#define cleanup_free __attribute__((cleanup(util_freep)))
/* close() the fd (if >= 0) when the variable leaves scope. */
#define cleanup_close __attribute__((cleanup(util_closep)))
/* fclose() the FILE* (if non-NULL) when the variable leaves scope. */
#define cleanup_fclose __attribute__((cleanup(util_fclosep)))

static inline void util_freep(void *p)
{
        free(*(void **)p);
}

static inline void util_closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void util_fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

/* Transfer ownership out of a scope guard: returns the value and clears the variable. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) take_ptr_tmp_ = (p);                                                 \
                (p) = NULL;                                                                        \
                take_ptr_tmp_;                                                                     \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int take_fd_tmp_ = (fd);                                                           \
                (fd) = -1;                                                                         \
                take_fd_tmp_;                                                                      \
        })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED __attribute__((unused))

/* Negative errno of the last failed libc call (never 0, so it is always a failure). */
static inline int neg_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

/* Monotonic clock in nanoseconds / milliseconds (double). */
uint64_t util_now_ns(void);
double util_ms_since(uint64_t start_ns);

/* Wall clock as seconds since the epoch. */
int64_t util_wall_s(void);
/* Wall clock as milliseconds since the epoch. */
int64_t util_wall_ms(void);

/* Format an epoch time as RFC 3339 UTC ("2026-01-30T10:00:00Z") into buf (>= 21 bytes). */
void util_fmt_time(int64_t epoch_s, char *buf, size_t len);

/* Fill buf with len cryptographically random bytes (getrandom). 0 or -errno. */
int util_random(void *buf, size_t len);

/* Write all of buf to fd, retrying on EINTR and short writes. 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);

/* Read exactly len bytes (0 on success, -EPIPE on early EOF, -errno otherwise). */
int util_read_all(int fd, void *buf, size_t len);

/* Write a small string to a file path (open O_WRONLY|O_CLOEXEC, no create). 0 or -errno. */
int util_write_file(const char *path, const char *value);

/* Write a small string to path relative to dirfd, creating with mode if missing. 0 or -errno. */
int util_write_file_at(int dirfd, const char *path, const char *value, int mode);

/* mkdir -p with mode; existing directories are fine. 0 or -errno. */
int util_mkdir_p(const char *path, int mode);

/* Remove a directory tree without following symlinks and without crossing mount points
 * (entries on another device are left and make the call fail with -EBUSY). Missing is fine. */
int util_rm_rf(const char *path);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void util_hex(const uint8_t *in, size_t len, char *out);

/* Process start time (field 22 of /proc/PID/stat, clock ticks since boot), used to tell a
 * process from a later one that reused its pid. 0 if the process does not exist. */
uint64_t util_proc_starttime(pid_t pid);

#endif
