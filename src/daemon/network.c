/* network.c - the `network` of sandboxes in the API (network.h).
 *
 * `network: egress` gives a sandbox an uplink with an egress policy (src/runtime/net.h for
 * what the kernel does, docs/security.md for what a sandbox can reach). The policy is
 * validated here (netpolicy.c), applied by the manager on the threadpool, and stored in
 * sandbox_net (store_net.h).
 */
#include "network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "netpolicy.h"
#include "routes.h"
#include "store_net.h"

int network_create_fields(struct reqctx *c, json_t *body, const char *network,
                          struct rt_net_policy **ret_policy)
{
        char err[NETPOLICY_ERR_LEN];
        json_t *pv = json_object_get(body, "network_policy");
        bool has_policy = pv && !json_is_null(pv);

        if (!network || strcmp(network, "none") == 0) {
                if (has_policy) {
                        reply_error(c, 400, "invalid_request",
                                    "network_policy: only with network \"egress\"");
                        return -EINVAL;
                }
                *ret_policy = NULL;
                return 0;
        }
        if (strcmp(network, "egress") != 0 || !c->app->cfg.network_egress) {
                reply_error(c, 400, "invalid_request",
                            "network: \"%.64s\" is not available on this server (available: "
                            "none%s)",
                            network, c->app->cfg.network_egress ? ", egress" : "");
                return -EINVAL;
        }
        struct rt_net_policy *p = malloc(sizeof(*p));
        if (!p) {
                reply_errno(c, -ENOMEM, "create");
                return -ENOMEM;
        }
        if (netpolicy_from_json(pv, NULL, p, err, sizeof(err)) < 0) {
                free(p);
                reply_error(c, 400, "invalid_request", "%s", err);
                return -EINVAL;
        }
        *ret_policy = p;
        return 0;
}

/* The network fields of sandbox id, set on o. */
static void decorate(struct store *st, json_t *o, const char *id)
{
        struct store_net n = { 0 };
        json_error_t jerr;

        if (store_net_get(st, id, &n) < 0) {
                json_object_set_new(o, "network", json_string("none"));
                return;
        }
        json_object_set_new(o, "network", json_string(n.mode));
        json_t *pj = json_loads(n.policy_json, 0, &jerr);
        if (pj)
                json_object_set_new(o, "network_policy", pj);
        if (n.addr) {
                char ip[INET_ADDRSTRLEN];
                uint32_t be = htonl(n.addr);
                inet_ntop(AF_INET, &be, ip, sizeof(ip));
                json_object_set_new(o, "network_address", json_string(ip));
        }
        store_net_clear(&n);
}

void network_decorate(struct app *app, json_t *o, const char *id)
{
        if (o)
                decorate(app->store, o, id);
}

/* {"sandbox_id", "network", ...} of sandbox id. */
static json_t *network_view(struct app *app, const char *id)
{
        json_t *o = json_pack("{s:s}", "sandbox_id", id);
        network_decorate(app, o, id);
        return o;
}

struct patch_ctx {
        struct reqctx *c;
        char id[STORE_ID_MAX];
};

static void patch_done(void *ud, int err, const char *msg)
{
        struct patch_ctx *p = ud;
        struct reqctx *c = p->c;

        if (err == -ESRCH)
                reply_error(c, 409, "conflict", "the sandbox stopped before the policy applied");
        else if (err < 0)
                reply_error(c, 500, "internal", "the policy could not be applied: %s",
                            msg ? msg : strerror(-err));
        else
                reply_json(c, 200, network_view(c->app, p->id));
        free(p);
}

/* PATCH: the body's lists replace the current ones (a list left out is kept). */
static void handle_patch(struct reqctx *c, const char *id)
{
        char err[NETPOLICY_ERR_LEN];
        struct store_net n = { 0 };
        struct rt_net_policy *cur = NULL;
        json_t *body = NULL, *pj = NULL;
        json_error_t jerr;
        int r;

        r = store_net_get(c->app->store, id, &n);
        if (r == -ENOENT) {
                reply_error(c, 409, "conflict",
                            "this sandbox has network \"none\" (no uplink): create it with "
                            "network \"egress\"");
                return;
        }
        if (r < 0) {
                reply_errno(c, r, "network");
                return;
        }
        body = parse_body(c, true);
        if (!body)
                goto out;
        cur = malloc(sizeof(*cur));
        pj = json_loads(n.policy_json, 0, &jerr);
        if (!cur || !pj || netpolicy_from_json(pj, NULL, cur, err, sizeof(err)) < 0) {
                reply_error(c, 500, "internal", "the stored network policy is unreadable");
                goto out;
        }
        if (netpolicy_from_json(body, cur, cur, err, sizeof(err)) < 0) {
                reply_error(c, 400, "invalid_request", "%s", err);
                goto out;
        }
        struct patch_ctx *p = calloc(1, sizeof(*p));
        if (!p) {
                reply_errno(c, -ENOMEM, "network");
                goto out;
        }
        p->c = c;
        snprintf(p->id, sizeof(p->id), "%s", id);
        r = mgr_net_set(c->app->mgr, id, cur, patch_done, p);
        if (r < 0) {
                free(p);
                if (r == -EBUSY)
                        reply_error(c, 409, "conflict",
                                    "another network change is being applied; try again");
                else if (r == -ESRCH || r == -EOPNOTSUPP)
                        reply_error(c, 409, "conflict", "the sandbox is not running");
                else
                        reply_errno(c, r, "network");
        }
out:
        json_decref(pj);
        json_decref(body);
        free(cur);
        store_net_clear(&n);
}

void network_route(struct reqctx *c, const char *id)
{
        struct store_sandbox rec = {};

        if (c->req->method != HTTP_M_GET && c->req->method != HTTP_M_PATCH) {
                reply_error(c, 405, "method_not_allowed", "method not allowed on %s",
                            c->req->path);
                return;
        }
        if (lookup_sandbox(c, id, &rec) < 0) {
                reply_not_found(c);
                return;
        }
        store_sandbox_clear(&rec);
        if (c->req->method == HTTP_M_GET)
                reply_json(c, 200, network_view(c->app, id));
        else
                handle_patch(c, id);
}
