/* test_quota.c - what the per-organisation sandbox quotas count (store_sandbox_org_usage):
 * only sandboxes creating or running, only the organisation's own, summed cpus and memory,
 * and the earliest expiry (the Retry-After hint). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "util.h"

static void insert(struct store *st, const char *id, const char *org, const char *status,
                   int64_t cpu, int64_t mem, int64_t expires, uint32_t uid_base)
{
        struct store_sandbox sb = {};
        snprintf(sb.id, sizeof(sb.id), "%s", id);
        snprintf(sb.org_id, sizeof(sb.org_id), "%s", org);
        snprintf(sb.status, sizeof(sb.status), "%s", status);
        snprintf(sb.template, sizeof(sb.template), "base");
        snprintf(sb.isolation, sizeof(sb.isolation), "container");
        sb.cpu_millis = cpu;
        sb.memory_bytes = mem;
        sb.disk_bytes = 1 << 30;
        sb.timeout_s = 60;
        sb.expires_at = expires;
        sb.stopped_at = strcmp(status, "stopped") == 0 ? 5 : 0;
        sb.uid_base = uid_base;
        assert_int_equal(store_sandbox_insert(st, &sb), 0);
}

static void test_org_usage(void **state)
{
        char dir[] = "/tmp/test_quota.XXXXXX", path[64];
        struct store *st;
        struct store_org_usage u;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/warren.db", dir);
        assert_int_equal(store_open(path, &st), 0);
        assert_int_equal(store_org_create(st, "org_a", "A"), 0);
        assert_int_equal(store_org_create(st, "org_b", "B"), 0);

        assert_int_equal(store_sandbox_org_usage(st, "org_a", &u), 0);
        assert_int_equal(u.sandboxes, 0);
        assert_int_equal(u.cpu_millis, 0);
        assert_int_equal(u.memory_bytes, 0);
        assert_int_equal(u.next_expiry, 0);

        insert(st, "a1", "org_a", "running", 2000, 1 << 30, 500, 100000);
        insert(st, "a2", "org_a", "creating", 500, 256 << 20, 300, 200000);
        insert(st, "a3", "org_a", "stopped", 8000, 8LL << 30, 100, 300000);
        insert(st, "a4", "org_a", "stopping", 8000, 8LL << 30, 100, 400000);
        insert(st, "a5", "org_a", "error", 8000, 8LL << 30, 100, 500000);
        insert(st, "b1", "org_b", "running", 4000, 4LL << 30, 50, 600000);

        assert_int_equal(store_sandbox_org_usage(st, "org_a", &u), 0);
        assert_int_equal(u.sandboxes, 2);
        assert_int_equal(u.cpu_millis, 2500);
        assert_int_equal(u.memory_bytes, (1 << 30) + (256 << 20));
        assert_int_equal(u.next_expiry, 300);
        assert_int_equal(store_sandbox_org_usage(st, "org_b", &u), 0);
        assert_int_equal(u.sandboxes, 1);
        assert_int_equal(u.cpu_millis, 4000);
        assert_int_equal(u.next_expiry, 50);
        /* The count agrees with the older count-only query. */
        int64_t n;
        assert_int_equal(store_sandbox_count_active(st, "org_a", &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(store_sandbox_org_usage(st, NULL, &u), -EINVAL);

        store_close(st);
        util_rm_rf(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_org_usage),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
