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
 * blocked ranges (drop); the allow rules (accept); everything else drops.
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

/* Replace the policy of a sandbox that has an uplink (one transaction: no packet sees a
 * half-written chain). replace: it has a chain to rewrite (a policy change, a restart): a
 * transaction that removes rules, which the kernel makes wait 7-19 ms here (CPU idle); it
 * is re-created if missing (the ruleset was flushed meanwhile), after a failed transaction
 * (as slow). !replace: it has none yet (a warm-pool sandbox handed out),
 * the chain is written in one transaction without removals (0.3-0.4 ms). -ESRCH, changing
 * nothing, if warren-init is no longer the process given: a sandbox being stopped never
 * gets its rules back. */
int rt_net_apply(const char *id, pid_t init_pid, uint64_t starttime, uint32_t addr,
                 const struct rt_net_policy *policy, bool replace, char err[RT_ERR_LEN]);

/* Remove the sandbox's chain and entries. Idempotent. The veth is not deleted: it dies with
 * the sandbox's network namespace, in the kernel's background cleanup (deleting it here
 * would cost 15-28 ms of RCU waits on this path). */
int rt_net_detach(const char *id, uint32_t addr, char err[RT_ERR_LEN]);

#endif
