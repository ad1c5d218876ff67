/* Unit tests for network egress: strict CIDR parsing, policy JSON (defaults, PATCH-style
 * merging, canonical output, bounds), the NETWORK_* settings, and the sandbox_net table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "netpolicy.h"
#include "store.h"
#include "store_net.h"

static int cidr(const char *s, struct rt_net_rule *r)
{
        char err[NETPOLICY_ERR_LEN];
        memset(r, 0xaa, sizeof(*r));
        return netpolicy_parse_cidr(s, r, err, sizeof(err));
}

static void test_cidr(void **state)
{
        struct rt_net_rule r;
        static const char *const good4[] = { "0.0.0.0/0", "10.0.0.0/8", "203.0.113.10",
                                             "203.0.113.10/32", "192.168.0.0/16" };
        for (size_t i = 0; i < sizeof(good4) / sizeof(good4[0]); i++) {
                assert_int_equal(cidr(good4[i], &r), 0);
                assert_int_equal(r.family, AF_INET);
        }
        assert_int_equal(cidr("203.0.113.0/24", &r), 0);
        assert_int_equal(r.prefix, 24);
        assert_memory_equal(r.addr, "\xcb\x00\x71\x00", 4);
        assert_int_equal(cidr("203.0.113.10", &r), 0);
        assert_int_equal(r.prefix, 32);
        assert_int_equal(cidr("2001:db8::/32", &r), 0);
        assert_int_equal(r.family, AF_INET6);
        assert_int_equal(r.prefix, 32);
        assert_int_equal(cidr("::/0", &r), 0);
        assert_int_equal(cidr("fe80::1", &r), 0);
        assert_int_equal(r.prefix, 128);

        static const char *const bad[] = {
                "", "/", "10.0.0.0/", "/8", "10.0.0.1/8" /* host bits */, "10.1/16",
                "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08", "10.0.0.0/8/8",
                "010.0.0.0/8", "10.0.0.0 /8", " 10.0.0.0/8", "10.0.0.0/8 ", "300.0.0.0/8",
                "1.2.3.4.5", "0x0a.0.0.0/8", "2001:db8::/129", "2001:db8::1/64",
                "[2001:db8::]/32", "fe80::1%eth0", "10.0.0.0/999999999999", "abc",
                "2001:db8::/032",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(cidr(bad[i], &r), -EINVAL);
        }
        char longs[200];
        memset(longs, '1', sizeof(longs) - 1);
        longs[sizeof(longs) - 1] = '\0';
        assert_int_equal(cidr(longs, &r), -EINVAL);
        assert_int_equal(netpolicy_parse_cidr(NULL, &r, NULL, 0), -EINVAL);
}

/* Parse JSON text into a policy (base NULL); returns the result, message in err. */
static int parse(const char *text, struct rt_net_policy *p, char *err)
{
        json_error_t jerr;
        json_t *j = json_loads(text, 0, &jerr);
        assert_non_null(j);
        int r = netpolicy_from_json(j, NULL, p, err, NETPOLICY_ERR_LEN);
        json_decref(j);
        return r;
}

/* The canonical JSON text of a policy (malloc'd). */
static char *dump(const struct rt_net_policy *p)
{
        json_t *j = netpolicy_to_json(p);
        assert_non_null(j);
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        return s;
}

static void test_policy_default_and_canonical(void **state)
{
        struct rt_net_policy *p = malloc(sizeof(*p)), *q = malloc(sizeof(*q));
        char err[NETPOLICY_ERR_LEN];
        assert_int_equal(netpolicy_from_json(NULL, NULL, p, err, sizeof(err)), 0);
        char *s = dump(p);
        assert_string_equal(s, "{\"allow\":[{\"cidr\":\"0.0.0.0/0\",\"ports\":[443],\"protocol\":"
                               "\"tcp\"},{\"cidr\":\"0.0.0.0/0\",\"ports\":[53],\"protocol\":"
                               "\"any\"}],\"deny\":[]}");
        free(s);
        assert_int_equal(parse("{\"allow\":[{\"cidr\":\"203.0.113.10\",\"ports\":[\"443\","
                               "\"8000-8080\",22],\"protocol\":\"tcp\"}],\"deny\":[{\"cidr\":"
                               "\"2001:db8::/32\"},{}]}",
                               p, err),
                         0);
        assert_int_equal(p->n_allow, 1);
        assert_int_equal(p->allow[0].nports, 3);
        assert_int_equal(p->allow[0].ports[1].lo, 8000);
        assert_int_equal(p->allow[0].ports[1].hi, 8080);
        assert_int_equal(p->allow[0].protos, RT_NET_TCP);
        assert_int_equal(p->n_deny, 2);
        assert_int_equal(p->deny[1].prefix, 0);
        assert_int_equal(p->deny[1].nports, 0);
        assert_int_equal(p->deny[1].protos, RT_NET_TCP | RT_NET_UDP);
        s = dump(p);
        assert_string_equal(s, "{\"allow\":[{\"cidr\":\"203.0.113.10/32\",\"ports\":[443,"
                               "\"8000-8080\",22],\"protocol\":\"tcp\"}],\"deny\":[{\"cidr\":"
                               "\"2001:db8::/32\",\"protocol\":\"any\"},{\"cidr\":\"0.0.0.0/0\","
                               "\"protocol\":\"any\"}]}");
        /* The canonical form parses back to the same policy. */
        assert_int_equal(parse(s, q, err), 0);
        char *s2 = dump(q);
        assert_string_equal(s, s2);
        free(s);
        free(s2);
        free(p);
        free(q);
}

static void test_policy_merge(void **state)
{
        struct rt_net_policy *base = malloc(sizeof(*base)), *p = malloc(sizeof(*p));
        char err[NETPOLICY_ERR_LEN];
        json_error_t jerr;
        assert_int_equal(parse("{\"allow\":[{\"ports\":[8080]}],\"deny\":[{\"cidr\":"
                               "\"203.0.113.0/24\"}]}",
                               base, err),
                         0);
        /* A list left out is kept, a list given replaces, null resets to the default. */
        json_t *j = json_loads("{\"deny\":[]}", 0, &jerr);
        assert_int_equal(netpolicy_from_json(j, base, p, err, sizeof(err)), 0);
        json_decref(j);
        assert_int_equal(p->n_allow, 1);
        assert_int_equal(p->allow[0].ports[0].lo, 8080);
        assert_int_equal(p->n_deny, 0);
        j = json_loads("{\"allow\":null}", 0, &jerr);
        assert_int_equal(netpolicy_from_json(j, base, p, err, sizeof(err)), 0);
        json_decref(j);
        assert_int_equal(p->n_allow, 2);
        assert_int_equal(p->n_deny, 1);
        /* A failure leaves ret alone, even when it is the base. */
        j = json_loads("{\"allow\":[{\"ports\":[0]}]}", 0, &jerr);
        assert_int_equal(netpolicy_from_json(j, base, base, err, sizeof(err)), -EINVAL);
        json_decref(j);
        assert_int_equal(base->n_allow, 1);
        assert_non_null(strstr(err, "allow[0].ports[0]"));
        free(base);
        free(p);
}

static void test_policy_rejects(void **state)
{
        struct rt_net_policy *p = malloc(sizeof(*p));
        char err[NETPOLICY_ERR_LEN];
        static const char *const bad[][2] = {
                { "[]", "network_policy" },
                { "{\"allow\":{}}", "allow" },
                { "{\"allow\":[1]}", "allow[0]" },
                { "{\"other\":[]}", "other" },
                { "{\"allow\":[{\"cidr\":\"10.0.0.1/8\"}]}", "host bits" },
                { "{\"allow\":[{\"cidr\":\"2001:db8::/32\"}]}", "IPv6" },
                { "{\"allow\":[{\"cidr\":true}]}", "cidr" },
                { "{\"allow\":[{\"ports\":[]}]}", "ports" },
                { "{\"allow\":[{\"ports\":[65536]}]}", "ports[0]" },
                { "{\"allow\":[{\"ports\":[\"0-10\"]}]}", "ports[0]" },
                { "{\"allow\":[{\"ports\":[\"10-5\"]}]}", "ports[0]" },
                { "{\"allow\":[{\"ports\":[\"1-\"]}]}", "ports[0]" },
                { "{\"allow\":[{\"ports\":[\"-1\"]}]}", "ports[0]" },
                { "{\"allow\":[{\"ports\":[\"080\"]}]}", "ports[0]" },
                { "{\"allow\":[{\"ports\":[1.5]}]}", "ports[0]" },
                { "{\"allow\":[{\"protocol\":\"sctp\"}]}", "protocol" },
                { "{\"allow\":[{\"protocol\":6}]}", "protocol" },
                { "{\"deny\":[{\"cidr\":\"0.0.0.0/0\",\"extra\":1}]}", "extra" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                assert_int_equal(parse(bad[i][0], p, err), -EINVAL);
                if (!strstr(err, bad[i][1]))
                        fail_msg("%s: message \"%s\" does not name %s", bad[i][0], err, bad[i][1]);
        }
        /* Bounds: 64 rules and 16 ports are fine, one more is not. */
        json_t *rules = json_array(), *ports = json_array();
        for (int i = 0; i < RT_NET_MAX_RULES; i++)
                json_array_append_new(rules, json_object());
        for (int i = 1; i <= RT_NET_MAX_PORTS; i++)
                json_array_append_new(ports, json_integer(i));
        json_t *pol = json_pack("{s:O, s:[{s:O}]}", "deny", rules, "allow", "ports", ports);
        assert_int_equal(netpolicy_from_json(pol, NULL, p, err, sizeof(err)), 0);
        assert_int_equal(p->n_deny, RT_NET_MAX_RULES);
        assert_int_equal(p->allow[0].nports, RT_NET_MAX_PORTS);
        json_array_append_new(rules, json_object());
        assert_int_equal(netpolicy_from_json(pol, NULL, p, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "at most 64"));
        json_object_set_new(pol, "deny", json_array());
        json_array_append_new(ports, json_integer(99));
        assert_int_equal(netpolicy_from_json(pol, NULL, p, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "ports"));
        json_decref(pol);
        json_decref(rules);
        json_decref(ports);
        free(p);
}

static void test_config(void **state)
{
        struct config cfg = { 0 };
        struct rt_net_config nc;
        char err[NETPOLICY_ERR_LEN];
        char path[] = "/tmp/wtest-resolv-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char *text = "# comment\nnameserver 127.0.0.53\nnameserver 10.255.255.53\n"
                           "nameserver 2001:db8::53\nnameserver 169.254.169.253\n"
                           "nameserver 10.88.0.9\nnameserver 9.9.9.9\nsearch example\n";
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);

        strcpy(cfg.network_subnet, "10.88.0.0/16");
        strcpy(cfg.network_bridge, "warren0");
        strcpy(cfg.network_dns, "host");
        assert_int_equal(netpolicy_config(&cfg, path, &nc, err, sizeof(err)), 0);
        assert_int_equal(nc.subnet, 0x0a580000u);
        assert_int_equal(nc.prefix, 16);
        assert_string_equal(nc.bridge, "warren0");
        /* loopback, IPv6, link-local and in-subnet resolvers are skipped */
        assert_int_equal(nc.n_dns, 2);
        assert_int_equal(nc.dns[0], 0x0affff35u);
        assert_int_equal(nc.dns[1], 0x09090909u);
        /* a host with only a local stub resolver: public resolvers */
        strcpy(cfg.network_dns, "host");
        assert_int_equal(netpolicy_config(&cfg, "/nonexistent/resolv.conf", &nc, err,
                                          sizeof(err)),
                         0);
        assert_int_equal(nc.n_dns, 2);
        assert_int_equal(nc.dns[0], 0x01010101u);
        strcpy(cfg.network_dns, "none");
        assert_int_equal(netpolicy_config(&cfg, path, &nc, err, sizeof(err)), 0);
        assert_int_equal(nc.n_dns, 0);
        strcpy(cfg.network_dns, "10.1.2.3, 192.0.2.53");
        assert_int_equal(netpolicy_config(&cfg, path, &nc, err, sizeof(err)), 0);
        assert_int_equal(nc.n_dns, 2);
        assert_int_equal(nc.dns[1], 0xc0000235u);
        static const char *const bad_dns[] = { "127.0.0.1", "10.88.1.1", "169.254.169.254",
                                               "224.0.0.1", "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4",
                                               "example.com", "," };
        for (size_t i = 0; i < sizeof(bad_dns) / sizeof(bad_dns[0]); i++) {
                strcpy(cfg.network_dns, bad_dns[i]);
                assert_int_equal(netpolicy_config(&cfg, path, &nc, err, sizeof(err)), -EINVAL);
        }
        strcpy(cfg.network_dns, "none");
        static const char *const bad_subnet[] = { "10.88.0.1/16", "10.88.0.0/30", "10.0.0.0/7",
                                                  "127.0.0.0/8", "2001:db8::/64",
                                                  "169.254.0.0/16", "10.88.0.0" };
        for (size_t i = 0; i < sizeof(bad_subnet) / sizeof(bad_subnet[0]); i++) {
                strcpy(cfg.network_subnet, bad_subnet[i]);
                assert_int_equal(netpolicy_config(&cfg, path, &nc, err, sizeof(err)), -EINVAL);
        }
        strcpy(cfg.network_subnet, "10.88.0.0/16");
        static const char *const bad_bridge[] = { "", "wv0", "Warren0", "a/b",
                                                  "sixteen-chars-xx" };
        for (size_t i = 0; i < sizeof(bad_bridge) / sizeof(bad_bridge[0]); i++) {
                strcpy(cfg.network_bridge, bad_bridge[i]);
                assert_int_equal(netpolicy_config(&cfg, path, &nc, err, sizeof(err)), -EINVAL);
        }
        unlink(path);
}

static void test_store_net(void **state)
{
        char dir[] = "/tmp/wtest-netstore-XXXXXX", path[128];
        struct store *st;
        struct store_net n;
        uint32_t a;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/w.db", dir);
        assert_int_equal(store_open(path, &st), 0);
        assert_int_equal(store_org_create(st, "org1", "o"), 0);
        for (int i = 0; i < 3; i++) {
                struct store_sandbox sb = { .status = "running", .template = "base",
                                            .isolation = "container", .uid_base = 70000 + i };
                snprintf(sb.id, sizeof(sb.id), "sb%d", i);
                strcpy(sb.org_id, "org1");
                assert_int_equal(store_sandbox_insert(st, &sb), 0);
        }
        assert_int_equal(store_net_get(st, "sb0", &n), -ENOENT);
        assert_int_equal(store_net_insert(st, "nosuch", "egress", 5, "{}"), -ENOENT);
        assert_int_equal(store_net_addr_free(st, 10, 12, 0, &a), 0);
        assert_int_equal(a, 10);
        assert_int_equal(store_net_insert(st, "sb0", "egress", 10, "{\"allow\":[]}"), 0);
        assert_int_equal(store_net_insert(st, "sb1", "egress", 10, "{}"), -EEXIST);
        /* from the hint on, then wrapping to the start */
        assert_int_equal(store_net_addr_free(st, 10, 12, 11, &a), 0);
        assert_int_equal(a, 11);
        assert_int_equal(store_net_insert(st, "sb1", "egress", 12, "{}"), 0);
        assert_int_equal(store_net_addr_free(st, 10, 12, 12, &a), 0);
        assert_int_equal(a, 11);
        assert_int_equal(store_net_insert(st, "sb2", "egress", 11, "{}"), 0);
        assert_int_equal(store_net_addr_free(st, 10, 12, 10, &a), -ENOSPC);
        assert_int_equal(store_net_get(st, "sb0", &n), 0);
        assert_string_equal(n.mode, "egress");
        assert_int_equal(n.addr, 10);
        assert_string_equal(n.policy_json, "{\"allow\":[]}");
        store_net_clear(&n);
        /* a stopped sandbox releases its address, keeps its policy */
        assert_int_equal(store_net_set_addr(st, "sb0", 0), 0);
        assert_int_equal(store_net_set_policy(st, "sb0", "{\"deny\":[]}"), 0);
        assert_int_equal(store_net_get(st, "sb0", &n), 0);
        assert_int_equal(n.addr, 0);
        assert_string_equal(n.policy_json, "{\"deny\":[]}");
        store_net_clear(&n);
        assert_int_equal(store_net_addr_free(st, 10, 12, 11, &a), 0);
        assert_int_equal(a, 10);
        assert_int_equal(store_net_set_addr(st, "nosuch", 3), -ENOENT);
        /* the row goes with its sandbox */
        assert_int_equal(store_sandbox_delete(st, "sb1"), 0);
        assert_int_equal(store_net_get(st, "sb1", &n), -ENOENT);
        store_close(st);
        snprintf(path, sizeof(path), "rm -rf %s", dir);
        assert_int_equal(system(path), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cidr),
                cmocka_unit_test(test_policy_default_and_canonical),
                cmocka_unit_test(test_policy_merge),
                cmocka_unit_test(test_policy_rejects),
                cmocka_unit_test(test_config),
                cmocka_unit_test(test_store_net),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
