/* identity.h - who a request is, and the identity routes: registration, API keys, JWT
 * exchange, session tokens, magic links and the operator's organisation list.
 *
 * routes.c calls identity_authenticate() from on_headers for every request but /health, and
 * identity_route() first in on_request. Credentials are parsed and verified in auth.c.
 */
#ifndef WARREN_IDENTITY_H
#define WARREN_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "app.h"

/* Default and longest lifetime of a session token, seconds (ComputeSDK: 7 days). */
#define IDENTITY_SESSION_TTL_DEFAULT (7 * 86400)
#define IDENTITY_SESSION_TTL_MAX (30 * 86400)
/* Lifetime of a magic link, seconds. */
#define IDENTITY_MAGIC_TTL 300

/* Load or make the JWT secret: JWT_SECRET from the config, else DATA_DIR/jwt.key (64 hex
 * characters, mode 0600, created at first start; a looser mode is tightened). Writes a
 * message into err on failure. 0 or -errno. Startup only (blocking file I/O). */
int identity_init(struct app *app, char *err, size_t err_len);

/* Authenticate the request of c from, in order: the Authorization header; ?token= (only on
 * a WebSocket upgrade: GET with "Upgrade: websocket"); the session cookie (session tokens
 * only). Fills c (org_id, key_id, role, cred, sandbox_scope, authed) and returns 0, or
 * answers (401, 403, 404) and returns -EACCES. Public routes (register, magic-link
 * redemption) pass without a credential (c->authed false). A session token is confined here,
 * once for every route: to paths under /api/v1/sandbox/ITS-ID (another sandbox answers 404
 * exactly like a missing one, any other path 403), and never to its tokens, magic links,
 * stop or delete (403). */
int identity_authenticate(struct reqctx *c);

/* Dispatch the identity routes; returns false (nothing answered) for other paths. */
bool identity_route(struct reqctx *c);

#endif
