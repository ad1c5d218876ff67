/* net_watch.c - noticing that another program removed warren's host-side nftables objects
 * (see net.h: rt_net_watch_open, rt_net_watch_read).
 *
 * The kernel tells every member of the netlink group NFNLGRP_NFTABLES about each change to
 * the ruleset of its network namespace, as the same messages a listing would give (table,
 * chain, set... with their names). `nft flush ruleset` or a firewall reload that starts
 * with it announces the deletion of each table; `nft delete table inet warren` of one.
 * warren itself never deletes its tables, its base chains or its sets (only per-sandbox
 * chains and elements), so such a deletion is always someone else's. Rules and elements are
 * not watched: warren rewrites those itself all the time.
 *
 * Raw netlink, no libmnl: only a few attributes of a few message types are read, each
 * checked against the message's length before use.
 */
#include "net.h"

#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdalign.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* Receive buffer asked for: a flush of a large ruleset announces thousands of objects. */
#define WATCH_RCVBUF (4 << 20)

/* Warren's table name, and the base chains and sets of its two tables (net.c). */
static const char WATCH_TABLE[] = "warren";
static const char *const watched_chains[] = { "input", "egress", "forward", "postrouting",
                                              "prerouting" };
static const char *const watched_sets[] = { "blocked4", "sandboxes", "ports" };

int rt_net_watch_open(int *ret_fd)
{
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        unsigned group = NFNLGRP_NFTABLES;
        int size = WATCH_RCVBUF;
        cleanup_close int fd = -1;

        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
        if (fd < 0)
                return neg_errno();
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return neg_errno();
        /* Joining needs CAP_NET_ADMIN in the namespace's owner, as changing it does. */
        if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0)
                return neg_errno();
        /* As root the limit can be passed; otherwise the default (wmem_max) stays. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* The NUL-terminated string attribute of type want among the attributes at p (len bytes),
 * or NULL. */
static const char *attr_str(const uint8_t *p, size_t len, uint16_t want)
{
        while (len >= NLA_HDRLEN) {
                const struct nlattr *a = (const struct nlattr *)p;
                size_t alen = a->nla_len, step = NLA_ALIGN(alen);
                if (alen < NLA_HDRLEN || alen > len)
                        return NULL;
                if ((a->nla_type & NLA_TYPE_MASK) == want) {
                        const char *s = (const char *)(p + NLA_HDRLEN);
                        size_t n = alen - NLA_HDRLEN;
                        return n > 0 && memchr(s, '\0', n) ? s : NULL;
                }
                if (step >= len)
                        break;
                p += step;
                len -= step;
        }
        return NULL;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
        for (size_t i = 0; s && i < n; i++)
                if (strcmp(s, list[i]) == 0)
                        return true;
        return false;
}

/* Whether one notification removes one of warren's tables, base chains or sets. */
static bool is_hit(const struct nlmsghdr *h)
{
        if (NFNL_SUBSYS_ID(h->nlmsg_type) != NFNL_SUBSYS_NFTABLES ||
            h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nfgenmsg)))
                return false;
        const struct nfgenmsg *g = NLMSG_DATA(h);
        if (g->nfgen_family != NFPROTO_INET && g->nfgen_family != NFPROTO_BRIDGE)
                return false;
        const uint8_t *attrs = (const uint8_t *)g + NLMSG_ALIGN(sizeof(*g));
        size_t len = h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*g)));
        const char *table;

        switch (NFNL_MSG_TYPE(h->nlmsg_type)) {
        case NFT_MSG_DELTABLE:
                table = attr_str(attrs, len, NFTA_TABLE_NAME);
                return table && strcmp(table, WATCH_TABLE) == 0;
        case NFT_MSG_DELCHAIN:
                table = attr_str(attrs, len, NFTA_CHAIN_TABLE);
                return table && strcmp(table, WATCH_TABLE) == 0 &&
                       in_list(attr_str(attrs, len, NFTA_CHAIN_NAME), watched_chains,
                               ARRAY_SIZE(watched_chains));
        case NFT_MSG_DELSET:
                table = attr_str(attrs, len, NFTA_SET_TABLE);
                return table && strcmp(table, WATCH_TABLE) == 0 &&
                       in_list(attr_str(attrs, len, NFTA_SET_NAME), watched_sets,
                               ARRAY_SIZE(watched_sets));
        default:
                return false;
        }
}

int rt_net_watch_read(int fd, bool *ret_hit, bool *ret_lost)
{
        alignas(struct nlmsghdr) uint8_t buf[65536];
        bool hit = false, lost = false;

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        if (errno == ENOBUFS) { /* the queue overflowed: some were lost */
                                lost = true;
                                continue;
                        }
                        return neg_errno();
                }
                if (n == 0)
                        break;
                int left = (int)n; /* int: NLMSG_NEXT may take it below zero */
                for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
                     NLMSG_OK(h, left); h = NLMSG_NEXT(h, left))
                        if (is_hit(h))
                                hit = true;
        }
        *ret_hit = hit;
        *ret_lost = lost;
        return 0;
}
