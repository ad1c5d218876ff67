/* identity.c - authentication of every request, and the identity routes (identity.h):
 *   POST   /api/v1/register                         registration (REGISTRATION mode)
 *   POST   /api/v1/auth/token                       API key -> short-lived JWT
 *   GET    /api/v1/orgs                             organisations (operator only)
 *   POST   /api/v1/api-keys, GET /api/v1/api-keys   keys of the caller's org (admins)
 *   DELETE /api/v1/api-keys/:id, POST .../rotate
 *   POST/GET /api/v1/sandbox/:id/session-tokens, GET/DELETE .../session-tokens/:tid
 *   POST   /api/v1/sandbox/:id/magic-links, GET /api/v1/auth/magic?code=CODE (redeem)
 *
 * Revocation is immediate: every request re-verifies its credential against the store, JWTs
 * name their key (checked active at each use), session tokens and magic links join on the
 * key that minted them, and live_revoke_key() ends open connections of a revoked key and of
 * the session tokens it minted.
 */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "live.h"
#include "manager.h"
#include "routes.h"
#include "util.h"

/* Bounds on what one organisation or sandbox may accumulate. */
#define MAX_KEYS_PER_ORG 100
#define MAX_SESSIONS_PER_SANDBOX 100
#define MAX_MAGIC_PER_SANDBOX 20
/* Longest name, description, email accepted (bytes). */
#define NAME_MAX_LEN 100
#define ORG_NAME_MAX_LEN 200
#define DESC_MAX_LEN 255
#define EMAIL_MAX_LEN 254

static const char sandbox_prefix[] = "/api/v1/sandbox/";
/* The redemption route; the code travels in the query (?code=), which the request log never
 * writes, rather than in the path, which it does. */
static const char magic_path[] = "/api/v1/auth/magic";
static const char keys_prefix[] = "/api/v1/api-keys";

/* ---- the JWT secret ---- */

int identity_init(struct app *app, char *err, size_t err_len)
{
        char path[4200], buf[300];
        struct stat stt;
        ssize_t n;

        if (app->cfg.jwt_secret[0]) {
                app->jwt_key_len = strlen(app->cfg.jwt_secret);
                memcpy(app->jwt_key, app->cfg.jwt_secret, app->jwt_key_len);
                return 0;
        }
        snprintf(path, sizeof(path), "%s/jwt.key", app->cfg.data_dir);
        cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT) {
                uint8_t rnd[32];
                char hex[65];
                int r = util_random(rnd, sizeof(rnd));
                if (r < 0) {
                        snprintf(err, err_len, "random: %s", strerror(-r));
                        return r;
                }
                util_hex(rnd, sizeof(rnd), hex);
                explicit_bzero(rnd, sizeof(rnd));
                cleanup_close int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                           O_CLOEXEC,
                                             0600);
                if (wfd < 0 || util_write_all(wfd, hex, 64) < 0 ||
                    util_write_all(wfd, "\n", 1) < 0 || fsync(wfd) < 0) {
                        r = neg_errno();
                        snprintf(err, err_len, "cannot write %s: %s", path, strerror(-r));
                        unlink(path);
                        return r;
                }
                memcpy(app->jwt_key, hex, 64);
                app->jwt_key_len = 64;
                explicit_bzero(hex, sizeof(hex));
                return 0;
        }
        if (fd < 0 || fstat(fd, &stt) < 0) {
                int r = neg_errno();
                snprintf(err, err_len, "cannot open %s: %s", path, strerror(-r));
                return r;
        }
        if (!S_ISREG(stt.st_mode) || stt.st_uid != geteuid()) {
                snprintf(err, err_len, "%s must be a regular file owned by this user", path);
                return -EPERM;
        }
        /* It signs every JWT: nobody else may read it. */
        if ((stt.st_mode & 077) && fchmod(fd, stt.st_mode & 0600) < 0) {
                int r = neg_errno();
                snprintf(err, err_len, "cannot tighten the mode of %s: %s", path, strerror(-r));
                return r;
        }
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0) {
                int r = neg_errno();
                snprintf(err, err_len, "cannot read %s: %s", path, strerror(-r));
                return r;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
        if (n < JWT_KEY_MIN || (size_t)n > sizeof(app->jwt_key)) {
                snprintf(err, err_len, "%s must hold 32-256 bytes", path);
                explicit_bzero(buf, sizeof(buf));
                return -EINVAL;
        }
        memcpy(app->jwt_key, buf, (size_t)n);
        app->jwt_key_len = (size_t)n;
        explicit_bzero(buf, sizeof(buf));
        return 0;
}

/* ---- authentication ---- */

/* "/api/v1/sandbox/ID[/rest]" -> id, rest ("" or "/..."). "/api/v1/sandbox/create" is not a
 * sandbox path. */
static bool sandbox_path(const char *path, char *id, size_t idlen, const char **ret_rest)
{
        const size_t pl = sizeof(sandbox_prefix) - 1;
        if (strncmp(path, sandbox_prefix, pl) != 0 || strcmp(path, "/api/v1/sandbox/create") == 0)
                return false;
        const char *p = path + pl;
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= idlen)
                return false;
        memcpy(id, p, n);
        id[n] = '\0';
        *ret_rest = slash ? slash : "";
        return true;
}

/* Whether rest ("/session-tokens/x") starts with the segment seg ("/session-tokens"). */
static bool rest_is(const char *rest, const char *seg)
{
        size_t n = strlen(seg);
        return strncmp(rest, seg, n) == 0 && (rest[n] == '\0' || rest[n] == '/');
}

/* A WebSocket upgrade: the only requests that may carry ?token= (browsers cannot set
 * headers on them). */
static bool is_ws_upgrade(const struct http_req *req)
{
        const char *up = http_req_header(req, "upgrade");
        return req->method == HTTP_M_GET && up && strcasestr(up, "websocket");
}

/* Routes that work without a credential (their handlers decide). */
static bool is_public(const char *path)
{
        return strcmp(path, "/api/v1/register") == 0;
}

/* Cookie authentication is ambient (the browser attaches it to any request): refuse it on a
 * request whose Origin is another site (CSRF), on top of SameSite=Strict. */
static bool origin_ok(const struct http_req *req)
{
        const char *origin = http_req_header(req, "origin");
        const char *host = http_req_header(req, "host");
        if (!origin)
                return true;
        if (!host)
                return false;
        const char *o = origin;
        if (strncmp(o, "http://", 7) == 0)
                o += 7;
        else if (strncmp(o, "https://", 8) == 0)
                o += 8;
        else
                return false;
        return strcasecmp(o, host) == 0;
}

/* The session-token confinement (identity.h). Answers and returns -EACCES when refused. */
static int scope_check(struct reqctx *c)
{
        char id[STORE_ID_MAX];
        const char *rest;
        int m = c->req->method;

        if (!sandbox_path(c->req->path, id, sizeof(id), &rest)) {
                reply_error(c, 403, "forbidden",
                            "a session token only grants access to its own sandbox");
                return -EACCES;
        }
        if (strcmp(id, c->sandbox_scope) != 0) {
                /* Exactly what a missing sandbox answers. */
                reply_not_found(c);
                return -EACCES;
        }
        if (rest_is(rest, "/session-tokens") || rest_is(rest, "/magic-links")) {
                reply_error(c, 403, "forbidden",
                            "a session token cannot manage session tokens or magic links");
                return -EACCES;
        }
        if (((!*rest || strcmp(rest, "/") == 0) && m == HTTP_M_DELETE) ||
            strcmp(rest, "/stop") == 0) {
                reply_error(c, 403, "forbidden",
                            "a session token cannot stop or delete its sandbox");
                return -EACCES;
        }
        /* The egress policy is the owner's control over the sandbox, not its user's. */
        if (strcmp(rest, "/network") == 0 && m != HTTP_M_GET) {
                reply_error(c, 403, "forbidden",
                            "a session token cannot change its sandbox's network policy");
                return -EACCES;
        }
        return 0;
}

int identity_authenticate(struct reqctx *c)
{
        struct http_req *req = c->req;
        struct app *app = c->app;
        struct auth_cred cred;
        struct auth_identity id;
        cleanup_free char *qtok = NULL;
        bool from_cookie = false;
        int r;

        /* The link itself is the credential. */
        if (strcmp(req->path, magic_path) == 0)
                return 0;
        r = auth_parse_header(http_req_header(req, "authorization"), &cred);
        if (r == -ENOENT && is_ws_upgrade(req)) {
                int q = http_req_query(req, "token", &qtok);
                if (q == 0)
                        r = auth_parse_token(qtok, strlen(qtok), &cred);
                else if (q != -ENOENT)
                        r = -EACCES;
        }
        if (r == -ENOENT) {
                const char *v;
                size_t n;
                if (auth_cookie_find(http_req_header(req, "cookie"), AUTH_COOKIE_NAME, &v, &n) ==
                    0) {
                        from_cookie = true;
                        r = auth_parse_token(v, n, &cred);
                        /* The cookie only ever carries a session token. */
                        if (r == 0 && cred.kind != CRED_SESSION)
                                r = -EACCES;
                }
        }
        if (r == -ENOENT && is_public(req->path))
                return 0;
        if (r == -ENOENT) {
                reply_error(c, 401, "unauthorized",
                            "a credential is required (Authorization: ApiKey KEY, or Bearer "
                            "KEY, JWT or session token)");
                return -EACCES;
        }
        if (r == 0)
                r = auth_verify(app->store, app->jwt_key, app->jwt_key_len, util_wall_s(), &cred,
                                &id);
        if (r == -EKEYEXPIRED) {
                reply_error(c, 401, "unauthorized", "the token has expired");
                return -EACCES;
        }
        if (r == -EACCES) {
                reply_error(c, 401, "unauthorized", "invalid or revoked credential");
                return -EACCES;
        }
        if (r < 0) {
                reply_errno(c, r, "authentication");
                return -EACCES;
        }
        if (from_cookie && !origin_ok(req)) {
                reply_error(c, 403, "forbidden",
                            "cookie authentication refused for a cross-origin request");
                return -EACCES;
        }
        c->authed = true;
        c->cred = id.kind;
        snprintf(c->org_id, sizeof(c->org_id), "%s", id.org_id);
        snprintf(c->key_id, sizeof(c->key_id), "%s", id.key_id);
        snprintf(c->role, sizeof(c->role), "%s", id.role);
        snprintf(c->sandbox_scope, sizeof(c->sandbox_scope), "%s", id.sandbox_id);
        if (c->cred == CRED_SESSION)
                return scope_check(c);
        return 0;
}

/* ---- helpers ---- */

static void method_not_allowed(struct reqctx *c)
{
        reply_error(c, 405, "method_not_allowed", "method not allowed on %s", c->req->path);
}

/* An admin key (or a JWT minted from one) of the caller's organisation; answers 403. */
static bool require_admin(struct reqctx *c)
{
        if (c->cred == CRED_SESSION || strcmp(c->role, "admin") != 0) {
                reply_error(c, 403, "forbidden", "an admin key is required");
                return false;
        }
        return true;
}

/* An admin key of the operator's organisation; answers 403. */
static bool require_operator(struct reqctx *c)
{
        struct store_org o;
        if (!require_admin(c))
                return false;
        int r = store_org_get(c->app->store, c->org_id, &o);
        if (r < 0 || !o.system) {
                reply_error(c, 403, "forbidden",
                            "an admin key of the operator's organisation is required");
                return false;
        }
        return true;
}

/* Text a person typed: 1..max bytes, no control characters (jansson already checked UTF-8
 * and refuses NUL). */
static bool valid_text(const char *s, size_t max)
{
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* A plausible email address: local@domain, printable ASCII, no blanks or specials, domain
 * labels of letters, digits and hyphens. Not RFC 5322 (no quoted local parts). */
static bool valid_email(const char *s)
{
        const char *at = strchr(s, '@');
        size_t n = strlen(s);
        if (n < 3 || n > EMAIL_MAX_LEN || !at || at == s || strchr(at + 1, '@') ||
            at - s > 64 || !at[1])
                return false;
        for (const char *p = s; p < at; p++)
                if (*p <= ' ' || *p > '~' || strchr("\"(),:;<>[\\]", *p))
                        return false;
        const char *d = at + 1;
        if (*d == '.' || s[n - 1] == '.')
                return false;
        for (const char *p = d; *p; p++) {
                if (*p == '.' && p[1] == '.')
                        return false;
                if (!(*p == '.' || *p == '-' || (*p >= '0' && *p <= '9') ||
                      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                        return false;
        }
        return true;
}

/* A required string field that passes check; answers 400 otherwise. */
static int req_text(struct reqctx *c, json_t *body, const char *name, size_t max,
                    const char **ret)
{
        const char *v = NULL;
        if (field_str(c, body, name, &v) < 0)
                return -EINVAL;
        if (!v || !valid_text(v, max)) {
                reply_error(c, 400, "invalid_request",
                            "%s: expected a non-empty string of at most %zu bytes without "
                            "control characters",
                            name, max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* An optional integer field within [lo, hi]; *ret keeps its default when absent. */
static int opt_int(struct reqctx *c, json_t *body, const char *name, int64_t lo, int64_t hi,
                   int64_t *ret)
{
        json_t *v = json_object_get(body, name);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
                reply_error(c, 400, "invalid_request",
                            "%s: expected an integer between %lld and %lld", name, (long long)lo,
                            (long long)hi);
                return -EINVAL;
        }
        *ret = json_integer_value(v);
        return 0;
}

/* The public view of a key (never its secret or hash). */
static json_t *key_to_json(const struct store_key *k)
{
        return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", k->id, "name", k->name, "prefix",
                         k->prefix, "role", k->role, "created_at", json_time(k->created_at));
}

/* A new key of organisation org_id: id, secret (into key_out), hashed into a row. */
static int key_new(const char *org_id, const char *name, const char *role, struct store_key *k,
                   char *key_out, size_t key_len, uint8_t hash[32])
{
        int r = auth_key_generate(key_out, key_len);
        if (r == 0)
                r = auth_make_id("key_", k->id, sizeof(k->id));
        if (r < 0)
                return r;
        snprintf(k->org_id, sizeof(k->org_id), "%s", org_id);
        snprintf(k->name, sizeof(k->name), "%s", name);
        snprintf(k->prefix, sizeof(k->prefix), "%.10s", key_out);
        snprintf(k->role, sizeof(k->role), "%s", role);
        k->created_at = util_wall_s();
        k->revoked_at = 0;
        auth_key_hash(key_out, hash);
        return 0;
}

/* The answer to create and rotate: the key's view plus its secret, shown this once. */
static json_t *key_created_json(const struct store_key *k, const char *secret)
{
        json_t *o = key_to_json(k);
        if (o)
                json_object_set_new(o, "key", json_string(secret));
        return o;
}

/* ---- registration ---- */

static void handle_register(struct reqctx *c)
{
        const char *mode = c->app->cfg.registration;
        const char *first, *last, *org_name, *email;
        struct store_user u = {};
        struct store_key k = {};
        char org_id[STORE_ID_MAX], key[64];
        uint8_t hash[32];
        json_t *body;
        int r;

        if (strcmp(mode, "closed") == 0) {
                reply_error(c, 403, "registration_closed",
                            "registration is closed on this server (REGISTRATION=closed)");
                return;
        }
        if (strcmp(mode, "admin-only") == 0) {
                if (!c->authed) {
                        reply_error(c, 401, "unauthorized",
                                    "registration needs an admin key of the operator's "
                                    "organisation on this server (REGISTRATION=admin-only)");
                        return;
                }
                if (!require_operator(c))
                        return;
        }
        body = parse_body(c, true);
        if (!body)
                return;
        if (req_text(c, body, "first_name", NAME_MAX_LEN, &first) < 0 ||
            req_text(c, body, "last_name", NAME_MAX_LEN, &last) < 0 ||
            req_text(c, body, "organization_name", ORG_NAME_MAX_LEN, &org_name) < 0 ||
            req_text(c, body, "email", EMAIL_MAX_LEN, &email) < 0)
                goto out;
        if (!valid_email(email)) {
                reply_error(c, 400, "invalid_request", "email: not a valid address");
                goto out;
        }
        if ((r = auth_make_id("org_", org_id, sizeof(org_id))) < 0 ||
            (r = auth_make_id("user_", u.id, sizeof(u.id))) < 0) {
                reply_errno(c, r, "register");
                goto out;
        }
        r = key_new(org_id, "default", "admin", &k, key, sizeof(key), hash);
        if (r < 0) {
                reply_errno(c, r, "register");
                goto out;
        }
        snprintf(u.org_id, sizeof(u.org_id), "%s", org_id);
        snprintf(u.email, sizeof(u.email), "%s", email);
        snprintf(u.first_name, sizeof(u.first_name), "%s", first);
        snprintf(u.last_name, sizeof(u.last_name), "%s", last);
        snprintf(u.role, sizeof(u.role), "%s", "admin");
        u.created_at = k.created_at;

        /* The organisation, its first user and its first key exist together or not at all. */
        r = store_tx_begin(c->app->store);
        if (r == 0)
                r = store_org_create(c->app->store, org_id, org_name);
        if (r == 0)
                r = store_user_insert(c->app->store, &u);
        if (r == 0)
                r = store_key_insert(c->app->store, &k, hash);
        if (r == 0)
                r = store_tx_commit(c->app->store);
        if (r < 0) {
                store_tx_rollback(c->app->store);
                explicit_bzero(key, sizeof(key));
                if (r == -EEXIST)
                        reply_error(c, 409, "already_exists",
                                    "email: a user with this address is already registered");
                else
                        reply_errno(c, r, "register");
                goto out;
        }
        app_log("identity: registered organisation %s (user %s)", org_id, u.id);
        reply_json(c, 201,
                   json_pack("{s:b, s:{s:s, s:s}, s:{s:s, s:s}, s:s, s:s}", "success", 1, "user",
                             "id", u.id, "email", u.email, "organization", "id", org_id, "name",
                             org_name, "api_key", key, "message",
                             "Registration successful. Store your API key securely."));
        explicit_bzero(key, sizeof(key));
out:
        json_decref(body);
}

/* ---- API keys ---- */

/* End everything a revoked key authenticated: open connections of the key and of the session
 * tokens it minted (their rows stay, refused by the join on the key). */
static int revoke_session_conn(const struct store_session *t, void *ud)
{
        live_revoke_key(ud, t->id);
        return 0;
}

static void revoke_connections(struct app *app, const char *key_id)
{
        store_session_each_by_key(app->store, key_id, revoke_session_conn, app);
        live_revoke_key(app, key_id);
}

static void handle_key_create(struct reqctx *c)
{
        const char *name = "key", *role = "member";
        struct store_key k = {};
        char key[64];
        uint8_t hash[32];
        int64_t n = 0;
        int r;

        json_t *body = parse_body(c, false);
        if (!body)
                return;
        if (field_str(c, body, "name", &name) < 0 || field_str(c, body, "role", &role) < 0)
                goto out;
        if (!valid_text(name, NAME_MAX_LEN)) {
                reply_error(c, 400, "invalid_request",
                            "name: expected 1-%d bytes without control characters",
                            NAME_MAX_LEN);
                goto out;
        }
        if (strcmp(role, "admin") != 0 && strcmp(role, "member") != 0) {
                reply_error(c, 400, "invalid_request", "role: expected \"admin\" or \"member\"");
                goto out;
        }
        r = store_key_count_active(c->app->store, c->org_id, NULL, &n);
        if (r == 0 && n >= MAX_KEYS_PER_ORG) {
                reply_error(c, 429, "quota_exceeded",
                            "this organisation already has %d active API keys", MAX_KEYS_PER_ORG);
                goto out;
        }
        if (r == 0)
                r = key_new(c->org_id, name, role, &k, key, sizeof(key), hash);
        if (r == 0)
                r = store_key_insert(c->app->store, &k, hash);
        if (r < 0) {
                reply_errno(c, r, "create api key");
                goto out;
        }
        reply_json(c, 201, key_created_json(&k, key));
out:
        explicit_bzero(key, sizeof(key));
        json_decref(body);
}

static int key_list_cb(const struct store_key *k, void *ud)
{
        return json_array_append_new(ud, key_to_json(k)) == 0 ? 0 : -ENOMEM;
}

static void handle_key_list(struct reqctx *c)
{
        json_t *arr = json_array();
        int r = arr ? store_key_each(c->app->store, c->org_id, key_list_cb, arr) : -ENOMEM;
        if (r < 0) {
                json_decref(arr);
                reply_errno(c, r, "list api keys");
                return;
        }
        reply_json(c, 200, json_pack("{s:o}", "api_keys", arr));
}

/* An active key of the caller's organisation by id; answers 404 otherwise (another
 * organisation's key looks exactly like a missing one). */
static int own_key(struct reqctx *c, const char *id, struct store_key *ret)
{
        struct store_key k;
        int r = store_key_get(c->app->store, id, &k);
        if (r == 0 && (k.revoked_at || strcmp(k.org_id, c->org_id) != 0))
                r = -ENOENT;
        if (r == -ENOENT)
                reply_error(c, 404, "not_found", "api key not found");
        else if (r < 0)
                reply_errno(c, r, "api key");
        if (r == 0)
                *ret = k;
        return r;
}

static void handle_key_revoke(struct reqctx *c, const char *id)
{
        struct store_key k;
        int64_t admins = 0;
        int r;

        if (own_key(c, id, &k) < 0)
                return;
        /* An organisation must keep a way to manage itself. */
        if (strcmp(k.role, "admin") == 0) {
                r = store_key_count_active(c->app->store, c->org_id, "admin", &admins);
                if (r < 0) {
                        reply_errno(c, r, "revoke api key");
                        return;
                }
                if (admins <= 1) {
                        reply_error(c, 409, "conflict",
                                    "this is the organisation's last admin key: create another "
                                    "admin key first, or rotate this one");
                        return;
                }
        }
        r = store_key_revoke(c->app->store, c->org_id, k.id, util_wall_s());
        if (r < 0) {
                reply_errno(c, r, "revoke api key");
                return;
        }
        revoke_connections(c->app, k.id);
        reply_json(c, 200, json_pack("{s:s, s:b}", "id", k.id, "revoked", 1));
}

static void handle_key_rotate(struct reqctx *c, const char *id)
{
        struct store_key old, k = {};
        char key[64];
        uint8_t hash[32];
        struct store *st = c->app->store;
        int r;

        if (own_key(c, id, &old) < 0)
                return;
        r = key_new(c->org_id, old.name, old.role, &k, key, sizeof(key), hash);
        /* The old key's revocation and the new key's creation happen together: never both
         * valid, never neither. */
        if (r == 0)
                r = store_tx_begin(st);
        if (r == 0) {
                r = store_key_revoke(st, c->org_id, old.id, util_wall_s());
                if (r == 0)
                        r = store_key_insert(st, &k, hash);
                if (r == 0)
                        r = store_tx_commit(st);
                if (r < 0)
                        store_tx_rollback(st);
        }
        if (r < 0) {
                explicit_bzero(key, sizeof(key));
                reply_errno(c, r, "rotate api key");
                return;
        }
        revoke_connections(c->app, old.id);
        json_t *o = key_created_json(&k, key);
        explicit_bzero(key, sizeof(key));
        if (o)
                json_object_set_new(o, "replaces", json_string(old.id));
        reply_json(c, 200, o);
}

/* ---- JWT exchange ---- */

static void handle_token(struct reqctx *c)
{
        struct store_key k;
        int64_t ttl = c->app->cfg.jwt_ttl_s, now = util_wall_s();
        char *tok = NULL;
        int r;

        if (c->cred != CRED_KEY) {
                reply_error(c, 403, "forbidden", "only an API key can be exchanged for a token");
                return;
        }
        json_t *body = parse_body(c, false);
        if (!body)
                return;
        if (opt_int(c, body, "expires_in", 60, c->app->cfg.jwt_ttl_s, &ttl) < 0)
                goto out;
        r = store_key_get(c->app->store, c->key_id, &k);
        if (r == 0)
                r = auth_jwt_issue(c->app->jwt_key, c->app->jwt_key_len, &k, now, ttl, &tok);
        if (r < 0) {
                reply_errno(c, r, "token");
                goto out;
        }
        reply_json(c, 200,
                   json_pack("{s:s, s:s, s:o, s:I}", "token", tok, "token_type", "Bearer",
                             "expires_at", json_time(now + ttl), "expires_in", (json_int_t)ttl));
        explicit_bzero(tok, strlen(tok));
        free(tok);
out:
        json_decref(body);
}

/* ---- organisations (operator) ---- */

static int org_list_cb(const struct store_org *o, void *ud)
{
        if (strcmp(o->id, MGR_POOL_ORG) == 0)
                return 0; /* internal: the warm pool's holder */
        return json_array_append_new(ud, json_pack("{s:s, s:s, s:o, s:b}", "id", o->id, "name",
                                                   o->name, "created_at",
                                                   json_time(o->created_at), "system",
                                                   o->system)) == 0
                       ? 0
                       : -ENOMEM;
}

static void handle_orgs(struct reqctx *c)
{
        if (!require_operator(c))
                return;
        json_t *arr = json_array();
        int r = arr ? store_org_each(c->app->store, org_list_cb, arr) : -ENOMEM;
        if (r < 0) {
                json_decref(arr);
                reply_errno(c, r, "list organisations");
                return;
        }
        reply_json(c, 200, json_pack("{s:o}", "orgs", arr));
}

/* ---- session tokens ---- */

static json_t *session_to_json(const struct store_session *t)
{
        json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", t->id, "sandbox_id",
                              t->sandbox_id, "description", t->description, "created_at",
                              json_time(t->created_at), "expires_at", json_time(t->expires_at));
        if (o && t->last_used_at)
                json_object_set_new(o, "last_used_at", json_time(t->last_used_at));
        return o;
}

/* Mint a session token for a sandbox, by key key_id. The secret goes to tok_out (>= 64). */
static int session_new(struct app *app, const char *org_id, const char *sandbox_id,
                       const char *key_id, const char *desc, int64_t ttl,
                       struct store_session *ret, char *tok_out, size_t tok_len)
{
        struct store_session t = {};
        uint8_t hash[32];
        int64_t now = util_wall_s(), n = 0;
        int r;

        /* Expired tokens of this sandbox are dropped here; the rest are bounded. */
        r = store_session_purge_expired(app->store, sandbox_id, now);
        if (r == 0)
                r = store_session_count(app->store, sandbox_id, now, &n);
        if (r == 0 && n >= MAX_SESSIONS_PER_SANDBOX)
                return -EUSERS;
        if (r == 0)
                r = auth_secret_generate(AUTH_SESSION_PREFIX, tok_out, tok_len);
        if (r == 0)
                r = auth_make_id("tok_", t.id, sizeof(t.id));
        if (r < 0)
                return r;
        snprintf(t.org_id, sizeof(t.org_id), "%s", org_id);
        snprintf(t.sandbox_id, sizeof(t.sandbox_id), "%s", sandbox_id);
        snprintf(t.key_id, sizeof(t.key_id), "%s", key_id);
        snprintf(t.description, sizeof(t.description), "%s", desc);
        t.created_at = now;
        t.expires_at = now + ttl;
        auth_key_hash(tok_out, hash);
        r = store_session_insert(app->store, &t, hash);
        if (r < 0)
                return r;
        *ret = t;
        return 0;
}

static void handle_session_create(struct reqctx *c, const char *sid)
{
        const char *desc = "";
        int64_t ttl = IDENTITY_SESSION_TTL_DEFAULT;
        struct store_session t;
        char tok[64];
        int r;

        json_t *body = parse_body(c, false);
        if (!body)
                return;
        if (field_str(c, body, "description", &desc) < 0 ||
            opt_int(c, body, "expires_in", 1, IDENTITY_SESSION_TTL_MAX, &ttl) < 0)
                goto out;
        if (*desc && !valid_text(desc, DESC_MAX_LEN)) {
                reply_error(c, 400, "invalid_request",
                            "description: at most %d bytes without control characters",
                            DESC_MAX_LEN);
                goto out;
        }
        r = session_new(c->app, c->org_id, sid, c->key_id, desc, ttl, &t, tok, sizeof(tok));
        if (r == -EUSERS) {
                reply_error(c, 429, "quota_exceeded",
                            "this sandbox already has %d unexpired session tokens",
                            MAX_SESSIONS_PER_SANDBOX);
                goto out;
        }
        if (r < 0) {
                reply_errno(c, r, "create session token");
                goto out;
        }
        json_t *o = session_to_json(&t);
        if (o)
                json_object_set_new(o, "token", json_string(tok));
        reply_json(c, 201, o);
out:
        explicit_bzero(tok, sizeof(tok));
        json_decref(body);
}

static int session_list_cb(const struct store_session *t, void *ud)
{
        return json_array_append_new(ud, session_to_json(t)) == 0 ? 0 : -ENOMEM;
}

static void handle_session_list(struct reqctx *c, const char *sid)
{
        json_t *arr = json_array();
        int r = arr ? store_session_each(c->app->store, sid, session_list_cb, arr) : -ENOMEM;
        if (r < 0) {
                json_decref(arr);
                reply_errno(c, r, "list session tokens");
                return;
        }
        reply_json(c, 200, json_pack("{s:o}", "session_tokens", arr));
}

static void handle_session_one(struct reqctx *c, const char *sid, const char *tid)
{
        struct store_session t;
        int m = c->req->method;
        int r;

        if (m != HTTP_M_GET && m != HTTP_M_DELETE)
                return method_not_allowed(c);
        r = strlen(tid) < STORE_ID_MAX ? store_session_get(c->app->store, sid, tid, &t) : -ENOENT;
        if (r == -ENOENT) {
                reply_error(c, 404, "not_found", "session token not found");
                return;
        }
        if (r < 0) {
                reply_errno(c, r, "session token");
                return;
        }
        if (m == HTTP_M_GET) {
                reply_json(c, 200, session_to_json(&t));
                return;
        }
        r = store_session_delete(c->app->store, sid, t.id);
        if (r < 0) {
                reply_errno(c, r, "revoke session token");
                return;
        }
        live_revoke_key(c->app, t.id);
        reply_json(c, 200, json_pack("{s:s, s:b}", "id", t.id, "deleted", 1));
}

/* ---- magic links ---- */

/* A redirect target that stays on this server: a path ("/x"), not "//host" or "/\host"
 * (browsers read both as another host), printable ASCII only (no header splitting). */
static bool redirect_ok(const char *u)
{
        size_t n = strlen(u);
        if (n == 0 || n > STORE_URL_MAX || u[0] != '/' || u[1] == '/' || u[1] == '\\')
                return false;
        for (const unsigned char *p = (const unsigned char *)u; *p; p++)
                if (*p <= ' ' || *p > '~' || *p == '\\')
                        return false;
        return true;
}

/* The Host header if it is a plain host[:port] (it is echoed into a URL), else NULL. */
static const char *safe_host(const struct http_req *req)
{
        const char *h = http_req_header(req, "host");
        if (!h || !*h || strlen(h) > 255)
                return NULL;
        for (const char *p = h; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || strchr(".-:[]", *p)))
                        return NULL;
        return h;
}

/* Whether a TLS-terminating proxy in front says the client used https. */
static bool via_https(const struct http_req *req)
{
        const char *p = http_req_header(req, "x-forwarded-proto");
        return p && strcasecmp(p, "https") == 0;
}

static void handle_magic_create(struct reqctx *c, const char *sid)
{
        char redirect[STORE_URL_MAX + 1], code[64], url[STORE_URL_MAX + 512], host[300];
        const char *want = NULL;
        struct store_magic m = {};
        uint8_t hash[32];
        int64_t now = util_wall_s(), n = 0;
        int r;

        json_t *body = parse_body(c, false);
        if (!body)
                return;
        if (field_str(c, body, "redirect_url", &want) < 0)
                goto out;
        if (want && !redirect_ok(want)) {
                reply_error(c, 400, "invalid_request",
                            "redirect_url: expected a path on this server (\"/...\"), not a URL "
                            "with a scheme or host");
                goto out;
        }
        snprintf(redirect, sizeof(redirect), "%s", want ? want : "");
        if (!want)
                snprintf(redirect, sizeof(redirect), "%s%s", sandbox_prefix, sid);
        r = store_magic_purge(c->app->store, now);
        if (r == 0)
                r = store_magic_count(c->app->store, sid, now, &n);
        if (r == 0 && n >= MAX_MAGIC_PER_SANDBOX) {
                reply_error(c, 429, "quota_exceeded",
                            "this sandbox already has %d unused magic links",
                            MAX_MAGIC_PER_SANDBOX);
                goto out;
        }
        if (r == 0)
                r = auth_secret_generate(AUTH_MAGIC_PREFIX, code, sizeof(code));
        if (r == 0)
                r = auth_make_id("ml_", m.id, sizeof(m.id));
        if (r < 0) {
                reply_errno(c, r, "create magic link");
                goto out;
        }
        snprintf(m.org_id, sizeof(m.org_id), "%s", c->org_id);
        snprintf(m.sandbox_id, sizeof(m.sandbox_id), "%s", sid);
        snprintf(m.key_id, sizeof(m.key_id), "%s", c->key_id);
        snprintf(m.redirect_url, sizeof(m.redirect_url), "%s", redirect);
        m.created_at = now;
        m.expires_at = now + IDENTITY_MAGIC_TTL;
        auth_key_hash(code, hash);
        r = store_magic_insert(c->app->store, &m, hash);
        if (r < 0) {
                reply_errno(c, r, "create magic link");
                goto out;
        }
        const char *h = safe_host(c->req);
        if (!h) {
                snprintf(host, sizeof(host), "127.0.0.1:%d", c->app->port);
                h = host;
        }
        snprintf(url, sizeof(url), "%s://%s%s?code=%s", via_https(c->req) ? "https" : "http",
                 h, magic_path, code);
        reply_json(c, 201, json_pack("{s:s, s:o, s:s}", "url", url, "expires_at",
                                     json_time(m.expires_at), "redirect_url", redirect));
out:
        explicit_bzero(code, sizeof(code));
        json_decref(body);
}

/* GET /api/v1/auth/magic?code=CODE: redeem once, set the session cookie, redirect. */
static void handle_magic_redeem(struct reqctx *c)
{
        cleanup_free char *code = NULL;
        struct auth_cred cred;
        struct store_magic m;
        struct store_sandbox sb = {};
        struct store_session t;
        uint8_t hash[32];
        char tok[64], cookie[512];
        int r;

        if (c->req->method != HTTP_M_GET)
                return method_not_allowed(c);
        r = http_req_query(c->req, "code", &code) == 0 ? 0 : -EACCES;
        if (r == 0)
                r = auth_parse_token(code, strlen(code), &cred);
        if (r == 0 && (strncmp(code, AUTH_MAGIC_PREFIX, 4) != 0 || cred.len > AUTH_KEY_MAX))
                r = -EACCES;
        if (r == 0) {
                auth_key_hash(code, hash);
                r = store_magic_consume(c->app->store, hash, util_wall_s(), &m);
        }
        /* The sandbox must still be its organisation's and not on its way out. */
        if (r == 0 && (r = store_sandbox_get(c->app->store, m.sandbox_id, &sb)) == 0) {
                if (strcmp(sb.org_id, m.org_id) != 0 || strcmp(sb.status, "deleting") == 0)
                        r = -ENOENT;
                store_sandbox_clear(&sb);
        }
        if (r == -ENOENT || r == -EACCES) {
                reply_error(c, 401, "unauthorized",
                            "this magic link is invalid, expired or already used");
                return;
        }
        if (r == 0)
                r = session_new(c->app, m.org_id, m.sandbox_id, m.key_id, "magic link",
                                IDENTITY_SESSION_TTL_DEFAULT, &t, tok, sizeof(tok));
        if (r == -EUSERS) {
                reply_error(c, 429, "quota_exceeded",
                            "this sandbox already has %d unexpired session tokens",
                            MAX_SESSIONS_PER_SANDBOX);
                return;
        }
        if (r < 0) {
                reply_errno(c, r, "magic link");
                return;
        }
        snprintf(c->org_id, sizeof(c->org_id), "%s", m.org_id);
        /* HttpOnly: page scripts cannot read it. SameSite=Strict: other sites cannot make
         * the browser send it. Path: only this sandbox's routes receive it. Secure only
         * behind a TLS proxy that says so: on plain HTTP a Secure cookie would never be
         * sent back. */
        snprintf(cookie, sizeof(cookie),
                 "%s=%s; Path=%s%s; Max-Age=%d; HttpOnly; SameSite=Strict%s", AUTH_COOKIE_NAME,
                 tok, sandbox_prefix, m.sandbox_id, IDENTITY_SESSION_TTL_DEFAULT,
                 via_https(c->req) ? "; Secure" : "");
        explicit_bzero(tok, sizeof(tok));
        if (http_req_add_header(c->req, "Set-Cookie", cookie) < 0 ||
            http_req_add_header(c->req, "Location", m.redirect_url) < 0 ||
            http_req_add_header(c->req, "Cache-Control", "no-store") < 0 ||
            http_req_add_header(c->req, "Referrer-Policy", "no-referrer") < 0) {
                explicit_bzero(cookie, sizeof(cookie));
                reply_errno(c, -EINVAL, "magic link headers");
                return;
        }
        explicit_bzero(cookie, sizeof(cookie));
        reply_json(c, 302, json_pack("{s:s, s:s}", "redirect_url", m.redirect_url,
                                     "sandbox_id", m.sandbox_id));
}

/* ---- dispatch ---- */

/* Routes under /api/v1/sandbox/:id (session tokens and magic links). */
static bool sandbox_route(struct reqctx *c, const char *path)
{
        char sid[STORE_ID_MAX];
        const char *rest;
        int m = c->req->method;
        struct store_sandbox rec = {};

        if (!sandbox_path(path, sid, sizeof(sid), &rest) ||
            !(rest_is(rest, "/session-tokens") || rest_is(rest, "/magic-links")))
                return false;
        /* Token management needs a real credential (identity_authenticate already refused
         * session tokens; this holds even if that check moves). */
        if (c->cred == CRED_SESSION) {
                reply_error(c, 403, "forbidden",
                            "a session token cannot manage session tokens or magic links");
                return true;
        }
        if (lookup_sandbox(c, sid, &rec) < 0) {
                reply_not_found(c);
                return true;
        }
        store_sandbox_clear(&rec);
        if (strcmp(rest, "/session-tokens") == 0) {
                if (m == HTTP_M_POST)
                        handle_session_create(c, sid);
                else if (m == HTTP_M_GET)
                        handle_session_list(c, sid);
                else
                        method_not_allowed(c);
                return true;
        }
        if (strncmp(rest, "/session-tokens/", 16) == 0 && rest[16] && !strchr(rest + 16, '/')) {
                handle_session_one(c, sid, rest + 16);
                return true;
        }
        if (strcmp(rest, "/magic-links") == 0) {
                if (m == HTTP_M_POST)
                        handle_magic_create(c, sid);
                else
                        method_not_allowed(c);
                return true;
        }
        reply_error(c, 404, "not_found", "no route for %s", path);
        return true;
}

/* /api/v1/api-keys[/:id[/rotate]]. */
static void keys_route(struct reqctx *c, const char *rest)
{
        char id[STORE_ID_MAX];
        int m = c->req->method;

        if (!require_admin(c))
                return;
        if (!*rest) {
                if (m == HTTP_M_POST)
                        return handle_key_create(c);
                if (m == HTTP_M_GET)
                        return handle_key_list(c);
                return method_not_allowed(c);
        }
        const char *p = rest + 1, *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= sizeof(id)) {
                reply_error(c, 404, "not_found", "api key not found");
                return;
        }
        memcpy(id, p, n);
        id[n] = '\0';
        if (!slash)
                return m == HTTP_M_DELETE ? handle_key_revoke(c, id) : method_not_allowed(c);
        if (strcmp(slash, "/rotate") == 0)
                return m == HTTP_M_POST ? handle_key_rotate(c, id) : method_not_allowed(c);
        reply_error(c, 404, "not_found", "no route for %s", c->req->path);
}

bool identity_route(struct reqctx *c)
{
        const char *path = c->req->path;
        int m = c->req->method;
        const size_t kl = sizeof(keys_prefix) - 1;

        if (strcmp(path, "/api/v1/register") == 0) {
                if (m != HTTP_M_POST)
                        method_not_allowed(c);
                else
                        handle_register(c);
                return true;
        }
        if (strcmp(path, magic_path) == 0) {
                handle_magic_redeem(c);
                return true;
        }
        /* Everything below needs a credential (identity_authenticate let only the routes
         * above through without one). */
        if (!c->authed)
                return false;
        if (strcmp(path, "/api/v1/auth/token") == 0) {
                if (m != HTTP_M_POST)
                        method_not_allowed(c);
                else
                        handle_token(c);
                return true;
        }
        if (strcmp(path, "/api/v1/orgs") == 0) {
                if (m != HTTP_M_GET)
                        method_not_allowed(c);
                else
                        handle_orgs(c);
                return true;
        }
        if (strncmp(path, keys_prefix, kl) == 0 && (path[kl] == '\0' || path[kl] == '/')) {
                keys_route(c, path + kl);
                return true;
        }
        return sandbox_route(c, path);
}
