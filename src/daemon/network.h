/* network.h - the `network` of sandboxes in the API: the create fields, the sandbox view,
 * and GET/PATCH /api/v1/sandbox/:id/network (network.c). */
#ifndef WARREN_NETWORK_H
#define WARREN_NETWORK_H

#include <jansson.h>

#include "app.h"
#include "net.h"

/* The create request's `network` (NULL, "none" or "egress") and `network_policy` fields:
 * *ret_policy is a malloc'd policy for egress, NULL for none. Answers 400 itself and
 * returns -EINVAL when they are invalid or egress is off (NETWORK_EGRESS=false). */
int network_create_fields(struct reqctx *c, json_t *body, const char *network,
                          struct rt_net_policy **ret_policy);

/* Set "network" (and, for egress, "network_policy" and, while it has one,
 * "network_address") on the JSON view o of sandbox id. */
void network_decorate(struct app *app, json_t *o, const char *id);

/* GET (the sandbox's network) and PATCH (change its egress policy) on
 * /api/v1/sandbox/:id/network. */
void network_route(struct reqctx *c, const char *id);

#endif
