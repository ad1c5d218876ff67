/* joblog.c - circular log file plus memory ring (joblog.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "joblog.h"
#include "util.h"

static const uint8_t magic[8] = { 'W', 'J', 'L', 'O', 'G', '0', '0', '1' };

static void put_u64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

/* Read and check a header: cap, start, end. -EIO when it is not a log or is inconsistent. */
static int read_header(int fd, uint64_t *cap, uint64_t *start, uint64_t *end)
{
        uint8_t h[JOBLOG_HDR];

        if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, magic, 8) != 0)
                return -EIO;
        *cap = get_u64(h + 8);
        *start = get_u64(h + 16);
        *end = get_u64(h + 24);
        if (*cap == 0 || *cap > (1ull << 50) || *start > *end || *end - *start > *cap)
                return -EIO;
        return 0;
}

static int write_header(const struct joblog *l)
{
        uint8_t h[JOBLOG_HDR];

        memcpy(h, magic, 8);
        put_u64(h + 8, l->cap);
        put_u64(h + 16, l->start);
        put_u64(h + 24, l->end);
        return pwrite(l->fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) ? 0 : -EIO;
}

void joblog_init_memory(struct joblog *l, uint64_t end, size_t ring_cap)
{
        *l = (struct joblog){ .fd = -1, .cap = 1, .start = end, .end = end,
                              .ring_cap = ring_cap, .ring_from = end };
}

int joblog_create(struct joblog *l, const char *path, uint64_t cap, size_t ring_cap)
{
        if (cap == 0)
                return -EINVAL;
        joblog_init_memory(l, 0, ring_cap);
        l->cap = cap;
        l->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (l->fd < 0)
                return neg_errno();
        int r = write_header(l);
        if (r < 0) {
                close(l->fd);
                l->fd = -1;
        }
        return r;
}

int joblog_open(struct joblog *l, const char *path, size_t ring_cap)
{
        uint64_t cap, start, end;
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return neg_errno();
        int r = read_header(fd, &cap, &start, &end);
        if (r < 0) {
                close(fd);
                return r;
        }
        joblog_init_memory(l, end, ring_cap);
        l->fd = fd;
        l->cap = cap;
        l->start = start;
        return 0;
}

void joblog_close(struct joblog *l)
{
        if (l->fd >= 0)
                close(l->fd);
        l->fd = -1;
        joblog_drop_ring(l);
}

void joblog_drop_ring(struct joblog *l)
{
        free(l->ring);
        l->ring = NULL;
        l->ring_cap = 0;
}

/* First offset the ring holds. */
static uint64_t ring_start(const struct joblog *l)
{
        if (!l->ring)
                return l->end;
        return l->end - l->ring_from > l->ring_cap ? l->end - l->ring_cap : l->ring_from;
}

/* Write data at offset off into the file's circular area (two pieces when it wraps). */
static int file_put(struct joblog *l, const uint8_t *data, size_t n, uint64_t off)
{
        while (n > 0) {
                uint64_t pos = off % l->cap;
                size_t chunk = n < l->cap - pos ? n : (size_t)(l->cap - pos);
                ssize_t w = pwrite(l->fd, data, chunk, (off_t)(JOBLOG_HDR + pos));
                if (w <= 0)
                        return w < 0 ? neg_errno() : -EIO;
                data += w;
                off += (uint64_t)w;
                n -= (size_t)w;
        }
        return 0;
}

static void ring_put(struct joblog *l, const uint8_t *data, size_t n, uint64_t off)
{
        if (n > l->ring_cap) {
                data += n - l->ring_cap;
                off += n - l->ring_cap;
                n = l->ring_cap;
        }
        while (n > 0) {
                size_t pos = (size_t)(off % l->ring_cap);
                size_t chunk = n < l->ring_cap - pos ? n : l->ring_cap - pos;
                memcpy(l->ring + pos, data, chunk);
                data += chunk;
                off += chunk;
                n -= chunk;
        }
}

/* The file failed: close it; what is held is now what the ring holds. */
static void drop_file(struct joblog *l)
{
        if (l->fd >= 0)
                close(l->fd);
        l->fd = -1;
}

void joblog_append(struct joblog *l, const uint8_t *data, size_t n)
{
        if (n == 0)
                return;
        if (!l->ring && l->ring_cap) {
                l->ring = malloc(l->ring_cap);
                l->ring_from = l->end;
                if (!l->ring)
                        l->ring_cap = 0;
        }
        if (l->ring)
                ring_put(l, data, n, l->end);
        if (l->fd >= 0) {
                /* Only the last cap bytes of a huge chunk can be held anyway. */
                size_t skip = n > l->cap ? n - (size_t)l->cap : 0;
                if (file_put(l, data + skip, n - skip, l->end + skip) < 0)
                        drop_file(l);
        }
        l->end += n;
        if (l->fd >= 0) {
                if (l->end - l->start > l->cap)
                        l->start = l->end - l->cap;
                if (write_header(l) < 0)
                        drop_file(l);
        }
        if (l->fd < 0 && l->start < ring_start(l))
                l->start = ring_start(l);
}

void joblog_gap(struct joblog *l, uint64_t offset)
{
        if (offset <= l->end)
                return;
        l->end = l->start = l->ring_from = offset;
        if (l->fd >= 0 && write_header(l) < 0)
                drop_file(l);
}

/* Read [off, off+n) from a file's circular area. */
static int file_get(int fd, uint64_t cap, uint64_t off, uint8_t *buf, size_t n)
{
        while (n > 0) {
                uint64_t pos = off % cap;
                size_t chunk = n < cap - pos ? n : (size_t)(cap - pos);
                ssize_t got = pread(fd, buf, chunk, (off_t)(JOBLOG_HDR + pos));
                if (got <= 0)
                        return got < 0 ? neg_errno() : -EIO;
                buf += got;
                off += (uint64_t)got;
                n -= (size_t)got;
        }
        return 0;
}

/* Clamp since into [start, end]; the number of bytes to read is returned in *ret_n. */
static uint64_t clamp(uint64_t start, uint64_t end, uint64_t since, size_t max, size_t *ret_n)
{
        if (since < start)
                since = start;
        if (since >= end) {
                *ret_n = 0;
                return end < since ? end : since;
        }
        *ret_n = end - since < max ? (size_t)(end - since) : max;
        return since;
}

int joblog_read(const struct joblog *l, uint64_t since, uint8_t *buf, size_t max,
                uint64_t *ret_offset, size_t *ret_len)
{
        size_t n;
        uint64_t off = clamp(l->start, l->end, since, max, &n);

        if (n > 0 && l->ring && off >= ring_start(l)) {
                for (size_t done = 0; done < n;) {
                        size_t pos = (size_t)((off + done) % l->ring_cap);
                        size_t chunk = n - done < l->ring_cap - pos ? n - done
                                                                    : l->ring_cap - pos;
                        memcpy(buf + done, l->ring + pos, chunk);
                        done += chunk;
                }
        } else if (n > 0) {
                if (l->fd < 0)
                        return -EIO; /* cannot happen: start follows the ring then */
                int r = file_get(l->fd, l->cap, off, buf, n);
                if (r < 0)
                        return r;
        }
        *ret_offset = off;
        *ret_len = n;
        return 0;
}

int joblog_file_range(const char *path, uint64_t *ret_start, uint64_t *ret_end)
{
        uint64_t cap;
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return neg_errno();
        return read_header(fd, &cap, ret_start, ret_end);
}

int joblog_file_read(const char *path, uint64_t since, uint8_t *buf, size_t max,
                     uint64_t *ret_offset, size_t *ret_len)
{
        uint64_t cap, start, end;
        size_t n;
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return neg_errno();
        int r = read_header(fd, &cap, &start, &end);
        if (r < 0)
                return r;
        uint64_t off = clamp(start, end, since, max, &n);
        if (n > 0 && (r = file_get(fd, cap, off, buf, n)) < 0)
                return r;
        *ret_offset = off;
        *ret_len = n;
        return 0;
}
