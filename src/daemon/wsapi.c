/* wsapi.c - the StateSet WebSocket endpoint, GET /ws: commands run over one socket, several
 * at once, each named by a client-chosen id.
 *
 * Client -> server (JSON text):
 *   {"type":"execute","id"?:"c1","sandboxId":"...","command":"..."|[argv],"stream"?:true,
 *    "env"?:{}, "working_dir"?:"/..", "timeout"?:ms, "user"?:"user"|"root"}
 *   {"type":"cancel","id":"c1"}           SIGKILL that execution
 *   {"type":"ping"}                        answered {"type":"pong"}
 * Server -> client (JSON text), each with the execution's "id":
 *   {"type":"started","id","sandboxId"}
 *   {"type":"stdout"|"stderr","id","data","encoding"?:"base64"}   (base64 when not UTF-8)
 *   {"type":"dropped","id","bytes"}        the client read too slowly; output was dropped
 *   {"type":"exit","id","code","timed_out"} then {"type":"done","id","duration_ms"}
 *   {"type":"error","id"?,"message"}      a refused message or a failed execution
 * Executions are request-scoped: closing the socket kills the ones still running. The
 * socket is authenticated like any request (Authorization header, or ?token= on the
 * upgrade), and reaches only the sandboxes of that organisation.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "live.h"
#include "manager.h"
#include "routes.h"
#include "runtime.h"
#include "util.h"
#include "ws.h"

/* Executions running at once on one socket. */
#define WSX_MAX_EXECS 16
/* Queued bytes above which output is dropped (and reported) rather than queued. */
#define WSX_QUEUE (4u << 20)
#define WSX_ID_MAX 64
#define WSX_MAX_ARG (128 * 1024 - 1)

struct wsx_exec;

struct wsx {
        struct app *app;
        struct ws_conn *ws;
        char org_id[STORE_ID_MAX];
        char scope[STORE_ID_MAX]; /* a session token's sandbox, or "" */
        struct wsx_exec *execs;
        unsigned n_execs;
        struct live *live;
};

struct wsx_exec {
        struct wsx_exec *next;
        struct wsx *s;
        char id[WSX_ID_MAX];
        char sandbox_id[STORE_ID_MAX];
        struct agent *agent;
        uint32_t job;
        uint64_t started_ns;
        uint64_t dropped;
};

static void send_json(struct wsx *s, json_t *msg)
{
        char *t = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

        json_decref(msg);
        if (t)
                ws_send(s->ws, false, t, strlen(t));
        free(t);
}

static void send_error(struct wsx *s, const char *id, const char *message)
{
        json_t *m = json_pack("{s:s, s:s}", "type", "error", "message", message);
        if (m && id)
                json_object_set_new(m, "id", json_string(id));
        send_json(s, m);
}

static void exec_remove(struct wsx_exec *e)
{
        struct wsx *s = e->s;

        for (struct wsx_exec **l = &s->execs; *l; l = &(*l)->next) {
                if (*l == e) {
                        *l = e->next;
                        s->n_execs--;
                        break;
                }
        }
        free(e);
}

/* ---- agent callbacks ---- */

static void x_started(void *ud, uint32_t pid)
{
        struct wsx_exec *e = ud;

        send_json(e->s, json_pack("{s:s, s:s, s:s, s:i}", "type", "started", "id", e->id,
                                  "sandboxId", e->sandbox_id, "pid", (int)pid));
}

static void x_output(void *ud, int stream, const uint8_t *data, size_t len)
{
        struct wsx_exec *e = ud;
        const char *type = stream == 2 ? "stderr" : "stdout";
        json_t *m;

        if (ws_queued(e->s->ws) > WSX_QUEUE) {
                e->dropped += len;
                return;
        }
        if (e->dropped) {
                send_json(e->s, json_pack("{s:s, s:s, s:I}", "type", "dropped", "id", e->id,
                                          "bytes", (json_int_t)e->dropped));
                e->dropped = 0;
        }
        bool tail;
        if (utf8_valid_prefix(data, len, &tail) == len) {
                m = json_pack("{s:s, s:s, s:s%}", "type", type, "id", e->id, "data",
                              (const char *)data, len);
        } else {
                cleanup_free char *enc = malloc(b64_encoded_size(len));
                if (!enc)
                        return;
                b64_encode(data, len, enc);
                m = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "id", e->id, "data", enc,
                              "encoding", "base64");
        }
        send_json(e->s, m);
}

static void x_finish(struct wsx_exec *e)
{
        send_json(e->s, json_pack("{s:s, s:s, s:f}", "type", "done", "id", e->id, "duration_ms",
                                  util_ms_since(e->started_ns)));
        exec_remove(e);
}

static void x_exit(void *ud, int exit_code, int term_signal, bool timed_out)
{
        struct wsx_exec *e = ud;

        if (e->dropped)
                send_json(e->s, json_pack("{s:s, s:s, s:I}", "type", "dropped", "id", e->id,
                                          "bytes", (json_int_t)e->dropped));
        send_json(e->s, json_pack("{s:s, s:s, s:i, s:b}", "type", "exit", "id", e->id, "code",
                                  timed_out ? 124 : exit_code, "timed_out", timed_out));
        x_finish(e);
}

static void x_error(void *ud, int err, const char *msg)
{
        struct wsx_exec *e = ud;
        char line[600];

        if (err == ECONNRESET) {
                send_error(e->s, e->id, "the sandbox stopped while the command was running");
                x_finish(e);
                return;
        }
        /* Could not start: as a shell would say it. */
        snprintf(line, sizeof(line), "warren: %s\n", msg && *msg ? msg : strerror(err));
        x_output(e, 2, (const uint8_t *)line, strlen(line));
        x_exit(e, err == ENOENT ? 127 : 126, 0, false);
}

static const struct agent_job_ops x_ops = {
        .started = x_started,
        .output = x_output,
        .exit = x_exit,
        .error = x_error,
};

/* ---- execute ---- */

/* argv from "command": a string runs through /bin/sh -c, an array is the argv. */
static const char *build_argv(json_t *cmd, const char ***ret_argv, uint32_t *ret_argc)
{
        if (json_is_string(cmd)) {
                if (json_string_length(cmd) == 0 || json_string_length(cmd) > WSX_MAX_ARG ||
                    strlen(json_string_value(cmd)) != json_string_length(cmd))
                        return "command: expected a non-empty string without NUL";
                const char **argv = calloc(4, sizeof(*argv));
                if (!argv)
                        return "out of memory";
                argv[0] = "/bin/sh";
                argv[1] = "-c";
                argv[2] = json_string_value(cmd);
                *ret_argv = argv;
                *ret_argc = 3;
                return NULL;
        }
        size_t n = json_array_size(cmd);
        if (!json_is_array(cmd) || n == 0 || n > PROTO_MAX_ARGS)
                return "command: expected a string or a non-empty array of strings";
        const char **argv = calloc(n + 1, sizeof(*argv));
        if (!argv)
                return "out of memory";
        for (size_t i = 0; i < n; i++) {
                json_t *a = json_array_get(cmd, i);
                if (!json_is_string(a) || json_string_length(a) > WSX_MAX_ARG ||
                    strlen(json_string_value(a)) != json_string_length(a) ||
                    (i == 0 && json_string_length(a) == 0)) {
                        free(argv);
                        return "command: every element must be a string without NUL";
                }
                argv[i] = json_string_value(a);
        }
        *ret_argv = argv;
        *ret_argc = (uint32_t)n;
        return NULL;
}

/* Whether name is a valid environment variable name. */
static bool env_name_ok(const char *k)
{
        if (!*k || strlen(k) > 256 || (*k >= '0' && *k <= '9'))
                return false;
        for (; *k; k++)
                if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
                      (*k >= '0' && *k <= '9') || *k == '_'))
                        return false;
        return true;
}

static void do_execute(struct wsx *s, json_t *m, const char *id)
{
        cleanup_free const char **argv = NULL;
        cleanup_free const char **env = NULL;
        cleanup_env_storage struct env_storage es = {};
        struct store_sandbox rec = {};
        uint32_t argc, uid = RT_SANDBOX_UID;
        const char *sid = json_string_value(json_object_get(m, "sandboxId"));
        const char *cwd = "/workspace", *err;
        json_t *v;
        int64_t timeout_ms = s->app->cfg.default_exec_timeout_ms;

        if (!sid)
                sid = json_string_value(json_object_get(m, "sandbox_id"));
        if (!sid)
                return send_error(s, id, "sandboxId: required");
        if (s->n_execs >= WSX_MAX_EXECS)
                return send_error(s, id, "too many executions running on this socket (16)");
        for (struct wsx_exec *e = s->execs; e; e = e->next)
                if (strcmp(e->id, id) == 0)
                        return send_error(s, id, "an execution with this id is running");
        /* Another organisation's sandbox reads exactly like a missing one. */
        int r = store_sandbox_get(s->app->store, sid, &rec);
        bool mine = r == 0 && strcmp(rec.org_id, s->org_id) == 0 &&
                    strcmp(rec.status, "deleting") != 0 && (!*s->scope || !strcmp(s->scope, sid));
        store_sandbox_clear(&rec);
        if (!mine)
                return send_error(s, id, "sandbox not found");
        struct sandbox *sb = mgr_find(s->app->mgr, sid);
        if (!sb || sb->state != SB_RUNNING)
                return send_error(s, id, "the sandbox is not running");
        if (!agent_ready(sb->agent))
                return send_error(s, id, "the sandbox's agent is reconnecting; retry");
        err = build_argv(json_object_get(m, "command"), &argv, &argc);
        if (err)
                return send_error(s, id, err);
        v = json_object_get(m, "working_dir");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || json_string_value(v)[0] != '/' ||
                    json_string_length(v) > 4096)
                        return send_error(s, id, "working_dir: expected an absolute path");
                cwd = json_string_value(v);
        }
        v = json_object_get(m, "timeout");
        if (v && !json_is_null(v)) {
                if (!json_is_number(v) || json_number_value(v) < 1 ||
                    json_number_value(v) > 24.0 * 3600 * 1000)
                        return send_error(s, id, "timeout: expected milliseconds, 1 to 86400000");
                timeout_ms = (int64_t)json_number_value(v);
        }
        v = json_object_get(m, "user");
        if (v && !json_is_null(v)) {
                const char *u = json_string_value(v);
                if (u && strcmp(u, "root") == 0)
                        uid = 0;
                else if (!u || strcmp(u, "user") != 0)
                        return send_error(s, id, "user: expected \"user\" or \"root\"");
        }
        v = json_object_get(m, "env");
        if (v && !json_is_null(v)) {
                const char *k;
                json_t *x;
                if (!json_is_object(v) || json_object_size(v) > 1000)
                        return send_error(s, id, "env: expected an object of strings");
                json_object_foreach(v, k, x) {
                        if (!env_name_ok(k) || !json_is_string(x) ||
                            json_string_length(x) > 131072 ||
                            strlen(json_string_value(x)) != json_string_length(x))
                                return send_error(s, id, "env: expected NAME: string pairs");
                }
        }
        uint32_t envc = 0;
        r = exec_env(s->app, sb, v && json_is_object(v) ? v : NULL, uid == 0, &env, &envc,
                     &es.p, &es.len);
        if (r < 0)
                return send_error(s, id, r == -ENOMEM ? "out of memory"
                                                      : "the organisation's secrets could not "
                                                        "be decrypted (see the server log)");
        struct proto_spawn sp = {
                .uid = uid,
                .gid = uid,
                .timeout_ms = (uint32_t)timeout_ms,
                .nofile = s->app->cfg.nofile_limit,
                .cwd = cwd,
                .argc = argc,
                .argv = argv,
                .envc = envc,
                .env = env,
        };
        struct wsx_exec *e = calloc(1, sizeof(*e));
        if (!e)
                return send_error(s, id, "out of memory");
        e->s = s;
        snprintf(e->id, sizeof(e->id), "%s", id);
        snprintf(e->sandbox_id, sizeof(e->sandbox_id), "%s", sid);
        e->agent = sb->agent;
        e->started_ns = util_now_ns();
        r = agent_spawn(sb->agent, &sp, &x_ops, e, &e->job);
        if (r < 0) {
                free(e);
                return send_error(s, id, r == -E2BIG ? "the command is too large"
                                                     : "the sandbox's agent is not connected");
        }
        e->next = s->execs;
        s->execs = e;
        s->n_execs++;
}

/* ---- the socket ---- */

static void on_message(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                       void *ud)
{
        struct wsx *s = ud;
        char idbuf[WSX_ID_MAX];

        if (binary)
                return send_error(s, NULL, "expected JSON text messages");
        json_t *m = json_loadb((const char *)data, len, 0, NULL);
        const char *type = json_string_value(json_object_get(m, "type"));
        json_t *idv = json_object_get(m, "id");
        if (!type) {
                send_error(s, NULL, "expected a JSON object with a \"type\"");
                goto out;
        }
        if (json_is_string(idv) && json_string_length(idv) > 0 &&
            json_string_length(idv) < WSX_ID_MAX)
                snprintf(idbuf, sizeof(idbuf), "%s", json_string_value(idv));
        else if (json_is_integer(idv))
                snprintf(idbuf, sizeof(idbuf), "%lld", (long long)json_integer_value(idv));
        else if (!idv || json_is_null(idv))
                snprintf(idbuf, sizeof(idbuf), "exec-%llu",
                         (unsigned long long)(util_now_ns() & 0xffffffffffffull));
        else {
                send_error(s, NULL, "id: expected a string of 1-63 characters or a number");
                goto out;
        }
        if (strcmp(type, "execute") == 0) {
                do_execute(s, m, idbuf);
        } else if (strcmp(type, "cancel") == 0) {
                struct wsx_exec *e = s->execs;
                while (e && strcmp(e->id, idbuf) != 0)
                        e = e->next;
                if (!e)
                        send_error(s, idbuf, "no running execution with this id");
                else
                        agent_signal(e->agent, e->job, SIGKILL);
        } else if (strcmp(type, "ping") == 0) {
                send_json(s, json_pack("{s:s}", "type", "pong"));
        } else {
                send_error(s, idbuf, "unknown type (expected execute, cancel or ping)");
        }
out:
        json_decref(m);
}

static void on_close(struct ws_conn *ws, uint16_t code, void *ud)
{
        struct wsx *s = ud;

        /* Request-scoped: what still runs dies with the socket. */
        while (s->execs) {
                struct wsx_exec *e = s->execs;
                s->execs = e->next;
                agent_signal(e->agent, e->job, SIGKILL);
                agent_job_forget(e->agent, e->job);
                free(e);
        }
        live_remove(s->app, s->live);
        free(s);
}

static void on_revoke(void *ud)
{
        struct wsx *s = ud;

        ws_close(s->ws, 1008, "credential revoked");
}

static const struct ws_ops wsx_ops = {
        .on_message = on_message,
        .on_close = on_close,
};

void wsapi_start(struct reqctx *c)
{
        if (!http_req_is_ws(c->req)) {
                reply_error(c, 400, "invalid_request",
                            "/ws is a WebSocket: send an upgrade request");
                return;
        }
        struct wsx *s = calloc(1, sizeof(*s));
        if (!s) {
                reply_errno(c, -ENOMEM, "ws");
                return;
        }
        s->app = c->app;
        snprintf(s->org_id, sizeof(s->org_id), "%s", c->org_id);
        snprintf(s->scope, sizeof(s->scope), "%s", c->sandbox_scope);
        int r = live_add(c->app, c->key_id, on_revoke, s, &s->live);
        if (r == 0)
                r = http_ws_accept(c->req, &wsx_ops, s, NULL, &s->ws);
        if (r < 0) {
                live_remove(c->app, s->live);
                free(s);
                if (r == -ENOTCONN)
                        reply_error(c, 499, "client_closed", "client closed the request");
                else
                        reply_errno(c, r, "ws");
                return;
        }
        reply_done(c, 101);
}
