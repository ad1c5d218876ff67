/* netpolicy.h - the `network` part of the API and of the server's configuration: egress
 * policies as JSON <-> struct rt_net_policy, strict CIDR parsing, and the NETWORK_*
 * settings turned into struct rt_net_config. Pure functions (no I/O but reading the host's
 * resolv.conf for NETWORK_DNS=host, no state); they never log.
 *
 * A policy as clients send and see it:
 *   {"allow": [RULE...], "deny": [RULE...]}
 *   RULE = {"cidr": "203.0.113.0/24", "ports": [443, "8000-8080"], "protocol": "tcp"}
 * cidr: an IPv4 or IPv6 network with its host bits zero, or a bare address (/32, /128);
 * default 0.0.0.0/0. ports: 1..16 entries, each a port (1-65535, number or string) or a
 * range "LO-HI"; absent: every port. protocol: "tcp", "udp" or "any" (default). Unknown
 * fields are refused. allow absent: NETPOLICY default (TCP 443, TCP+UDP 53); deny absent:
 * empty. IPv6 rules may deny (every IPv6 packet is dropped anyway) but not allow.
 */
#ifndef WARREN_NETPOLICY_H
#define WARREN_NETPOLICY_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "net.h"

/* Size of the err buffers below. */
#define NETPOLICY_ERR_LEN 256

/* Parse "ADDR/PREFIX" or "ADDR" strictly into ret's family, addr and prefix (other fields
 * untouched). -EINVAL with a reason in err (may be NULL). */
int netpolicy_parse_cidr(const char *s, struct rt_net_rule *ret, char *err, size_t errlen);

/* The default policy: allow TCP 443 and TCP/UDP 53 anywhere (outside the blocked ranges). */
void netpolicy_default(struct rt_net_policy *ret);

/* Parse a policy object: each list present replaces base's (base NULL: the default policy),
 * a list given as null is reset to the default (allow: the reference list, deny: empty), and
 * a NULL or null object gives base itself. ret may be base. -EINVAL with a message naming
 * the field in err, ret untouched. */
int netpolicy_from_json(json_t *v, const struct rt_net_policy *base, struct rt_net_policy *ret,
                        char *err, size_t errlen);

/* The canonical JSON of a policy (new reference, or NULL on allocation failure). */
json_t *netpolicy_to_json(const struct rt_net_policy *p);

/* The uplink settings from NETWORK_SUBNET, NETWORK_BRIDGE, NETWORK_DNS and the limits
 * NETWORK_MAX_CONNS and NETWORK_CONN_RATE. resolv_path is
 * the file read for NETWORK_DNS=host (normally /etc/resolv.conf). -EINVAL with a message. */
int netpolicy_config(const struct config *cfg, const char *resolv_path, struct rt_net_config *ret,
                     char *err, size_t errlen);

#endif
