/* netwatch.h - putting warren's host-side nftables rules back when another program removed
 * them (netwatch.c).
 *
 * The sandboxes' egress stays filtered meanwhile by the tables inside their own namespaces
 * (src/runtime/net.h); what a flush of the host's ruleset takes away is the host side:
 * NAT (so allowed destinations stop working), the limits, the bridge's anti-spoofing checks.
 * The watch notices the removal from the kernel's nftables notifications and writes the
 * base rules and every egress sandbox's host-side rules again, logging it.
 */
#ifndef WARREN_NETWATCH_H
#define WARREN_NETWATCH_H

#include "app.h"

/* Start watching (after mgr_adopt). A failure is logged and returned; the daemon runs on
 * without the watch (a restart then restores the rules). */
int netwatch_start(struct app *app);

/* Stop watching: close the socket and the handles (on shutdown). */
void netwatch_stop(void);

#endif
