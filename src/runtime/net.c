/* net.c - the sandbox uplink: bridge, veth pairs, nftables policy (see net.h).
 *
 * Links, addresses and routes go through rtnetlink (libnl-route-3: one message per change,
 * about 7x faster than running ip(8)); the nftables rules through libnftables in process
 * (a batch is one netlink transaction, so a policy change is atomic, and there is no
 * fork/exec of nft(8) from a daemon with a large address space on the create path).
 * libnftables keeps parser state in its context and is not documented as thread-safe:
 * every run holds nft_lock, with a fresh context each time (nothing cached from a ruleset
 * another tool may have changed since).
 *
 * The sandbox's side is configured from a short-lived thread that joins the sandbox's
 * network namespace (setns changes only the calling thread's namespace): a worker thread of
 * the daemon never changes namespace, so nothing else ever runs in a sandbox's namespace.
 *
 * Names are derived from the sandbox id (FNV-1a, 48 bits): veth wvHASH, chains sb_HASH
 * (policy) and sl_HASH (limits), so every function can find a sandbox's objects from its id
 * and address alone.
 *
 * Every policy is written twice: on the host (stateful: NAT, limits, the bridge's checks)
 * and, stateless, inside the sandbox's own namespace, where only host root can reach it. The
 * inner copy is what makes a flushed host ruleset fail closed (net.h).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <linux/openat2.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* Name of the sandbox's end of the veth pair. */
#define NET_SANDBOX_IF "eth0"

static struct rt_net_config cfg;
static bool configured;
/* Held while rt_net_init runs; init_done is read under it. */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool init_done;
/* Held around every libnftables run. */
static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;
/* Whether the kernel took the ct timeout object tcp_short: kernels without
 * CONFIG_NF_CONNTRACK_TIMEOUT get the limits without it. Written once, by the first
 * rt_net_init under init_lock; read only after rt_net_init returned. */
static bool have_ct_timeout;

/* Seconds a closed TCP connection of a sandbox stays in the host's conntrack table (the
 * kernel's default TIME_WAIT is 120): entries of closed connections are not counted by the
 * connection limit, so this bounds what a sandbox opening and closing connections at the
 * allowed rate can hold in the table. */
#define NET_TIME_WAIT_S 30
#define NET_CLOSE_S 10

/* Ranges no sandbox may reach, whatever its policy: "this network", RFC 1918, shared
 * address space (carrier NAT), loopback, link-local (cloud metadata at 169.254.169.254),
 * multicast, reserved and broadcast. The sandbox subnet is added at init. */
static const char *const blocked4[] = {
        "0.0.0.0/8",      "10.0.0.0/8",  "100.64.0.0/10", "127.0.0.0/8",
        "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4",
        "240.0.0.0/4",
};

/* Write "msg: strerror(-r)" into err and return r. */
static int errf(char err[RT_ERR_LEN], int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int errf(char err[RT_ERR_LEN], int r, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (!err)
                return r;
        va_start(ap, fmt);
        n = vsnprintf(err, RT_ERR_LEN, fmt, ap);
        va_end(ap);
        if (n >= 0 && n < RT_ERR_LEN)
                snprintf(err + n, RT_ERR_LEN - (size_t)n, ": %s", strerror(-r));
        return r;
}

/* libnl's error codes as negative errno. */
static int nl_errno(int e)
{
        switch (e < 0 ? -e : e) {
        case 0:
                return 0;
        case NLE_EXIST:
                return -EEXIST;
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_PERM:
                return -EPERM;
        case NLE_INVAL:
        case NLE_RANGE:
                return -EINVAL;
        case NLE_BUSY:
                return -EBUSY;
        case NLE_NODEV:
        case NLE_OBJ_NOTFOUND:
                return -ENODEV;
        case NLE_OPNOTSUPP:
                return -EOPNOTSUPP;
        case NLE_AGAIN:
                return -EAGAIN;
        default:
                return -EIO;
        }
}

/* ---- names ---- */

/* 12 hex digits of FNV-1a-64 of id (48 bits) into out[13]. */
static void id_hash(const char *id, char out[13])
{
        uint64_t h = 14695981039346656037ull;
        for (; *id; id++)
                h = (h ^ (uint8_t)*id) * 1099511628211ull;
        snprintf(out, 13, "%012llx", (unsigned long long)(h & 0xffffffffffffull));
}

/* The sandbox's host-side interface name ("wv" + 12 hex digits: 14 < IFNAMSIZ). */
static void host_ifname(const char *id, char out[IFNAMSIZ])
{
        char h[13];
        id_hash(id, h);
        snprintf(out, IFNAMSIZ, "wv%s", h);
}

/* The sandbox's nftables chain names: its policy, its limits. */
static void chain_name(const char *id, char out[16])
{
        char h[13];
        id_hash(id, h);
        snprintf(out, 16, "sb_%s", h);
}

static void limits_name(const char *id, char out[16])
{
        char h[13];
        id_hash(id, h);
        snprintf(out, 16, "sl_%s", h);
}

/* The MAC of an address: 02:77 (locally administered, unicast) then the IPv4 address, so
 * the bridge's per-port check can be computed from the address alone. */
static void addr_mac(uint32_t addr, uint8_t mac[6])
{
        mac[0] = 0x02;
        mac[1] = 0x77;
        mac[2] = (uint8_t)(addr >> 24);
        mac[3] = (uint8_t)(addr >> 16);
        mac[4] = (uint8_t)(addr >> 8);
        mac[5] = (uint8_t)addr;
}

static void fmt_mac(const uint8_t mac[6], char out[18])
{
        snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                 mac[5]);
}

/* Dotted quad of a host-order address. */
static void fmt_ip4(uint32_t addr, char out[INET_ADDRSTRLEN])
{
        uint32_t be = htonl(addr);
        inet_ntop(AF_INET, &be, out, INET_ADDRSTRLEN);
}

static uint32_t gateway(void)
{
        return cfg.subnet + 1;
}

static uint32_t prefix_mask(unsigned prefix)
{
        return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
}

/* ---- a growing text buffer for nftables scripts ---- */

struct sbuf {
        char *s;
        size_t len, cap;
        int err; /* first failure (-ENOMEM) */
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (b->err)
                return;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        b->err = -EINVAL;
                        return;
                }
                if (b->s && (size_t)n < b->cap - b->len) {
                        b->len += (size_t)n;
                        return;
                }
                size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
                char *s = realloc(b->s, cap);
                if (!s) {
                        b->err = -ENOMEM;
                        return;
                }
                b->s = s;
                b->cap = cap;
        }
}

/* ---- nftables ---- */

/* Run an nftables script as one transaction. On failure the first line of libnftables'
 * message goes into err; -EEXIST when it says an object exists, -ENOENT when one is
 * missing, else -EIO. With owner set (pid > 0), the script runs only if that warren-init
 * is still alive (-ESRCH otherwise), checked under the lock every change takes: a detach,
 * which runs once the sandbox is dead, can then never be followed by a late rewrite that
 * would bring its rules back. */
struct owner {
        pid_t pid;
        uint64_t starttime;
};

/* The run itself, in the calling thread's network namespace; nft_lock held. out (may be
 * NULL): the command's output, copied (for listings). */
static int nft_exec(const char *script, char **out, char err[RT_ERR_LEN])
{
        int r = 0;

        struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx)
                return errf(err, -ENOMEM, "nftables context");
        nft_ctx_buffer_output(ctx);
        nft_ctx_buffer_error(ctx);
        if (nft_run_cmd_from_buffer(ctx, script) != 0) {
                const char *msg = nft_ctx_get_error_buffer(ctx);
                char line[160] = "";
                if (msg) {
                        size_t n = strcspn(msg, "\n");
                        snprintf(line, sizeof(line), "%.*s", (int)(n < 159 ? n : 159), msg);
                }
                r = !msg                                        ? -EIO
                    : strstr(msg, "File exists")                ? -EEXIST
                    : strstr(msg, "No such file or directory") ? -ENOENT
                                                                : -EIO;
                errf(err, r, "nftables: %s", line[0] ? line : "failed");
        } else if (out) {
                const char *o = nft_ctx_get_output_buffer(ctx);
                *out = strdup(o ? o : "");
                if (!*out)
                        r = errf(err, -ENOMEM, "nftables output");
        }
        nft_ctx_free(ctx);
        return r;
}

static int nft_run_as(const char *script, const struct owner *owner, char err[RT_ERR_LEN])
{
        int r;

        pthread_mutex_lock(&nft_lock);
        if (owner && owner->pid > 0 && !rt_sandbox_alive(owner->pid, owner->starttime))
                r = errf(err, -ESRCH, "the sandbox is not running");
        else
                r = nft_exec(script, NULL, err);
        pthread_mutex_unlock(&nft_lock);
        return r;
}

static int nft_run(const char *script, char err[RT_ERR_LEN])
{
        return nft_run_as(script, NULL, err);
}

/* Table inet warren (made if missing) and its set blocked4: the ranges no sandbox reaches
 * (the sandbox subnet included). The same in both namespaces. fresh: the set is new (a
 * new namespace), otherwise it is emptied first; emptying a set, even an empty one, makes
 * the kernel's commit wait for 10 ms and more, which a create should not pay. */
static void emit_table(struct sbuf *b, bool fresh)
{
        char net[INET_ADDRSTRLEN];

        fmt_ip4(cfg.subnet, net);
        sb_printf(b, "add table inet warren\n"
                     "add set inet warren blocked4 { type ipv4_addr; flags interval; "
                     "auto-merge; }\n"
                     "%s"
                     "add element inet warren blocked4 { %s/%u",
                  fresh ? "" : "flush set inet warren blocked4\n", net, cfg.prefix);
        for (size_t i = 0; i < ARRAY_SIZE(blocked4); i++)
                sb_printf(b, ", %s", blocked4[i]);
        sb_printf(b, " }\n");
}

/* The ct timeout given to the sandboxes' TCP connections (see NET_TIME_WAIT_S). */
static void emit_ct_timeout(struct sbuf *b)
{
        sb_printf(b,
                  "add ct timeout inet warren tcp_short { protocol tcp; l3proto ip; "
                  "policy = { time_wait: %d, close: %d }; }\n",
                  NET_TIME_WAIT_S, NET_CLOSE_S);
}

/* The base tables and chains of the host (see net.h), rewritten. */
static void emit_base(struct sbuf *b)
{
        char net[INET_ADDRSTRLEN];
        const char *br = cfg.bridge;

        fmt_ip4(cfg.subnet, net);
        emit_table(b, false);
        if (have_ct_timeout)
                emit_ct_timeout(b);
        sb_printf(b,
                  "add map inet warren sandboxes { type ipv4_addr : verdict; }\n"
                  "add chain inet warren input { type filter hook input priority filter; "
                  "policy accept; }\n"
                  "flush chain inet warren input\n"
                  "add rule inet warren input iifname \"%s\" drop\n"
                  "add rule inet warren input ip saddr %s/%u drop\n"
                  "add chain inet warren egress\n"
                  "flush chain inet warren egress\n"
                  "add chain inet warren forward { type filter hook forward priority filter; "
                  "policy accept; }\n"
                  "flush chain inet warren forward\n"
                  "add rule inet warren forward iifname \"%s\" jump egress\n"
                  "add rule inet warren forward oifname \"%s\" ct state established,related "
                  "accept\n"
                  "add rule inet warren forward oifname \"%s\" drop\n"
                  "add rule inet warren egress meta nfproto ipv6 drop\n"
                  "add rule inet warren egress ip saddr vmap @sandboxes\n"
                  "add rule inet warren egress drop\n"
                  "add chain inet warren postrouting { type nat hook postrouting priority "
                  "srcnat; policy accept; }\n"
                  "flush chain inet warren postrouting\n"
                  "add rule inet warren postrouting ip saddr %s/%u oifname != \"%s\" "
                  "masquerade\n",
                  br, net, cfg.prefix, br, br, br, net, cfg.prefix, br);
        /* Bridge level: a frame from a sandbox port must carry that port's MAC and address
         * (ARP: in the sender fields too), so a sandbox can neither spoof nor poison the
         * host's neighbour table; anything else from a sandbox port (IPv6, VLAN tags, other
         * ethertypes) is dropped. Sandbox ports never talk to each other. */
        sb_printf(b,
                  "add table bridge warren\n"
                  "add set bridge warren ports { type ifname . ether_addr . ipv4_addr; }\n"
                  "add chain bridge warren prerouting { type filter hook prerouting priority "
                  "filter; policy accept; }\n"
                  "flush chain bridge warren prerouting\n"
                  "add rule bridge warren prerouting iifname != \"wv*\" accept\n"
                  "add rule bridge warren prerouting ether type ip "
                  "iifname . ether saddr . ip saddr @ports accept\n"
                  "add rule bridge warren prerouting ether type arp "
                  "iifname . ether saddr . arp saddr ip @ports "
                  "iifname . arp saddr ether . arp saddr ip @ports accept\n"
                  "add rule bridge warren prerouting drop\n"
                  "add chain bridge warren forward { type filter hook forward priority "
                  "filter; policy accept; }\n"
                  "flush chain bridge warren forward\n"
                  "add rule bridge warren forward iifname \"wv*\" oifname \"wv*\" drop\n");
}

/* Write the base rules in one transaction; the first time (probe), find out whether the
 * kernel has ct timeouts, in a transaction of its own (it fails where it has none). */
static int nft_base(bool probe, char err[RT_ERR_LEN])
{
        struct sbuf b = { 0 };
        int r;

        pthread_mutex_lock(&nft_lock);
        emit_base(&b);
        r = b.err ? errf(err, b.err, "building the nftables base rules")
                  : nft_exec(b.s, NULL, err);
        free(b.s);
        if (r == 0 && probe && !have_ct_timeout) {
                b = (struct sbuf){ 0 };
                emit_ct_timeout(&b);
                have_ct_timeout = !b.err && nft_exec(b.s, NULL, NULL) == 0;
                free(b.s);
        }
        pthread_mutex_unlock(&nft_lock);
        return r;
}

/* Whether the IPv4 rule's network holds host-order address a. */
static bool rule_holds4(const struct rt_net_rule *rl, uint32_t a)
{
        uint32_t net;
        memcpy(&net, rl->addr, 4);
        net = ntohl(net);
        return (a & prefix_mask(rl->prefix)) == net;
}

/* Whether the rule allows port on protocol bit proto. */
static bool rule_allows_port(const struct rt_net_rule *rl, unsigned proto, uint16_t port)
{
        if (!(rl->protos & proto))
                return false;
        if (rl->nports == 0)
                return true;
        for (unsigned i = 0; i < rl->nports; i++)
                if (rl->ports[i].lo <= port && port <= rl->ports[i].hi)
                        return true;
        return false;
}

/* Which way a policy is written: for what a sandbox sends (destination address and port),
 * or, mirrored, for what it receives (source address and port: replies of what it may
 * send). */
enum dir { DIR_OUT, DIR_IN };

/* One IPv4 rule as a rule line of chain (in table inet warren): its matches, then verdict.
 * allow: the rule is an allow rule (it opens TCP and UDP only). */
static void emit_rule(struct sbuf *b, const char *chain, const struct rt_net_rule *rl,
                      bool allow, enum dir dir, const char *verdict)
{
        const char *addr = dir == DIR_OUT ? "daddr" : "saddr";
        const char *port = dir == DIR_OUT ? "dport" : "sport";
        char net[INET_ADDRSTRLEN];

        sb_printf(b, "add rule inet warren %s", chain);
        if (rl->prefix > 0) {
                inet_ntop(AF_INET, rl->addr, net, sizeof(net));
                sb_printf(b, " ip %s %s/%u", addr, net, rl->prefix);
        }
        bool both = (rl->protos & (RT_NET_TCP | RT_NET_UDP)) == (RT_NET_TCP | RT_NET_UDP);
        if (rl->nports == 0) {
                /* A deny rule for both protocols and every port takes the whole network
                 * (ICMP too); an allow rule never opens more than TCP and UDP. */
                if (!both)
                        sb_printf(b, " meta l4proto %s", rl->protos & RT_NET_TCP ? "tcp" : "udp");
                else if (allow)
                        sb_printf(b, " meta l4proto { tcp, udp }");
        } else {
                if (both)
                        sb_printf(b, " meta l4proto { tcp, udp } th %s", port);
                else
                        sb_printf(b, " %s %s", rl->protos & RT_NET_TCP ? "tcp" : "udp", port);
                sb_printf(b, " {");
                for (unsigned i = 0; i < rl->nports; i++) {
                        if (rl->ports[i].lo == rl->ports[i].hi)
                                sb_printf(b, "%s %u", i ? "," : "", rl->ports[i].lo);
                        else
                                sb_printf(b, "%s %u-%u", i ? "," : "", rl->ports[i].lo,
                                          rl->ports[i].hi);
                }
                sb_printf(b, " }");
        }
        sb_printf(b, " %s\n", verdict);
}

/* The rules of policy p into chain (flushed first), in the order of net.h: the host's
 * addresses (host: "a, b, ..." or NULL; inside the sandbox only), deny, the resolvers, the
 * blocked ranges, allow (verdict accept). */
static void emit_policy(struct sbuf *b, const char *chain, const struct rt_net_policy *p,
                        enum dir dir, const char *accept, const char *host)
{
        sb_printf(b, "flush chain inet warren %s\n", chain);
        if (host && *host)
                sb_printf(b, "add rule inet warren %s ip %s { %s } drop\n", chain,
                          dir == DIR_OUT ? "daddr" : "saddr", host);
        /* IPv6 rules are not written: every IPv6 packet of a sandbox is dropped before its
         * chain, so an IPv6 deny rule has nothing left to deny. */
        for (unsigned i = 0; i < p->n_deny; i++)
                if (p->deny[i].family == AF_INET)
                        emit_rule(b, chain, &p->deny[i], false, dir, "drop");
        /* The configured resolvers, on port 53 where the allow list allows it, before the
         * blocked ranges: a resolver on a private address is allowed explicitly. */
        for (unsigned d = 0; d < cfg.n_dns; d++) {
                static const unsigned protos[] = { RT_NET_UDP, RT_NET_TCP };
                for (unsigned k = 0; k < ARRAY_SIZE(protos); k++) {
                        bool ok = false;
                        for (unsigned i = 0; i < p->n_allow && !ok; i++)
                                ok = p->allow[i].family == AF_INET &&
                                     rule_holds4(&p->allow[i], cfg.dns[d]) &&
                                     rule_allows_port(&p->allow[i], protos[k], 53);
                        if (!ok)
                                continue;
                        char dns[INET_ADDRSTRLEN];
                        fmt_ip4(cfg.dns[d], dns);
                        sb_printf(b, "add rule inet warren %s ip %s %s %s %s 53 %s\n", chain,
                                  dir == DIR_OUT ? "daddr" : "saddr", dns,
                                  protos[k] == RT_NET_UDP ? "udp" : "tcp",
                                  dir == DIR_OUT ? "dport" : "sport", accept);
                }
        }
        sb_printf(b, "add rule inet warren %s ip %s @blocked4 drop\n", chain,
                  dir == DIR_OUT ? "daddr" : "saddr");
        for (unsigned i = 0; i < p->n_allow; i++)
                if (p->allow[i].family == AF_INET)
                        emit_rule(b, chain, &p->allow[i], true, dir, accept);
}

/* The sandbox's limit chain (new, or rewritten: its counts start again): see net.h. */
static void emit_limits(struct sbuf *b, const char *limits)
{
        sb_printf(b, "add chain inet warren %s\nflush chain inet warren %s\n", limits, limits);
        if (cfg.max_conns)
                sb_printf(b,
                          "add rule inet warren %s ct state new ct count over %u "
                          "reject with icmpx admin-prohibited\n",
                          limits, cfg.max_conns);
        if (cfg.conn_rate)
                sb_printf(b,
                          "add rule inet warren %s ct state new limit rate over %u/second "
                          "burst %u packets reject with icmpx admin-prohibited\n",
                          limits, cfg.conn_rate, cfg.conn_rate * 2);
        if (have_ct_timeout)
                sb_printf(b,
                          "add rule inet warren %s ct state new meta l4proto tcp "
                          "ct timeout set \"tcp_short\"\n",
                          limits);
        sb_printf(b, "add rule inet warren %s accept\n", limits);
}

/* The entry of the sandbox's bridge port (its interface, MAC and address). */
static void emit_port(struct sbuf *b, const char *verb, const char *id, uint32_t addr)
{
        char ifn[IFNAMSIZ], ip[INET_ADDRSTRLEN], macs[18];
        uint8_t mac[6];

        host_ifname(id, ifn);
        fmt_ip4(addr, ip);
        addr_mac(addr, mac);
        fmt_mac(mac, macs);
        sb_printf(b, "%s element bridge warren ports { \"%s\" . %s . %s }\n", verb, ifn, macs,
                  ip);
}

/* Script that (re)writes the sandbox's host-side chain with policy p and adds its entries.
 * With create false the chains must exist: "add chain" of an existing chain makes the
 * kernel's commit wait (about 10 ms measured here, against 0.3 ms for the rest), so a
 * policy change only flushes the policy chain and leaves the limit chain (and its counts)
 * alone. With create, the limit chain is (re)written too. */
static void emit_sandbox(struct sbuf *b, const char *id, uint32_t addr,
                         const struct rt_net_policy *p, bool create)
{
        char chain[16], limits[16], ip[INET_ADDRSTRLEN], accept[32];

        chain_name(id, chain);
        limits_name(id, limits);
        fmt_ip4(addr, ip);
        if (create) {
                emit_limits(b, limits);
                sb_printf(b, "add chain inet warren %s\n", chain);
        }
        snprintf(accept, sizeof(accept), "goto %s", limits);
        emit_policy(b, chain, p, DIR_OUT, accept, NULL);
        sb_printf(b, "add element inet warren sandboxes { %s : jump %s }\n", ip, chain);
        emit_port(b, "add", id, addr);
}

/* What emit_inner writes: the policy's two chains only (a policy change), or everything,
 * in a new namespace or over what is there (a sandbox that a daemon before this one did
 * not give a table, or whose table is incomplete). */
enum inner { INNER_RULES, INNER_FRESH, INNER_WHOLE };

/* The host's own IPv4 addresses (of the calling thread's network namespace, the daemon's)
 * but loopback, as "a, b, ..." (at most NET_HOST_ADDRS), "" if none or on failure. The
 * host side keeps every one of them out of reach in its input hook; the table inside the
 * sandbox gets them too, so that a flushed host ruleset does not open the host's services
 * on a public address to a policy that allows their port. */
#define NET_HOST_ADDRS 128
static void host_addrs(struct sbuf *b)
{
        struct ifaddrs *list = NULL;
        uint32_t seen[NET_HOST_ADDRS];
        unsigned n = 0;

        sb_printf(b, "%s", "");
        if (getifaddrs(&list) < 0)
                return;
        for (struct ifaddrs *i = list; i && n < NET_HOST_ADDRS; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
                        continue;
                uint32_t a = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
                char ip[INET_ADDRSTRLEN];
                bool dup = false;
                for (unsigned k = 0; k < n && !dup; k++)
                        dup = seen[k] == a; /* the same address on two links */
                if ((a >> 24) == 127 || dup)
                        continue;
                seen[n] = a;
                fmt_ip4(a, ip);
                sb_printf(b, "%s%s", n++ ? ", " : "", ip);
        }
        freeifaddrs(list);
}

/* Script for the table inside the sandbox's namespace (see net.h). p NULL: both chains
 * empty (a warm-pool sandbox: nothing leaves it, nothing but loopback and ICMP errors
 * enters). */
static void emit_inner(struct sbuf *b, const struct rt_net_policy *p, enum inner what)
{
        if (what != INNER_RULES) {
                emit_table(b, what == INNER_FRESH);
                sb_printf(b,
                          "add chain inet warren outbound\n"
                          "add chain inet warren replies\n"
                          "add chain inet warren output { type filter hook output priority "
                          "filter; policy drop; }\n"
                          "flush chain inet warren output\n"
                          "add rule inet warren output oifname \"lo\" accept\n"
                          "add rule inet warren output meta nfproto ipv6 drop\n"
                          "add rule inet warren output jump outbound\n"
                          "add chain inet warren input { type filter hook input priority "
                          "filter; policy drop; }\n"
                          "flush chain inet warren input\n"
                          "add rule inet warren input iifname \"lo\" accept\n"
                          "add rule inet warren input meta nfproto ipv6 drop\n"
                          /* Errors about its own flows (path MTU, the host's rejects of
                           * the limits): they cannot open anything. */
                          "add rule inet warren input icmp type { destination-unreachable, "
                          "time-exceeded, parameter-problem } accept\n"
                          "add rule inet warren input jump replies\n"
                          "add chain inet warren forward { type filter hook forward priority "
                          "filter; policy drop; }\n");
        }
        if (p) {
                struct sbuf host = { 0 };
                host_addrs(&host);
                if (host.err)
                        b->err = host.err;
                emit_policy(b, "outbound", p, DIR_OUT, "accept", host.s);
                emit_policy(b, "replies", p, DIR_IN, "accept", host.s);
                free(host.s);
        } else {
                sb_printf(b, "flush chain inet warren outbound\nflush chain inet warren replies\n");
        }
}

/* Write the sandbox's rules and entries: a new chain (create), or a rewrite of the existing
 * one, falling back to making it where it is missing (a flushed ruleset). An entry for its
 * address left by another sandbox (a crash between a stop and its cleanup) makes the map
 * refuse ours: it is removed and the transaction retried once. */
static int nft_sandbox(const char *id, uint32_t addr, const struct rt_net_policy *p, bool create,
                       const struct owner *owner, char err[RT_ERR_LEN])
{
        struct sbuf b = { 0 };
        char ip[INET_ADDRSTRLEN], stale[128];
        int r;

        if (!create) {
                emit_sandbox(&b, id, addr, p, false);
                r = b.err ? errf(err, b.err, "building the sandbox's rules")
                          : nft_run_as(b.s, owner, err);
                free(b.s);
                if (r != -ENOENT)
                        return r;
                b = (struct sbuf){ 0 };
        }
        emit_sandbox(&b, id, addr, p, true);
        if (b.err) {
                free(b.s);
                return errf(err, b.err, "building the sandbox's rules");
        }
        r = nft_run_as(b.s, owner, err);
        if (r == -EEXIST) {
                fmt_ip4(addr, ip);
                snprintf(stale, sizeof(stale), "delete element inet warren sandboxes { %s }\n",
                         ip);
                if (nft_run(stale, NULL) == 0)
                        r = nft_run_as(b.s, owner, err);
        }
        free(b.s);
        return r;
}

/* ---- host-side links ---- */

/* A connected rtnetlink socket in the calling thread's network namespace. */
static int nl_open(struct nl_sock **ret)
{
        struct nl_sock *sk = nl_socket_alloc();
        int e;

        if (!sk)
                return -ENOMEM;
        e = nl_connect(sk, NETLINK_ROUTE);
        if (e < 0) {
                nl_socket_free(sk);
                return nl_errno(e);
        }
        *ret = sk;
        return 0;
}

/* An nl_addr of a host-order IPv4 address with a prefix length. */
static struct nl_addr *nl_ip4(uint32_t addr, unsigned prefix)
{
        uint32_t be = htonl(addr);
        struct nl_addr *a = nl_addr_build(AF_INET, &be, 4);
        if (a)
                nl_addr_set_prefixlen(a, (int)prefix);
        return a;
}

/* Write value to a /proc/sys file of the calling thread's network namespace. Missing files
 * (no IPv6 in this kernel) are fine. */
static int sysctl_write(const char *path, const char *value)
{
        int r = util_write_file(path, value);
        return r == -ENOENT ? 0 : r;
}

/* Create the bridge (up, fixed MAC: otherwise it takes the lowest MAC of its ports and
 * every sandbox's neighbour entry for the gateway would go stale as ports come and go), or
 * bring up the existing one; give it the gateway address. */
static int bridge_setup(struct nl_sock *sk, char err[RT_ERR_LEN])
{
        struct rtnl_link *l = NULL;
        uint8_t mac[6];
        int e, r;

        e = rtnl_link_get_kernel(sk, 0, cfg.bridge, &l);
        if (e == 0) {
                const char *type = rtnl_link_get_type(l);
                bool is_bridge = type && strcmp(type, "bridge") == 0;
                rtnl_link_put(l);
                if (!is_bridge)
                        return errf(err, -EEXIST, "%s exists and is not a bridge", cfg.bridge);
        } else {
                l = rtnl_link_alloc();
                struct nl_addr *lladdr = NULL;
                if (!l)
                        return errf(err, -ENOMEM, "bridge");
                addr_mac(gateway(), mac);
                lladdr = nl_addr_build(AF_LLC, mac, 6);
                e = rtnl_link_set_type(l, "bridge");
                if (e == 0 && lladdr) {
                        rtnl_link_set_name(l, cfg.bridge);
                        rtnl_link_set_addr(l, lladdr);
                        rtnl_link_set_flags(l, IFF_UP);
                        e = rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL);
                } else if (e == 0) {
                        e = -NLE_NOMEM;
                }
                nl_addr_put(lladdr);
                rtnl_link_put(l);
                if (e < 0 && nl_errno(e) != -EEXIST)
                        return errf(err, nl_errno(e), "creating bridge %s", cfg.bridge);
        }
        /* Up (an existing bridge may be down), without IPv6: sandboxes get none. */
        char path[128];
        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", cfg.bridge);
        r = sysctl_write(path, "1");
        if (r < 0)
                return errf(err, r, "writing %s", path);
        cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg.bridge);
        if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return errf(err, neg_errno(), "flags of %s", cfg.bridge);
        if (!(ifr.ifr_flags & IFF_UP)) {
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                        return errf(err, neg_errno(), "bringing %s up", cfg.bridge);
        }
        unsigned idx = if_nametoindex(cfg.bridge);
        if (!idx)
                return errf(err, neg_errno(), "index of %s", cfg.bridge);
        struct rtnl_addr *a = rtnl_addr_alloc();
        struct nl_addr *local = nl_ip4(gateway(), cfg.prefix);
        e = a && local ? 0 : -NLE_NOMEM;
        if (e == 0) {
                rtnl_addr_set_ifindex(a, (int)idx);
                e = rtnl_addr_set_local(a, local);
        }
        if (e == 0)
                e = rtnl_addr_add(sk, a, 0);
        nl_addr_put(local);
        rtnl_addr_put(a);
        if (e < 0 && nl_errno(e) != -EEXIST)
                return errf(err, nl_errno(e), "adding the gateway address to %s", cfg.bridge);
        return 0;
}

/* Create the veth pair: ifname on the bridge, up; its peer eth0 (down, MAC of addr) made
 * directly in the namespace nsfd. */
static int veth_create(struct nl_sock *sk, const char *ifname, int nsfd, uint32_t addr,
                       char err[RT_ERR_LEN])
{
        unsigned br = if_nametoindex(cfg.bridge);
        struct rtnl_link *l, *peer;
        struct nl_addr *lladdr;
        uint8_t mac[6];
        int e;

        if (!br)
                return errf(err, neg_errno(), "bridge %s", cfg.bridge);
        l = rtnl_link_veth_alloc();
        if (!l)
                return errf(err, -ENOMEM, "veth");
        addr_mac(addr, mac);
        lladdr = nl_addr_build(AF_LLC, mac, 6);
        peer = rtnl_link_veth_get_peer(l);
        if (!lladdr || !peer) {
                nl_addr_put(lladdr);
                if (peer)
                        rtnl_link_put(peer);
                rtnl_link_veth_release(l);
                return errf(err, -ENOMEM, "veth");
        }
        rtnl_link_set_name(l, ifname);
        rtnl_link_set_master(l, (int)br);
        rtnl_link_set_flags(l, IFF_UP);
        rtnl_link_set_name(peer, NET_SANDBOX_IF);
        rtnl_link_set_addr(peer, lladdr);
        rtnl_link_set_ns_fd(peer, nsfd);
        e = rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL);
        nl_addr_put(lladdr);
        rtnl_link_put(peer);
        rtnl_link_veth_release(l);
        if (e < 0)
                return errf(err, nl_errno(e), "creating veth %s", ifname);
        return 0;
}

/* Delete a host-side link (both ends of a veth go). Missing is fine. */
static void link_delete(struct nl_sock *sk, const char *ifname)
{
        struct rtnl_link *l = rtnl_link_alloc();
        if (!l)
                return;
        rtnl_link_set_name(l, ifname);
        (void)rtnl_link_delete(sk, l);
        rtnl_link_put(l);
}

/* ---- the sandbox's side, from a thread inside its namespace ---- */

struct ns_job {
        int nsfd;
        uint32_t addr;    /* ns_configure */
        const char *nft;  /* the nftables script to run in the namespace first */
        char **retry;     /* ns_nft: on -ENOENT, run this script instead (if not NULL) */
        int r;
        char err[RT_ERR_LEN];
};

/* Thread body: join the sandbox's network namespace and run j->nft there (and, where it
 * fails for something missing, *j->retry). The thread ends with the namespace it joined. */
static void *ns_nft(void *arg)
{
        struct ns_job *j = arg;

        if (setns(j->nsfd, CLONE_NEWNET) < 0) {
                j->r = errf(j->err, neg_errno(), "joining the sandbox's network namespace");
                return NULL;
        }
        j->r = nft_run(j->nft, j->err);
        if (j->r == -ENOENT && j->retry && *j->retry)
                j->r = nft_run(*j->retry, j->err);
        if (j->r < 0) {
                char why[RT_ERR_LEN];
                memcpy(why, j->err, RT_ERR_LEN);
                snprintf(j->err, RT_ERR_LEN, "in the sandbox's namespace: %.200s", why);
        }
        return NULL;
}

/* Thread body: join the sandbox's network namespace, write its nftables table (j->nft),
 * then eth0: no IPv6, up, address, default route via the gateway. */
static void *ns_configure(void *arg)
{
        struct ns_job *j = arg;
        struct nl_sock *sk = NULL;
        struct rtnl_addr *a = NULL;
        struct rtnl_route *rt = NULL;
        struct nl_addr *local = NULL, *dst = NULL, *gw = NULL;
        int e, r;

        /* The table first: it is in force before eth0 is up. */
        ns_nft(j);
        if (j->r < 0)
                return NULL;
        r = sysctl_write("/proc/sys/net/ipv6/conf/" NET_SANDBOX_IF "/disable_ipv6", "1");
        if (r < 0) {
                j->r = errf(j->err, r, "disabling IPv6 on " NET_SANDBOX_IF);
                return NULL;
        }
        unsigned idx = if_nametoindex(NET_SANDBOX_IF);
        cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = { 0 };
        strcpy(ifr.ifr_name, NET_SANDBOX_IF);
        if (!idx || fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
                j->r = errf(j->err, neg_errno(), NET_SANDBOX_IF " in the sandbox");
                return NULL;
        }
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
                j->r = errf(j->err, neg_errno(), "bringing " NET_SANDBOX_IF " up");
                return NULL;
        }
        r = nl_open(&sk);
        if (r < 0) {
                j->r = errf(j->err, r, "netlink in the sandbox");
                return NULL;
        }
        a = rtnl_addr_alloc();
        rt = rtnl_route_alloc();
        local = nl_ip4(j->addr, cfg.prefix);
        dst = nl_ip4(0, 0);
        gw = nl_ip4(gateway(), 32);
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
        e = a && rt && local && dst && gw && nh ? 0 : -NLE_NOMEM;
        if (e == 0) {
                rtnl_addr_set_ifindex(a, (int)idx);
                e = rtnl_addr_set_local(a, local);
        }
        if (e == 0)
                e = rtnl_addr_add(sk, a, 0);
        if (e < 0) {
                j->r = errf(j->err, nl_errno(e), "adding the address of " NET_SANDBOX_IF);
                rtnl_route_nh_free(nh);
                goto out;
        }
        rtnl_route_set_family(rt, AF_INET);
        rtnl_route_set_table(rt, RT_TABLE_MAIN);
        rtnl_route_set_protocol(rt, RTPROT_STATIC);
        rtnl_route_set_scope(rt, RT_SCOPE_UNIVERSE);
        rtnl_route_set_type(rt, RTN_UNICAST);
        e = rtnl_route_set_dst(rt, dst);
        if (e == 0) {
                rtnl_route_nh_set_ifindex(nh, (int)idx);
                rtnl_route_nh_set_gateway(nh, gw);
                rtnl_route_add_nexthop(rt, nh); /* the route owns nh from here */
                e = rtnl_route_add(sk, rt, NLM_F_CREATE | NLM_F_EXCL);
        } else {
                rtnl_route_nh_free(nh);
        }
        if (e < 0)
                j->r = errf(j->err, nl_errno(e), "adding the default route");
out:
        nl_addr_put(local);
        nl_addr_put(dst);
        nl_addr_put(gw);
        if (a)
                rtnl_addr_put(a);
        if (rt)
                rtnl_route_put(rt);
        nl_socket_free(sk);
        return NULL;
}

/* Run body (ns_configure or ns_nft) for j on a thread of its own and wait for it. */
static int ns_run(void *(*body)(void *), struct ns_job *job, char err[RT_ERR_LEN])
{
        struct ns_job j = *job;
        pthread_t t;
        int r;

        r = pthread_create(&t, NULL, body, &j);
        if (r != 0)
                return errf(err, -r, "thread for the sandbox's namespace");
        pthread_join(t, NULL);
        if (j.r < 0 && err)
                memcpy(err, j.err, RT_ERR_LEN);
        return j.r;
}

/* Write /etc/resolv.conf inside the sandbox (through its root, never following a link). It
 * is written as host root, which is not mapped into the sandbox: nobody inside can change
 * it (the file appears as nobody's). */
static int write_resolv(int rootfd, char err[RT_ERR_LEN])
{
        struct open_how how = {
                .flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                .mode = 0644,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        char text[512], ip[INET_ADDRSTRLEN];
        size_t n;
        int fd = -1;

        n = (size_t)snprintf(text, sizeof(text), "# Written by warren: the resolvers of this "
                                                 "sandbox's uplink (NETWORK_DNS).\n");
        for (unsigned i = 0; i < cfg.n_dns; i++) {
                fmt_ip4(cfg.dns[i], ip);
                n += (size_t)snprintf(text + n, sizeof(text) - n, "nameserver %s\n", ip);
        }
        for (int tries = 0; tries < 8; tries++) {
                fd = (int)syscall(SYS_openat2, rootfd, "etc/resolv.conf", &how, sizeof(how));
                if (fd >= 0 || errno != EAGAIN)
                        break;
        }
        if (fd < 0)
                return errf(err, neg_errno(), "opening /etc/resolv.conf in the sandbox");
        int r = util_write_all(fd, text, n);
        close(fd);
        if (r < 0)
                return errf(err, r, "writing /etc/resolv.conf in the sandbox");
        return 0;
}

/* ---- public ---- */

int rt_net_configure(const struct rt_net_config *c)
{
        size_t n = strnlen(c->bridge, sizeof(c->bridge));

        if (n == 0 || n >= IFNAMSIZ || n == sizeof(c->bridge) || c->prefix < 8 ||
            c->prefix > 28 || (c->subnet & ~prefix_mask(c->prefix)) != 0 ||
            c->n_dns > RT_NET_MAX_DNS)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!((c->bridge[i] >= 'a' && c->bridge[i] <= 'z') ||
                      (c->bridge[i] >= '0' && c->bridge[i] <= '9') || c->bridge[i] == '_' ||
                      c->bridge[i] == '-'))
                        return -EINVAL;
        /* Sandbox ports are matched as wv*: a bridge of that name would match itself. */
        if (strncmp(c->bridge, "wv", 2) == 0)
                return -EINVAL;
        cfg = *c;
        configured = true;
        return 0;
}

void rt_net_addr_range(uint32_t *ret_first, uint32_t *ret_last)
{
        *ret_first = cfg.subnet + 2;
        *ret_last = (cfg.subnet | ~prefix_mask(cfg.prefix)) - 1;
}

int rt_net_init(char err[RT_ERR_LEN])
{
        struct nl_sock *sk = NULL;
        int r;

        if (!configured)
                return errf(err, -EINVAL, "network egress is not configured");
        pthread_mutex_lock(&init_lock);
        if (init_done) {
                pthread_mutex_unlock(&init_lock);
                return 0;
        }
        r = nl_open(&sk);
        if (r < 0) {
                errf(err, r, "rtnetlink");
                goto out;
        }
        r = bridge_setup(sk, err);
        nl_socket_free(sk);
        if (r < 0)
                goto out;
        r = nft_base(true, err);
        if (r < 0)
                goto out;
        /* Last: nothing is forwarded before the rules that police it exist. */
        r = sysctl_write("/proc/sys/net/ipv4/ip_forward", "1");
        if (r < 0) {
                errf(err, r, "enabling IPv4 forwarding");
                goto out;
        }
        init_done = true;
out:
        pthread_mutex_unlock(&init_lock);
        return r;
}

/* Open the sandbox's network namespace and root, checking afterwards that the pid still
 * belongs to the warren-init we started (not to a process that reused it). */
static int open_sandbox(pid_t pid, uint64_t starttime, int *ret_nsfd, int *ret_rootfd)
{
        char path[64];
        cleanup_close int nsfd = -1, rootfd = -1;

        if (pid <= 0)
                return -ESRCH;
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
        nsfd = open(path, O_RDONLY | O_CLOEXEC);
        snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
        rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (nsfd < 0 || rootfd < 0 || util_proc_starttime(pid) != starttime)
                return -ESRCH;
        *ret_nsfd = TAKE_FD(nsfd);
        *ret_rootfd = TAKE_FD(rootfd);
        return 0;
}

static bool addr_ok(uint32_t addr)
{
        uint32_t first, last;
        rt_net_addr_range(&first, &last);
        return configured && addr >= first && addr <= last;
}

int rt_net_attach(const char *id, pid_t init_pid, uint64_t starttime, uint32_t addr,
                  const struct rt_net_policy *policy, char err[RT_ERR_LEN])
{
        cleanup_close int nsfd = -1, rootfd = -1;
        struct nl_sock *sk = NULL;
        char ifname[IFNAMSIZ];
        int r;

        if (!id || !*id || !addr_ok(addr))
                return errf(err, -EINVAL, "bad sandbox id or address");
        r = rt_net_init(err);
        if (r < 0)
                return r;
        r = open_sandbox(init_pid, starttime, &nsfd, &rootfd);
        if (r < 0)
                return errf(err, r, "sandbox %s is gone", id);
        /* Rules first: the sandbox's port forwards nothing until they exist. Without a
         * policy (a warm-pool sandbox) only the port's entry is written: with no chain and
         * no map entry nothing it sends is forwarded until rt_net_apply. */
        struct owner owner = { init_pid, starttime };
        struct sbuf inner = { 0 };
        if (policy) {
                r = nft_sandbox(id, addr, policy, true, &owner, err);
        } else {
                struct sbuf b = { 0 };
                emit_port(&b, "add", id, addr);
                r = b.err ? errf(err, b.err, "building the port's entry")
                          : nft_run_as(b.s, &owner, err);
                free(b.s);
        }
        if (r < 0)
                return r;
        emit_inner(&inner, policy, INNER_FRESH);
        if (inner.err) {
                r = errf(err, inner.err, "building the sandbox's own rules");
                goto fail_nft;
        }
        host_ifname(id, ifname);
        r = nl_open(&sk);
        if (r < 0) {
                errf(err, r, "rtnetlink");
                goto fail_nft;
        }
        r = veth_create(sk, ifname, nsfd, addr, err);
        if (r < 0)
                goto fail_nft;
        struct ns_job job = { .nsfd = nsfd, .addr = addr, .nft = inner.s };
        r = ns_run(ns_configure, &job, err);
        if (r >= 0)
                r = write_resolv(rootfd, err);
        if (r < 0)
                goto fail_link;
        nl_socket_free(sk);
        free(inner.s);
        return 0;

fail_link:
        link_delete(sk, ifname);
fail_nft:
        nl_socket_free(sk);
        free(inner.s);
        (void)rt_net_detach(id, addr, NULL);
        return r;
}

/* Rewrite the policy of the table inside the sandbox's namespace nsfd (made whole if it is
 * missing: a sandbox started by a daemon without inner tables). */
static int inner_apply(int nsfd, const struct rt_net_policy *policy, char err[RT_ERR_LEN])
{
        struct sbuf b = { 0 }, full = { 0 };
        int r;

        emit_inner(&b, policy, INNER_RULES);
        emit_inner(&full, policy, INNER_WHOLE);
        if (b.err || full.err) {
                r = errf(err, b.err ? b.err : full.err, "building the sandbox's own rules");
        } else {
                struct ns_job job = { .nsfd = nsfd, .nft = b.s, .retry = &full.s };
                r = ns_run(ns_nft, &job, err);
        }
        free(b.s);
        free(full.s);
        return r;
}

int rt_net_apply(const char *id, pid_t init_pid, uint64_t starttime, uint32_t addr,
                 const struct rt_net_policy *policy, bool replace, char err[RT_ERR_LEN])
{
        struct owner owner = { init_pid, starttime };
        int r;

        if (!id || !*id || !addr_ok(addr))
                return errf(err, -EINVAL, "bad sandbox id or address");
        if (init_pid <= 0)
                return errf(err, -ESRCH, "sandbox %s is not running", id);
        r = rt_net_init(err);
        if (r < 0)
                return r;
        cleanup_close int nsfd = -1, rootfd = -1;
        r = open_sandbox(init_pid, starttime, &nsfd, &rootfd);
        if (r < 0)
                return errf(err, r, "sandbox %s is not running", id);
        /* The host first: its transaction is the one that can fail (its tables flushed by
         * another program, a stale entry), and then nothing has changed anywhere. While
         * the two differ, what passes is what both allow. Liveness is checked under the
         * nftables lock (nft_run_as): a stop kills warren-init before it detaches, so an
         * apply that races a stop writes nothing. */
        r = nft_sandbox(id, addr, policy, !replace, &owner, err);
        if (r < 0)
                return r;
        return inner_apply(nsfd, policy, err);
}

bool rt_net_initialized(void)
{
        pthread_mutex_lock(&init_lock);
        bool inited = init_done;
        pthread_mutex_unlock(&init_lock);
        return configured && inited;
}

int rt_net_restore(const struct rt_net_entry *v, size_t n, size_t *ret_done,
                   char err[RT_ERR_LEN])
{
        struct sbuf b = { 0 };
        size_t done = 0;
        int r;

        if (!rt_net_initialized()) {
                *ret_done = 0;
                return 0;
        }
        /* Everything in one transaction, with liveness checked under the lock as for
         * apply: a sandbox already stopped (and so already detached, or about to be) never
         * gets its rules back. */
        pthread_mutex_lock(&nft_lock);
        emit_base(&b);
        for (size_t i = 0; i < n; i++) {
                if (!addr_ok(v[i].addr) || !rt_sandbox_alive(v[i].init_pid, v[i].starttime))
                        continue;
                if (v[i].policy)
                        emit_sandbox(&b, v[i].id, v[i].addr, v[i].policy, true);
                else
                        emit_port(&b, "add", v[i].id, v[i].addr);
                done++;
        }
        r = b.err ? errf(err, b.err, "building the rules") : nft_exec(b.s, NULL, err);
        pthread_mutex_unlock(&nft_lock);
        free(b.s);
        if (r == 0) {
                *ret_done = done;
                return 0;
        }
        /* Something in the way (a stale entry of the map): the base, then one by one. */
        r = nft_base(false, err);
        if (r < 0)
                return r;
        done = 0;
        for (size_t i = 0; i < n; i++) {
                struct owner owner = { v[i].init_pid, v[i].starttime };
                char why[RT_ERR_LEN];
                int q;

                if (!addr_ok(v[i].addr))
                        continue;
                if (v[i].policy) {
                        q = nft_sandbox(v[i].id, v[i].addr, v[i].policy, true, &owner, why);
                } else {
                        b = (struct sbuf){ 0 };
                        emit_port(&b, "add", v[i].id, v[i].addr);
                        q = b.err ? errf(why, b.err, "building the port's entry")
                                  : nft_run_as(b.s, &owner, why);
                        free(b.s);
                }
                if (q == 0)
                        done++;
                else if (q != -ESRCH && r == 0)
                        r = errf(err, q, "sandbox %s: %s", v[i].id, why);
        }
        *ret_done = done;
        return r;
}

int rt_net_tables_present(bool *ret_ok, char err[RT_ERR_LEN])
{
        char *out = NULL;
        int r;

        if (!rt_net_initialized()) {
                *ret_ok = true;
                return 0;
        }
        pthread_mutex_lock(&nft_lock);
        r = nft_exec("list tables\n", &out, err);
        pthread_mutex_unlock(&nft_lock);
        if (r < 0)
                return r;
        *ret_ok = strstr(out, "table inet warren\n") && strstr(out, "table bridge warren\n");
        free(out);
        return 0;
}

int rt_net_detach(const char *id, uint32_t addr, char err[RT_ERR_LEN])
{
        char chain[16], limits[16], ifn[IFNAMSIZ], ip[INET_ADDRSTRLEN], macs[18], port[128];
        char script[1536];
        uint8_t mac[6];

        if (!id || !*id || !addr_ok(addr))
                return errf(err, -EINVAL, "bad sandbox id or address");
        chain_name(id, chain);
        limits_name(id, limits);
        host_ifname(id, ifn);
        fmt_ip4(addr, ip);
        addr_mac(addr, mac);
        fmt_mac(mac, macs);
        snprintf(port, sizeof(port), "bridge warren ports { \"%s\" . %s . %s }", ifn, macs, ip);
        int r = rt_net_init(err);
        if (r < 0)
                return r;
        /* The policy chain before the limit chain it goes to. */
        snprintf(script, sizeof(script),
                 "delete element inet warren sandboxes { %s }\n"
                 "flush chain inet warren %s\n"
                 "delete chain inet warren %s\n"
                 "flush chain inet warren %s\n"
                 "delete chain inet warren %s\n"
                 "delete element %s\n",
                 ip, chain, chain, limits, limits, port);
        r = nft_run(script, err);
        if (r != -ENOENT)
                return r;
        /* Something was missing already (a repeated detach after a crash between the stop
         * and its record, a sandbox of a daemon without limit chains). nftables 1.0.6 has
         * no "delete if present": adding what is deleted next makes the transaction valid
         * whether or not the objects exist. */
        snprintf(script, sizeof(script),
                 "add chain inet warren %s\n"
                 "add chain inet warren %s\n"
                 "add element inet warren sandboxes { %s : jump %s }\n"
                 "delete element inet warren sandboxes { %s }\n"
                 "flush chain inet warren %s\n"
                 "delete chain inet warren %s\n"
                 "flush chain inet warren %s\n"
                 "delete chain inet warren %s\n"
                 "add element %s\n"
                 "delete element %s\n",
                 chain, limits, ip, chain, ip, chain, chain, limits, limits, port, port);
        r = nft_run(script, err);
        if (r == -EEXIST) {
                /* Our address maps to another chain: not ours to remove; ours go alone. */
                snprintf(script, sizeof(script),
                         "add chain inet warren %s\nflush chain inet warren %s\n"
                         "delete chain inet warren %s\n"
                         "add chain inet warren %s\nflush chain inet warren %s\n"
                         "delete chain inet warren %s\n"
                         "add element %s\ndelete element %s\n",
                         chain, chain, chain, limits, limits, limits, port, port);
                r = nft_run(script, err);
        }
        return r;
}
