/* store_net.h - network uplinks of sandboxes (`network: egress`), table sandbox_net.
 *
 * Kept apart from struct store_sandbox: a sandbox without a row has `network: none`. The
 * row goes with its sandbox's (ON DELETE CASCADE). Same conventions as store.h: loop
 * thread only, 0 or negative errno (-ENOENT: no row, or no such sandbox on insert;
 * -EEXIST: the address is taken). These run rarely (create, stop, a policy change), so
 * their statements are prepared per call rather than cached.
 */
#ifndef WARREN_STORE_NET_H
#define WARREN_STORE_NET_H

#include <stdint.h>

#include "store.h"

struct store_net {
        char mode[16];     /* "egress" */
        uint32_t addr;     /* IPv4, host byte order; 0 while the sandbox has no address */
        char *policy_json; /* malloc'd canonical policy; freed by store_net_clear */
};
void store_net_clear(struct store_net *n);

/* Record an uplink for sandbox id (which must exist) with address addr (0: none yet). */
int store_net_insert(struct store *st, const char *id, const char *mode, uint32_t addr,
                     const char *policy_json);
/* The uplink of sandbox id; -ENOENT if it has none. */
int store_net_get(struct store *st, const char *id, struct store_net *ret);
/* Replace the policy of sandbox id. */
int store_net_set_policy(struct store *st, const char *id, const char *policy_json);
/* Set the address of sandbox id (0: release it, the sandbox stopped). */
int store_net_set_addr(struct store *st, const char *id, uint32_t addr);
/* A free address in [first, last]: the lowest one >= hint not held by any row, else the
 * lowest from first. -ENOSPC if every address is taken. */
int store_net_addr_free(struct store *st, uint32_t first, uint32_t last, uint32_t hint,
                        uint32_t *ret_addr);

#endif
