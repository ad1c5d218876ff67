/* ratelimit.c - bounded GCRA token buckets; see ratelimit.h.
 *
 * For a bucket, `tat` ("theoretical arrival time") is when it will hold `burst` tokens again.
 * With T = 1 s / rate (the time one token takes to come back) and capacity C = burst * T:
 *   tokens(now) = burst - max(0, tat - now) / T
 *   take:  t = max(tat, now) + T; allowed iff t - now <= C, and then tat = t.
 * Everything is integer nanoseconds.
 */
#include "ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Buckets that have refilled are swept at most this often (besides when the table is full),
 * so an idle organisation's bucket does not live forever. */
#define RATELIMIT_SWEEP_NS (60ULL * 1000000000ULL)

struct bucket {
        struct bucket *next; /* hash chain */
        uint64_t tat;
        char key[RATELIMIT_KEY_MAX + 1];
};

struct ratelimit {
        uint64_t interval_ns; /* T */
        uint64_t capacity_ns; /* C = burst * T */
        uint64_t burst;
        size_t max_buckets;
        size_t n;
        size_t n_slots;       /* power of two */
        struct bucket **slots;
        uint64_t last_now;    /* latest time seen: the clock never goes back here */
        uint64_t last_sweep;
};

int ratelimit_new(uint64_t rate, uint64_t burst, size_t max_buckets, struct ratelimit **ret)
{
        struct ratelimit *rl;
        size_t slots = 16;

        if (rate < 1 || rate > RATELIMIT_MAX_RATE || burst < 1 || burst > RATELIMIT_MAX_BURST ||
            max_buckets < 1 || max_buckets > (SIZE_MAX / 4) / sizeof(struct bucket *))
                return -EINVAL;
        /* Chains of about one bucket at the bound. */
        while (slots < max_buckets)
                slots *= 2;
        rl = calloc(1, sizeof(*rl));
        if (!rl)
                return -ENOMEM;
        rl->slots = calloc(slots, sizeof(*rl->slots));
        if (!rl->slots) {
                free(rl);
                return -ENOMEM;
        }
        rl->interval_ns = 1000000000ULL / rate;
        rl->capacity_ns = rl->interval_ns * burst;
        rl->burst = burst;
        rl->max_buckets = max_buckets;
        rl->n_slots = slots;
        *ret = rl;
        return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
        if (!rl)
                return;
        for (size_t i = 0; i < rl->n_slots; i++) {
                struct bucket *b = rl->slots[i];
                while (b) {
                        struct bucket *next = b->next;
                        free(b);
                        b = next;
                }
        }
        free(rl->slots);
        free(rl);
}

size_t ratelimit_size(const struct ratelimit *rl)
{
        return rl ? rl->n : 0;
}

/* FNV-1a: keys are organisation ids chosen by the server, not by clients. */
static size_t hash_key(const char *key)
{
        uint64_t h = 1469598103934665603ULL;
        for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
                h ^= *p;
                h *= 1099511628211ULL;
        }
        return (size_t)h;
}

/* Drop every bucket that is full at now (it is the same as no bucket). */
static void sweep(struct ratelimit *rl, uint64_t now)
{
        for (size_t i = 0; i < rl->n_slots; i++) {
                struct bucket **pp = &rl->slots[i];
                while (*pp) {
                        struct bucket *b = *pp;
                        if (b->tat <= now) {
                                *pp = b->next;
                                free(b);
                                rl->n--;
                        } else {
                                pp = &b->next;
                        }
                }
        }
        rl->last_sweep = now;
}

/* Drop the bucket nearest to full (smallest tat). The table holds at least one. */
static void evict_one(struct ratelimit *rl)
{
        struct bucket **victim = NULL;

        for (size_t i = 0; i < rl->n_slots; i++)
                for (struct bucket **pp = &rl->slots[i]; *pp; pp = &(*pp)->next)
                        if (!victim || (*pp)->tat < (*victim)->tat)
                                victim = pp;
        if (victim) {
                struct bucket *b = *victim;
                *victim = b->next;
                free(b);
                rl->n--;
        }
}

static uint64_t ceil_s(uint64_t ns)
{
        return (ns + 999999999ULL) / 1000000000ULL;
}

int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ns,
                   struct ratelimit_result *ret)
{
        struct bucket *b;
        size_t klen;

        if (!rl || !key || !ret || !(klen = strlen(key)) || klen > RATELIMIT_KEY_MAX)
                return -EINVAL;
        if (now_ns < rl->last_now)
                now_ns = rl->last_now;
        rl->last_now = now_ns;
        if (now_ns - rl->last_sweep >= RATELIMIT_SWEEP_NS)
                sweep(rl, now_ns);

        size_t slot = hash_key(key) & (rl->n_slots - 1);
        for (b = rl->slots[slot]; b; b = b->next)
                if (strcmp(b->key, key) == 0)
                        break;
        if (!b) {
                if (rl->n >= rl->max_buckets) {
                        sweep(rl, now_ns);
                        if (rl->n >= rl->max_buckets)
                                evict_one(rl);
                }
                b = calloc(1, sizeof(*b));
                if (!b)
                        return -ENOMEM;
                memcpy(b->key, key, klen + 1);
                b->tat = now_ns;
                b->next = rl->slots[slot];
                rl->slots[slot] = b;
                rl->n++;
        }

        uint64_t base = b->tat > now_ns ? b->tat : now_ns;
        uint64_t t = base + rl->interval_ns;
        struct ratelimit_result res = { .limit = rl->burst };
        if (t - now_ns <= rl->capacity_ns) {
                b->tat = t;
                res.allowed = true;
        } else {
                res.allowed = false;
                res.retry_after_s = ceil_s(t - now_ns - rl->capacity_ns);
                if (res.retry_after_s < 1)
                        res.retry_after_s = 1;
        }
        uint64_t used = b->tat > now_ns ? b->tat - now_ns : 0; /* <= capacity */
        res.remaining = (rl->capacity_ns - used) / rl->interval_ns;
        res.reset_s = ceil_s(used);
        *ret = res;
        return 0;
}
