/* Unit tests for the daemon's small parsers: quantities, base64, UTF-8 sanitising, the errno
 * table and the config loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "b64.h"
#include "config.h"
#include "quantity.h"

static void test_cpus(void **state)
{
        uint64_t m;
        assert_int_equal(qty_parse_cpus("1", &m), 0);
        assert_int_equal(m, 1000);
        assert_int_equal(qty_parse_cpus("2", &m), 0);
        assert_int_equal(m, 2000);
        assert_int_equal(qty_parse_cpus("500m", &m), 0);
        assert_int_equal(m, 500);
        assert_int_equal(qty_parse_cpus("0.5", &m), 0);
        assert_int_equal(m, 500);
        assert_int_equal(qty_parse_cpus("1.25", &m), 0);
        assert_int_equal(m, 1250);
        assert_int_equal(qty_parse_cpus("", &m), -EINVAL);
        assert_int_equal(qty_parse_cpus("abc", &m), -EINVAL);
        assert_int_equal(qty_parse_cpus("1.2345", &m), -EINVAL);
        assert_int_equal(qty_parse_cpus("-1", &m), -EINVAL);
        assert_int_equal(qty_parse_cpus("1x", &m), -EINVAL);
        assert_int_equal(qty_parse_cpus(".", &m), -EINVAL);
        assert_int_equal(qty_parse_cpus("99999999999999999999999", &m), -ERANGE);
}

static void test_bytes(void **state)
{
        uint64_t b;
        assert_int_equal(qty_parse_bytes("512Mi", &b), 0);
        assert_int_equal(b, 512ULL << 20);
        assert_int_equal(qty_parse_bytes("2Gi", &b), 0);
        assert_int_equal(b, 2ULL << 30);
        assert_int_equal(qty_parse_bytes("1G", &b), 0);
        assert_int_equal(b, 1000000000ULL);
        assert_int_equal(qty_parse_bytes("1.5Gi", &b), 0);
        assert_int_equal(b, 3ULL << 29);
        assert_int_equal(qty_parse_bytes("1048576", &b), 0);
        assert_int_equal(b, 1048576);
        assert_int_equal(qty_parse_bytes("12Zi", &b), -EINVAL);
        assert_int_equal(qty_parse_bytes("Gi", &b), -EINVAL);
        assert_int_equal(qty_parse_bytes("0.5", &b), -EINVAL); /* half a byte */
        assert_int_equal(qty_parse_bytes("16Ei", &b), -ERANGE);
}

static void test_format(void **state)
{
        char buf[32];
        qty_format_cpus(2000, buf, sizeof(buf));
        assert_string_equal(buf, "2");
        qty_format_cpus(500, buf, sizeof(buf));
        assert_string_equal(buf, "500m");
        qty_format_bytes(2ULL << 30, buf, sizeof(buf));
        assert_string_equal(buf, "2Gi");
        qty_format_bytes(1536ULL << 20, buf, sizeof(buf));
        assert_string_equal(buf, "1536Mi");
        qty_format_bytes(1000, buf, sizeof(buf));
        assert_string_equal(buf, "1000");
}

static void b64_roundtrip(const char *plain, const char *enc)
{
        char out[256];
        uint8_t dec[256];
        size_t n;
        b64_encode((const uint8_t *)plain, strlen(plain), out);
        assert_string_equal(out, enc);
        assert_int_equal(b64_decode(enc, strlen(enc), dec, &n), 0);
        assert_int_equal(n, strlen(plain));
        assert_memory_equal(dec, plain, n);
}

static void test_b64(void **state)
{
        uint8_t dec[64];
        size_t n;
        b64_roundtrip("", "");
        b64_roundtrip("f", "Zg==");
        b64_roundtrip("fo", "Zm8=");
        b64_roundtrip("foo", "Zm9v");
        b64_roundtrip("Hello World!", "SGVsbG8gV29ybGQh");
        /* unpadded and wrapped input is accepted */
        assert_int_equal(b64_decode("Zm8", 3, dec, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(b64_decode("Zm9v\nZm9v\n", 10, dec, &n), 0);
        assert_int_equal(n, 6);
        /* invalid characters, bad padding, data after padding, leftover bits */
        assert_int_equal(b64_decode("Zm9v!", 5, dec, &n), -EINVAL);
        assert_int_equal(b64_decode("Zg=", 3, dec, &n), -EINVAL);
        assert_int_equal(b64_decode("Zg==Zg==", 8, dec, &n), -EINVAL);
        assert_int_equal(b64_decode("Z", 1, dec, &n), -EINVAL);
        assert_int_equal(b64_decode("Zh==", 4, dec, &n), -EINVAL);
        assert_int_equal(b64_decode("Zg===", 5, dec, &n), -EINVAL);
}

static void test_utf8(void **state)
{
        size_t n;
        char *s = utf8_sanitize((const uint8_t *)"h\xc3\xa9llo", 6, &n);
        assert_string_equal(s, "h\xc3\xa9llo");
        free(s);
        s = utf8_sanitize((const uint8_t *)"a\xff" "b", 3, &n);
        assert_string_equal(s, "a\xef\xbf\xbd" "b");
        free(s);
        /* truncated sequence at the end, overlong '/', surrogate */
        s = utf8_sanitize((const uint8_t *)"x\xe2\x82", 3, &n);
        assert_string_equal(s, "x\xef\xbf\xbd\xef\xbf\xbd");
        free(s);
        s = utf8_sanitize((const uint8_t *)"\xc0\xaf", 2, &n);
        assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd");
        free(s);
        s = utf8_sanitize((const uint8_t *)"\xed\xa0\x80", 3, &n);
        assert_int_equal(strncmp(s, "\xef\xbf\xbd", 3), 0);
        free(s);
        s = utf8_sanitize((const uint8_t *)"\xf0\x9f\x98\x80", 4, &n);
        assert_string_equal(s, "\xf0\x9f\x98\x80");
        free(s);
}

static void test_utf8_prefix(void **state)
{
        bool tail;
        assert_int_equal(utf8_valid_prefix((const uint8_t *)"abc", 3, &tail), 3);
        assert_false(tail);
        /* "caf" + the first byte of U+00E9: the rest may still come */
        assert_int_equal(utf8_valid_prefix((const uint8_t *)"caf\xc3", 4, &tail), 3);
        assert_true(tail);
        /* a 4-byte sequence cut after 3 bytes */
        assert_int_equal(utf8_valid_prefix((const uint8_t *)"x\xf0\x9f\x98", 4, &tail), 1);
        assert_true(tail);
        /* invalid byte in the middle: not a tail */
        assert_int_equal(utf8_valid_prefix((const uint8_t *)"ab\xff" "cd", 5, &tail), 2);
        assert_false(tail);
        /* overlong and surrogate forms are invalid */
        assert_int_equal(utf8_valid_prefix((const uint8_t *)"\xc0\xaf", 2, &tail), 0);
        assert_false(tail);
        assert_int_equal(utf8_valid_prefix((const uint8_t *)"\xed\xa0\x80", 3, &tail), 0);
        assert_false(tail);
        assert_int_equal(utf8_valid_prefix((const uint8_t *)"\xe2\x82\xac", 3, &tail), 3);
}

static void test_errno_table(void **state)
{
        const char *code;
        assert_int_equal(errno_to_http(-ENOENT, &code), 404);
        assert_string_equal(code, "not_found");
        assert_int_equal(errno_to_http(-ENOSPC, &code), 507);
        assert_int_equal(errno_to_http(-EACCES, &code), 403);
        assert_int_equal(errno_to_http(-EUSERS, &code), 429);
        assert_int_equal(errno_to_http(-ENOTEMPTY, &code), 409);
        assert_int_equal(errno_to_http(-EIO, &code), 500);
        assert_string_equal(code, "internal");
}

static void test_config(void **state)
{
        struct config cfg;
        int argi;
        char *argv[] = { "warrend", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/wtest-cfg",
                         "org-create", "x", NULL };
        setenv("DEFAULT_MEMORY", "512Mi", 1);
        setenv("MAX_SANDBOXES_PER_ORG", "7", 1);
        assert_int_equal(config_load(&cfg, 7, argv, &argi), 0);
        assert_string_equal(cfg.listen, "127.0.0.1:0");
        assert_string_equal(cfg.data_dir, "/tmp/wtest-cfg");
        assert_string_equal(cfg.run_dir, "/tmp/wtest-cfg/run");
        assert_int_equal(cfg.default_memory, 512ULL << 20);
        assert_int_equal(cfg.max_sandboxes_per_org, 7);
        assert_int_equal(cfg.default_cpu_millis, 2000);
        assert_int_equal(cfg.default_timeout_s, 600);
        assert_int_equal(argi, 5);
        setenv("DEFAULT_MEMORY", "lots", 1);
        assert_int_equal(config_load(&cfg, 7, argv, &argi), -EINVAL);
        unsetenv("DEFAULT_MEMORY");
        setenv("DEFAULT_TIMEOUT", "5", 1); /* below WARREN_MIN_TIMEOUT */
        assert_int_equal(config_load(&cfg, 7, argv, &argi), -EINVAL);
        unsetenv("DEFAULT_TIMEOUT");
        unsetenv("MAX_SANDBOXES_PER_ORG");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cpus),   cmocka_unit_test(test_bytes),
                cmocka_unit_test(test_format), cmocka_unit_test(test_b64),
                cmocka_unit_test(test_utf8),   cmocka_unit_test(test_utf8_prefix),
                cmocka_unit_test(test_errno_table),
                cmocka_unit_test(test_config),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
