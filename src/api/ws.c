/* ws.c - WebSocket connections on the HTTP server; see ws.h.
 *
 * An accepted WebSocket is an http_conn with c->ws set: http.c keeps owning the socket
 * (reading, the write queue, closing) and hands what it reads to http__ws_feed() instead of
 * the HTTP parser; the sweep timer calls http__ws_sweep() instead of the HTTP deadlines.
 * Framing is ws_codec (src/common/ws_codec.c); its output is moved into the connection's
 * write queue after every call, so the byte count of that queue is the backpressure.
 *
 * Ending: when the codec is done (close frames exchanged, or the connection failed) the
 * connection gets the graceful HTTP end (flush, FIN, lingering close); when the socket goes
 * first (EOF, error, timeout, http_server_close) http.c calls http__ws_conn_closing(). Either
 * way ws_end() detaches the ws_conn and queues it on the server's list, and on_close runs
 * from the deferred-work idle handle on the next loop iteration: never inside a handler's
 * call, never inside one of its callbacks (redis' rule: a client is never freed inside its
 * own callback). The ws_conn holds a reference on its connection until it is freed, which
 * keeps the server alive too.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "util.h"
#include "ws.h"
#include "ws_codec.h"

#define WS_DEFAULT_MAX_MESSAGE ((size_t)1 << 20)
#define WS_DEFAULT_MAX_FRAGMENTS 4096
#define WS_DEFAULT_MAX_QUEUED ((size_t)16 << 20)
#define WS_DEFAULT_PING_MS (30 * 1000)
#define WS_DEFAULT_IDLE_MS (120 * 1000)
#define WS_DEFAULT_CLOSE_MS (5 * 1000)
/* Reading stops while more than max_queued + this waits to be written: a peer that sends
 * pings (or anything else we answer) and never reads cannot grow our output for ever. */
#define WS_READ_SLACK ((size_t)64 * 1024)

struct ws_conn {
        struct http_conn *c; /* holds a reference until the ws_conn is freed */
        struct ws_codec *codec;
        struct ws_ops ops;
        void *ud;
        struct ws_limits lim;
        uint64_t last_rx;        /* loop ms of the last bytes read (or of the last resume) */
        uint64_t last_ping;      /* loop ms of the last ping sent */
        uint64_t close_deadline; /* loop ms; 0: none */
        uint16_t code;           /* for on_close, once ended */
        bool paused;
        bool closing;            /* ws_close() was called */
        bool ended;              /* detached from its connection; on_close is queued */
        struct ws_conn *defer_next;
};

/* ---- the upgrade request ---- */

/* Whether some header called name (any of its occurrences) lists token (comma-separated,
 * case-insensitive), as in "Connection: keep-alive, Upgrade". */
static bool header_has_token(const struct http_req *req, const char *name, const char *token)
{
        size_t tl = strlen(token);

        for (size_t i = 0; i < req->n_headers; i++) {
                if (strcmp(req->headers[i].name, name) != 0)
                        continue;
                const char *p = req->headers[i].value;
                while (*p) {
                        while (*p == ' ' || *p == '\t' || *p == ',')
                                p++;
                        const char *e = p;
                        while (*e && *e != ',')
                                e++;
                        const char *t = e;
                        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
                                t--;
                        if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0)
                                return true;
                        p = e;
                }
        }
        return false;
}

static size_t header_count(const struct http_req *req, const char *name)
{
        size_t n = 0;

        for (size_t i = 0; i < req->n_headers; i++)
                if (strcmp(req->headers[i].name, name) == 0)
                        n++;
        return n;
}

/* See ws.h. r->ws_upgrade says http_parser saw the upgrade (Upgrade plus Connection:
 * upgrade) on an HTTP/1.1 GET without a body; repeated Version or Key headers are refused
 * rather than guessed at. */
bool http_req_is_ws(const struct http_req *req)
{
        if (!req || !hreq_of(req)->ws_upgrade)
                return false;
        if (!header_has_token(req, "upgrade", "websocket") ||
            !header_has_token(req, "connection", "upgrade"))
                return false;
        const char *version = http_req_header(req, "sec-websocket-version");
        if (!version || strcmp(version, "13") != 0 ||
            header_count(req, "sec-websocket-version") != 1 ||
            header_count(req, "sec-websocket-key") != 1)
                return false;
        return ws_key_valid(http_req_header(req, "sec-websocket-key"));
}

static void limits_apply_defaults(struct ws_limits *l, const struct ws_limits *in)
{
        if (in)
                *l = *in;
        else
                memset(l, 0, sizeof(*l));
        if (!l->max_message)
                l->max_message = WS_DEFAULT_MAX_MESSAGE;
        if (!l->max_fragments)
                l->max_fragments = WS_DEFAULT_MAX_FRAGMENTS;
        if (!l->max_queued)
                l->max_queued = WS_DEFAULT_MAX_QUEUED;
        if (!l->ping_interval_ms)
                l->ping_interval_ms = WS_DEFAULT_PING_MS;
        if (!l->idle_timeout_ms)
                l->idle_timeout_ms = WS_DEFAULT_IDLE_MS;
        if (!l->close_timeout_ms || l->close_timeout_ms == WS_OFF)
                l->close_timeout_ms = WS_DEFAULT_CLOSE_MS;
}

/* ---- ending ---- */

/* The connection ended with code: detach from it (no more input, no more output) and queue
 * on_close for the next loop iteration. The caller closes or ends the http_conn. */
static void ws_end(struct ws_conn *ws, uint16_t code)
{
        struct http_conn *c = ws->c;
        struct http_server *s = c->server;

        if (ws->ended)
                return;
        ws->ended = true;
        ws->code = code;
        /* Frames still in the input of the current feed are not decoded. */
        ws_codec_pause(ws->codec, true);
        if (c->ws == ws)
                c->ws = NULL;
        c->handler_paused = false;
        ws->defer_next = NULL;
        if (s->ws_defer_tail)
                s->ws_defer_tail->defer_next = ws;
        else
                s->ws_defer_head = ws;
        s->ws_defer_tail = ws;
        http__server_wake(s);
}

static void ws_free(struct ws_conn *ws)
{
        struct http_conn *c = ws->c;

        ws_codec_free(ws->codec);
        free(ws);
        http__conn_unref(c);
}

/* Run the on_close callbacks queued by ws_end(), from the deferred-work handle. One that
 * ends another WebSocket (http_server_close() from on_close) is served in the same run. */
void http__ws_run_deferred(struct http_server *s)
{
        while (s->ws_defer_head) {
                struct ws_conn *ws = s->ws_defer_head;
                s->ws_defer_head = ws->defer_next;
                if (!s->ws_defer_head)
                        s->ws_defer_tail = NULL;
                ws->ops.on_close(ws, ws->code, ws->ud);
                ws_free(ws);
        }
}

/* ---- output ---- */

/* Move the codec's output into the connection's write queue. */
static void ws_flush(struct ws_conn *ws)
{
        struct http_conn *c = ws->c;
        size_t n;
        const uint8_t *out = ws_codec_output(ws->codec, &n);

        while (n > 0) {
                /* uv_buf_t lengths are unsigned int. */
                size_t k = n < (size_t)1 << 30 ? n : (size_t)1 << 30;
                if (!c->closed) {
                        uv_buf_t b = uv_buf_init((char *)out, (unsigned)k);
                        http__conn_write(c, &b, 1);
                }
                ws_codec_output_done(ws->codec, k);
                out = ws_codec_output(ws->codec, &n);
        }
}

static uint64_t close_deadline(const struct ws_conn *ws)
{
        uint64_t d = http__now(ws->c->server) + ws->lim.close_timeout_ms;
        return d ? d : 1;
}

/* After every codec call: write what it produced, end the connection if the codec is done
 * (the close frame goes out first: http__conn_end flushes before its FIN), and start the
 * close timeout once our close frame is written. */
static void ws_after_io(struct ws_conn *ws)
{
        struct http_conn *c = ws->c;

        if (ws->ended)
                return;
        ws_flush(ws);
        if (ws_codec_done(ws->codec)) {
                uint16_t code = ws_codec_close_code(ws->codec);
                ws_end(ws, code ? code : WS_CLOSE_ABNORMAL);
                http__conn_end(c);
                return;
        }
        if (ws_codec_close_sent(ws->codec) && !ws->close_deadline && c->wq_bytes == 0)
                ws->close_deadline = close_deadline(ws);
}

/* After ws_close() nothing more is delivered: the handler is done with the connection. */
static void on_codec_message(void *ud, bool binary, const uint8_t *data, size_t len)
{
        struct ws_conn *ws = ud;

        if (!ws->ended && !ws->closing)
                ws->ops.on_message(ws, binary, data, len, ws->ud);
}

/* ---- hooks called by http.c ---- */

/* Bytes read from the peer; returns how many were consumed (fewer while paused). */
size_t http__ws_feed(struct http_conn *c, const char *data, size_t len)
{
        struct ws_conn *ws = c->ws;

        ws->last_rx = http__now(c->server);
        size_t used = ws_codec_feed(ws->codec, (const uint8_t *)data, len);
        /* ws is still valid even if a callback ended it: it is freed from the idle handle. */
        ws_after_io(ws);
        return used;
}

/* Whether so much waits to be written that reading must stop (see WS_READ_SLACK). */
bool http__ws_output_full(const struct http_conn *c)
{
        const struct ws_conn *ws = c->ws;
        size_t limit = ws->lim.max_queued < SIZE_MAX - WS_READ_SLACK
                               ? ws->lim.max_queued + WS_READ_SLACK
                               : SIZE_MAX;

        return c->wq_bytes > limit;
}

/* The write queue emptied. */
void http__ws_drained(struct http_conn *c)
{
        struct ws_conn *ws = c->ws;

        if (ws_codec_close_sent(ws->codec)) {
                if (!ws->close_deadline)
                        ws->close_deadline = close_deadline(ws);
                return;
        }
        if (ws->ops.on_drain)
                ws->ops.on_drain(ws, ws->ud);
}

/* The socket is being closed at once (EOF, error, timeout, server shutdown). On shutdown
 * the peer gets a 1001 close frame if the socket takes it right away (best effort: the
 * socket closes without waiting). Called before the connection is marked closed. */
void http__ws_conn_closing(struct http_conn *c)
{
        struct ws_conn *ws = c->ws;
        bool shutdown = c->server->closing;

        if (!ws)
                return;
        if (shutdown && !c->write_failed &&
            ws_codec_close(ws->codec, WS_CLOSE_GOING_AWAY, "server shutting down") == 0)
                ws_flush(ws);
        uint16_t code = ws_codec_close_code(ws->codec);
        if (!code)
                code = shutdown ? WS_CLOSE_GOING_AWAY : WS_CLOSE_ABNORMAL;
        ws_end(ws, code);
}

/* The sweep: a write that makes no progress, the close timeout, the idle timeout, pings. */
void http__ws_sweep(struct http_conn *c, uint64_t now)
{
        struct ws_conn *ws = c->ws;
        const struct ws_limits *l = &ws->lim;
        uint64_t stall = l->idle_timeout_ms != WS_OFF ? l->idle_timeout_ms
                                                      : c->server->lim.idle_timeout_ms;

        if (c->wq_bytes > 0 && now - c->write_progress >= stall) {
                http__conn_close(c);
                return;
        }
        if (ws->close_deadline && now >= ws->close_deadline) {
                http__conn_close(c);
                return;
        }
        if (ws_codec_close_sent(ws->codec))
                return;
        /* The idle clock stops while we are the ones not reading. */
        if (ws->paused || http__ws_output_full(c)) {
                ws->last_rx = now;
                return;
        }
        if (l->idle_timeout_ms != WS_OFF && now - ws->last_rx >= l->idle_timeout_ms) {
                ws_codec_close(ws->codec, WS_CLOSE_GOING_AWAY, "idle timeout");
                ws_after_io(ws);
                return;
        }
        if (l->ping_interval_ms != WS_OFF && now - ws->last_rx >= l->ping_interval_ms &&
            now - ws->last_ping >= l->ping_interval_ms) {
                uint8_t payload[8];
                for (int i = 0; i < 8; i++)
                        payload[i] = (uint8_t)(now >> (56 - 8 * i));
                ws->last_ping = now;
                if (ws_codec_ping(ws->codec, payload, sizeof(payload)) == 0)
                        ws_after_io(ws);
        }
}

/* ---- public ---- */

int http_ws_accept(struct http_req *req, const struct ws_ops *ops, void *ud,
                   const struct ws_limits *lim, struct ws_conn **ret)
{
        struct hreq *r = hreq_of(req);
        char accept[WS_ACCEPT_LEN + 1];
        struct ws_conn *ws;
        int e;

        if (!req || !ops || !ops->on_message || !ops->on_close || !ret)
                return -EINVAL;
        if (r->answered || r->started || !r->handed || !http_req_is_ws(req))
                return -EINVAL;
        struct http_conn *c = r->conn;
        if (r->detached || c->closed || c->closing || c->write_failed || c->cur != r)
                return -ENOTCONN;
        e = ws_accept_key(http_req_header(req, "sec-websocket-key"), accept);
        if (e < 0)
                return e == -EINVAL ? -EINVAL : -ENOMEM;

        ws = calloc(1, sizeof(*ws));
        if (!ws)
                return -ENOMEM;
        limits_apply_defaults(&ws->lim, lim);
        struct ws_codec_limits cl = { .max_message = ws->lim.max_message,
                                      .max_fragments = ws->lim.max_fragments };
        e = ws_codec_new(true, &cl, on_codec_message, ws, &ws->codec);
        if (e < 0) {
                free(ws);
                return e;
        }
        static const char fmt[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n";
        size_t need = sizeof(fmt) + WS_ACCEPT_LEN + r->rsp_hdrs_len + 2;
        char *head = malloc(need);
        if (!head) {
                ws_codec_free(ws->codec);
                free(ws);
                return -ENOMEM;
        }
        size_t n = (size_t)snprintf(head, need, fmt, accept);
        if (r->rsp_hdrs_len) {
                memcpy(head + n, r->rsp_hdrs, r->rsp_hdrs_len);
                n += r->rsp_hdrs_len;
        }
        memcpy(head + n, "\r\n", 2);
        n += 2;

        ws->ops = *ops;
        ws->ud = ud;
        ws->c = c;
        c->refs++;
        /* The request is answered: it is freed on the next loop iteration. */
        r->answered = true;
        http__req_free(r);
        c->ws = ws;
        http__conn_set_deadline(c, HTTP_DL_NONE, 0);
        ws->last_rx = ws->last_ping = http__now(c->server);
        uint64_t shortest = ws->lim.close_timeout_ms;
        if (ws->lim.ping_interval_ms < shortest)
                shortest = ws->lim.ping_interval_ms;
        if (ws->lim.idle_timeout_ms < shortest)
                shortest = ws->lim.idle_timeout_ms;
        http__server_sweep_hint(c->server, shortest);

        uv_buf_t b = uv_buf_init(head, (unsigned)n);
        http__conn_write(c, &b, 1);
        free(head);
        /* Frames that came behind the request: from inside the parser (accept called from
         * on_request) http.c feeds them once the parser has returned; otherwise they are
         * fed on the next loop iteration. */
        http__conn_schedule(c);
        *ret = ws;
        return 0;
}

ssize_t ws_send(struct ws_conn *ws, bool binary, const void *data, size_t len)
{
        if (!ws || ws->ended)
                return -ENOTCONN;
        struct http_conn *c = ws->c;
        if (c->closed || c->closing || c->write_failed)
                return -ENOTCONN;
        size_t q = ws_queued(ws);
        if (q > 0 && (len > ws->lim.max_queued || q > ws->lim.max_queued - len))
                return -ENOBUFS;
        int r = ws_codec_send(ws->codec, binary, data, len);
        if (r < 0)
                return r;
        ws_after_io(ws);
        return (ssize_t)ws_queued(ws);
}

size_t ws_queued(const struct ws_conn *ws)
{
        size_t n = 0;

        if (!ws || ws->ended)
                return 0;
        (void)ws_codec_output(ws->codec, &n);
        return ws->c->wq_bytes + n;
}

void ws_pause(struct ws_conn *ws)
{
        if (!ws || ws->ended || ws->paused)
                return;
        ws->paused = true;
        ws_codec_pause(ws->codec, true);
        ws->c->handler_paused = true;
        http__conn_update_reading(ws->c);
}

void ws_resume(struct ws_conn *ws)
{
        if (!ws || ws->ended || !ws->paused)
                return;
        ws->paused = false;
        ws_codec_pause(ws->codec, false);
        ws->c->handler_paused = false;
        ws->last_rx = http__now(ws->c->server);
        http__conn_schedule(ws->c);
}

void ws_close(struct ws_conn *ws, uint16_t code, const char *reason)
{
        if (!ws || ws->ended)
                return;
        ws->closing = true;
        if (ws_codec_close(ws->codec, code, reason) == -EINVAL)
                ws_codec_close(ws->codec, WS_CLOSE_NORMAL, reason);
        ws_after_io(ws);
}

void ws_set_user(struct ws_conn *ws, void *ud)
{
        if (ws)
                ws->ud = ud;
}
