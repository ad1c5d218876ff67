/* secrets.c - per-organisation secrets: master key, sealing rows, injection into commands'
 * environments, and the /api/v1/secrets routes. See secrets.h. */
#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "routes.h"
#include "util.h"

/* The associated data of a sealed value: this label, NUL, the org id, NUL, the name. Ids
 * and names contain no NUL, so the encoding is unambiguous. The label is versioned so that
 * a later layout can never be confused with this one. */
#define SECRETS_AD_LABEL "warren-secret-v1"
#define SECRETS_AD_MAX (sizeof(SECRETS_AD_LABEL) + STORE_ID_MAX + STORE_SECRET_NAME_MAX)

struct secrets {
        uint8_t key[SECRETBOX_KEY_LEN];
        uint8_t key_id[SECRETBOX_KEY_ID_LEN];
        char key_id_hex[2 * SECRETBOX_KEY_ID_LEN + 1];
        char source[4200]; /* "WARREN_MASTER_KEY" or the key file's path */
};

/* ---- the master key ---- */

int secrets_from_key(const uint8_t key[SECRETBOX_KEY_LEN], struct secrets **ret)
{
        struct secrets *sx = calloc(1, sizeof(*sx));
        int r;

        if (!sx)
                return -ENOMEM;
        memcpy(sx->key, key, SECRETBOX_KEY_LEN);
        r = secretbox_key_id(sx->key, sx->key_id);
        if (r < 0) {
                secrets_free(sx);
                return r;
        }
        util_hex(sx->key_id, sizeof(sx->key_id), sx->key_id_hex);
        snprintf(sx->source, sizeof(sx->source), "a given key");
        *ret = sx;
        return 0;
}

void secrets_free(struct secrets *sx)
{
        if (!sx)
                return;
        secretbox_wipe(sx, sizeof(*sx));
        free(sx);
}

const char *secrets_key_source(const struct secrets *sx)
{
        return sx ? sx->source : "none";
}

const char *secrets_key_id_hex(const struct secrets *sx)
{
        return sx ? sx->key_id_hex : "none";
}

/* Write a new random key to path as hex, 0600, refusing to replace anything there. */
static int key_file_create(const char *path, uint8_t key[SECRETBOX_KEY_LEN])
{
        char hex[2 * SECRETBOX_KEY_LEN + 2];
        int r = secretbox_key_generate(key);

        if (r < 0)
                return r;
        util_hex(key, SECRETBOX_KEY_LEN, hex);
        strcat(hex, "\n");
        cleanup_close int fd =
                open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                r = neg_errno();
        } else {
                r = util_write_all(fd, hex, strlen(hex));
                /* The key must survive a crash right after the first secret is sealed. */
                if (r == 0 && (fchmod(fd, 0600) < 0 || fsync(fd) < 0))
                        r = neg_errno();
                if (r < 0)
                        unlink(path);
        }
        secretbox_wipe(hex, sizeof(hex));
        return r;
}

/* Read the key in path, which must be a regular file of ours that only we can access. */
static int key_file_read(const char *path, uint8_t key[SECRETBOX_KEY_LEN], char *err,
                         size_t errlen)
{
        char buf[256];
        struct stat stt;
        ssize_t n;
        int r;

        cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = neg_errno();
                snprintf(err, errlen, "cannot open %s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &stt) < 0 || !S_ISREG(stt.st_mode)) {
                snprintf(err, errlen, "%s is not a regular file", path);
                return -EINVAL;
        }
        if (stt.st_uid != geteuid() || (stt.st_mode & 077)) {
                snprintf(err, errlen,
                         "%s must be owned by uid %u and not accessible to group or others "
                         "(it is uid %u, mode %04o): chown and chmod 600 it",
                         path, (unsigned)geteuid(), (unsigned)stt.st_uid,
                         (unsigned)(stt.st_mode & 07777));
                return -EPERM;
        }
        do
                n = read(fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                r = neg_errno();
                snprintf(err, errlen, "cannot read %s: %s", path, strerror(-r));
                return r;
        }
        r = secretbox_key_parse(buf, (size_t)n, key);
        secretbox_wipe(buf, sizeof(buf));
        if (r < 0)
                snprintf(err, errlen,
                         "%s does not hold a key (64 hex digits, or base64 of 32 bytes)", path);
        return r;
}

int secrets_open(const char *data_dir, struct secrets **ret, char *err, size_t errlen)
{
        uint8_t key[SECRETBOX_KEY_LEN];
        char path[4200];
        const char *v;
        int r;

        err[0] = '\0';
        v = getenv("WARREN_MASTER_KEY");
        if (v && *v) {
                static const char var[] = "WARREN_MASTER_KEY=";
                char *text = (char *)v;
                size_t len = strlen(text);
                r = secretbox_key_parse(text, len, key);
                /* Drop the variable so that no child inherits it, then overwrite the whole
                 * "NAME=value" string where it lives: for a variable of the initial
                 * environment that is the block /proc/PID/environ shows, which unsetenv()
                 * leaves as it is. getenv() points just past the '=' of that string. */
                unsetenv("WARREN_MASTER_KEY");
                char *entry = text - (sizeof(var) - 1);
                if (memcmp(entry, var, sizeof(var) - 1) == 0)
                        secretbox_wipe(entry, sizeof(var) - 1 + len);
                else
                        secretbox_wipe(text, len);
                if (r < 0) {
                        snprintf(err, errlen, "WARREN_MASTER_KEY must be 64 hex digits or base64 "
                                              "of 32 bytes");
                        return r;
                }
                snprintf(path, sizeof(path), "WARREN_MASTER_KEY");
        } else {
                v = getenv("WARREN_MASTER_KEY_FILE");
                if (v && *v)
                        r = snprintf(path, sizeof(path), "%s", v);
                else
                        r = snprintf(path, sizeof(path), "%s/master.key", data_dir);
                if (r < 0 || (size_t)r >= sizeof(path)) {
                        snprintf(err, errlen, "the master key file's path is too long");
                        return -ENAMETOOLONG;
                }
                r = key_file_create(path, key);
                if (r == -EEXIST) {
                        r = key_file_read(path, key, err, errlen);
                } else if (r < 0) {
                        snprintf(err, errlen, "cannot create %s: %s", path, strerror(-r));
                }
                if (r < 0) {
                        secretbox_wipe(key, sizeof(key));
                        return r;
                }
        }
        struct secrets *sx;
        r = secrets_from_key(key, &sx);
        secretbox_wipe(key, sizeof(key));
        if (r < 0) {
                snprintf(err, errlen, "cannot derive the key id: %s", strerror(-r));
                return r;
        }
        snprintf(sx->source, sizeof(sx->source), "%s", path);
        *ret = sx;
        return 0;
}

void secrets_check_key(struct app *app)
{
        int64_t other = 0;

        if (!app->secrets || store_secret_count_other_key(app->store, app->secrets->key_id,
                                                         &other) < 0 || other == 0)
                return;
        app_log("secrets: %lld stored secret(s) were sealed under another master key than the "
                "one in %s (key id %s): they cannot be decrypted, and commands of sandboxes "
                "that get them fail with secret_unavailable, until the original key is restored",
                (long long)other, app->secrets->source, app->secrets->key_id_hex);
}

/* ---- sealing ---- */

bool secrets_name_valid(const char *name)
{
        size_t n = 0;

        if (!name || !((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') ||
                       name[0] == '_'))
                return false;
        for (const char *p = name; *p; p++, n++) {
                char ch = *p;
                if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || ch == '_'))
                        return false;
        }
        return n <= SECRETS_NAME_MAX;
}

/* The associated data for org_id/name into buf; its length. */
static size_t make_ad(const char *org_id, const char *name, uint8_t *buf)
{
        size_t o = 0, n;

        memcpy(buf, SECRETS_AD_LABEL, sizeof(SECRETS_AD_LABEL)); /* with its NUL */
        o += sizeof(SECRETS_AD_LABEL);
        n = strlen(org_id) + 1;
        memcpy(buf + o, org_id, n);
        o += n;
        n = strlen(name);
        memcpy(buf + o, name, n);
        return o + n;
}

int secrets_put(const struct secrets *sx, struct store *st, const char *org_id, const char *name,
                const char *value, size_t len, bool *ret_created)
{
        struct store_secret sec = {};
        uint8_t ad[SECRETS_AD_MAX];
        int64_t count, bytes;
        int r;

        if (!sx || !org_id || !*org_id || strlen(org_id) >= STORE_ID_MAX ||
            !secrets_name_valid(name) || (len && !value) || len > SECRETS_VALUE_MAX ||
            (len && memchr(value, '\0', len)))
                return -EINVAL;
        r = store_secret_usage(st, org_id, name, &count, &bytes);
        if (r < 0)
                return r;
        if (count >= SECRETS_MAX_PER_ORG)
                return -EDQUOT;
        /* Stored bytes include one tag per row. */
        if ((uint64_t)(bytes - count * SECRETBOX_TAG_LEN) + len > SECRETS_MAX_TOTAL)
                return -E2BIG;
        snprintf(sec.org_id, sizeof(sec.org_id), "%s", org_id);
        snprintf(sec.name, sizeof(sec.name), "%s", name);
        memcpy(sec.key_id, sx->key_id, sizeof(sec.key_id));
        sec.ciphertext_len = len + SECRETBOX_TAG_LEN;
        sec.ciphertext = malloc(sec.ciphertext_len);
        if (!sec.ciphertext)
                return -ENOMEM;
        r = secretbox_seal(sx->key, ad, make_ad(org_id, name, ad), value, len, sec.nonce,
                           sec.ciphertext);
        if (r == 0)
                r = store_secret_put(st, &sec, util_wall_s(), ret_created);
        store_secret_clear(&sec);
        return r;
}

int secrets_get(const struct secrets *sx, struct store *st, const char *org_id, const char *name,
                char **ret_value, size_t *ret_len)
{
        struct store_secret sec = {};
        uint8_t ad[SECRETS_AD_MAX];
        int r;

        if (!org_id || strlen(org_id) >= STORE_ID_MAX || !secrets_name_valid(name) ||
            !ret_value || !ret_len)
                return -EINVAL;
        r = store_secret_get(st, org_id, name, &sec);
        if (r < 0)
                return r;
        if (!sx || secretbox_memcmp(sec.key_id, sx->key_id, sizeof(sec.key_id)) != 0) {
                store_secret_clear(&sec);
                return -EKEYREJECTED;
        }
        size_t len = sec.ciphertext_len - SECRETBOX_TAG_LEN; /* >= 0: checked by the store */
        char *value = malloc(len + 1);
        if (!value) {
                store_secret_clear(&sec);
                return -ENOMEM;
        }
        /* The row's own org_id and name are not trusted: the ones asked for go into the
         * associated data, so a row moved or renamed in the file fails here. */
        r = secretbox_open(sx->key, sec.nonce, ad, make_ad(org_id, name, ad), sec.ciphertext,
                           sec.ciphertext_len, (uint8_t *)value);
        store_secret_clear(&sec);
        if (r < 0) {
                free(value);
                return r;
        }
        value[len] = '\0';
        *ret_value = value;
        *ret_len = len;
        return 0;
}

void secrets_value_free(char *value, size_t len)
{
        if (!value)
                return;
        secretbox_wipe(value, len);
        free(value);
}

/* ---- injection ---- */

static int add_name_cb(const struct store_secret *sec, void *ud)
{
        return json_array_append_new(ud, json_string(sec->name)) == 0 ? 0 : -ENOMEM;
}

int secrets_add_env(struct app *app, const char *org_id, const char *sandbox_id, json_t *env)
{
        cleanup_free char *names_json = NULL;
        json_t *names = NULL, *v;
        size_t i;
        int r;

        if (!app || !org_id || !sandbox_id || !json_is_object(env))
                return -EINVAL;
        r = store_sandbox_secrets_get(app->store, sandbox_id, &names_json);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (names_json) {
                names = json_loads(names_json, 0, NULL);
                if (!json_is_array(names)) {
                        json_decref(names);
                        return -EIO;
                }
        } else {
                names = json_array();
                if (!names)
                        return -ENOMEM;
                r = store_secret_list(app->store, org_id, add_name_cb, names);
                if (r < 0)
                        goto out;
        }
        json_array_foreach(names, i, v)
        {
                const char *name = json_string_value(v);
                char *value;
                size_t len;

                if (!name || json_object_get(env, name))
                        continue;
                r = secrets_get(app->secrets, app->store, org_id, name, &value, &len);
                if (r == -ENOENT)
                        continue; /* deleted since the sandbox was created */
                if (r == -EKEYREJECTED || r == -EBADMSG) {
                        app_log("secrets: cannot decrypt secret %s of org %s for sandbox %s: %s",
                                name, org_id, sandbox_id,
                                r == -EKEYREJECTED
                                        ? "it was sealed under another master key than the "
                                          "daemon's"
                                        : "it does not authenticate (damaged, or moved from "
                                          "another organisation or name)");
                        r = -EKEYREJECTED;
                        goto out;
                }
                if (r < 0)
                        goto out;
                /* jansson copies the value; its copy is freed with env by the caller. */
                json_t *s = json_stringn(value, len);
                secrets_value_free(value, len);
                if (!s) {
                        /* Sealed values came in as JSON strings: this is not valid UTF-8. */
                        r = -EIO;
                        goto out;
                }
                if (json_object_set_new(env, name, s) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        r = 0;
out:
        json_decref(names);
        return r;
}

void secrets_reply_error(struct reqctx *c, int err, const char *what)
{
        if (err == -EKEYREJECTED) {
                reply_error(c, 500, "secret_unavailable",
                            "%s: a secret of this organisation cannot be decrypted with the "
                            "server's master key (was the key changed?); the command was not "
                            "started. See the server log.",
                            what);
                return;
        }
        reply_errno(c, err, what);
}

int secrets_check_selection(struct reqctx *c, json_t *v)
{
        size_t i;
        json_t *e;

        if (!json_is_array(v) || json_array_size(v) > SECRETS_MAX_PER_ORG) {
                reply_error(c, 400, "invalid_request",
                            "secrets: expected an array of at most %d secret names",
                            SECRETS_MAX_PER_ORG);
                return -EINVAL;
        }
        json_array_foreach(v, i, e)
        {
                const char *name = json_string_value(e);
                struct store_secret sec = {};
                if (!secrets_name_valid(name)) {
                        reply_error(c, 400, "invalid_request",
                                    "secrets[%zu]: expected a secret name", i);
                        return -EINVAL;
                }
                for (size_t j = 0; j < i; j++) {
                        if (strcmp(json_string_value(json_array_get(v, j)), name) == 0) {
                                reply_error(c, 400, "invalid_request",
                                            "secrets[%zu]: \"%s\" is listed twice", i, name);
                                return -EINVAL;
                        }
                }
                int r = store_secret_get(c->app->store, c->org_id, name, &sec);
                store_secret_clear(&sec);
                if (r == -ENOENT) {
                        reply_error(c, 400, "invalid_request",
                                    "secrets[%zu]: this organisation has no secret named \"%s\"",
                                    i, name);
                        return -EINVAL;
                }
                if (r < 0) {
                        reply_errno(c, r, "secrets");
                        return r;
                }
        }
        return 0;
}

int secrets_bind_sandbox(struct app *app, const char *sandbox_id, json_t *names)
{
        cleanup_free char *text = NULL;

        if (names) {
                text = json_dumps(names, JSON_COMPACT);
                if (!text)
                        return -ENOMEM;
        }
        return store_sandbox_secrets_set(app->store, sandbox_id, text);
}

/* ---- routes ---- */

/* The public view of a secret: never its value. */
static json_t *secret_json(const struct store_secret *sec)
{
        return json_pack("{s:s, s:o, s:o}", "name", sec->name, "created_at",
                         json_time(sec->created_at), "updated_at", json_time(sec->updated_at));
}

static int list_cb(const struct store_secret *sec, void *ud)
{
        return json_array_append_new(ud, secret_json(sec)) == 0 ? 0 : -ENOMEM;
}

static void handle_list(struct reqctx *c)
{
        json_t *arr = json_array();
        int r = store_secret_list(c->app->store, c->org_id, list_cb, arr);

        if (r < 0) {
                json_decref(arr);
                reply_errno(c, r, "secrets");
                return;
        }
        size_t n = json_array_size(arr);
        reply_json(c, 200, json_pack("{s:o, s:I}", "secrets", arr, "total", (json_int_t)n));
}

/* Parse the body without echoing any part of it (parse_body quotes the text near a syntax
 * error, which here could be part of a value), then wipe the raw body. */
static json_t *parse_secret_body(struct reqctx *c)
{
        struct http_req *req = c->req;
        json_error_t jerr;
        json_t *j = NULL;

        if (req->body && req->body_len) {
                j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
                secretbox_wipe(req->body, req->body_len);
        }
        if (!j) {
                if (!req->body || !req->body_len)
                        reply_error(c, 400, "invalid_json", "a JSON object body is required");
                else
                        reply_error(c, 400, "invalid_json", "malformed JSON at line %d column %d",
                                    jerr.line, jerr.column);
                return NULL;
        }
        if (!json_is_object(j)) {
                json_decref(j);
                reply_error(c, 400, "invalid_json", "the body must be a JSON object");
                return NULL;
        }
        return j;
}

/* Wipe a JSON string's bytes in place (jansson owns a private, writable copy). */
static void wipe_json_string(json_t *v)
{
        if (json_is_string(v))
                secretbox_wipe((char *)json_string_value(v), json_string_length(v));
}

/* Create or replace: POST /api/v1/secrets {name, value} or PUT /api/v1/secrets/NAME {value}. */
static void handle_put(struct reqctx *c, const char *url_name)
{
        struct store_secret sec = {};
        const char *name = url_name;
        bool created = false;
        int r;

        json_t *body = parse_secret_body(c);
        if (!body)
                return;
        json_t *value = json_object_get(body, "value");
        if (!url_name) {
                json_t *n = json_object_get(body, "name");
                name = json_string_value(n);
                if (!name) {
                        reply_error(c, 400, "invalid_request", "name: required, a string");
                        goto out;
                }
        }
        if (!secrets_name_valid(name)) {
                reply_error(c, 400, "invalid_request",
                            "name: expected 1-%d characters of A-Z, a-z, 0-9 and _, not starting "
                            "with a digit",
                            SECRETS_NAME_MAX);
                goto out;
        }
        if (!json_is_string(value)) {
                reply_error(c, 400, "invalid_request", "value: required, a string");
                goto out;
        }
        if (json_string_length(value) > SECRETS_VALUE_MAX) {
                reply_error(c, 413, "payload_too_large", "value: longer than %d bytes",
                            SECRETS_VALUE_MAX);
                goto out;
        }
        if (strlen(json_string_value(value)) != json_string_length(value)) {
                reply_error(c, 400, "invalid_request", "value: contains NUL");
                goto out;
        }
        r = secrets_put(c->app->secrets, c->app->store, c->org_id, name, json_string_value(value),
                        json_string_length(value), &created);
        if (r == -EDQUOT) {
                reply_error(c, 409, "too_many_secrets",
                            "this organisation already has %d secrets; delete one first",
                            SECRETS_MAX_PER_ORG);
                goto out;
        }
        if (r == -E2BIG) {
                reply_error(c, 413, "payload_too_large",
                            "the organisation's secrets would exceed %d bytes in all",
                            SECRETS_MAX_TOTAL);
                goto out;
        }
        if (r < 0) {
                reply_errno(c, r, "secrets");
                goto out;
        }
        r = store_secret_get(c->app->store, c->org_id, name, &sec);
        store_secret_clear(&sec);
        if (r < 0) {
                reply_errno(c, r, "secrets");
                goto out;
        }
        reply_json(c, created ? 201 : 200, secret_json(&sec));
out:
        wipe_json_string(value);
        json_decref(body);
}

static void handle_get_one(struct reqctx *c, const char *name)
{
        struct store_secret sec = {};
        int r = secrets_name_valid(name) ? store_secret_get(c->app->store, c->org_id, name, &sec)
                                         : -ENOENT;

        store_secret_clear(&sec);
        if (r == -ENOENT) {
                reply_error(c, 404, "not_found", "secret not found");
                return;
        }
        if (r < 0) {
                reply_errno(c, r, "secrets");
                return;
        }
        reply_json(c, 200, secret_json(&sec));
}

static void handle_delete(struct reqctx *c, const char *name)
{
        int r = secrets_name_valid(name) ? store_secret_delete(c->app->store, c->org_id, name)
                                         : -ENOENT;

        if (r == -ENOENT) {
                reply_error(c, 404, "not_found", "secret not found");
                return;
        }
        if (r < 0) {
                reply_errno(c, r, "secrets");
                return;
        }
        reply_json(c, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

void secrets_route(struct reqctx *c, const char *rest)
{
        int m = c->req->method;

        if (!c->app->secrets) {
                reply_error(c, 503, "unavailable", "secrets are not configured on this server");
                return;
        }
        if (!*rest || strcmp(rest, "/") == 0) {
                if (m == HTTP_M_GET)
                        return handle_list(c);
                if (m == HTTP_M_POST)
                        return handle_put(c, NULL);
        } else if (rest[0] == '/' && !strchr(rest + 1, '/')) {
                const char *name = rest + 1;
                if (m == HTTP_M_GET)
                        return handle_get_one(c, name);
                if (m == HTTP_M_PUT)
                        return handle_put(c, name);
                if (m == HTTP_M_DELETE)
                        return handle_delete(c, name);
        } else {
                reply_error(c, 404, "not_found", "no route for %s", c->req->path);
                return;
        }
        reply_error(c, 405, "method_not_allowed", "method not allowed on %s", c->req->path);
}
