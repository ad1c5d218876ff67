/* ratelimit.h - token buckets keyed by a short string (the organisation id), with a bounded
 * number of buckets.
 *
 * Each key has a bucket of `burst` tokens refilled at `rate` tokens per second; a request
 * takes one token or is refused. Implemented as GCRA (the "virtual scheduling" form of a
 * token bucket): a bucket is one timestamp, the time at which it will be full again, so a
 * full bucket carries no information and can be dropped at any time. That is how memory
 * stays bounded: when the table is full, buckets that have refilled are dropped, and if none
 * has, the one nearest to full is (its key then starts again with a full bucket: a small
 * leniency towards one key, never a wrong refusal).
 *
 * Pure: the caller passes the time (monotonic nanoseconds), so tests drive it with a fake
 * clock. Single-threaded. Never logs.
 */
#ifndef WARREN_RATELIMIT_H
#define WARREN_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on the parameters, so that every product stays far inside 64 bits. */
#define RATELIMIT_MAX_RATE 1000000
#define RATELIMIT_MAX_BURST 1000000
/* Longest key, NUL excluded. */
#define RATELIMIT_KEY_MAX 63

struct ratelimit;

/* What ratelimit_take() decided, and what to tell the client. */
struct ratelimit_result {
        bool allowed;
        uint64_t limit;          /* the bucket's size (burst) */
        uint64_t remaining;      /* whole tokens left after this request */
        uint64_t reset_s;        /* seconds until the bucket is full again (rounded up) */
        uint64_t retry_after_s;  /* when refused: seconds until one token is back (>= 1) */
};

/* A limiter of rate tokens per second (1..RATELIMIT_MAX_RATE), buckets of burst tokens
 * (1..RATELIMIT_MAX_BURST), holding at most max_buckets buckets (>= 1). -EINVAL, -ENOMEM. */
int ratelimit_new(uint64_t rate, uint64_t burst, size_t max_buckets, struct ratelimit **ret);
void ratelimit_free(struct ratelimit *rl);

/* Take one token from key's bucket at time now_ns (monotonic, non-decreasing between calls;
 * an earlier time is treated as the latest seen). Fills *ret and returns 0, or -EINVAL (key
 * empty or longer than RATELIMIT_KEY_MAX), -ENOMEM (then the caller should let the request
 * through: a limiter that fails closed would turn memory pressure into an outage). */
int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ns,
                   struct ratelimit_result *ret);

/* Number of buckets held (tests, metrics). */
size_t ratelimit_size(const struct ratelimit *rl);

#endif
