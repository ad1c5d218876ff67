/* routes.c - routing, authentication and the sandbox lifecycle and exec handlers. The file
 * routes are in files.c. */
#include "routes.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "identity.h"
#include "manager.h"
#include "network.h"
#include "quantity.h"
#include "quota.h"
#include "runtime.h"
#include "secrets.h"
#include "util.h"

#define WARREN_VERSION "0.1.0"
/* Longest env value accepted, and the most env entries. */
#define EXEC_MAX_ARG (256 * 1024)
#define EXEC_MAX_ENV 1024

/* ---- small JSON helpers ---- */

json_t *json_time(int64_t epoch_s)
{
        char buf[32];
        util_fmt_time(epoch_s, buf, sizeof(buf));
        return json_string(buf);
}

/* The public view of a sandbox record. */
json_t *sandbox_to_json(const struct store_sandbox *rec)
{
        char cpus[32], mem[32], disk[32];
        qty_format_cpus((uint64_t)rec->cpu_millis, cpus, sizeof(cpus));
        qty_format_bytes((uint64_t)rec->memory_bytes, mem, sizeof(mem));
        qty_format_bytes((uint64_t)rec->disk_bytes, disk, sizeof(disk));
        const char *status = rec->status;
        /* "stopping" and "deleting" are internal steps; clients see where they lead. */
        if (strcmp(status, "stopping") == 0 || strcmp(status, "deleting") == 0)
                status = "stopped";
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o}",
                              "sandbox_id", rec->id, "org_id", rec->org_id, "status", status,
                              "template", rec->template, "isolation", rec->isolation, "network",
                              "none", "cpus", cpus, "memory", mem, "disk", disk,
                              "timeout_seconds", (json_int_t)rec->timeout_s, "created_at",
                              json_time(rec->created_at), "expires_at",
                              json_time(rec->expires_at));
        if (o && rec->stopped_at)
                json_object_set_new(o, "stopped_at", json_time(rec->stopped_at));
        if (o && rec->error && strcmp(rec->status, "error") == 0)
                json_object_set_new(o, "error", json_string(rec->error));
        return o;
}

/* Get a sandbox record that belongs to the caller's organisation. Another organisation's
 * sandbox is reported exactly like a missing one. */
int lookup_sandbox(struct reqctx *c, const char *id, struct store_sandbox *ret)
{
        struct store_sandbox rec = {};
        if (strlen(id) >= STORE_ID_MAX)
                return -ENOENT;
        int r = store_sandbox_get(c->app->store, id, &rec);
        if (r < 0)
                return r;
        /* Being deleted: gone as far as clients are concerned. */
        if (strcmp(rec.org_id, c->org_id) != 0 || strcmp(rec.status, "deleting") == 0) {
                store_sandbox_clear(&rec);
                return -ENOENT;
        }
        *ret = rec;
        return 0;
}

void reply_not_found(struct reqctx *c)
{
        reply_error(c, 404, "not_found", "sandbox not found");
}

/* ---- create ---- */

/* Read an optional string field; *ret stays as is when missing. -EINVAL if not a string. */
int field_str(struct reqctx *c, json_t *body, const char *name, const char **ret)
{
        json_t *v = json_object_get(body, name);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v)) {
                reply_error(c, 400, "invalid_request", "%s: expected a string", name);
                return -EINVAL;
        }
        *ret = json_string_value(v);
        return 0;
}

/* Validate an env object: string values, names without '=' or NUL, bounded. */
int validate_env(struct reqctx *c, json_t *env, const char *field)
{
        const char *k;
        json_t *v;

        if (!json_is_object(env)) {
                reply_error(c, 400, "invalid_request", "%s: expected an object of strings", field);
                return -EINVAL;
        }
        if (json_object_size(env) > EXEC_MAX_ENV) {
                reply_error(c, 400, "invalid_request", "%s: more than %d entries", field,
                            EXEC_MAX_ENV);
                return -EINVAL;
        }
        json_object_foreach(env, k, v)
        {
                if (!*k || strchr(k, '=') || strlen(k) > 1024) {
                        reply_error(c, 400, "invalid_request", "%s: invalid variable name", field);
                        return -EINVAL;
                }
                if (!json_is_string(v)) {
                        reply_error(c, 400, "invalid_request", "%s.%s: expected a string", field,
                                    k);
                        return -EINVAL;
                }
                if (json_string_length(v) > EXEC_MAX_ARG ||
                    strlen(json_string_value(v)) != json_string_length(v)) {
                        reply_error(c, 400, "invalid_request",
                                    "%s.%s: too long or contains NUL", field, k);
                        return -EINVAL;
                }
        }
        return 0;
}

/* Parse the JSON body; answers 400 itself and returns NULL on failure. */
json_t *parse_body(struct reqctx *c, bool required)
{
        struct http_req *req = c->req;
        json_error_t err;

        if (!req->body || req->body_len == 0) {
                if (required) {
                        reply_error(c, 400, "invalid_json", "a JSON object body is required");
                        return NULL;
                }
                return json_object();
        }
        json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
        if (!j) {
                reply_error(c, 400, "invalid_json", "malformed JSON at line %d column %d: %s",
                            err.line, err.column, err.text);
                return NULL;
        }
        if (!json_is_object(j)) {
                json_decref(j);
                reply_error(c, 400, "invalid_json", "the body must be a JSON object");
                return NULL;
        }
        return j;
}

/* Answer a successful create with the record and the measured startup phases. */
static void create_reply(struct reqctx *c, const char *sb_id, const struct rt_metrics *metrics,
                         bool pool_hit)
{
        struct store_sandbox rec = {};
        if (store_sandbox_get(c->app->store, sb_id, &rec) < 0) {
                reply_error(c, 500, "internal", "sandbox record vanished");
                return;
        }
        json_t *o = sandbox_to_json(&rec);
        store_sandbox_clear(&rec);
        network_decorate(c->app, o, sb_id);
        json_object_set_new(o, "startup_metrics",
                            json_pack("{s:f, s:f, s:f, s:f, s:b, s:b}", "total_ms",
                                      metrics->total_ms, "disk_ms", metrics->disk_ms,
                                      "cgroup_ms", metrics->cgroup_ms, "spawn_ms",
                                      metrics->spawn_ms, "pool_hit", pool_hit, "disk_pooled",
                                      metrics->disk_pooled));
        if (metrics->net_ms > 0)
                json_object_set_new(json_object_get(o, "startup_metrics"), "net_ms",
                                    json_real(metrics->net_ms));
        reply_json(c, 201, o);
}

static void create_cb(void *ud, int err, const char *msg, const char *sb_id,
                      const struct rt_metrics *metrics)
{
        struct reqctx *c = ud;

        if (err < 0) {
                const char *code;
                int status = errno_to_http(err, &code);
                if (status < 500)
                        status = 500, code = "internal";
                reply_error(c, status, code, "sandbox could not be started: %s",
                            msg ? msg : strerror(-err));
                return;
        }
        create_reply(c, sb_id, metrics, false);
}

/* A pooled egress sandbox was handed out and its policy written. */
static void create_pool_cb(void *ud, int err, const char *msg, const char *sb_id,
                           const struct rt_metrics *metrics)
{
        struct reqctx *c = ud;

        if (err < 0) {
                reply_error(c, 500, "internal", "sandbox could not be started: %s",
                            msg ? msg : strerror(-err));
                return;
        }
        struct rt_metrics m = *metrics;
        m.total_ms = util_ms_since(c->req->started_ns);
        create_reply(c, sb_id, &m, true);
}

static void handle_create(struct reqctx *c)
{
        const struct config *cfg = &c->app->cfg;
        struct mgr_create_args a = {
                .org_id = c->org_id,
                .cpu_millis = cfg->default_cpu_millis,
                .memory_bytes = cfg->default_memory,
                .disk_bytes = cfg->default_disk,
                .timeout_s = cfg->default_timeout_s,
                .template = "base",
                .isolation = "container",
        };
        const char *cpus = NULL, *memory = NULL, *disk = NULL, *network = NULL;
        struct rt_net_policy *net_policy = NULL;
        json_t *body = parse_body(c, false);
        json_t *v;
        int r;

        if (!body)
                return;
        /* cpus may be a string ("500m", "2") or a number (2, 0.5). */
        v = json_object_get(body, "cpus");
        char numbuf[64];
        if (v && json_is_number(v)) {
                snprintf(numbuf, sizeof(numbuf), "%.3f", json_number_value(v));
                cpus = numbuf;
        } else if (field_str(c, body, "cpus", &cpus) < 0) {
                goto out;
        }
        if (field_str(c, body, "memory", &memory) < 0 ||
            field_str(c, body, "disk", &disk) < 0 ||
            field_str(c, body, "template", &a.template) < 0 ||
            field_str(c, body, "isolation", &a.isolation) < 0 ||
            field_str(c, body, "network", &network) < 0)
                goto out;
        if (cpus && (qty_parse_cpus(cpus, &a.cpu_millis) < 0 || a.cpu_millis < 10 ||
                     a.cpu_millis > cfg->max_cpu_millis)) {
                reply_error(c, 400, "invalid_request",
                            "cpus: expected a CPU quantity like \"1\", \"2\" or \"500m\" "
                            "between 10m and %llum",
                            (unsigned long long)cfg->max_cpu_millis);
                goto out;
        }
        if (memory && (qty_parse_bytes(memory, &a.memory_bytes) < 0 ||
                       a.memory_bytes < (16ULL << 20) || a.memory_bytes > cfg->max_memory)) {
                reply_error(c, 400, "invalid_request",
                            "memory: expected a quantity like \"512Mi\" or \"2Gi\" between 16Mi "
                            "and the server's MAX_MEMORY");
                goto out;
        }
        if (disk && (qty_parse_bytes(disk, &a.disk_bytes) < 0 || a.disk_bytes < (64ULL << 20) ||
                     a.disk_bytes > cfg->max_disk)) {
                reply_error(c, 400, "invalid_request",
                            "disk: expected a quantity like \"1Gi\" between 64Mi and the "
                            "server's MAX_DISK");
                goto out;
        }
        v = json_object_get(body, "timeout_seconds");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) < cfg->min_timeout_s ||
                    json_integer_value(v) > cfg->max_timeout_s) {
                        reply_error(c, 400, "invalid_request",
                                    "timeout_seconds: expected an integer between %lld and %lld",
                                    (long long)cfg->min_timeout_s, (long long)cfg->max_timeout_s);
                        goto out;
                }
                a.timeout_s = json_integer_value(v);
        }
        v = json_object_get(body, "env");
        if (v && !json_is_null(v)) {
                if (validate_env(c, v, "env") < 0)
                        goto out;
                a.env = v;
        }
        v = json_object_get(body, "secrets");
        if (v && !json_is_null(v)) {
                if (secrets_check_selection(c, v) < 0)
                        goto out;
                a.secrets = v;
        }
        if (strcmp(a.isolation, "container") != 0) {
                reply_error(c, 400, "invalid_request",
                            "isolation: \"%.64s\" is not available on this server (available: "
                            "container)",
                            a.isolation);
                goto out;
        }
        if (network_create_fields(c, body, network, &net_policy) < 0)
                goto out;
        a.net_policy = net_policy;
        if (strlen(a.template) > 64 || !rt_template_exists(a.template)) {
                reply_error(c, 400, "invalid_request", "template: no template named \"%.64s\"",
                            a.template);
                goto out;
        }
        /* The quotas (count, cpus, memory), answered 429 here for both paths; mgr_create
         * checks the count again for the cold path. Then the warm pool: a ready sandbox of
         * the same class, assigned to the caller. */
        if (quota_admit_sandbox(c, a.cpu_millis, a.memory_bytes) < 0)
                goto out;
        char pooled_id[STORE_ID_MAX];
        if (mgr_pool_take(c->app->mgr, &a, pooled_id, sizeof(pooled_id)) == 0) {
                struct rt_metrics pm = { .total_ms = util_ms_since(c->req->started_ns) };
                create_reply(c, pooled_id, &pm, true);
                goto out;
        }
        if (a.net_policy && mgr_pool_take_egress(c->app->mgr, &a, create_pool_cb, c) == 0)
                goto out;
        r = mgr_create(c->app->mgr, &a, create_cb, c);
        if (r == -EUSERS)
                reply_error(c, 429, "quota_exceeded",
                            "this organisation already has %lld sandboxes that are not stopped "
                            "(MAX_SANDBOXES_PER_ORG)",
                            (long long)cfg->max_sandboxes_per_org);
        else if (r == -ENOSPC)
                reply_error(c, 503, "unavailable", "no free uid range for a new sandbox");
        else if (r < 0)
                reply_errno(c, r, "create");
out:
        free(net_policy);
        json_decref(body);
}

/* ---- read, list, stop, delete ---- */

static void handle_get(struct reqctx *c, const char *id, bool status_only)
{
        struct store_sandbox rec = {};
        if (lookup_sandbox(c, id, &rec) < 0) {
                reply_not_found(c);
                return;
        }
        json_t *o;
        if (status_only) {
                const char *st = rec.status;
                if (!strcmp(st, "stopping") || !strcmp(st, "deleting"))
                        st = "stopped";
                o = json_pack("{s:s, s:s, s:o}", "sandbox_id", rec.id, "status", st,
                              "expires_at", json_time(rec.expires_at));
        } else {
                o = sandbox_to_json(&rec);
                network_decorate(c->app, o, id);
                uint64_t mem, pids;
                if (strcmp(rec.status, "running") == 0 && rt_sandbox_usage(id, &mem, &pids) == 0)
                        json_object_set_new(o, "usage",
                                            json_pack("{s:I, s:I}", "memory_bytes",
                                                      (json_int_t)mem, "pids", (json_int_t)pids));
        }
        store_sandbox_clear(&rec);
        reply_json(c, 200, o);
}

struct list_ctx {
        struct app *app;
        json_t *arr;
};

static int list_cb(const struct store_sandbox *sb, void *ud)
{
        struct list_ctx *l = ud;
        json_t *o = sandbox_to_json(sb);
        network_decorate(l->app, o, sb->id);
        return json_array_append_new(l->arr, o) == 0 ? 0 : -ENOMEM;
}

/* Parse an integer query parameter within [lo, hi]; def if missing. */
static int query_int(struct reqctx *c, const char *name, int64_t def, int64_t lo, int64_t hi,
                     int64_t *ret)
{
        cleanup_free char *v = NULL;
        int r = http_req_query(c->req, name, &v);
        if (r == -ENOENT) {
                *ret = def;
                return 0;
        }
        char *end;
        long long n = r == 0 ? strtoll(v, &end, 10) : 0;
        if (r < 0 || !*v || *end || n < lo || n > hi) {
                reply_error(c, 400, "invalid_request", "%s: expected an integer between %lld and %lld",
                            name, (long long)lo, (long long)hi);
                return -EINVAL;
        }
        *ret = n;
        return 0;
}

static void handle_list(struct reqctx *c)
{
        cleanup_free char *status = NULL;
        int64_t limit, offset, total = 0;
        int r = http_req_query(c->req, "status", &status);

        if (r < 0 && r != -ENOENT) {
                reply_error(c, 400, "invalid_request", "status: invalid");
                return;
        }
        if (status && strcmp(status, "running") && strcmp(status, "stopped") &&
            strcmp(status, "creating") && strcmp(status, "error")) {
                reply_error(c, 400, "invalid_request",
                            "status: expected running, stopped, creating or error");
                return;
        }
        if (query_int(c, "limit", 100, 1, 1000, &limit) < 0 ||
            query_int(c, "offset", 0, 0, INT64_MAX / 2, &offset) < 0)
                return;
        json_t *arr = json_array();
        struct list_ctx lc = { .app = c->app, .arr = arr };
        r = store_sandbox_list(c->app->store, c->org_id, status, limit, offset, list_cb, &lc,
                               &total);
        if (r < 0) {
                json_decref(arr);
                reply_errno(c, r, "list");
                return;
        }
        reply_json(c, 200,
                   json_pack("{s:o, s:I, s:I, s:I}", "sandboxes", arr, "total", (json_int_t)total,
                             "limit", (json_int_t)limit, "offset", (json_int_t)offset));
}

struct done_ctx {
        struct reqctx *c;
        char id[STORE_ID_MAX];
        bool is_delete;
};

static void lifecycle_done(void *ud, int err, const char *msg)
{
        struct done_ctx *d = ud;
        struct reqctx *c = d->c;
        if (err < 0)
                reply_error(c, 500, "internal", "%s failed: %s", d->is_delete ? "delete" : "stop",
                            msg ? msg : strerror(-err));
        else if (d->is_delete)
                reply_json(c, 200, json_pack("{s:s, s:b}", "sandbox_id", d->id, "deleted", 1));
        else
                reply_json(c, 200, json_pack("{s:s, s:s}", "sandbox_id", d->id, "status",
                                             "stopped"));
        free(d);
}

static void handle_stop_delete(struct reqctx *c, const char *id, bool is_delete)
{
        struct store_sandbox rec = {};
        int r;

        if (lookup_sandbox(c, id, &rec) < 0) {
                reply_not_found(c);
                return;
        }
        store_sandbox_clear(&rec);
        struct done_ctx *d = calloc(1, sizeof(*d));
        if (!d) {
                reply_errno(c, -ENOMEM, "stop");
                return;
        }
        d->c = c;
        d->is_delete = is_delete;
        snprintf(d->id, sizeof(d->id), "%s", id);
        r = is_delete ? mgr_delete(c->app->mgr, id, lifecycle_done, d)
                      : mgr_stop(c->app->mgr, id, lifecycle_done, d);
        if (r < 0) {
                free(d);
                if (r == -EBUSY)
                        reply_error(c, 409, "conflict",
                                    "the sandbox is being created or deleted; try again");
                else if (r == -ENOENT)
                        reply_not_found(c);
                else
                        reply_errno(c, r, is_delete ? "delete" : "stop");
        }
}

static void handle_templates(struct reqctx *c)
{
        char path[4200];
        json_t *arr = json_array();
        snprintf(path, sizeof(path), "%s/templates", c->app->cfg.data_dir);
        DIR *d = opendir(path);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.' || strchr(de->d_name, '.') ||
                            !rt_template_exists(de->d_name))
                                continue;
                        char meta[4500];
                        json_error_t err;
                        snprintf(meta, sizeof(meta), "%s/%s/template.json", path, de->d_name);
                        json_t *m = json_load_file(meta, 0, &err);
                        json_t *o = json_pack("{s:s}", "name", de->d_name);
                        if (m && json_is_object(m)) {
                                json_t *desc = json_object_get(m, "description");
                                json_t *at = json_object_get(m, "created_at");
                                if (json_is_string(desc))
                                        json_object_set(o, "description", desc);
                                if (json_is_integer(at))
                                        json_object_set_new(o, "created_at",
                                                            json_time(json_integer_value(at)));
                        }
                        json_decref(m);
                        json_array_append_new(arr, o);
                }
                closedir(d);
        }
        reply_json(c, 200, json_pack("{s:o}", "templates", arr));
}

/* ---- dispatch ---- */

/* Split "/api/v1/sandbox/ID/rest" into id and rest. Returns false for other paths. */
static bool match_sandbox_path(const char *path, char *id, size_t idlen, const char **ret_rest)
{
        static const char prefix[] = "/api/v1/sandbox/";
        if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
                return false;
        const char *p = path + sizeof(prefix) - 1;
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= idlen)
                return false;
        memcpy(id, p, n);
        id[n] = '\0';
        *ret_rest = slash ? slash : "";
        return true;
}

/* The client left, or the server rejected the body (413, 400, 408), before the request was
 * dispatched: answer (the answer is dropped) so the context is freed. After dispatch the
 * handler owns the answer, and routes that stream set their own on_abort. */
static void default_abort(struct http_req *req)
{
        struct reqctx *c = req->user;
        if (c && !c->dispatched)
                reply_error(c, 499, "client_closed", "client closed the request");
}

enum http_body_mode routes_on_headers(struct http_req *req, void *ud)
{
        struct app *app = ud;
        struct reqctx *c = calloc(1, sizeof(*c));
        char id[STORE_ID_MAX];
        const char *rest;

        if (!c) {
                http_respond_error(req, 503, "unavailable", "out of memory");
                return HTTP_BODY_ANSWERED;
        }
        c->app = app;
        c->req = req;
        req->user = c;
        req->on_abort = default_abort;
        if (strcmp(req->path, "/health") == 0)
                return HTTP_BODY_BUFFER;
        /* Credentials, and the session-token confinement (identity.c); answers 401/403/404. */
        if (identity_authenticate(c) < 0)
                return HTTP_BODY_ANSWERED;
        /* Per-organisation request rate (quota.c); answers 429. */
        if (quota_check_rate(c) < 0)
                return HTTP_BODY_ANSWERED;
        if (req->method == HTTP_M_PUT && match_sandbox_path(req->path, id, sizeof(id), &rest) &&
            strcmp(rest, "/files/upload") == 0)
                return files_upload_headers(c, id);
        return HTTP_BODY_BUFFER;
}

static void method_not_allowed(struct reqctx *c)
{
        reply_error(c, 405, "method_not_allowed", "method not allowed on %s", c->req->path);
}

void routes_on_request(struct http_req *req, void *ud)
{
        struct reqctx *c = req->user;
        const char *path = req->path, *rest;
        int m = req->method;
        char id[STORE_ID_MAX];

        if (!c)
                return; /* answered in on_headers */
        c->dispatched = true;
        if (strcmp(path, "/health") == 0) {
                if (m != HTTP_M_GET && m != HTTP_M_HEAD)
                        return method_not_allowed(c);
                reply_json(c, 200, json_pack("{s:s, s:s}", "status", "ok", "version",
                                             WARREN_VERSION));
                return;
        }
        if (identity_route(c))
                return;
        if (!c->authed) {
                reply_error(c, 401, "unauthorized", "a credential is required");
                return;
        }
        if (strcmp(path, "/ws") == 0) {
                if (m != HTTP_M_GET)
                        return method_not_allowed(c);
                return wsapi_start(c);
        }
        if (strcmp(path, "/api/v1/sandbox/create") == 0) {
                if (m != HTTP_M_POST)
                        return method_not_allowed(c);
                return handle_create(c);
        }
        if (strcmp(path, "/api/v1/sandboxes") == 0) {
                if (m != HTTP_M_GET)
                        return method_not_allowed(c);
                return handle_list(c);
        }
        if (strcmp(path, "/api/v1/pool") == 0) {
                if (m != HTTP_M_GET)
                        return method_not_allowed(c);
                if (strcmp(c->role, "admin") != 0) {
                        reply_error(c, 403, "forbidden", "an admin key is required");
                        return;
                }
                reply_json(c, 200, mgr_pool_json(c->app->mgr));
                return;
        }
        if (strncmp(path, "/api/v1/secrets", 15) == 0 && (path[15] == '\0' || path[15] == '/'))
                return secrets_route(c, path + 15);
        if (strcmp(path, "/api/v1/templates") == 0) {
                if (m != HTTP_M_GET)
                        return method_not_allowed(c);
                return handle_templates(c);
        }
        if (match_sandbox_path(path, id, sizeof(id), &rest)) {
                if (!*rest || strcmp(rest, "/") == 0) {
                        if (m == HTTP_M_GET)
                                return handle_get(c, id, false);
                        if (m == HTTP_M_DELETE)
                                return handle_stop_delete(c, id, true);
                        return method_not_allowed(c);
                }
                if (strcmp(rest, "/status") == 0)
                        return m == HTTP_M_GET ? handle_get(c, id, true) : method_not_allowed(c);
                if (strcmp(rest, "/stop") == 0)
                        return m == HTTP_M_POST ? handle_stop_delete(c, id, false)
                                                : method_not_allowed(c);
                if (strcmp(rest, "/execute") == 0)
                        return m == HTTP_M_POST ? exec_handle(c, id) : method_not_allowed(c);
                if (strcmp(rest, "/run-code") == 0)
                        return m == HTTP_M_POST ? exec_run_code(c, id) : method_not_allowed(c);
                if ((strncmp(rest, "/processes", 10) == 0 &&
                     (rest[10] == '\0' || rest[10] == '/')) ||
                    strcmp(rest, "/terminals") == 0)
                        return processes_route(c, id, rest);
                if (strcmp(rest, "/network") == 0)
                        return network_route(c, id);
                if (m == HTTP_M_PUT && strcmp(rest, "/files/upload") == 0)
                        return files_upload_complete(c);
                if (strncmp(rest, "/files", 6) == 0 && (rest[6] == '\0' || rest[6] == '/'))
                        return files_route(c, id, rest + 6);
        }
        reply_error(c, 404, "not_found", "no route for %s", path);
}
