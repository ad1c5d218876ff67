/* netpolicy.c - egress policies as JSON, CIDRs, the NETWORK_* settings (see netpolicy.h).
 *
 * Everything here reads client input: every count is bounded (RT_NET_MAX_RULES per list,
 * RT_NET_MAX_PORTS per rule, string lengths) before anything is copied, and a message names
 * the offending field so the client gets a precise 400.
 */
#include "netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

/* Longest cidr text accepted (an IPv6 address with a prefix fits in 50). */
#define CIDR_MAX 64

/* printf into err (if given) and return -EINVAL. */
static int bad(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t len, const char *fmt, ...)
{
        va_list ap;

        if (err && len) {
                va_start(ap, fmt);
                vsnprintf(err, len, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* A decimal number of 1..5 digits without sign or leading zero (but "0"), at most max. */
static int parse_small(const char *s, size_t n, unsigned max, unsigned *ret)
{
        unsigned v = 0;

        if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        if (v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int netpolicy_parse_cidr(const char *s, struct rt_net_rule *ret, char *err, size_t errlen)
{
        char addr[CIDR_MAX + 1];
        uint8_t buf[16] = { 0 };
        unsigned prefix, max;
        size_t n = s ? strnlen(s, CIDR_MAX + 1) : 0;
        int family;

        if (n == 0 || n > CIDR_MAX)
                return bad(err, errlen, "expected a network like \"203.0.113.0/24\"");
        const char *slash = strchr(s, '/');
        size_t alen = slash ? (size_t)(slash - s) : n;
        memcpy(addr, s, alen);
        addr[alen] = '\0';
        family = strchr(addr, ':') ? AF_INET6 : AF_INET;
        max = family == AF_INET ? 32 : 128;
        /* inet_pton is strict: four decimal parts for IPv4 (no "10.1", no octal, no
         * leading zeros), RFC 4291 text for IPv6 (no zone, no brackets). */
        if (inet_pton(family, addr, buf) != 1)
                return bad(err, errlen, "\"%.64s\" is not an IPv4 or IPv6 address", addr);
        prefix = max;
        if (slash && parse_small(slash + 1, n - alen - 1, max, &prefix) < 0)
                return bad(err, errlen, "bad prefix length in \"%.64s\" (0-%u)", s, max);
        /* Host bits must be zero: "10.0.0.1/8" is ambiguous (a typo for /32, or for
         * 10.0.0.0/8?), so it is refused rather than guessed. */
        for (unsigned bit = prefix; bit < max; bit++) {
                if (buf[bit / 8] & (0x80u >> (bit % 8)))
                        return bad(err, errlen,
                                   "\"%.64s\" has host bits set after the /%u prefix", s, prefix);
        }
        ret->family = family;
        memset(ret->addr, 0, sizeof(ret->addr));
        memcpy(ret->addr, buf, family == AF_INET ? 4 : 16);
        ret->prefix = (uint8_t)prefix;
        return 0;
}

/* An IPv4 rule for 0.0.0.0/0 with one port. */
static void rule_any4(struct rt_net_rule *r, uint8_t protos, uint16_t port)
{
        memset(r, 0, sizeof(*r));
        r->family = AF_INET;
        r->protos = protos;
        r->nports = 1;
        r->ports[0].lo = r->ports[0].hi = port;
}

void netpolicy_default(struct rt_net_policy *ret)
{
        memset(ret, 0, sizeof(*ret));
        /* StateSet's reference policy: "Egress allowed: HTTPS (443), DNS (53)". */
        rule_any4(&ret->allow[0], RT_NET_TCP, 443);
        rule_any4(&ret->allow[1], RT_NET_TCP | RT_NET_UDP, 53);
        ret->n_allow = 2;
}

/* One port entry: a number, or a string "N" or "LO-HI". */
static int parse_port(json_t *v, uint16_t *ret_lo, uint16_t *ret_hi)
{
        unsigned lo, hi;

        if (json_is_integer(v)) {
                json_int_t n = json_integer_value(v);
                if (n < 1 || n > 65535)
                        return -EINVAL;
                *ret_lo = *ret_hi = (uint16_t)n;
                return 0;
        }
        if (!json_is_string(v))
                return -EINVAL;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n > 11 || strlen(s) != n)
                return -EINVAL;
        const char *dash = strchr(s, '-');
        if (!dash) {
                if (parse_small(s, n, 65535, &lo) < 0)
                        return -EINVAL;
                hi = lo;
        } else if (parse_small(s, (size_t)(dash - s), 65535, &lo) < 0 ||
                   parse_small(dash + 1, n - (size_t)(dash - s) - 1, 65535, &hi) < 0) {
                return -EINVAL;
        }
        if (lo < 1 || hi < lo)
                return -EINVAL;
        *ret_lo = (uint16_t)lo;
        *ret_hi = (uint16_t)hi;
        return 0;
}

/* One rule object; where names it in messages ("network_policy.allow[3]"). */
static int parse_rule(json_t *o, bool is_allow, const char *where, struct rt_net_rule *ret,
                      char *err, size_t errlen)
{
        char why[NETPOLICY_ERR_LEN];
        const char *key;
        json_t *v;

        if (!json_is_object(o))
                return bad(err, errlen, "%s: expected an object with cidr, ports, protocol",
                           where);
        json_object_foreach(o, key, v)
        {
                if (strcmp(key, "cidr") && strcmp(key, "ports") && strcmp(key, "protocol"))
                        return bad(err, errlen, "%s: unknown field \"%.32s\" (expected cidr, "
                                                "ports, protocol)",
                                   where, key);
        }
        memset(ret, 0, sizeof(*ret));
        ret->family = AF_INET;
        ret->protos = RT_NET_TCP | RT_NET_UDP;
        v = json_object_get(o, "cidr");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                        return bad(err, errlen, "%s.cidr: expected a string", where);
                if (netpolicy_parse_cidr(json_string_value(v), ret, why, sizeof(why)) < 0)
                        return bad(err, errlen, "%s.cidr: %s", where, why);
        }
        if (is_allow && ret->family == AF_INET6)
                return bad(err, errlen,
                           "%s.cidr: IPv6 egress is not available (sandboxes have IPv4 only; "
                           "IPv6 may appear in deny)",
                           where);
        v = json_object_get(o, "protocol");
        if (v && !json_is_null(v)) {
                const char *p = json_is_string(v) ? json_string_value(v) : "";
                if (!strcmp(p, "tcp"))
                        ret->protos = RT_NET_TCP;
                else if (!strcmp(p, "udp"))
                        ret->protos = RT_NET_UDP;
                else if (strcmp(p, "any") != 0)
                        return bad(err, errlen, "%s.protocol: expected \"tcp\", \"udp\" or "
                                                "\"any\"",
                                   where);
        }
        v = json_object_get(o, "ports");
        if (v && !json_is_null(v)) {
                size_t n = json_is_array(v) ? json_array_size(v) : 0;
                if (n == 0 || n > RT_NET_MAX_PORTS)
                        return bad(err, errlen, "%s.ports: expected an array of 1 to %d ports",
                                   where, RT_NET_MAX_PORTS);
                for (size_t i = 0; i < n; i++) {
                        if (parse_port(json_array_get(v, i), &ret->ports[i].lo,
                                       &ret->ports[i].hi) < 0)
                                return bad(err, errlen,
                                           "%s.ports[%zu]: expected a port 1-65535 or a range "
                                           "\"LO-HI\"",
                                           where, i);
                }
                ret->nports = (uint8_t)n;
        }
        return 0;
}

/* One list ("allow" or "deny") into rules/ret_n. */
static int parse_list(json_t *v, const char *name, struct rt_net_rule *rules, unsigned *ret_n,
                      char *err, size_t errlen)
{
        char where[48];
        size_t n;

        if (!json_is_array(v))
                return bad(err, errlen, "network_policy.%s: expected an array of rules", name);
        n = json_array_size(v);
        if (n > RT_NET_MAX_RULES)
                return bad(err, errlen, "network_policy.%s: at most %d rules", name,
                           RT_NET_MAX_RULES);
        for (size_t i = 0; i < n; i++) {
                snprintf(where, sizeof(where), "network_policy.%s[%zu]", name, i);
                int r = parse_rule(json_array_get(v, i), strcmp(name, "allow") == 0, where,
                                   &rules[i], err, errlen);
                if (r < 0)
                        return r;
        }
        *ret_n = (unsigned)n;
        return 0;
}

int netpolicy_from_json(json_t *v, const struct rt_net_policy *base, struct rt_net_policy *ret,
                        char *err, size_t errlen)
{
        struct rt_net_policy *p;
        const char *key;
        json_t *x;
        int r;

        if (v && !json_is_null(v) && !json_is_object(v))
                return bad(err, errlen, "network_policy: expected an object with allow and deny");
        json_object_foreach(json_is_object(v) ? v : NULL, key, x)
        {
                if (strcmp(key, "allow") && strcmp(key, "deny"))
                        return bad(err, errlen,
                                   "network_policy: unknown field \"%.32s\" (expected allow, "
                                   "deny)",
                                   key);
        }
        /* Built aside: ret is written only on success. */
        p = calloc(1, sizeof(*p));
        if (!p)
                return bad(err, errlen, "out of memory");
        if (base)
                *p = *base;
        else
                netpolicy_default(p);
        /* null asks for the default list: the reference allow list, an empty deny list. */
        x = json_object_get(v, "allow");
        if (json_is_null(x)) {
                struct rt_net_policy def;
                netpolicy_default(&def);
                memcpy(p->allow, def.allow, sizeof(p->allow));
                p->n_allow = def.n_allow;
        } else if (x) {
                r = parse_list(x, "allow", p->allow, &p->n_allow, err, errlen);
                if (r < 0)
                        goto out;
        }
        x = json_object_get(v, "deny");
        if (json_is_null(x)) {
                p->n_deny = 0;
        } else if (x) {
                r = parse_list(x, "deny", p->deny, &p->n_deny, err, errlen);
                if (r < 0)
                        goto out;
        }
        *ret = *p;
        r = 0;
out:
        free(p);
        return r;
}

/* One rule as JSON. */
static json_t *rule_to_json(const struct rt_net_rule *rl)
{
        char addr[INET6_ADDRSTRLEN], cidr[INET6_ADDRSTRLEN + 8];
        json_t *o, *ports;

        inet_ntop(rl->family, rl->addr, addr, sizeof(addr));
        snprintf(cidr, sizeof(cidr), "%s/%u", addr, rl->prefix);
        const char *proto = rl->protos == RT_NET_TCP ? "tcp" : rl->protos == RT_NET_UDP ? "udp"
                                                                                         : "any";
        o = json_pack("{s:s, s:s}", "cidr", cidr, "protocol", proto);
        if (!o || rl->nports == 0)
                return o;
        ports = json_array();
        for (unsigned i = 0; ports && i < rl->nports; i++) {
                char range[16];
                if (rl->ports[i].lo == rl->ports[i].hi) {
                        json_array_append_new(ports, json_integer(rl->ports[i].lo));
                } else {
                        snprintf(range, sizeof(range), "%u-%u", rl->ports[i].lo,
                                 rl->ports[i].hi);
                        json_array_append_new(ports, json_string(range));
                }
        }
        json_object_set_new(o, "ports", ports);
        return o;
}

json_t *netpolicy_to_json(const struct rt_net_policy *p)
{
        json_t *allow = json_array(), *deny = json_array();

        for (unsigned i = 0; allow && i < p->n_allow; i++)
                json_array_append_new(allow, rule_to_json(&p->allow[i]));
        for (unsigned i = 0; deny && i < p->n_deny; i++)
                json_array_append_new(deny, rule_to_json(&p->deny[i]));
        return json_pack("{s:o*, s:o*}", "allow", allow, "deny", deny);
}

/* ---- server settings ---- */

/* Whether a host-order IPv4 address may serve the sandboxes as a resolver: not "this
 * network", loopback, link-local (metadata), multicast/reserved, or inside the sandbox
 * subnet (the host and other sandboxes are never reachable). */
static bool resolver_ok(uint32_t a, const struct rt_net_config *nc)
{
        uint32_t mask = 0xffffffffu << (32 - nc->prefix);

        if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 16) == 0xa9fe || (a >> 28) >= 14)
                return false;
        return (a & mask) != nc->subnet;
}

/* Parse one IPv4 address (host order). */
static int ip4(const char *s, uint32_t *ret)
{
        struct in_addr in;

        if (inet_pton(AF_INET, s, &in) != 1)
                return -EINVAL;
        *ret = ntohl(in.s_addr);
        return 0;
}

/* NETWORK_DNS=host: the usable IPv4 nameservers of resolv_path; public resolvers if none
 * (a host behind a local stub resolver, 127.0.0.53, has nothing a sandbox could reach). */
static void dns_from_host(const char *resolv_path, struct rt_net_config *nc)
{
        cleanup_fclose FILE *f = fopen(resolv_path, "re");
        char line[512], word[64], addr[64];

        nc->n_dns = 0;
        while (f && nc->n_dns < RT_NET_MAX_DNS && fgets(line, sizeof(line), f)) {
                uint32_t a;
                if (sscanf(line, " %63s %63s", word, addr) == 2 &&
                    strcmp(word, "nameserver") == 0 && ip4(addr, &a) == 0 && resolver_ok(a, nc))
                        nc->dns[nc->n_dns++] = a;
        }
        if (nc->n_dns == 0) {
                nc->dns[0] = 0x01010101u; /* 1.1.1.1 */
                nc->dns[1] = 0x08080808u; /* 8.8.8.8 */
                nc->n_dns = 2;
        }
}

int netpolicy_config(const struct config *cfg, const char *resolv_path, struct rt_net_config *ret,
                     char *err, size_t errlen)
{
        struct rt_net_config nc = { 0 };
        struct rt_net_rule net;
        char why[NETPOLICY_ERR_LEN];

        if (netpolicy_parse_cidr(cfg->network_subnet, &net, why, sizeof(why)) < 0)
                return bad(err, errlen, "NETWORK_SUBNET: %s", why);
        if (net.family != AF_INET || net.prefix < 8 || net.prefix > 28)
                return bad(err, errlen, "NETWORK_SUBNET: expected an IPv4 network of /8 to /28");
        uint32_t be;
        memcpy(&be, net.addr, 4);
        nc.subnet = ntohl(be);
        nc.prefix = net.prefix;
        uint8_t top = (uint8_t)(nc.subnet >> 24);
        if (top == 0 || top == 127 || top >= 224 || (nc.subnet >> 16) == 0xa9fe)
                return bad(err, errlen, "NETWORK_SUBNET: %s is not usable for sandboxes",
                           cfg->network_subnet);
        size_t blen = strlen(cfg->network_bridge);
        if (blen == 0 || blen >= sizeof(nc.bridge) || !strncmp(cfg->network_bridge, "wv", 2) ||
            strspn(cfg->network_bridge, "abcdefghijklmnopqrstuvwxyz0123456789_-") != blen)
                return bad(err, errlen,
                           "NETWORK_BRIDGE: expected 1-15 of a-z 0-9 _ -, not starting with wv "
                           "(the prefix of sandbox ports)");
        snprintf(nc.bridge, sizeof(nc.bridge), "%s", cfg->network_bridge);

        const char *dns = cfg->network_dns;
        if (strcmp(dns, "host") == 0) {
                dns_from_host(resolv_path, &nc);
        } else if (strcmp(dns, "none") != 0) {
                char list[sizeof(cfg->network_dns)], *save = NULL;
                snprintf(list, sizeof(list), "%s", dns);
                for (char *tok = strtok_r(list, ", ", &save); tok;
                     tok = strtok_r(NULL, ", ", &save)) {
                        uint32_t a;
                        if (nc.n_dns == RT_NET_MAX_DNS)
                                return bad(err, errlen, "NETWORK_DNS: at most %d resolvers",
                                           RT_NET_MAX_DNS);
                        if (ip4(tok, &a) < 0 || !resolver_ok(a, &nc))
                                return bad(err, errlen,
                                           "NETWORK_DNS: \"%.40s\" is not a usable IPv4 resolver "
                                           "(not loopback, link-local, multicast or in "
                                           "NETWORK_SUBNET)",
                                           tok);
                        nc.dns[nc.n_dns++] = a;
                }
                if (nc.n_dns == 0)
                        return bad(err, errlen, "NETWORK_DNS: expected host, none or addresses");
        }
        if (cfg->network_max_conns < 0 || cfg->network_max_conns > 1000000 ||
            cfg->network_conn_rate < 0 || cfg->network_conn_rate > 1000000)
                return bad(err, errlen, "NETWORK_MAX_CONNS and NETWORK_CONN_RATE: 0-1000000");
        nc.max_conns = (uint32_t)cfg->network_max_conns;
        nc.conn_rate = (uint32_t)cfg->network_conn_rate;
        *ret = nc;
        return 0;
}
