/* Unit tests for the uplink runtime (src/runtime/net.c) against the real kernel, made safe:
 * the test process first moves into a network namespace of its own (only `lo`, no route
 * anywhere), so the bridge, veths, nftables tables and ip_forward it makes exist only there
 * and vanish with it. The "sandbox" is a child process in a namespace of its own, chrooted
 * into a temporary directory (so /etc/resolv.conf is written there, never on the host). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"
#include "util.h"

#define ID "sandbox-0123456789ab"
#define ADDR 0x0a580007u /* 10.88.0.7 */
#define ID2 "sandbox-ba9876543210"
#define ADDR2 0x0a580008u /* 10.88.0.8 */

static char root[64] = "/tmp/wtest-net-XXXXXX";
static pid_t child = -1;
static uint64_t child_start;

/* Run a shell command in this process's (private) network namespace; its stdout. */
static char *sh(const char *cmd)
{
        FILE *f = popen(cmd, "r");
        static char buf[65536];
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        buf[n] = '\0';
        if (f)
                pclose(f);
        return buf;
}

static char *read_file(const char *path)
{
        static char buf[16384];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (fd >= 0)
                close(fd);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

/* The stand-in sandbox: its own network namespace (only lo), chrooted into root. */
static pid_t spawn_child(void)
{
        int p[2];
        if (child > 0) { /* left by a failed test */
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
                child = -1;
        }
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* never outlive the test, whatever way it ends */
                char ok = prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != 1 &&
                          unshare(CLONE_NEWNET) == 0 && chroot(root) == 0 && chdir("/") == 0;
                (void)!write(p[1], &ok, 1);
                for (;;)
                        pause();
        }
        char ok = 0;
        close(p[1]);
        assert_int_equal(read(p[0], &ok, 1), 1);
        close(p[0]);
        assert_true(ok);
        return pid;
}

static int setup(void **state)
{
        char path[128];
        if (unshare(CLONE_NEWNET) < 0) {
                fprintf(stderr, "unshare(CLONE_NEWNET): %s (run as root)\n", strerror(errno));
                return -1;
        }
        sh("ip link set lo up");
        if (!mkdtemp(root))
                return -1;
        snprintf(path, sizeof(path), "%s/etc", root);
        mkdir(path, 0755);
        struct rt_net_config c = { .bridge = "wtest0", .subnet = 0x0a580000u, .prefix = 16,
                                   .n_dns = 1, .dns = { 0x0affff35u }, .max_conns = 7,
                                   .conn_rate = 3 };
        return rt_net_configure(&c) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];
        if (child > 0) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
        }
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        return system(cmd) == 0 ? 0 : -1;
}

/* The ruleset inside the child's network namespace. */
static char *inner_rules(void)
{
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "nsenter --net=/proc/%d/ns/net nft list ruleset 2>&1",
                 (int)child);
        return sh(cmd);
}

/* Whether the notifications pending on fd remove something of warren's. */
static bool watch_hit(int fd)
{
        bool hit = false, lost = false;
        assert_int_equal(rt_net_watch_read(fd, &hit, &lost), 0);
        assert_false(lost);
        return hit;
}

static void test_configure_rejects(void **state)
{
        struct rt_net_config c = { .bridge = "wtest0", .subnet = 0x0a580001u, .prefix = 16 };
        assert_int_equal(rt_net_configure(&c), -EINVAL); /* host bits */
        c.subnet = 0x0a580000u;
        c.prefix = 30;
        assert_int_equal(rt_net_configure(&c), -EINVAL);
        c.prefix = 16;
        strcpy(c.bridge, "wv0");
        assert_int_equal(rt_net_configure(&c), -EINVAL); /* would match the port pattern */
        strcpy(c.bridge, "a b");
        assert_int_equal(rt_net_configure(&c), -EINVAL);
        uint32_t first, last;
        rt_net_addr_range(&first, &last); /* the good configuration is still in force */
        assert_int_equal(first, 0x0a580002u);
        assert_int_equal(last, 0x0a58fffeu);
}

static void test_init_idempotent(void **state)
{
        char err[RT_ERR_LEN];
        assert_int_equal(rt_net_init(err), 0);
        assert_int_equal(rt_net_init(err), 0);
        char *links = sh("ip -br link show wtest0");
        assert_non_null(strstr(links, "wtest0"));
        assert_non_null(strstr(links, "02:77:0a:58:00:01"));
        assert_non_null(strstr(sh("ip -4 addr show wtest0"), "10.88.0.1/16"));
        assert_string_equal(read_file("/proc/sys/net/ipv4/ip_forward"), "1\n");
        char *rules = sh("nft list table inet warren");
        assert_non_null(strstr(rules, "iifname \"wtest0\" drop"));
        assert_non_null(strstr(rules, "masquerade"));
        assert_non_null(strstr(sh("nft list table bridge warren"), "oifname \"wv*\" drop"));
}

static void test_errors_leave_nothing(void **state)
{
        char err[RT_ERR_LEN];
        struct rt_net_policy *p = calloc(1, sizeof(*p));
        /* no such process: nothing is made */
        assert_int_equal(rt_net_attach(ID, 999999999, 1, ADDR, p, err), -ESRCH);
        assert_int_equal(rt_net_apply(ID, 999999999, 1, ADDR, p, true, err), -ESRCH);
        /* an address outside the subnet, the gateway, the broadcast address */
        assert_int_equal(rt_net_attach(ID, getpid(), 1, 0x0b000001u, p, err), -EINVAL);
        assert_int_equal(rt_net_attach(ID, getpid(), 1, 0x0a580001u, p, err), -EINVAL);
        assert_int_equal(rt_net_attach(ID, getpid(), 1, 0x0a58ffffu, p, err), -EINVAL);
        assert_null(strstr(sh("nft list ruleset"), "sb_"));
        assert_null(strstr(sh("ip -br link"), "wv"));
        /* a detach of something never attached is fine, twice */
        assert_int_equal(rt_net_detach(ID, ADDR, err), 0);
        assert_int_equal(rt_net_detach(ID, ADDR, err), 0);
        free(p);
}

static void test_attach_apply_detach(void **state)
{
        char err[RT_ERR_LEN], path[128];
        struct rt_net_policy *p = calloc(1, sizeof(*p));
        child = spawn_child();
        child_start = util_proc_starttime(child);
        /* allow TCP 443 anywhere, deny 203.0.113.0/24 */
        p->n_allow = 1;
        p->allow[0] = (struct rt_net_rule){ .family = AF_INET, .protos = RT_NET_TCP, .nports = 1 };
        p->allow[0].ports[0].lo = p->allow[0].ports[0].hi = 443;
        p->n_deny = 1;
        p->deny[0] = (struct rt_net_rule){ .family = AF_INET, .prefix = 24,
                                           .protos = RT_NET_TCP | RT_NET_UDP,
                                           .addr = { 203, 0, 113, 0 } };
        int r = rt_net_attach(ID, child, child_start, ADDR, p, err);
        if (r < 0)
                fail_msg("attach: %s", err);
        /* inside: eth0 with the MAC of its address, up, default route via the gateway */
        snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)child);
        assert_non_null(strstr(read_file(path), "eth0"));
        snprintf(path, sizeof(path), "/proc/%d/net/route", (int)child);
        char *route = read_file(path);
        assert_non_null(strstr(route, "eth0\t00000000\t0100580A")); /* default via 10.88.0.1 */
        snprintf(path, sizeof(path), "/proc/%d/net/if_inet6", (int)child);
        assert_null(strstr(read_file(path), "eth0")); /* no IPv6 on eth0 */
        snprintf(path, sizeof(path), "%s/etc/resolv.conf", root);
        assert_non_null(strstr(read_file(path), "nameserver 10.255.255.53\n"));
        /* outside: the veth on the bridge, the chain, the entries */
        char *links = sh("ip -br link show master wtest0");
        assert_non_null(strstr(links, "wv"));
        char *rules = sh("nft list table inet warren");
        assert_non_null(strstr(rules, "10.88.0.7 : jump sb_"));
        assert_non_null(strstr(rules, "ip daddr 203.0.113.0/24 drop"));
        assert_non_null(strstr(rules, "tcp dport 443 goto sl_"));
        /* the limits: open connections, new ones a second, the short TIME_WAIT */
        assert_non_null(strstr(rules, "ct state new ct count over 7 reject with icmpx "
                                      "admin-prohibited"));
        assert_non_null(strstr(rules, "ct state new limit rate over 3/second burst 6 packets "
                                      "reject with icmpx admin-prohibited"));
        assert_non_null(strstr(rules, "ct timeout set \"tcp_short\""));
        /* the resolver exception only where the allow list allows 53: not here */
        assert_null(strstr(rules, "10.255.255.53"));
        assert_non_null(strstr(sh("nft list set bridge warren ports"),
                               "02:77:0a:58:00:07 . 10.88.0.7"));
        /* inside: the same policy, outgoing and mirrored for replies; the rest drops */
        rules = inner_rules();
        assert_non_null(strstr(rules, "hook output priority filter; policy drop;"));
        assert_non_null(strstr(rules, "hook input priority filter; policy drop;"));
        assert_non_null(strstr(rules, "hook forward priority filter; policy drop;"));
        assert_non_null(strstr(rules, "ip daddr 203.0.113.0/24 drop"));
        assert_non_null(strstr(rules, "tcp dport 443 accept"));
        assert_non_null(strstr(rules, "ip saddr 203.0.113.0/24 drop"));
        assert_non_null(strstr(rules, "tcp sport 443 accept"));
        assert_non_null(strstr(rules, "ip daddr @blocked4 drop"));
        assert_non_null(strstr(rules, "169.254.0.0/16"));
        /* the host's own addresses, whatever the policy (here only the gateway's) */
        assert_non_null(strstr(rules, "ip daddr 10.88.0.1 drop"));
        assert_non_null(strstr(rules, "ip saddr 10.88.0.1 drop"));
        /* the limit chain's rules, by handle, to see that a policy change keeps them */
        char limits[4096];
        snprintf(limits, sizeof(limits), "%s",
                 strstr(sh("nft -a list table inet warren"), "chain sl_"));
        assert_non_null(strstr(limits, "\n\t}"));
        *strstr(limits, "\n\t}") = '\0';

        /* a new policy replaces the old one: allow 53, no deny */
        p->n_deny = 0;
        p->allow[0].protos = RT_NET_TCP | RT_NET_UDP;
        p->allow[0].ports[0].lo = p->allow[0].ports[0].hi = 53;
        r = rt_net_apply(ID, child, child_start, ADDR, p, true, err);
        if (r < 0)
                fail_msg("apply: %s", err);
        rules = sh("nft -a list table inet warren");
        assert_null(strstr(rules, "203.0.113.0/24"));
        assert_non_null(strstr(rules, "ip daddr 10.255.255.53 udp dport 53 goto sl_"));
        assert_non_null(strstr(rules, "meta l4proto { tcp, udp } th dport 53 goto sl_"));
        assert_non_null(strstr(rules, limits)); /* untouched: its counts go on */
        rules = inner_rules();
        assert_null(strstr(rules, "203.0.113.0/24"));
        assert_non_null(strstr(rules, "ip daddr 10.255.255.53 udp dport 53 accept"));
        assert_non_null(strstr(rules, "ip saddr 10.255.255.53 udp sport 53 accept"));
        assert_non_null(strstr(rules, "meta l4proto { tcp, udp } th sport 53 accept"));
        /* a flushed chain map is restored by apply */
        sh("nft flush map inet warren sandboxes");
        assert_int_equal(rt_net_apply(ID, child, child_start, ADDR, p, true, err), 0);
        assert_non_null(strstr(sh("nft list map inet warren sandboxes"), "10.88.0.7"));
        /* a sandbox without a table inside (started by an older daemon) gets one */
        snprintf(path, sizeof(path), "nsenter --net=/proc/%d/ns/net nft delete table inet warren",
                 (int)child);
        sh(path);
        assert_null(strstr(inner_rules(), "table inet warren"));
        assert_int_equal(rt_net_apply(ID, child, child_start, ADDR, p, true, err), 0);
        assert_non_null(strstr(inner_rules(), "ip saddr 10.255.255.53 udp sport 53 accept"));

        /* someone flushes the host's ruleset: the watch sees it, not our own changes */
        int wfd = -1;
        assert_int_equal(rt_net_watch_open(&wfd), 0);
        assert_int_equal(rt_net_apply(ID, child, child_start, ADDR, p, true, err), 0);
        assert_false(watch_hit(wfd));
        bool ok = false;
        assert_int_equal(rt_net_tables_present(&ok, err), 0);
        assert_true(ok);
        sh("nft flush ruleset");
        assert_true(watch_hit(wfd));
        assert_int_equal(rt_net_tables_present(&ok, err), 0);
        assert_false(ok);
        /* the filter inside is still there: nothing on the host side can remove it */
        assert_non_null(strstr(inner_rules(), "ip daddr 10.255.255.53 udp dport 53 accept"));
        /* restore: the base and the sandbox's chains and entries, in one go; a dead
         * sandbox among them is left out */
        struct rt_net_entry v[2] = {
                { .id = ID, .init_pid = child, .starttime = child_start, .addr = ADDR,
                  .policy = p },
                { .id = ID2, .init_pid = 999999999, .starttime = 1, .addr = ADDR2,
                  .policy = p },
        };
        size_t done = 0;
        assert_int_equal(rt_net_restore(v, 2, &done, err), 0);
        assert_int_equal(done, 1);
        assert_int_equal(rt_net_tables_present(&ok, err), 0);
        assert_true(ok);
        rules = sh("nft list table inet warren");
        assert_non_null(strstr(rules, "10.88.0.7 : jump sb_"));
        assert_null(strstr(rules, "10.88.0.8"));
        assert_non_null(strstr(rules, "ct count over 7"));
        assert_non_null(strstr(rules, "masquerade"));
        assert_non_null(strstr(sh("nft list set bridge warren ports"), "10.88.0.7"));
        assert_false(watch_hit(wfd)); /* restoring is no one's deletion */
        /* one table deleted, or one base chain: seen too */
        sh("nft delete table bridge warren");
        assert_true(watch_hit(wfd));
        assert_int_equal(rt_net_restore(v, 1, &done, err), 0);
        sh("nft flush chain inet warren postrouting; nft delete chain inet warren postrouting");
        assert_true(watch_hit(wfd));
        assert_int_equal(rt_net_restore(v, 1, &done, err), 0);
        assert_non_null(strstr(sh("nft list table inet warren"), "masquerade"));
        close(wfd);

        /* the sandbox dies: apply refuses, detach removes the rules (twice is fine) */
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
        assert_int_equal(rt_net_apply(ID, child, child_start, ADDR, p, true, err), -ESRCH);
        assert_int_equal(rt_net_detach(ID, ADDR, err), 0);
        assert_int_equal(rt_net_detach(ID, ADDR, err), 0);
        assert_null(strstr(sh("nft list ruleset"), "sb_"));
        assert_null(strstr(sh("nft list ruleset"), "sl_"));
        assert_null(strstr(sh("nft list set bridge warren ports"), "10.88.0.7"));
        free(p);
}

static void test_pooled_attach_forwards_nothing(void **state)
{
        char err[RT_ERR_LEN];
        struct rt_net_policy *p = calloc(1, sizeof(*p));
        child = spawn_child();
        child_start = util_proc_starttime(child);
        assert_int_equal(rt_net_attach(ID2, child, child_start, ADDR2, NULL, err), 0);
        /* the port's entry, no chain, no map entry; inside, empty chains: all drops */
        assert_non_null(strstr(sh("nft list set bridge warren ports"), "10.88.0.8"));
        assert_null(strstr(sh("nft list ruleset"), "sb_"));
        char *rules = inner_rules();
        assert_non_null(strstr(rules, "chain outbound {\n\t}"));
        assert_non_null(strstr(rules, "chain replies {\n\t}"));
        /* hand-out: the chain is written without a chain to replace */
        p->n_allow = 1;
        p->allow[0] = (struct rt_net_rule){ .family = AF_INET, .protos = RT_NET_TCP };
        assert_int_equal(rt_net_apply(ID2, child, child_start, ADDR2, p, false, err), 0);
        assert_non_null(strstr(sh("nft list map inet warren sandboxes"), "10.88.0.8 : jump sb_"));
        assert_non_null(strstr(inner_rules(), "meta l4proto tcp accept"));
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
        assert_int_equal(rt_net_detach(ID2, ADDR2, err), 0);
        assert_null(strstr(sh("nft list ruleset"), "sb_"));
        free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_configure_rejects),
                cmocka_unit_test(test_init_idempotent),
                cmocka_unit_test(test_errors_leave_nothing),
                cmocka_unit_test(test_attach_apply_detach),
                cmocka_unit_test(test_pooled_attach_forwards_nothing),
        };
        if (getuid() != 0) {
                fprintf(stderr, "test_net: needs root\n");
                return 1;
        }
        return cmocka_run_group_tests(tests, setup, teardown);
}
