/* joblog.h - a job's output log: a circular file plus a memory ring (no event loop, no store:
 * pure file and buffer code, so a fuzzer can check it against a model).
 *
 * Bytes have offsets from 0. The file is a JOBLOG_HDR-byte header (magic, cap, start, end
 * as little-endian u64s) and a data area of cap bytes: offset o sits at HDR + o % cap, so the
 * file holds the latest cap bytes. The header is rewritten after each append, so a reader
 * (or a restarted daemon) knows which offsets [start, end) are held. The ring holds the
 * latest ring_cap bytes in memory, for readers of a live job.
 */
#ifndef WARREN_JOBLOG_H
#define WARREN_JOBLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOBLOG_HDR 32

struct joblog {
        int fd;             /* -1 when the file failed (the ring carries on alone) */
        uint64_t cap;       /* data area of the file */
        uint64_t start;     /* first offset still held */
        uint64_t end;       /* offset after the last byte */
        uint8_t *ring;      /* allocated on the first append; NULL once dropped */
        size_t ring_cap;    /* 0: no ring */
        uint64_t ring_from; /* first offset the ring holds data from */
};

/* Create (truncate) a log file at path with a data area of cap bytes; ring_cap may be 0. */
int joblog_create(struct joblog *l, const char *path, uint64_t cap, size_t ring_cap);
/* Open an existing log to append to (its header says cap, start, end). -EIO if damaged. */
int joblog_open(struct joblog *l, const char *path, size_t ring_cap);
/* A log without a file (its file could not be made): the ring only, from offset end. */
void joblog_init_memory(struct joblog *l, uint64_t end, size_t ring_cap);
void joblog_close(struct joblog *l);

/* Append n bytes. Never fails: a file error drops the file, the ring carries on. */
void joblog_append(struct joblog *l, const uint8_t *data, size_t n);
/* Bytes [end, offset) never arrived: the log continues at offset with nothing before it. */
void joblog_gap(struct joblog *l, uint64_t offset);
/* Free the ring (the job ended: readers go to the file). */
void joblog_drop_ring(struct joblog *l);

/* Read up to max bytes from since (moved up to start when older): *ret_offset is where the
 * data starts, *ret_len may be 0 (nothing at or after since). */
int joblog_read(const struct joblog *l, uint64_t since, uint8_t *buf, size_t max,
                uint64_t *ret_offset, size_t *ret_len);

/* The same for a log file not open for appending (a finished job): range and read. */
int joblog_file_range(const char *path, uint64_t *ret_start, uint64_t *ret_end);
int joblog_file_read(const char *path, uint64_t since, uint8_t *buf, size_t max,
                     uint64_t *ret_offset, size_t *ret_len);

#endif
