/* Fuzz the egress policy parser (src/daemon/netpolicy.c): bytes -> JSON -> policy, the way a
 * create or PATCH /network body reaches it. Properties: nothing crashes or leaks; whatever
 * parses has bounded counts and valid ports, and its canonical JSON parses back to the
 * same canonical JSON. The input is also tried as a bare CIDR. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netpolicy.h"

static void check(const struct rt_net_policy *p)
{
        if (p->n_allow > RT_NET_MAX_RULES || p->n_deny > RT_NET_MAX_RULES)
                abort();
        for (unsigned i = 0; i < p->n_allow + p->n_deny; i++) {
                const struct rt_net_rule *r = i < p->n_allow ? &p->allow[i]
                                                             : &p->deny[i - p->n_allow];
                if (r->nports > RT_NET_MAX_PORTS || !r->protos ||
                    r->prefix > (r->family == AF_INET ? 32 : 128))
                        abort();
                for (unsigned k = 0; k < r->nports; k++)
                        if (r->ports[k].lo < 1 || r->ports[k].hi < r->ports[k].lo)
                                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[NETPOLICY_ERR_LEN];
        struct rt_net_policy *p = malloc(sizeof(*p)), *q = malloc(sizeof(*q));
        json_error_t jerr;

        if (!p || !q)
                goto out;
        char *s = malloc(size + 1);
        if (s) {
                struct rt_net_rule r;
                memcpy(s, data, size);
                s[size] = '\0';
                (void)netpolicy_parse_cidr(s, &r, err, sizeof(err));
                free(s);
        }
        json_t *j = json_loadb((const char *)data, size, 0, &jerr);
        if (!j)
                goto out;
        if (netpolicy_from_json(j, NULL, p, err, sizeof(err)) == 0) {
                check(p);
                json_t *c1 = netpolicy_to_json(p);
                char *t1 = c1 ? json_dumps(c1, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
                if (!c1 || !t1 || netpolicy_from_json(c1, NULL, q, err, sizeof(err)) != 0)
                        abort();
                json_t *c2 = netpolicy_to_json(q);
                char *t2 = c2 ? json_dumps(c2, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
                if (!t2 || strcmp(t1, t2) != 0)
                        abort();
                free(t1);
                free(t2);
                json_decref(c1);
                json_decref(c2);
        }
        json_decref(j);
out:
        free(p);
        free(q);
        return 0;
}
