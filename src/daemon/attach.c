/* attach.c - GET /api/v1/sandbox/:id/processes/:ref/attach?since=OFFSET: a WebSocket onto a
 * job. The job's log is replayed from OFFSET (default 0), then followed live.
 *
 * Server -> client:
 *   binary frames   output bytes, in log order, each byte exactly once
 *   text (JSON)     {"type":"attached","id","offset","state","pty"}  first; offset: where the
 *                                                                    binary data starts
 *                   {"type":"dropped","from":A,"to":B}   bytes [A,B) are no longer held
 *                   {"type":"exit","state","exit_code"}  after the last output; then the
 *                                                        server closes (1000)
 *                   {"type":"error","message"}           a control message was refused
 * Client -> server:
 *   binary frames   stdin bytes
 *   text (JSON)     {"type":"stdin","data","encoding"?:"base64"}, {"type":"eof"},
 *                   {"type":"resize","cols","rows"}, {"type":"signal","signal":"INT"|2}
 *
 * Stdin has backpressure: bytes the sandbox cannot take yet (more than 4 MiB queued towards
 * it) are parked and the client is not read until they went.
 *
 * Each attachment reads the log from its own cursor and sends only while the socket's queue
 * is short (ATTACH_QUEUE), so a slow client costs no memory: when it falls behind what the
 * log still holds, it gets "dropped" and continues at the oldest byte held.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jobs.h"
#include "live.h"
#include "routes.h"
#include "util.h"
#include "ws.h"

/* Bytes queued on the socket above which no more output is sent until it drains. */
#define ATTACH_QUEUE (1u << 20)
/* Output read from the log per message. */
#define ATTACH_CHUNK (64u * 1024)

struct attach {
        struct app *app;
        uint8_t *parked;    /* stdin the sandbox could not take yet (reading is paused) */
        size_t parked_len;
        bool parked_eof;
        uv_timer_t *retry;  /* retries the parked stdin while it waits */
        struct ws_conn *ws;
        struct proc *p; /* the live job, or NULL: an ended job replayed from its file */
        struct proc_client cl;
        struct store_job rec;
        uint64_t cursor;
        bool exit_sent;
        struct live *live;
        uint8_t buf[ATTACH_CHUNK];
};

/* Send a JSON control message (stolen). */
static void send_json(struct attach *a, json_t *msg)
{
        char *t = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

        json_decref(msg);
        if (t)
                ws_send(a->ws, false, t, strlen(t));
        free(t);
}

static void send_error(struct attach *a, const char *message)
{
        send_json(a, json_pack("{s:s, s:s}", "type", "error", "message", message));
}

/* Send what the log holds past the cursor while the socket takes it; after the last byte
 * of an ended job, say how it ended and close. */
static void pump(struct attach *a)
{
        struct log_range rg;

        if (a->exit_sent)
                return;
        while (ws_queued(a->ws) < ATTACH_QUEUE) {
                uint64_t off;
                size_t n;
                if (jobs_read(a->app, a->p, &a->rec, a->cursor, a->buf, sizeof(a->buf), &off,
                              &n) < 0)
                        break;
                if (off > a->cursor) {
                        send_json(a, json_pack("{s:s, s:I, s:I}", "type", "dropped", "from",
                                               (json_int_t)a->cursor, "to", (json_int_t)off));
                        a->cursor = off;
                }
                if (n == 0)
                        break;
                if (ws_send(a->ws, true, a->buf, n) < 0)
                        return; /* closing, or a full queue: on_drain resumes */
                a->cursor += n;
        }
        if (jobs_range(a->app, a->p, &a->rec, &rg) < 0 || !rg.ended || a->cursor < rg.end)
                return;
        json_t *st = a->p ? jobs_proc_json(a->app, a->p) : jobs_record_json(&a->rec);
        send_json(a, json_pack("{s:s, s:O, s:O}", "type", "exit", "state",
                               st ? json_object_get(st, "state") : json_null(), "exit_code",
                               st ? json_object_get(st, "exit_code") : json_null()));
        json_decref(st);
        a->exit_sent = true;
        ws_close(a->ws, 1000, "the job ended");
}

static void on_wake(struct proc_client *cl)
{
        pump(cl->ud);
}

static void on_drain(struct ws_conn *ws, void *ud)
{
        pump(ud);
}

/* Report a failed stdin write (not a backlog: that is parked). */
static void stdin_error(struct attach *a, int r)
{
        if (r == -EBADF)
                send_error(a, "the job's stdin is not open");
        else if (r == -ESRCH)
                send_error(a, "the job has ended");
        else if (r < 0)
                send_error(a, strerror(-r));
}

static void retry_free_cb(uv_handle_t *h)
{
        free(h);
}

/* The parked stdin may go now: write it and read from the client again. */
static void retry_fire(uv_timer_t *t)
{
        struct attach *a = t->data;
        int r = a->p ? jobs_stdin(a->app, a->p, a->parked, a->parked_len, a->parked_eof)
                     : -ESRCH;

        if (r == -EAGAIN)
                return; /* still backed up: the next tick tries again */
        uv_timer_stop(t);
        free(a->parked);
        a->parked = NULL;
        a->parked_len = 0;
        stdin_error(a, r);
        ws_resume(a->ws);
}

/* Write stdin to the job. When more than the agent's bound waits for the sandbox, the bytes
 * are parked and the client is not read until they went: stdin has backpressure end to end
 * (client -> socket -> here -> warren-init -> the job's pipe), and nothing is lost. */
static void stdin_write(struct attach *a, const void *data, size_t len, bool eof)
{
        int r = a->p ? jobs_stdin(a->app, a->p, data, len, eof) : -ESRCH;

        if (r != -EAGAIN) {
                stdin_error(a, r);
                return;
        }
        if (!a->retry) {
                a->retry = malloc(sizeof(*a->retry));
                if (!a->retry) {
                        send_error(a, "out of memory: stdin dropped");
                        return;
                }
                uv_timer_init(a->app->loop, a->retry);
                a->retry->data = a;
        }
        a->parked = malloc(len ? len : 1);
        if (!a->parked) {
                send_error(a, "out of memory: stdin dropped");
                return;
        }
        memcpy(a->parked, data, len);
        a->parked_len = len;
        a->parked_eof = eof;
        ws_pause(a->ws);
        uv_timer_start(a->retry, retry_fire, 5, 5);
}

/* A control message (JSON text). */
static void on_control(struct attach *a, const uint8_t *data, size_t len)
{
        json_t *m = json_loadb((const char *)data, len, 0, NULL);
        const char *type = json_string_value(json_object_get(m, "type"));
        int r;

        if (!type) {
                send_error(a, "expected a JSON object with a \"type\"");
                goto out;
        }
        if (!a->p) {
                send_error(a, "the job has ended");
                goto out;
        }
        if (strcmp(type, "stdin") == 0) {
                json_t *d = json_object_get(m, "data");
                const char *enc = json_string_value(json_object_get(m, "encoding"));
                if (!json_is_string(d)) {
                        send_error(a, "stdin: \"data\" must be a string");
                        goto out;
                }
                size_t n = json_string_length(d), dl;
                if (enc && strcmp(enc, "base64") == 0) {
                        cleanup_free uint8_t *raw = malloc(n + 3);
                        if (!raw || b64_decode(json_string_value(d), n, raw, &dl) < 0) {
                                send_error(a, "stdin: invalid base64");
                                goto out;
                        }
                        stdin_write(a, raw, dl, false);
                } else {
                        stdin_write(a, json_string_value(d), n, false);
                }
                goto out;
        } else if (strcmp(type, "eof") == 0) {
                stdin_write(a, NULL, 0, true);
                goto out;
        } else if (strcmp(type, "resize") == 0) {
                json_int_t cols = json_integer_value(json_object_get(m, "cols"));
                json_int_t rows = json_integer_value(json_object_get(m, "rows"));
                if (cols < 1 || cols > 1000 || rows < 1 || rows > 1000) {
                        send_error(a, "resize: cols and rows must be 1 to 1000");
                        goto out;
                }
                r = jobs_resize(a->app, a->p, (uint16_t)cols, (uint16_t)rows);
        } else if (strcmp(type, "signal") == 0) {
                json_t *s = json_object_get(m, "signal");
                int sig = json_is_integer(s) ? (int)json_integer_value(s) : 0;
                if (json_is_string(s))
                        sig = jobs_parse_signal(json_string_value(s));
                if (sig < 1 || sig > 64) {
                        send_error(a, "signal: expected a number 1-64 or a name such as \"INT\"");
                        goto out;
                }
                r = jobs_signal(a->app, a->p, sig);
        } else {
                send_error(a, "unknown type (expected stdin, eof, resize or signal)");
                goto out;
        }
        if (r == -ENOTTY)
                send_error(a, "the job has no terminal");
        else
                stdin_error(a, r);
out:
        json_decref(m);
}

static void on_message(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                       void *ud)
{
        struct attach *a = ud;

        if (!binary) {
                on_control(a, data, len);
                return;
        }
        stdin_write(a, data, len, false);
}

static void on_close(struct ws_conn *ws, uint16_t code, void *ud)
{
        struct attach *a = ud;

        live_remove(a->app, a->live);
        if (a->retry)
                uv_close((uv_handle_t *)a->retry, retry_free_cb);
        free(a->parked);
        if (a->p)
                jobs_remove_client(a->app, a->p, &a->cl); /* may free an ended job */
        store_job_clear(&a->rec);
        free(a);
}

/* The key that opened the socket was revoked. */
static void on_revoke(void *ud)
{
        struct attach *a = ud;

        ws_close(a->ws, 1008, "credential revoked");
}

static const struct ws_ops attach_ops = {
        .on_message = on_message,
        .on_close = on_close,
        .on_drain = on_drain,
};

void attach_start(struct reqctx *c, const char *id, const struct store_job *rec)
{
        cleanup_free char *since_s = NULL;
        int64_t since = 0;
        char *end;
        int r;

        if (!http_req_is_ws(c->req)) {
                reply_error(c, 400, "invalid_request",
                            "attach is a WebSocket: send an upgrade request");
                return;
        }
        if (http_req_query(c->req, "since", &since_s) == 0) {
                since = strtoll(since_s, &end, 10);
                if (*end || !*since_s || since < 0) {
                        reply_error(c, 400, "invalid_request", "since: expected an offset >= 0");
                        return;
                }
        }
        struct proc *p = jobs_load(c->app, rec);
        if (!p && strcmp(rec->state, "running") == 0) {
                reply_errno(c, -ENOMEM, "attach");
                return;
        }
        struct attach *a = calloc(1, sizeof(*a));
        if (!a) {
                reply_errno(c, -ENOMEM, "attach");
                return;
        }
        a->app = c->app;
        a->cursor = (uint64_t)since;
        a->rec = *rec;
        a->rec.command = strdup(rec->command);
        a->rec.error = rec->error ? strdup(rec->error) : NULL;
        a->cl.wake = on_wake;
        a->cl.ud = a;
        if (p) {
                r = jobs_add_client(p, &a->cl, true);
                if (r == -EMLINK) {
                        store_job_clear(&a->rec);
                        free(a);
                        reply_error(c, 429, "too_many_attachments",
                                    "this job already has %lld attachments (MAX_ATTACH_PER_JOB)",
                                    (long long)c->app->cfg.max_attach_per_job);
                        return;
                }
                a->p = p;
        }
        r = live_add(c->app, c->key_id, on_revoke, a, &a->live);
        if (r == 0)
                r = http_ws_accept(c->req, &attach_ops, a, NULL, &a->ws);
        if (r < 0) {
                live_remove(c->app, a->live);
                if (a->p)
                        jobs_remove_client(c->app, a->p, &a->cl);
                store_job_clear(&a->rec);
                free(a);
                if (r == -ENOTCONN)
                        reply_error(c, 499, "client_closed", "client closed the request");
                else
                        reply_errno(c, r, "attach");
                return;
        }
        reply_done(c, 101);
        /* Where the data starts: the cursor, or the oldest byte held if that is later. */
        struct log_range rg;
        uint64_t first = a->cursor;
        if (jobs_range(a->app, a->p, &a->rec, &rg) == 0 && first < rg.start)
                first = a->cursor = rg.start; /* the gap is told once, by this offset */
        if (jobs_range(a->app, a->p, &a->rec, &rg) == 0 && first > rg.end)
                first = a->cursor = rg.end;
        char jid[32];
        snprintf(jid, sizeof(jid), "job_%lld", (long long)a->rec.id);
        send_json(a, json_pack("{s:s, s:s, s:I, s:s, s:b}", "type", "attached", "id", jid,
                               "offset", (json_int_t)first, "state",
                               a->p && !jobs_proc_ended(a->p) ? "running" : a->rec.state, "pty",
                               a->rec.pty));
        pump(a);
}
