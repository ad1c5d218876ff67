/* app.h - the daemon's shared state and the per-request context used by route handlers. */
#ifndef WARREN_APP_H
#define WARREN_APP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "store.h"

struct manager;
struct ratelimit;
struct secrets;

struct app {
        uv_loop_t *loop;
        struct config cfg;
        struct store *store;
        struct http_server *http;
        struct manager *mgr;
        int port; /* bound TCP port */
        struct live *live; /* long-lived connections by credential (live.c) */
        struct jobs *jobs; /* background jobs held in memory (jobs.c) */
        size_t n_live;
        struct secrets *secrets;     /* the master key (secrets.c) */
        struct ratelimit *ratelimit; /* request rate per org (quota.c); NULL when off */
        /* HS256 secret for JWTs (identity.c: JWT_SECRET, or DATA_DIR/jwt.key made at first
         * start). */
        uint8_t jwt_key[256];
        size_t jwt_key_len;
};

/* How a request authenticated (identity.c). */
enum cred_kind {
        CRED_NONE = 0, /* public route, no credential */
        CRED_KEY,      /* an API key */
        CRED_JWT,      /* a JWT minted from an API key (key_id is that key's id) */
        CRED_SESSION,  /* a session token (header, ?token= or cookie): one sandbox only */
};

/* Per-request state, owned by the handler from on_headers until the reply. */
struct reqctx {
        struct app *app;
        struct http_req *req;
        char org_id[STORE_ID_MAX];
        /* The credential to revoke to end this request's connection (live_add): the API
         * key's id for keys and JWTs, the session token's id for session tokens. */
        char key_id[STORE_ID_MAX];
        char role[16]; /* "admin" or "member" ("session" for session tokens) */
        bool authed;
        enum cred_kind cred;
        /* Session tokens: the one sandbox the request may reach ("" otherwise). routes.c
         * enforces it centrally before dispatch (identity_authenticate). */
        char sandbox_scope[STORE_ID_MAX];
        /* on_request ran: from then on the handler answers every request, even after the
         * client left (the server drops that answer). Before it, an abort answers here. */
        bool dispatched;
        /* Route-specific state (file upload, exec, download); freed by its owner before the
         * reply, or by the free hook at reply time. */
        void *op;
        void (*op_free)(void *op);
};

/* ---- reply.c: every answer goes through these; they log one line and free the ctx. ---- */

/* Answer with a JSON value (stolen). */
void reply_json(struct reqctx *c, int status, json_t *body);
/* Answer {"error":{"code","message"}}. */
void reply_error(struct reqctx *c, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Answer an error chosen from a negative errno by the one errno -> HTTP status table. */
void reply_errno(struct reqctx *c, int err, const char *what);
/* HTTP status and error code for a negative errno. */
int errno_to_http(int err, const char **ret_code);
/* Log the request line for a reply made outside these helpers (streams); frees the ctx. */
void reply_done(struct reqctx *c, int status);

/* Log a line to stderr with a timestamp ("lifecycle" events and faults). */
void app_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Replace invalid UTF-8 in data with U+FFFD; returns a malloc'd NUL-terminated string. */
char *utf8_sanitize(const uint8_t *data, size_t len, size_t *ret_len);

/* Length of the longest prefix of data that is valid UTF-8. *ret_tail is set when the rest
 * is only the incomplete start of one valid sequence (more bytes may complete it). */
size_t utf8_valid_prefix(const uint8_t *data, size_t len, bool *ret_tail);

/* ---- routes.c ---- */
enum http_body_mode routes_on_headers(struct http_req *req, void *ud);
void routes_on_request(struct http_req *req, void *ud);

#endif
