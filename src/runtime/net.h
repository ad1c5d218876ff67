/* net.h - the sandbox uplink (`network: egress`): a veth pair from the sandbox's network
 * namespace into a host bridge, with NAT, and an nftables policy per sandbox.
 *
 * Host side (the daemon's network namespace), made once by rt_net_init():
 *   bridge BRIDGE (default warren0) with the gateway address (first address of the subnet)
 *   and a fixed MAC; net.ipv4.ip_forward = 1;
 *   nft table `inet warren`: input drops everything from the bridge (the host is never
 *   reachable from a sandbox); forward sends the bridge's traffic through `egress`, which
 *   jumps to the sandbox's own chain `sb_HASH` through the map @sandboxes (keyed by source
 *   address) and drops the rest; nothing enters the bridge but replies (ct established);
 *   postrouting masquerades the subnet; set @blocked4 holds the ranges always blocked.
 *   nft table `bridge warren`: a frame from a sandbox port (wv*) passes only if its
 *   (port, source MAC, source IPv4) -- for ARP also the sender fields -- is the port's
 *   entry in @ports (no spoofing, no ARP poisoning, no IPv6 or other ethertypes); frames
 *   between two sandbox ports are dropped.
 * Per sandbox (rt_net_attach): veth wvHASH (on the bridge) <-> eth0 (in the sandbox, MAC
 *   02:77:ADDR, ADDR/prefix, default route via the gateway, IPv6 disabled), the sandbox's
 *   chain and entries, and /etc/resolv.conf naming the configured resolvers.
 *
 * The sandbox's chain, in order: the deny rules (drop); the configured resolvers on port 53
 * where an allow rule allows port 53 to them (accept, even inside a blocked range); the
 * blocked ranges (drop); the allow rules (go to the sandbox's limit chain `sl_HASH`);
 * everything else drops. The limit chain, never rewritten while the sandbox lives (so a
 * policy change does not reset its counts): a new connection beyond max_conns open ones,
 * or beyond conn_rate new ones a second, is rejected (ICMP admin-prohibited: the sandbox
 * sees EHOSTUNREACH at once); a new TCP connection gets the short TIME_WAIT of the ct
 * timeout `tcp_short` where the kernel has ct timeouts; then accept.
 *
 * Inside the sandbox's network namespace (owned by the initial user namespace: nobody in
 * the sandbox can change it), a second copy of the policy, stateless, so that the host's
 * ruleset being flushed or deleted never opens the sandbox's egress: table `inet warren`
 * with hooks output (lo accepted, then chain `outbound`: the host's own IPv4 addresses when
 * the rules were written (drop), then the same rules as above, allow = accept; the rest
 * drops), input (lo and ICMP errors accepted, then chain `replies`: the
 * mirror image of the policy, source address and port for destination; the rest drops) and
 * forward (drops everything). Without a policy (warm pool) both chains are empty.
 *
 * Blocking calls (netlink, nftables): worker threads only. Never logs. Every nftables
 * change is one transaction (atomic); changes are serialised inside this module.
 */
#ifndef WARREN_RT_NET_H
#define WARREN_RT_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

/* Most rules in each of a policy's lists, ports (or ranges) per rule, resolvers. */
#define RT_NET_MAX_RULES 64
#define RT_NET_MAX_PORTS 16
#define RT_NET_MAX_DNS 3

/* Protocol bits of a rule. */
#define RT_NET_TCP 1u
#define RT_NET_UDP 2u

/* One allow or deny rule: destination network, protocols, destination ports. */
struct rt_net_rule {
        int family;       /* AF_INET or AF_INET6 (IPv6 rules only ever deny: see net.c) */
        uint8_t addr[16]; /* network address in network byte order, host bits zero */
        uint8_t prefix;   /* 0..32 or 0..128 */
        uint8_t protos;   /* RT_NET_TCP | RT_NET_UDP, at least one */
        uint8_t nports;   /* 0: every port (and, for a deny rule with both protocols, every
                           * protocol) */
        struct {
                uint16_t lo, hi; /* 1 <= lo <= hi */
        } ports[RT_NET_MAX_PORTS];
};

/* A sandbox's egress policy: deny rules are checked first, then allow rules. */
struct rt_net_policy {
        unsigned n_allow, n_deny;
        struct rt_net_rule allow[RT_NET_MAX_RULES];
        struct rt_net_rule deny[RT_NET_MAX_RULES];
};

/* Host-side settings (the daemon's configuration). Addresses in host byte order. */
struct rt_net_config {
        char bridge[16];              /* bridge name, 1..15 of [a-z0-9_-] */
        uint32_t subnet;              /* sandbox subnet, host bits zero */
        uint8_t prefix;               /* 8..28 */
        unsigned n_dns;               /* resolvers (0: resolv.conf names none) */
        uint32_t dns[RT_NET_MAX_DNS]; /* IPv4 resolvers for the sandboxes' resolv.conf */
        uint32_t max_conns;           /* open tracked connections per sandbox (0: no limit) */
        uint32_t conn_rate;           /* new connections per second per sandbox, bursts of
                                       * twice as many (0: no limit) */
};

/* One sandbox whose host-side rules rt_net_restore writes again. */
struct rt_net_entry {
        const char *id;
        pid_t init_pid;
        uint64_t starttime;
        uint32_t addr;
        const struct rt_net_policy *policy; /* NULL: a warm-pool sandbox (its port only) */
};

/* Remember the settings; touches nothing in the kernel. Call once at start, before any
 * other rt_net_* call. -EINVAL if they are unusable. */
int rt_net_configure(const struct rt_net_config *cfg);

/* Make the bridge, its address, forwarding and both nftables tables (see above). Idempotent:
 * existing per-sandbox chains and entries are kept, the base chains are rewritten in one
 * transaction. Called by attach and apply the first time they run in this process, so a
 * daemon whose sandboxes never ask for egress changes nothing on the host. */
int rt_net_init(char err[RT_ERR_LEN]);

/* The addresses a sandbox may get: [*ret_first, *ret_last] (host byte order). */
void rt_net_addr_range(uint32_t *ret_first, uint32_t *ret_last);

/* Give the running sandbox id (warren-init pid/starttime) its uplink with address addr
 * (inside rt_net_addr_range, not used by another sandbox) and policy. policy NULL (a
 * warm-pool sandbox): the uplink without a chain, so nothing is forwarded until
 * rt_net_apply writes one. On failure nothing is left (the nftables entries and the veth
 * are removed). */
int rt_net_attach(const char *id, pid_t init_pid, uint64_t starttime, uint32_t addr,
                  const struct rt_net_policy *policy, char err[RT_ERR_LEN]);

/* Replace the policy of a sandbox that has an uplink: on the host, then inside (one
 * transaction each: no packet sees a half-written chain). replace: it has a chain to
 * rewrite (a policy change, a restart): a transaction that removes rules, which the kernel
 * makes wait 7-19 ms here (CPU idle), on each side; it is re-created if missing (the
 * ruleset was flushed meanwhile), after a failed transaction (as slow). !replace: it has
 * none yet (a warm-pool sandbox handed out), the chain is written in one transaction
 * without removals (0.3-0.4 ms). A failure on the host changes nothing; one inside (rare:
 * the namespace is there) leaves the host's new rules. -ESRCH, changing nothing, if
 * warren-init is no longer the process given: a sandbox being stopped never gets its rules
 * back. */
int rt_net_apply(const char *id, pid_t init_pid, uint64_t starttime, uint32_t addr,
                 const struct rt_net_policy *policy, bool replace, char err[RT_ERR_LEN]);

/* After another program removed warren's host-side tables, chains or sets (`nft flush
 * ruleset`, a firewall reload): write the base rules and the host-side rules of every
 * sandbox of v[0..n) that is still alive, in one transaction (one per sandbox if that one
 * fails). The filters inside the sandboxes' namespaces are untouched (nothing outside can
 * remove them). Nothing to do (0) before rt_net_init ever ran. *ret_done: the sandboxes
 * whose rules were written. */
int rt_net_restore(const struct rt_net_entry *v, size_t n, size_t *ret_done,
                   char err[RT_ERR_LEN]);

/* Whether rt_net_init has run in this process (warren's host-side rules exist, or did). */
bool rt_net_initialized(void);

/* Whether both host-side tables exist (*ret_ok), to check after lost notifications. True
 * before rt_net_init ever ran. */
int rt_net_tables_present(bool *ret_ok, char err[RT_ERR_LEN]);

/* Watching for others' changes (net_watch.c): a nonblocking netlink socket subscribed to
 * the nftables notifications of the caller's network namespace. */
int rt_net_watch_open(int *ret_fd);

/* Read every pending notification on fd. *ret_hit: one of them removed a table, base chain
 * or set of warren's (never something warren itself removes), or some were lost (ENOBUFS:
 * check with rt_net_tables_present). -errno on a socket error. */
int rt_net_watch_read(int fd, bool *ret_hit, bool *ret_lost);

/* Remove the sandbox's chain and entries. Idempotent. The veth is not deleted: it dies with
 * the sandbox's network namespace, in the kernel's background cleanup (deleting it here
 * would cost 15-28 ms of RCU waits on this path). */
int rt_net_detach(const char *id, uint32_t addr, char err[RT_ERR_LEN]);

#endif
