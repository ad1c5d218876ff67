/* exec.c - running commands in a sandbox through its agent:
 *   POST /api/v1/sandbox/:id/execute                one JSON answer when the command ends
 *   POST /api/v1/sandbox/:id/execute {"stream":true} newline-delimited JSON events, chunked
 *   POST /api/v1/sandbox/:id/run-code               code in python/node/bash/deno/bun
 * Memory stays bounded in every mode: collected output is capped (MAX_EXEC_OUTPUT, then
 * "truncated"), and a stream whose client reads slower than the command writes drops output
 * beyond EXEC_STREAM_MAX_QUEUED and reports how many bytes it dropped. */
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
#include "secrets.h"
#include "secretbox.h"
#include "util.h"

/* Longest argv element (the kernel's MAX_ARG_STRLEN is 128 KiB), longest run-code source,
 * longest timeout, and how much a stream may queue on a slow client before dropping. */
#define EXEC_MAX_ARG (128 * 1024 - 1)
#define EXEC_MAX_CODE (100 * 1024)
#define EXEC_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define EXEC_STREAM_MAX_QUEUED (4u << 20)

enum exec_mode { EXEC_JSON, EXEC_STREAM, EXEC_RUNCODE };

/* Collected output: stdout, stderr, and (run-code) both in arrival order. */
struct exec_buf {
        uint8_t *p;
        size_t len, cap;
};

struct exec_op {
        struct reqctx *c;
        struct agent *agent;
        uint32_t job;
        bool job_live;
        uint64_t started_ns;
        enum exec_mode mode;
        const char *language; /* run-code */
        /* collected modes */
        uint64_t cap;
        bool truncated;
        struct exec_buf out[3];
        /* stream mode */
        uint8_t pend[2][4]; /* the start of a UTF-8 sequence split across two chunks */
        size_t pend_len[2];
        uint64_t dropped[2];
        size_t queued;      /* bytes queued on the socket after the last write */
        bool ended;
        struct live *live;  /* revoking the request's credential ends it (exec_revoke) */
};

static void exec_op_free(void *p)
{
        struct exec_op *e = p;
        if (e->job_live && e->agent)
                agent_job_forget(e->agent, e->job);
        live_remove(e->c->app, e->live);
        for (int i = 0; i < 3; i++)
                free(e->out[i].p);
        free(e);
}

/* Append to a collected buffer, at most e->cap bytes in all. */
static void buf_append(struct exec_op *e, struct exec_buf *b, const uint8_t *data, size_t len)
{
        size_t room = e->cap > b->len ? e->cap - b->len : 0;
        if (len > room) {
                e->truncated = true;
                len = room;
        }
        if (!len)
                return;
        if (b->len + len > b->cap) {
                size_t ncap = b->cap ? b->cap : 4096;
                while (ncap < b->len + len)
                        ncap *= 2;
                if (ncap > e->cap)
                        ncap = e->cap;
                uint8_t *nb = realloc(b->p, ncap);
                if (!nb) {
                        e->truncated = true;
                        return;
                }
                b->p = nb;
                b->cap = ncap;
        }
        memcpy(b->p + b->len, data, len);
        b->len += len;
}

/* ---- stream mode ---- */

/* Write one event line. */
static void stream_event(struct exec_op *e, json_t *ev)
{
        char *t = ev ? json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        json_decref(ev);
        if (!t)
                return;
        size_t n = strlen(t);
        char *line = realloc(t, n + 2);
        if (!line) {
                free(t);
                return;
        }
        line[n] = '\n';
        e->queued = http_respond_write(e->c->req, line, n + 1);
        free(line);
}

/* An output event: text when the bytes are UTF-8, else base64 with "encoding". */
static void stream_data(struct exec_op *e, int i, const uint8_t *p, size_t n, bool b64)
{
        const char *type = i == 0 ? "stdout" : "stderr";
        if (!n)
                return;
        if (b64) {
                char *enc = malloc(b64_encoded_size(n));
                if (!enc)
                        return;
                b64_encode(p, n, enc);
                stream_event(e, json_pack("{s:s, s:s, s:s}", "type", type, "data", enc,
                                          "encoding", "base64"));
                free(enc);
                return;
        }
        stream_event(e, json_pack("{s:s, s:s%}", "type", type, "data", (const char *)p, n));
}

/* Report output dropped while the client was not reading, once it reads again. */
static void stream_report_dropped(struct exec_op *e)
{
        for (int i = 0; i < 2; i++) {
                if (!e->dropped[i])
                        continue;
                stream_event(e, json_pack("{s:s, s:s, s:I}", "type", "dropped", "stream",
                                          i == 0 ? "stdout" : "stderr", "bytes",
                                          (json_int_t)e->dropped[i]));
                e->dropped[i] = 0;
        }
}

static void stream_output(struct exec_op *e, int i, const uint8_t *data, size_t len)
{
        if (e->queued > EXEC_STREAM_MAX_QUEUED || !http_req_connected(e->c->req)) {
                /* The client does not keep up: drop, count, and say so when it drains. */
                e->dropped[i] += len + e->pend_len[i];
                e->pend_len[i] = 0;
                return;
        }
        if (e->dropped[0] || e->dropped[1])
                stream_report_dropped(e);
        size_t n = e->pend_len[i] + len;
        uint8_t *tmp = malloc(n);
        if (!tmp)
                return;
        memcpy(tmp, e->pend[i], e->pend_len[i]);
        memcpy(tmp + e->pend_len[i], data, len);
        e->pend_len[i] = 0;
        bool tail;
        size_t ok = utf8_valid_prefix(tmp, n, &tail);
        if (ok == n) {
                stream_data(e, i, tmp, n, false);
        } else if (tail && n - ok < 4) {
                /* A character split by the chunk boundary: send what is whole, keep the rest. */
                stream_data(e, i, tmp, ok, false);
                memcpy(e->pend[i], tmp + ok, n - ok);
                e->pend_len[i] = n - ok;
        } else {
                stream_data(e, i, tmp, n, true);
        }
        free(tmp);
}

static void stream_on_drain(struct http_req *req)
{
        struct reqctx *c = req->user;
        struct exec_op *e = c ? c->op : NULL;
        if (!e || e->mode != EXEC_STREAM || e->ended)
                return;
        e->queued = 0;
        stream_report_dropped(e);
}

/* Flush what is pending, write the closing events and end the answer. */
static void stream_finish(struct exec_op *e, json_t *last)
{
        struct reqctx *c = e->c;
        for (int i = 0; i < 2; i++) {
                if (e->pend_len[i])
                        stream_data(e, i, e->pend[i], e->pend_len[i], true);
                e->pend_len[i] = 0;
        }
        stream_report_dropped(e);
        if (last)
                stream_event(e, last);
        stream_event(e, json_pack("{s:s, s:f}", "type", "done", "duration_ms",
                                  util_ms_since(e->started_ns)));
        e->ended = true;
        e->job_live = false;
        http_respond_end(c->req);
        reply_done(c, 200);
}

/* ---- results ---- */

static void exec_output(void *ud, int stream, const uint8_t *data, size_t len)
{
        struct exec_op *e = ud;
        int i = stream == 2 ? 1 : 0;
        if (e->mode == EXEC_STREAM) {
                stream_output(e, i, data, len);
                return;
        }
        buf_append(e, &e->out[i], data, len);
        if (e->mode == EXEC_RUNCODE)
                buf_append(e, &e->out[2], data, len);
}

static char *sanitized(struct exec_buf *b, size_t *ret_len)
{
        return utf8_sanitize(b->p ? b->p : (const uint8_t *)"", b->len, ret_len);
}

static void exec_reply(struct exec_op *e, int exit_code, bool timed_out)
{
        struct reqctx *c = e->c;
        size_t n0, n1, n2 = 0;
        e->job_live = false;
        char *so = sanitized(&e->out[0], &n0);
        char *se = sanitized(&e->out[1], &n1);
        char *sc = e->mode == EXEC_RUNCODE ? sanitized(&e->out[2], &n2) : NULL;
        if (!so || !se || (e->mode == EXEC_RUNCODE && !sc)) {
                free(so);
                free(se);
                free(sc);
                reply_errno(c, -ENOMEM, "execute");
                return;
        }
        json_t *o = json_pack("{s:i, s:s%, s:s%, s:f, s:b, s:b}", "exit_code", exit_code, "stdout",
                              so, n0, "stderr", se, n1, "duration_ms",
                              util_ms_since(e->started_ns), "truncated", e->truncated,
                              "timed_out", timed_out);
        if (o && e->mode == EXEC_RUNCODE) {
                json_object_set_new(o, "output", json_stringn(sc, n2));
                json_object_set_new(o, "language", json_string(e->language));
        }
        free(so);
        free(se);
        free(sc);
        reply_json(c, 200, o);
}

static void exec_exit(void *ud, int exit_code, int term_signal, bool timed_out)
{
        struct exec_op *e = ud;
        int code = timed_out ? 124 : exit_code;
        if (e->mode == EXEC_STREAM) {
                stream_finish(e, json_pack("{s:s, s:i, s:b}", "type", "exit", "code", code,
                                           "timed_out", timed_out));
                return;
        }
        exec_reply(e, code, timed_out);
}

static void exec_error(void *ud, int err, const char *msg)
{
        struct exec_op *e = ud;
        char buf[600];
        e->job_live = false;
        if (err == ECONNRESET) {
                if (e->mode == EXEC_STREAM) {
                        stream_finish(e, json_pack("{s:s, s:s}", "type", "error", "message",
                                                   "the sandbox stopped while the command was "
                                                   "running"));
                        return;
                }
                reply_error(e->c, 409, "conflict",
                            "the sandbox stopped while the command was running");
                return;
        }
        /* The command could not start: answer like a shell would. */
        int code = err == ENOENT ? 127 : 126;
        snprintf(buf, sizeof(buf), "warren: %s\n", msg && *msg ? msg : strerror(err));
        exec_output(e, 2, (const uint8_t *)buf, strlen(buf));
        exec_exit(e, code, 0, false);
}

static const struct agent_job_ops exec_ops = {
        .output = exec_output,
        .exit = exec_exit,
        .error = exec_error,
};

static void exec_abort(struct http_req *req)
{
        struct reqctx *c = req->user;
        struct exec_op *e = c ? c->op : NULL;
        /* The client went away: the command dies with its request (documented). */
        if (!e || !e->job_live || !e->agent)
                return;
        agent_signal(e->agent, e->job, SIGKILL);
        agent_job_forget(e->agent, e->job);
        e->job_live = false;
        if (e->mode == EXEC_STREAM) {
                e->ended = true;
                http_respond_end(c->req);
                reply_done(c, 499);
        } else {
                reply_error(c, 499, "client_closed", "client closed the request");
        }
}

/* The request's API key or session token was revoked: the command dies and the request
 * ends, as when its client leaves (a stream ends with an error event, otherwise 401). */
static void exec_revoke(void *ud)
{
        struct exec_op *e = ud;

        if (!e->job_live || !e->agent)
                return;
        agent_signal(e->agent, e->job, SIGKILL);
        agent_job_forget(e->agent, e->job);
        e->job_live = false;
        if (e->mode == EXEC_STREAM)
                stream_finish(e, json_pack("{s:s, s:s}", "type", "error", "message",
                                           "the request's credential was revoked"));
        else
                reply_error(e->c, 401, "unauthorized", "the request's credential was revoked");
}

/* Build argv from "command": a string runs through /bin/sh -c, an array is the argv. */
int exec_argv(struct reqctx *c, json_t *cmd, const char ***ret_argv, uint32_t *ret_argc)
{
        const char **argv;
        if (json_is_string(cmd)) {
                if (json_string_length(cmd) == 0 || json_string_length(cmd) > EXEC_MAX_ARG ||
                    strlen(json_string_value(cmd)) != json_string_length(cmd)) {
                        reply_error(c, 400, "invalid_request",
                                    "command: must be a non-empty string without NUL");
                        return -EINVAL;
                }
                argv = calloc(3, sizeof(*argv));
                if (!argv)
                        return -ENOMEM;
                argv[0] = "/bin/sh";
                argv[1] = "-c";
                argv[2] = json_string_value(cmd);
                *ret_argv = argv;
                *ret_argc = 3;
                return 0;
        }
        if (!json_is_array(cmd) || json_array_size(cmd) == 0 ||
            json_array_size(cmd) > PROTO_MAX_ARGS) {
                reply_error(c, 400, "invalid_request",
                            "command: expected a string or a non-empty array of strings");
                return -EINVAL;
        }
        size_t n = json_array_size(cmd);
        argv = calloc(n + 1, sizeof(*argv));
        if (!argv)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *a = json_array_get(cmd, i);
                if (!json_is_string(a) || json_string_length(a) > EXEC_MAX_ARG ||
                    strlen(json_string_value(a)) != json_string_length(a) ||
                    (i == 0 && json_string_length(a) == 0)) {
                        free(argv);
                        reply_error(c, 400, "invalid_request",
                                    "command[%zu]: expected a string without NUL", i);
                        return -EINVAL;
                }
                argv[i] = json_string_value(a);
        }
        *ret_argv = argv;
        *ret_argc = (uint32_t)n;
        return 0;
}

/* The environment of a command: defaults, then the sandbox's env, then the request's, then
 * the organisation's secrets chosen for the sandbox under names not taken yet (secrets.h).
 * *ret_storage holds the NAME=value strings (secrets in plaintext): the caller wipes it with
 * secretbox_wipe(storage, *ret_storage_len) before freeing it. */
int exec_env(struct app *app, struct sandbox *sb, json_t *req_env, bool root,
                    const char ***ret_env, uint32_t *ret_envc, char **ret_storage,
                    size_t *ret_storage_len)
{
        json_t *all = json_object();
        char hostname[STORE_ID_MAX + 16];
        const char *k;
        json_t *v;

        json_object_set_new(all, "PATH", json_string("/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                                      "/usr/bin:/sbin:/bin"));
        json_object_set_new(all, "HOME", json_string(root ? "/root" : "/home/user"));
        json_object_set_new(all, "USER", json_string(root ? "root" : "user"));
        json_object_set_new(all, "LOGNAME", json_string(root ? "root" : "user"));
        json_object_set_new(all, "SHELL", json_string("/bin/bash"));
        json_object_set_new(all, "LANG", json_string("C.UTF-8"));
        json_object_set_new(all, "TERM", json_string("xterm-256color"));
        snprintf(hostname, sizeof(hostname), "%s", sb->id);
        json_object_set_new(all, "HOSTNAME", json_string(hostname));
        if (sb->env)
                json_object_update(all, sb->env);
        if (req_env)
                json_object_update(all, req_env);
        int r = secrets_add_env(app, sb->org_id, sb->id, all);
        if (r < 0) {
                json_decref(all);
                return r;
        }

        size_t n = json_object_size(all), total = 0;
        json_object_foreach(all, k, v) total += strlen(k) + json_string_length(v) + 2;
        char *storage = malloc(total ? total : 1);
        const char **env = calloc(n + 1, sizeof(*env));
        if (!storage || !env) {
                free(storage);
                free(env);
                json_decref(all);
                return -ENOMEM;
        }
        size_t off = 0, i = 0;
        json_object_foreach(all, k, v)
        {
                env[i++] = storage + off;
                off += (size_t)sprintf(storage + off, "%s=%s", k, json_string_value(v)) + 1;
        }
        json_decref(all);
        *ret_env = env;
        *ret_envc = (uint32_t)n;
        *ret_storage = storage;
        *ret_storage_len = total;
        return 0;
}


void env_storage_wipe(struct env_storage *es)
{
        secretbox_wipe(es->p, es->len);
        free(es->p);
}

int exec_params(struct reqctx *c, json_t *body, struct exec_params *p)
{
        const char *user = "user";
        json_t *v;

        p->cwd = "/workspace";
        p->timeout_ms = c->app->cfg.default_exec_timeout_ms;
        p->uid = RT_SANDBOX_UID;
        p->env = NULL;
        v = json_object_get(body, "working_dir");
        if (!v || json_is_null(v))
                v = json_object_get(body, "cwd"); /* the name /processes documents */
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || json_string_value(v)[0] != '/' ||
                    json_string_length(v) > 4096 ||
                    strlen(json_string_value(v)) != json_string_length(v)) {
                        reply_error(c, 400, "invalid_request",
                                    "working_dir: expected an absolute path");
                        return -EINVAL;
                }
                p->cwd = json_string_value(v);
        }
        v = json_object_get(body, "timeout");
        if (v && !json_is_null(v)) {
                if (!json_is_number(v) || json_number_value(v) <= 0 ||
                    json_number_value(v) > (double)EXEC_MAX_TIMEOUT_MS) {
                        reply_error(c, 400, "invalid_request",
                                    "timeout: expected milliseconds between 1 and %lld",
                                    EXEC_MAX_TIMEOUT_MS);
                        return -EINVAL;
                }
                p->timeout_ms = (int64_t)json_number_value(v);
                if (p->timeout_ms < 1)
                        p->timeout_ms = 1;
        }
        if (field_str(c, body, "user", &user) < 0)
                return -EINVAL;
        if (strcmp(user, "root") == 0) {
                p->uid = 0;
        } else if (strcmp(user, "user") != 0 && strcmp(user, "1001") != 0) {
                reply_error(c, 400, "invalid_request", "user: expected \"user\" or \"root\"");
                return -EINVAL;
        }
        v = json_object_get(body, "env");
        if (v && !json_is_null(v)) {
                if (validate_env(c, v, "env") < 0)
                        return -EINVAL;
                p->env = v;
        }
        return 0;
}

/* The running sandbox for an exec route with a ready agent; answers 404/409/503 itself. */
struct sandbox *exec_sandbox(struct reqctx *c, const char *id)
{
        struct store_sandbox rec = {};
        if (lookup_sandbox(c, id, &rec) < 0) {
                reply_not_found(c);
                return NULL;
        }
        store_sandbox_clear(&rec);
        struct sandbox *sb = mgr_find(c->app->mgr, id);
        if (!sb || sb->state != SB_RUNNING) {
                reply_error(c, 409, "conflict", "the sandbox is not running");
                return NULL;
        }
        if (!agent_ready(sb->agent)) {
                reply_error(c, 503, "unavailable", "the sandbox's agent is reconnecting; retry");
                return NULL;
        }
        return sb;
}

/* Start argv in sb; the answer follows the mode. Answers errors itself. */
static void exec_start(struct reqctx *c, struct sandbox *sb, const char **argv, uint32_t argc,
                       const struct exec_params *p, enum exec_mode mode, const char *language)
{
        struct proto_spawn sp = {
                .uid = p->uid,
                .gid = p->uid,
                .timeout_ms = (uint32_t)p->timeout_ms,
                .nofile = c->app->cfg.nofile_limit,
                .cwd = p->cwd,
                .argc = argc,
                .argv = argv,
        };
        cleanup_free const char **env = NULL;
        cleanup_env_storage struct env_storage es = {};
        int r = exec_env(c->app, sb, p->env, p->uid == 0, &env, &sp.envc, &es.p, &es.len);
        if (r < 0) {
                secrets_reply_error(c, r, "execute");
                return;
        }
        sp.env = env;
        struct exec_op *e = calloc(1, sizeof(*e));
        if (!e) {
                reply_errno(c, -ENOMEM, "execute");
                return;
        }
        e->c = c;
        e->agent = sb->agent;
        e->cap = c->app->cfg.max_exec_output;
        e->started_ns = util_now_ns();
        e->mode = mode;
        e->language = language;
        c->op = e;
        c->op_free = exec_op_free;
        r = live_add(c->app, c->key_id, exec_revoke, e, &e->live);
        if (r < 0) {
                reply_errno(c, r, "execute");
                return;
        }
        r = agent_spawn(sb->agent, &sp, &exec_ops, e, &e->job);
        if (r < 0) {
                reply_errno(c, r == -E2BIG ? -E2BIG : -ENOTCONN, "execute");
                return;
        }
        e->job_live = true;
        c->req->on_abort = exec_abort;
        if (mode == EXEC_STREAM) {
                http_req_set_on_drain(c->req, stream_on_drain);
                http_respond_start(c->req, 200, "application/x-ndjson", -1);
        }
}

/* The running sandbox and the JSON body of an exec route; NULL after answering 4xx/5xx. */
static json_t *exec_begin(struct reqctx *c, const char *id, struct sandbox **ret_sb)
{
        struct sandbox *sb = exec_sandbox(c, id);
        if (!sb)
                return NULL;
        json_t *body = parse_body(c, true);
        if (body)
                *ret_sb = sb;
        return body;
}

void exec_handle(struct reqctx *c, const char *id)
{
        cleanup_free const char **argv = NULL;
        struct exec_params p;
        struct sandbox *sb;
        uint32_t argc;
        json_t *v;

        json_t *body = exec_begin(c, id, &sb);
        if (!body)
                return;
        v = json_object_get(body, "command");
        if (!v) {
                reply_error(c, 400, "invalid_request", "command: required");
                goto out;
        }
        int r = exec_argv(c, v, &argv, &argc);
        if (r < 0) {
                if (r != -EINVAL)
                        reply_errno(c, r, "execute");
                goto out;
        }
        v = json_object_get(body, "stream");
        if (v && !json_is_boolean(v) && !json_is_null(v)) {
                reply_error(c, 400, "invalid_request", "stream: expected true or false");
                goto out;
        }
        if (exec_params(c, body, &p) < 0)
                goto out;
        exec_start(c, sb, argv, argc, &p, json_is_true(v) ? EXEC_STREAM : EXEC_JSON, NULL);
out:
        json_decref(body);
}

/* ---- run-code ---- */

/* Count how many of the markers occur in code. */
static int markers(const char *code, const char *const *list)
{
        int n = 0;
        for (; *list; list++)
                if (strstr(code, *list))
                        n++;
        return n;
}

/* Guess python or node from the code (the ComputeSDK's runCode auto-detection); a shebang
 * decides when there is one. Python when nothing points to JavaScript. */
const char *exec_detect_language(const char *code)
{
        static const char *const js[] = { "console.log", "console.error", "require(",
                                           "=>", "const ", "let ", "function ", "process.",
                                           "await ", "module.exports", "===", NULL };
        static const char *const py[] = { "print(", "def ", "import ", "elif ", "self.",
                                          "None", "True", "False", "lambda ", "__name__", NULL };
        while (*code == ' ' || *code == '\n' || *code == '\t' || *code == '\r')
                code++;
        if (strncmp(code, "#!", 2) == 0) {
                const char *eol = strchr(code, '\n');
                size_t n = eol ? (size_t)(eol - code) : strlen(code);
                char line[256];
                snprintf(line, sizeof(line), "%.*s", (int)(n < 255 ? n : 255), code);
                if (strstr(line, "python"))
                        return "python";
                if (strstr(line, "node"))
                        return "node";
                if (strstr(line, "bash") || strstr(line, "/sh"))
                        return "bash";
                if (strstr(line, "deno"))
                        return "deno";
                if (strstr(line, "bun"))
                        return "bun";
        }
        int j = markers(code, js), p = markers(code, py);
        /* "print(" inside "console.log(...)" code is unlikely; ties go to python. */
        return j > p ? "node" : "python";
}

void exec_run_code(struct reqctx *c, const char *id)
{
        static const struct {
                const char *name, *canon;
        } aliases[] = {
                { "python", "python" }, { "python3", "python" }, { "py", "python" },
                { "node", "node" },     { "nodejs", "node" },    { "javascript", "node" },
                { "js", "node" },       { "bash", "bash" },      { "sh", "bash" },
                { "shell", "bash" },    { "deno", "deno" },      { "bun", "bun" },
        };
        const char *code = NULL, *language = NULL, *argv[4] = { 0 };
        struct exec_params p;
        struct sandbox *sb;

        json_t *body = exec_begin(c, id, &sb);
        if (!body)
                return;
        if (field_str(c, body, "code", &code) < 0 || field_str(c, body, "language", &language) < 0)
                goto out;
        if (!code) {
                reply_error(c, 400, "invalid_request", "code: required");
                goto out;
        }
        json_t *cv = json_object_get(body, "code");
        if (json_string_length(cv) > EXEC_MAX_CODE) {
                reply_error(c, 413, "payload_too_large", "code: longer than %d bytes",
                            EXEC_MAX_CODE);
                goto out;
        }
        if (strlen(code) != json_string_length(cv)) {
                reply_error(c, 400, "invalid_request", "code: contains NUL");
                goto out;
        }
        const char *lang = NULL;
        if (language) {
                for (size_t i = 0; i < ARRAY_SIZE(aliases) && !lang; i++)
                        if (strcmp(language, aliases[i].name) == 0)
                                lang = aliases[i].canon;
                if (!lang) {
                        reply_error(c, 400, "invalid_request",
                                    "language: \"%.32s\" is not one of python, node, bash, deno, "
                                    "bun",
                                    language);
                        goto out;
                }
        } else {
                lang = exec_detect_language(code);
        }
        if (exec_params(c, body, &p) < 0)
                goto out;
        if (!strcmp(lang, "python")) {
                argv[0] = "python3", argv[1] = "-c";
        } else if (!strcmp(lang, "node")) {
                argv[0] = "node", argv[1] = "-e";
        } else if (!strcmp(lang, "bash")) {
                argv[0] = "bash", argv[1] = "-c";
        } else if (!strcmp(lang, "deno")) {
                argv[0] = "deno", argv[1] = "eval";
        } else {
                argv[0] = "bun", argv[1] = "-e";
        }
        argv[2] = code;
        exec_start(c, sb, argv, 3, &p, EXEC_RUNCODE, lang);
out:
        json_decref(body);
}
