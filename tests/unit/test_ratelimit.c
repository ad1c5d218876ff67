/* test_ratelimit.c - the per-organisation token buckets, driven by a fake clock: burst, refill,
 * Retry-After/Reset/Remaining arithmetic, independence of keys, a clock that goes back, and
 * the memory bound (idle buckets swept, the table never above its size). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

#define S 1000000000ULL /* one second in ns */
#define MS 1000000ULL

/* A start far from zero, like a monotonic clock on a machine that has been up a while. */
#define T0 (1000 * S)

static struct ratelimit_result take(struct ratelimit *rl, const char *key, uint64_t now)
{
        struct ratelimit_result res;
        assert_int_equal(ratelimit_take(rl, key, now, &res), 0);
        return res;
}

static void test_burst_then_refuse_then_refill(void **state)
{
        struct ratelimit *rl;
        struct ratelimit_result r;

        /* 1 request per second, bucket of 3. */
        assert_int_equal(ratelimit_new(1, 3, 16, &rl), 0);
        r = take(rl, "org_a", T0);
        assert_true(r.allowed);
        assert_int_equal(r.limit, 3);
        assert_int_equal(r.remaining, 2);
        assert_int_equal(r.reset_s, 1);
        r = take(rl, "org_a", T0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 1);
        assert_int_equal(r.reset_s, 2);
        r = take(rl, "org_a", T0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 0);
        assert_int_equal(r.reset_s, 3);
        /* Empty: refused, one token is back in 1 s. */
        r = take(rl, "org_a", T0);
        assert_false(r.allowed);
        assert_int_equal(r.remaining, 0);
        assert_int_equal(r.retry_after_s, 1);
        assert_int_equal(r.reset_s, 3);
        /* A refusal costs nothing: 400 ms later still refused, retry rounds up to 1 s. */
        r = take(rl, "org_a", T0 + 400 * MS);
        assert_false(r.allowed);
        assert_int_equal(r.retry_after_s, 1);
        /* After Retry-After: exactly one more. */
        r = take(rl, "org_a", T0 + 1 * S);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 0);
        r = take(rl, "org_a", T0 + 1 * S);
        assert_false(r.allowed);
        /* Long idle: the bucket is full again, never more than full. */
        r = take(rl, "org_a", T0 + 100 * S);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 2);
        ratelimit_free(rl);
}

static void test_sustained_rate(void **state)
{
        struct ratelimit *rl;
        int allowed = 0;

        /* 10/s, bucket of 5: over 10 s at 100 requests per second, 5 + 100 get through. */
        assert_int_equal(ratelimit_new(10, 5, 4, &rl), 0);
        for (int i = 0; i < 1000; i++)
                if (take(rl, "org", T0 + (uint64_t)i * 10 * MS).allowed)
                        allowed++;
        /* The last instant is 9.99 s: 99 tokens back, plus the burst, give or take one. */
        assert_in_range(allowed, 103, 105);
        ratelimit_free(rl);
}

static void test_keys_are_independent(void **state)
{
        struct ratelimit *rl;

        assert_int_equal(ratelimit_new(1, 2, 16, &rl), 0);
        assert_true(take(rl, "org_a", T0).allowed);
        assert_true(take(rl, "org_a", T0).allowed);
        assert_false(take(rl, "org_a", T0).allowed);
        /* Another organisation is untouched by the first one's exhaustion. */
        struct ratelimit_result r = take(rl, "org_b", T0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 1);
        assert_false(take(rl, "org_a", T0).allowed);
        ratelimit_free(rl);
}

static void test_clock_going_back(void **state)
{
        struct ratelimit *rl;

        assert_int_equal(ratelimit_new(1, 1, 4, &rl), 0);
        assert_true(take(rl, "k", T0 + 10 * S).allowed);
        /* An earlier time counts as the latest seen: no tokens are minted by it. */
        assert_false(take(rl, "k", T0).allowed);
        assert_false(take(rl, "k", T0 + 10 * S).allowed);
        assert_true(take(rl, "k", T0 + 11 * S).allowed);
        ratelimit_free(rl);
}

static void test_memory_is_bounded(void **state)
{
        struct ratelimit *rl;
        char key[32];

        assert_int_equal(ratelimit_new(1, 5, 8, &rl), 0);
        /* 100 organisations at once: never more than 8 buckets. */
        for (int i = 0; i < 100; i++) {
                snprintf(key, sizeof(key), "org_%d", i);
                assert_true(take(rl, key, T0).allowed);
                assert_true(ratelimit_size(rl) <= 8);
        }
        assert_int_equal(ratelimit_size(rl), 8);
        /* A bucket evicted while not full only starts over full: its key is let through, not
         * refused (leniency, never a wrong 429). */
        assert_true(take(rl, "org_0", T0).allowed);
        /* Idle buckets go away by themselves once full again (the periodic sweep). */
        assert_true(take(rl, "late", T0 + 120 * S).allowed);
        assert_int_equal(ratelimit_size(rl), 1);
        /* The victim when the table is full is the bucket nearest to full. */
        ratelimit_free(rl);
        assert_int_equal(ratelimit_new(1, 5, 2, &rl), 0);
        for (int i = 0; i < 4; i++)
                take(rl, "busy", T0); /* 4 of 5 used */
        take(rl, "calm", T0);         /* 1 of 5 used */
        take(rl, "new", T0);          /* full table: "calm" goes */
        assert_int_equal(ratelimit_size(rl), 2);
        struct ratelimit_result r = take(rl, "busy", T0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 0); /* "busy" kept its state */
        assert_false(take(rl, "busy", T0).allowed);
        ratelimit_free(rl);
}

static void test_bad_arguments(void **state)
{
        struct ratelimit *rl = NULL;
        struct ratelimit_result r;
        char long_key[RATELIMIT_KEY_MAX + 2];

        assert_int_equal(ratelimit_new(0, 1, 1, &rl), -EINVAL);
        assert_int_equal(ratelimit_new(1, 0, 1, &rl), -EINVAL);
        assert_int_equal(ratelimit_new(1, 1, 0, &rl), -EINVAL);
        assert_int_equal(ratelimit_new(RATELIMIT_MAX_RATE + 1, 1, 1, &rl), -EINVAL);
        assert_int_equal(ratelimit_new(1, RATELIMIT_MAX_BURST + 1, 1, &rl), -EINVAL);
        assert_null(rl);
        /* The largest parameters stay exact. */
        assert_int_equal(ratelimit_new(RATELIMIT_MAX_RATE, RATELIMIT_MAX_BURST, 1, &rl), 0);
        r = take(rl, "k", T0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, RATELIMIT_MAX_BURST - 1);
        memset(long_key, 'k', sizeof(long_key) - 1);
        long_key[sizeof(long_key) - 1] = '\0';
        assert_int_equal(ratelimit_take(rl, long_key, T0, &r), -EINVAL);
        assert_int_equal(ratelimit_take(rl, "", T0, &r), -EINVAL);
        ratelimit_free(rl);
        ratelimit_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_refuse_then_refill),
                cmocka_unit_test(test_sustained_rate),
                cmocka_unit_test(test_keys_are_independent),
                cmocka_unit_test(test_clock_going_back),
                cmocka_unit_test(test_memory_is_bounded),
                cmocka_unit_test(test_bad_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
