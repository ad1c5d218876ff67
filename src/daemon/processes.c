/* processes.c - the background job routes under /api/v1/sandbox/:id:
 *   POST   /processes                      start a job (command, env, cwd, timeout, pty,
 *                                          stdin, max_run_after_disconnect) -> 201 job
 *   GET    /processes                      the sandbox's jobs, newest first
 *   POST   /terminals                      start an interactive shell on a PTY -> 201 job
 *   GET    /processes/:ref                 one job (ref: "job_N", or a pid)
 *   DELETE /processes/:ref                 kill it (SIGKILL to its process group)
 *   GET    /processes/:ref/output          ?since=N&limit=N&wait=true&timeout=S
 *   POST   /processes/:ref/stdin           raw bytes, or JSON {data, encoding, eof}
 *   POST   /processes/:ref/signal          {"signal": "TERM" | "SIGTERM" | 15}
 *   POST   /processes/:ref/resize          {"cols", "rows"} (PTY jobs)
 *   GET    /processes/:ref/attach          WebSocket (attach.c)
 * The job model itself (logs, reattach, limits) is jobs.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jobs.h"
#include "live.h"
#include "manager.h"
#include "routes.h"
#include "secrets.h"
#include "runtime.h"
#include "util.h"

/* Largest output chunk one read returns, its default, and the longest long poll. */
#define OUTPUT_MAX_LIMIT (4u << 20)
#define OUTPUT_DEFAULT_LIMIT (1u << 20)
#define OUTPUT_MAX_WAIT_S 120
#define OUTPUT_DEFAULT_WAIT_S 30
/* Largest stdin write in one request. */
#define STDIN_MAX (1u << 20)
/* Longest max_run_after_disconnect (a week). */
#define MAX_RUN_AFTER_DISCONNECT (7 * 86400)
/* Jobs returned by one list. */
#define LIST_MAX 1000

/* ---- references ---- */

/* Parse "job_N" (an id) or "N" (a pid). */
static int parse_ref(const char *ref, int64_t *ret_id, int32_t *ret_pid)
{
        char *end;
        bool is_id = strncmp(ref, "job_", 4) == 0;
        const char *num = is_id ? ref + 4 : ref;

        if (*num < '0' || *num > '9')
                return -ENOENT;
        errno = 0;
        long long v = strtoll(num, &end, 10);
        if (errno || *end || v <= 0 || v > INT32_MAX)
                return -ENOENT;
        *ret_id = is_id ? v : 0;
        *ret_pid = is_id ? 0 : (int32_t)v;
        return 0;
}

/* The record of a job of sandbox id by reference; answers 404 itself. */
static int lookup_job(struct reqctx *c, const char *id, const char *ref, struct store_job *ret)
{
        int64_t jid;
        int32_t pid;
        int r = parse_ref(ref, &jid, &pid);

        if (r == 0)
                r = jid ? store_job_get(c->app->store, id, jid, ret)
                        : store_job_by_pid(c->app->store, id, pid, ret);
        if (r < 0) {
                if (r == -ENOENT)
                        reply_error(c, 404, "not_found", "no job %s in this sandbox", ref);
                else
                        reply_errno(c, r, "job lookup");
                return r;
        }
        return 0;
}

/* ---- start ---- */

static void start_cb(void *ud, int err, const char *msg, const struct store_job *rec)
{
        struct reqctx *c = ud;

        if (err < 0) {
                if (err == -ECONNRESET)
                        reply_error(c, 503, "unavailable", "%s; the job may still start: list "
                                    "the sandbox's processes", msg ? msg : "agent lost");
                else
                        reply_errno(c, err, "start job");
                return;
        }
        reply_json(c, 201, jobs_record_json(rec));
}

/* Read an integer field within [lo, hi]; def when absent. Answers 400 itself. */
static int int_field(struct reqctx *c, json_t *body, const char *name, int64_t lo, int64_t hi,
                     int64_t def, int64_t *ret)
{
        json_t *v = json_object_get(body, name);

        if (!v || json_is_null(v)) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
                reply_error(c, 400, "invalid_request", "%s: expected an integer from %lld to %lld",
                            name, (long long)lo, (long long)hi);
                return -EINVAL;
        }
        *ret = json_integer_value(v);
        return 0;
}

/* "pty": true, or {"cols", "rows"}. */
static int pty_field(struct reqctx *c, json_t *body, struct job_spec *spec)
{
        json_t *v = json_object_get(body, "pty");
        int64_t cols, rows;

        if (!v || json_is_null(v) || json_is_false(v))
                return 0;
        spec->pty = true;
        if (json_is_true(v))
                return 0;
        if (!json_is_object(v)) {
                reply_error(c, 400, "invalid_request",
                            "pty: expected true or {\"cols\": N, \"rows\": N}");
                return -EINVAL;
        }
        if (int_field(c, v, "cols", 1, 1000, 80, &cols) < 0 ||
            int_field(c, v, "rows", 1, 1000, 24, &rows) < 0)
                return -EINVAL;
        spec->cols = (uint16_t)cols;
        spec->rows = (uint16_t)rows;
        return 0;
}

/* POST /processes (terminal false) and POST /terminals (terminal true). */
static void handle_start(struct reqctx *c, const char *id, bool terminal)
{
        cleanup_free const char **argv = NULL;
        cleanup_free const char **env = NULL;
        cleanup_env_storage struct env_storage es = {};
        struct job_spec spec = { .cols = 80, .rows = 24 };
        struct exec_params p;
        json_t *cmd, *v;
        int64_t n;
        int r;

        struct sandbox *sb = exec_sandbox(c, id);
        if (!sb)
                return;
        /* A terminal's body is optional: none is an empty object. NULL: a body that is not
         * a JSON object was refused, and the answer freed c. */
        json_t *body = parse_body(c, !terminal);
        if (!body)
                return;
        if (terminal) {
                cmd = json_object_get(body, "shell");
                if (!cmd || json_is_null(cmd))
                        cmd = json_object_get(body, "command");
                if (!cmd || json_is_null(cmd)) {
                        json_object_set_new(body, "shell", json_pack("[s,s]", "bash", "-l"));
                        cmd = json_object_get(body, "shell");
                }
        } else {
                cmd = json_object_get(body, "command");
                if (!cmd) {
                        reply_error(c, 400, "invalid_request", "command: required");
                        goto out;
                }
        }
        r = exec_argv(c, cmd, &argv, &spec.argc);
        if (r < 0) {
                if (r != -EINVAL)
                        reply_errno(c, r, "start job");
                goto out;
        }
        if (exec_params(c, body, &p) < 0)
                goto out;
        v = json_object_get(body, "timeout");
        if (!v || json_is_null(v))
                p.timeout_ms = 0; /* background jobs run until they end */
        if (terminal) {
                int64_t cols, rows;
                if (int_field(c, body, "cols", 1, 1000, 80, &cols) < 0 ||
                    int_field(c, body, "rows", 1, 1000, 24, &rows) < 0)
                        goto out;
                spec.pty = true;
                spec.cols = (uint16_t)cols;
                spec.rows = (uint16_t)rows;
        } else if (pty_field(c, body, &spec) < 0) {
                goto out;
        }
        v = json_object_get(body, "stdin");
        if (v && !json_is_boolean(v) && !json_is_null(v)) {
                reply_error(c, 400, "invalid_request", "stdin: expected true or false");
                goto out;
        }
        spec.stdin_open = json_is_true(v) || spec.pty;
        if (int_field(c, body, "max_run_after_disconnect", 0, MAX_RUN_AFTER_DISCONNECT, 0, &n) <
            0)
                goto out;
        spec.max_run_after_disconnect = n;
        r = exec_env(c->app, sb, p.env, p.uid == 0, &env, &spec.envc, &es.p, &es.len);
        if (r < 0) {
                secrets_reply_error(c, r, "start job");
                goto out;
        }
        spec.argv = argv;
        spec.env = env;
        spec.cwd = p.cwd;
        spec.uid = p.uid;
        spec.timeout_ms = (uint32_t)p.timeout_ms;
        spec.command = cmd;
        r = jobs_start(c->app, sb, &spec, start_cb, c);
        if (r == -EUSERS)
                reply_error(c, 429, "too_many_jobs",
                            "this sandbox already runs %lld background jobs "
                            "(MAX_JOBS_PER_SANDBOX)",
                            (long long)c->app->cfg.max_jobs_per_sandbox);
        else if (r == -EMLINK)
                reply_error(c, 429, "too_many_terminals",
                            "this sandbox already has %lld terminals (MAX_PTYS_PER_SANDBOX)",
                            (long long)c->app->cfg.max_ptys_per_sandbox);
        else if (r == -ENOTCONN)
                reply_error(c, 503, "unavailable", "the sandbox's agent is reconnecting; retry");
        else if (r < 0)
                reply_errno(c, r, "start job");
out:
        json_decref(body);
}

/* ---- list and get ---- */

static int list_cb(const struct store_job *j, void *ud)
{
        json_array_append_new(ud, jobs_record_json(j));
        return 0;
}

static void handle_list(struct reqctx *c, const char *id)
{
        int64_t limit = 100;
        cleanup_free char *q = NULL;

        if (http_req_query(c->req, "limit", &q) == 0) {
                char *end;
                limit = strtoll(q, &end, 10);
                if (*end || limit < 1 || limit > LIST_MAX) {
                        reply_error(c, 400, "invalid_request", "limit: expected 1 to %d",
                                    LIST_MAX);
                        return;
                }
        }
        json_t *arr = json_array();
        int r = store_job_list(c->app->store, id, limit, list_cb, arr);
        if (r < 0) {
                json_decref(arr);
                reply_errno(c, r, "list jobs");
                return;
        }
        reply_json(c, 200, json_pack("{s:o}", "processes", arr));
}

/* ---- output ---- */

/* A read of a job's output that may wait for more (wait=true). */
struct output_op {
        struct reqctx *c;
        struct proc *p; /* while waiting */
        struct proc_client cl;
        struct store_job rec;
        uint64_t since;
        size_t limit;
        uv_timer_t *timer;
        struct live *live; /* while waiting: revoking the credential ends the wait */
};

static void timer_free_cb(uv_handle_t *h)
{
        free(h);
}

static void output_op_free(void *ud)
{
        struct output_op *o = ud;

        if (o->p)
                jobs_remove_client(o->c->app, o->p, &o->cl);
        live_remove(o->c->app, o->live);
        if (o->timer)
                uv_close((uv_handle_t *)o->timer, timer_free_cb);
        store_job_clear(&o->rec);
        free(o);
}

/* Answer with what the log holds from o->since. Returns 0 when answered, 1 when there is
 * nothing yet and the job still runs (the caller may wait). */
static int output_answer(struct output_op *o, struct proc *p, bool may_wait)
{
        struct reqctx *c = o->c;
        struct log_range rg;
        uint64_t offset;
        size_t len;
        int r = jobs_range(c->app, p, &o->rec, &rg);

        if (r < 0) {
                reply_errno(c, r, "read job output");
                return 0;
        }
        if (may_wait && !rg.ended && o->since >= rg.end)
                return 1;
        cleanup_free uint8_t *buf = malloc(o->limit ? o->limit : 1);
        if (!buf) {
                reply_errno(c, -ENOMEM, "read job output");
                return 0;
        }
        r = jobs_read(c->app, p, &o->rec, o->since, buf, o->limit, &offset, &len);
        if (r < 0) {
                reply_errno(c, r, "read job output");
                return 0;
        }
        /* Text when the bytes are UTF-8 (a character cut at the end waits for the next
         * read), base64 otherwise. */
        bool tail = false;
        size_t valid = utf8_valid_prefix(buf, len, &tail);
        bool text = valid == len || (tail && valid > 0 && !rg.ended && offset + len == rg.end);
        json_t *data;
        if (text) {
                len = valid;
                data = json_stringn((const char *)buf, len);
        } else {
                cleanup_free char *enc = malloc(b64_encoded_size(len));
                data = enc ? (b64_encode(buf, len, enc), json_string(enc)) : NULL;
        }
        if (!data) {
                reply_errno(c, -ENOMEM, "read job output");
                return 0;
        }
        json_t *st = p ? jobs_proc_json(c->app, p) : jobs_record_json(&o->rec);
        json_t *ans = json_pack("{s:I, s:I, s:o, s:s, s:I, s:b, s:O, s:O}", "offset",
                                (json_int_t)offset, "next", (json_int_t)(offset + len), "data",
                                data, "encoding", text ? "utf8" : "base64", "dropped",
                                (json_int_t)(offset > o->since ? offset - o->since : 0), "eof",
                                rg.ended && offset + len >= rg.end,
                                "state", st ? json_object_get(st, "state") : json_null(),
                                "exit_code", st ? json_object_get(st, "exit_code") : json_null());
        json_decref(st);
        reply_json(c, 200, ans);
        return 0;
}

/* New output or the job's end while a long poll waits. */
static void output_wake(struct proc_client *cl)
{
        struct output_op *o = cl->ud;
        struct proc *p = o->p;

        if (output_answer(o, p, true) == 1)
                return;
        /* Answered: output_op_free (run by the reply) removed the client. */
}

static void output_timeout(uv_timer_t *t)
{
        struct output_op *o = t->data;

        output_answer(o, o->p, false);
}

/* The credential of a waiting long poll was revoked: it gets no more output. */
static void output_revoke(void *ud)
{
        struct output_op *o = ud;

        reply_error(o->c, 401, "unauthorized", "the request's credential was revoked");
}

static void output_abort(struct http_req *req)
{
        struct reqctx *c = req->user;

        if (c)
                reply_error(c, 499, "client_closed", "client closed the request");
}

static void handle_output(struct reqctx *c, const char *id, const char *ref)
{
        cleanup_free char *since_s = NULL, *limit_s = NULL, *wait_s = NULL, *timeout_s = NULL;
        int64_t since = 0, limit = OUTPUT_DEFAULT_LIMIT, timeout = OUTPUT_DEFAULT_WAIT_S;
        char *end;

        if (http_req_query(c->req, "since", &since_s) == 0) {
                since = strtoll(since_s, &end, 10);
                if (*end || !*since_s || since < 0) {
                        reply_error(c, 400, "invalid_request", "since: expected an offset >= 0");
                        return;
                }
        }
        if (http_req_query(c->req, "limit", &limit_s) == 0) {
                limit = strtoll(limit_s, &end, 10);
                if (*end || limit < 1 || limit > OUTPUT_MAX_LIMIT) {
                        reply_error(c, 400, "invalid_request", "limit: expected 1 to %u",
                                    OUTPUT_MAX_LIMIT);
                        return;
                }
        }
        bool wait = http_req_query(c->req, "wait", &wait_s) == 0 &&
                    (strcmp(wait_s, "true") == 0 || strcmp(wait_s, "1") == 0);
        if (http_req_query(c->req, "timeout", &timeout_s) == 0) {
                timeout = strtoll(timeout_s, &end, 10);
                if (*end || timeout < 0 || timeout > OUTPUT_MAX_WAIT_S) {
                        reply_error(c, 400, "invalid_request", "timeout: expected 0 to %d seconds",
                                    OUTPUT_MAX_WAIT_S);
                        return;
                }
        }
        struct output_op *o = calloc(1, sizeof(*o));
        if (!o) {
                reply_errno(c, -ENOMEM, "read job output");
                return;
        }
        o->c = c;
        o->since = (uint64_t)since;
        o->limit = (size_t)limit;
        c->op = o;
        c->op_free = output_op_free;
        if (lookup_job(c, id, ref, &o->rec) < 0)
                return;
        struct proc *p = jobs_load(c->app, &o->rec);
        if (p)
                jobs_note_read(p); /* a read counts for max_run_after_disconnect */
        if (output_answer(o, p, wait && timeout > 0 && p && !jobs_proc_ended(p)) == 0)
                return;
        /* Nothing yet: wait for output, the end, the timeout, or the credential's
         * revocation (live.h: a long poll outlives its authentication). */
        o->timer = malloc(sizeof(*o->timer));
        if (o->timer && live_add(c->app, c->key_id, output_revoke, o, &o->live) < 0) {
                free(o->timer);
                o->timer = NULL;
        }
        if (!o->timer) {
                output_answer(o, p, false);
                return;
        }
        uv_timer_init(c->app->loop, o->timer);
        o->timer->data = o;
        o->cl.wake = output_wake;
        o->cl.ud = o;
        jobs_add_client(p, &o->cl, false);
        o->p = p;
        c->req->on_abort = output_abort;
        uv_timer_start(o->timer, output_timeout, (uint64_t)timeout * 1000, 0);
}

/* ---- stdin, signal, resize, kill ---- */

/* The live job for an operation; answers 409 when it has ended or is not held. */
static struct proc *live_job(struct reqctx *c, const char *id, const struct store_job *rec)
{
        struct proc *p = jobs_load(c->app, rec);

        if (!p || jobs_proc_ended(p) || strcmp(rec->state, "running") != 0) {
                reply_error(c, 409, "conflict", "job_%lld is not running (%s)",
                            (long long)rec->id, rec->state);
                return NULL;
        }
        return p;
}

/* Answer a live operation's result: 200 with the job, or the error. */
static void op_reply(struct reqctx *c, struct proc *p, int r, const char *what)
{
        switch (r) {
        case 0:
                reply_json(c, 200, jobs_proc_json(c->app, p));
                return;
        case -ESRCH:
                reply_error(c, 409, "conflict", "the job has ended");
                return;
        case -ENOTCONN:
                reply_error(c, 503, "unavailable", "the sandbox's agent is reconnecting; retry");
                return;
        case -EBADF:
                reply_error(c, 409, "conflict",
                            "the job's stdin is not open (start it with \"stdin\": true)");
                return;
        case -ENOTTY:
                reply_error(c, 409, "conflict", "the job has no terminal (start it with \"pty\")");
                return;
        case -EAGAIN:
                reply_error(c, 429, "stdin_backlog",
                            "too much stdin is queued for the sandbox; retry later");
                return;
        default:
                reply_errno(c, r, what);
        }
}

/* Parse a signal: a number 1-64, or a name ("TERM" or "SIGTERM"). -EINVAL if unknown. */
static int parse_signal(json_t *v)
{
        if (json_is_integer(v)) {
                json_int_t n = json_integer_value(v);
                return n >= 1 && n <= 64 ? (int)n : -EINVAL;
        }
        return json_is_string(v) ? jobs_parse_signal(json_string_value(v)) : -EINVAL;
}

static void handle_signal(struct reqctx *c, struct proc *p)
{
        json_t *body = parse_body(c, true);
        if (!body)
                return;
        int sig = parse_signal(json_object_get(body, "signal"));
        json_decref(body);
        if (sig < 0) {
                reply_error(c, 400, "invalid_request",
                            "signal: expected a number 1-64 or a name such as \"TERM\"");
                return;
        }
        op_reply(c, p, jobs_signal(c->app, p, sig), "signal");
}

static void handle_resize(struct reqctx *c, struct proc *p)
{
        int64_t cols, rows;
        json_t *body = parse_body(c, true);

        if (!body)
                return;
        if (!json_object_get(body, "cols") || !json_object_get(body, "rows")) {
                json_decref(body);
                reply_error(c, 400, "invalid_request", "cols and rows: required");
                return;
        }
        int r = int_field(c, body, "cols", 1, 1000, 80, &cols);
        if (r == 0)
                r = int_field(c, body, "rows", 1, 1000, 24, &rows);
        json_decref(body);
        if (r < 0)
                return;
        op_reply(c, p, jobs_resize(c->app, p, (uint16_t)cols, (uint16_t)rows), "resize");
}

/* Raw bytes (any content type but JSON; ?eof=true closes stdin after them), or JSON
 * {"data": "...", "encoding": "utf8"|"base64", "eof": bool}. */
static void handle_stdin(struct reqctx *c, struct proc *p)
{
        const char *ct = http_req_header(c->req, "content-type");
        cleanup_free uint8_t *decoded = NULL;
        const uint8_t *data = (const uint8_t *)c->req->body;
        size_t len = c->req->body_len;
        bool eof = false;

        if (len > STDIN_MAX) {
                reply_error(c, 413, "too_large", "at most %u bytes of stdin per request",
                            STDIN_MAX);
                return;
        }
        if (ct && strncmp(ct, "application/json", 16) == 0) {
                json_t *body = parse_body(c, true);
                if (!body)
                        return;
                json_t *d = json_object_get(body, "data");
                json_t *e = json_object_get(body, "encoding");
                json_t *f = json_object_get(body, "eof");
                const char *enc = json_is_string(e) ? json_string_value(e) : "utf8";
                if ((d && !json_is_string(d)) || (e && !json_is_string(e) && !json_is_null(e)) ||
                    (f && !json_is_boolean(f) && !json_is_null(f)) ||
                    (strcmp(enc, "utf8") != 0 && strcmp(enc, "base64") != 0)) {
                        json_decref(body);
                        reply_error(c, 400, "invalid_request",
                                    "expected {\"data\": string, \"encoding\": \"utf8\" or "
                                    "\"base64\", \"eof\": bool}");
                        return;
                }
                eof = json_is_true(f);
                const char *s = d ? json_string_value(d) : "";
                size_t n = d ? json_string_length(d) : 0;
                decoded = malloc(n + 3);
                if (!decoded) {
                        json_decref(body);
                        reply_errno(c, -ENOMEM, "stdin");
                        return;
                }
                if (strcmp(enc, "base64") == 0) {
                        if (b64_decode(s, n, decoded, &len) < 0) {
                                json_decref(body);
                                reply_error(c, 400, "invalid_request", "data: invalid base64");
                                return;
                        }
                } else {
                        memcpy(decoded, s, n);
                        len = n;
                }
                json_decref(body);
                data = decoded;
        } else {
                cleanup_free char *q = NULL;
                eof = http_req_query(c->req, "eof", &q) == 0 &&
                      (strcmp(q, "true") == 0 || strcmp(q, "1") == 0);
        }
        if (len == 0 && !eof) {
                reply_error(c, 400, "invalid_request", "no stdin bytes and no eof");
                return;
        }
        op_reply(c, p, jobs_stdin(c->app, p, data, len, eof), "stdin");
}

/* ---- dispatch ---- */

static void method_not_allowed(struct reqctx *c)
{
        reply_error(c, 405, "method_not_allowed", "method not allowed on %s", c->req->path);
}

void processes_route(struct reqctx *c, const char *id, const char *rest)
{
        struct store_sandbox sbrec = {};
        struct store_job rec = {};
        char ref[32];
        int m = c->req->method;

        if (lookup_sandbox(c, id, &sbrec) < 0) {
                reply_not_found(c);
                return;
        }
        store_sandbox_clear(&sbrec);
        if (strcmp(rest, "/terminals") == 0) {
                if (m != HTTP_M_POST)
                        return method_not_allowed(c);
                return handle_start(c, id, true);
        }
        rest += strlen("/processes");
        if (!*rest || strcmp(rest, "/") == 0) {
                if (m == HTTP_M_POST)
                        return handle_start(c, id, false);
                if (m == HTTP_M_GET)
                        return handle_list(c, id);
                return method_not_allowed(c);
        }
        rest++; /* past '/' */
        const char *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (n == 0 || n >= sizeof(ref)) {
                reply_error(c, 404, "not_found", "no such job");
                return;
        }
        memcpy(ref, rest, n);
        ref[n] = '\0';
        const char *op = slash ? slash : "";

        if (strcmp(op, "/output") == 0) {
                if (m != HTTP_M_GET)
                        return method_not_allowed(c);
                return handle_output(c, id, ref);
        }
        if (strcmp(op, "/attach") == 0) {
                if (m != HTTP_M_GET)
                        return method_not_allowed(c);
                if (lookup_job(c, id, ref, &rec) < 0)
                        return;
                attach_start(c, id, &rec);
                store_job_clear(&rec);
                return;
        }
        bool get = !*op && m == HTTP_M_GET, del = !*op && m == HTTP_M_DELETE;
        bool post = m == HTTP_M_POST && (strcmp(op, "/stdin") == 0 ||
                                         strcmp(op, "/signal") == 0 ||
                                         strcmp(op, "/resize") == 0);
        if (!get && !del && !post) {
                if (!*op || !strcmp(op, "/stdin") || !strcmp(op, "/signal") ||
                    !strcmp(op, "/resize"))
                        return method_not_allowed(c);
                reply_error(c, 404, "not_found", "no route for %s", c->req->path);
                return;
        }
        if (lookup_job(c, id, ref, &rec) < 0)
                return;
        if (get) {
                reply_json(c, 200, jobs_record_json(&rec));
                store_job_clear(&rec);
                return;
        }
        struct proc *p = live_job(c, id, &rec);
        store_job_clear(&rec);
        if (!p)
                return;
        if (del)
                op_reply(c, p, jobs_signal(c->app, p, SIGKILL), "kill");
        else if (strcmp(op, "/stdin") == 0)
                handle_stdin(c, p);
        else if (strcmp(op, "/signal") == 0)
                handle_signal(c, p);
        else
                handle_resize(c, p);
}
