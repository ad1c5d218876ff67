/* Unit tests for client path checks and splitting (src/daemon/paths.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "paths.h"

static void split_ok(const char *in, const char *parent, const char *base)
{
        char p[PATHS_MAX + 1], b[PATHS_NAME_MAX + 1];
        assert_int_equal(paths_split(in, p, sizeof(p), b, sizeof(b)), 0);
        assert_string_equal(p, parent);
        assert_string_equal(b, base);
}

static void split_err(const char *in, int err)
{
        char p[PATHS_MAX + 1], b[PATHS_NAME_MAX + 1];
        assert_int_equal(paths_split(in, p, sizeof(p), b, sizeof(b)), err);
}

static void test_split(void **state)
{
        split_ok("/workspace/a.txt", "/workspace", "a.txt");
        split_ok("/a", "/", "a");
        split_ok("/a/b/", "/a", "b");
        split_ok("/a//b//", "/a", "b");
        split_ok("//a", "/", "a");
        split_ok("/../../etc/x", "/../../etc", "x"); /* resolved in the root by the kernel */
        split_err("/", -EINVAL);
        split_err("///", -EINVAL);
        split_err("", -EINVAL);
        split_err("relative/path", -EINVAL);
        split_err("/a/..", -EINVAL);
        split_err("/a/.", -EINVAL);
        split_err("/a/../", -EINVAL);
}

static void test_limits(void **state)
{
        char long_name[300], long_path[PATHS_MAX + 10];
        char p[8], b[8];
        memset(long_name, 'n', sizeof(long_name));
        long_name[0] = '/';
        long_name[299] = '\0';
        split_err(long_name, -ENAMETOOLONG);
        memset(long_path, 'a', sizeof(long_path));
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = '\0';
        assert_int_equal(paths_check(long_path), -ENAMETOOLONG);
        assert_int_equal(paths_check("/ok"), 0);
        assert_int_equal(paths_check(NULL), -EINVAL);
        /* small output buffers are refused, never overflowed */
        assert_int_equal(paths_split("/abcdefgh/x", p, sizeof(p), b, sizeof(b)), -ENAMETOOLONG);
        assert_int_equal(paths_split("/a/abcdefgh", p, sizeof(p), b, sizeof(b)), -ENAMETOOLONG);
        assert_true(paths_is_root("/"));
        assert_true(paths_is_root("///"));
        assert_false(paths_is_root("/a"));
        assert_false(paths_is_root(""));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split),
                cmocka_unit_test(test_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
