/* Fuzz the job-output log (joblog.c) against a model: random appends, gaps, reads from any
 * offset, reopening the file (a daemon restart) and dropping the ring (a job's end). The byte
 * at offset o is always pattern(o), so the model needs no storage: every read must return
 * pattern bytes from the offset it reports, that offset must be max(since, held start), and
 * the held start must be exactly what a circular file of cap bytes keeps after the last gap.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "joblog.h"

static uint8_t pattern(uint64_t o)
{
        return (uint8_t)(o * 131 + 7 + (o >> 8));
}

static void check(int cond)
{
        if (!cond)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char path[64];
        struct joblog l;
        uint8_t buf[600], chunk[300];
        size_t i = 0;

        if (size < 2)
                return 0;
        uint64_t cap = 1 + data[0] % 64;
        size_t ring_cap = data[1] % 80; /* 0: no ring */
        i = 2;
        snprintf(path, sizeof(path), "/tmp/fuzz-joblog.%d", (int)getpid());
        if (joblog_create(&l, path, cap, ring_cap) < 0)
                return 0;
        uint64_t gap_at = 0; /* the model: held = [max(gap_at, end - cap), end) */
        while (i < size) {
                uint8_t op = data[i++] % 5, arg = i < size ? data[i++] : 0;
                switch (op) {
                case 0: { /* append arg bytes (as up to two writes) */
                        size_t n = arg;
                        for (size_t k = 0; k < n; k++)
                                chunk[k] = pattern(l.end + k);
                        joblog_append(&l, chunk, n);
                        break;
                }
                case 1: { /* a gap of arg bytes */
                        joblog_gap(&l, l.end + arg);
                        if (arg)
                                gap_at = l.end;
                        break;
                }
                case 2: /* reopen the file, as a restarted daemon does */
                        if (l.fd >= 0) {
                                uint64_t end = l.end;
                                joblog_close(&l);
                                check(joblog_open(&l, path, ring_cap) == 0);
                                check(l.end == end);
                        }
                        break;
                case 3: /* the job ended: readers go to the file */
                        joblog_drop_ring(&l);
                        break;
                default: { /* read from an offset near the end, up to arg bytes */
                        uint64_t back = (uint64_t)arg * 3 % 400;
                        uint64_t since = l.end > back ? l.end - back : 0;
                        uint64_t off, s2, e2;
                        size_t n;
                        check(joblog_read(&l, since, buf, arg, &off, &n) == 0);
                        uint64_t start = l.end - gap_at > cap ? l.end - cap : gap_at;
                        check(l.fd < 0 || l.start == start);
                        check(off == (since < l.start ? l.start : since) || (n == 0));
                        check(n <= arg && off + n <= l.end);
                        for (size_t k = 0; k < n; k++)
                                check(buf[k] == pattern(off + k));
                        if (l.fd >= 0) {
                                /* A reader of the file alone sees the same. */
                                check(joblog_file_range(path, &s2, &e2) == 0);
                                check(s2 == l.start && e2 == l.end);
                                size_t n2;
                                uint64_t off2;
                                check(joblog_file_read(path, since, buf, arg, &off2, &n2) == 0);
                                check(off2 == off && n2 == n);
                                for (size_t k = 0; k < n2; k++)
                                        check(buf[k] == pattern(off2 + k));
                        }
                        break;
                }
                }
        }
        joblog_close(&l);
        unlink(path);
        return 0;
}
