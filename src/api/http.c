/* http.c - the HTTP server's sockets: listeners, connections, reading, writing, timeouts and
 * closing. Parsing is in http_request.c, answers in http_response.c; the lifetime rules are
 * at the top of http_internal.h.
 *
 * Flow of one connection: accept -> read into the server's shared buffer -> conn_feed()
 * runs http_parser over it (callbacks in http_request.c build the request and call the
 * handler) -> the parser is paused at the end of each request, and parsing does not go on
 * until that request is answered, so pipelined requests are answered one at a time in
 * order; unparsed input waits in c->in -> after an answer that keeps the connection, the
 * next request is parsed (from the deferred list when the answer came outside the parser,
 * so a handler is never re-entered from inside its own answer call).
 *
 * Closing: conn_end() is the graceful path (no more requests, flush the queued output, send
 * FIN, drain for a moment, close); conn_close() is the immediate one (client gone, write
 * error, timeout). Only conn_close() tells the handler (on_abort) about a request it holds.
 *
 * WebSockets (ws.c): once a handler accepts an upgrade, c->ws is set and the same
 * connection carries frames: conn_feed() hands input to http__ws_feed() instead of the
 * parser, the sweep calls http__ws_sweep(), on_write reports an empty queue to it, and
 * conn_close() tells it first (http__ws_conn_closing).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "http_internal.h"
#include "util.h"

#define HTTP_MEM_OUT_MAX (64 * 1024)

static void conn_close(struct http_conn *c);
static void conn_linger(struct http_conn *c);
static void server_unref(struct http_server *s);

/* A queued write: the libuv request and a copy of the bytes, in one allocation. */
struct http_wreq {
        uv_write_t w;
        size_t len;
        char data[];
};

/* Current loop time in ms (0 in memory mode, where no deadline is ever checked). */
uint64_t http__now(const struct http_server *s)
{
        return s->loop ? uv_now(s->loop) : 0;
}

static void limits_apply_defaults(struct http_limits *l, const struct http_limits *in)
{
        if (in)
                *l = *in;
        else
                memset(l, 0, sizeof(*l));
        if (!l->max_header_bytes)
                l->max_header_bytes = 16 * 1024;
        if (!l->max_headers)
                l->max_headers = 64;
        if (!l->max_url)
                l->max_url = 8 * 1024;
        if (!l->max_body)
                l->max_body = 64 * 1024 * 1024;
        if (!l->header_timeout_ms)
                l->header_timeout_ms = 30 * 1000;
        if (!l->idle_timeout_ms)
                l->idle_timeout_ms = 120 * 1000;
        if (!l->max_connections)
                l->max_connections = 10000;
}

/* Allocate a server (shared by the loop and memory variants); the caller's reference is the
 * first one. */
static int server_alloc(uv_loop_t *loop, const struct http_limits *lim, http_headers_cb on_headers,
                        http_request_cb on_request, void *ud, struct http_server **ret)
{
        if (!on_headers || !on_request || !ret)
                return -EINVAL;
        struct http_server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->rbuf = malloc(HTTP_READ_BUF_SIZE);
        if (!s->rbuf) {
                free(s);
                return -ENOMEM;
        }
        limits_apply_defaults(&s->lim, lim);
        s->loop = loop;
        s->on_headers = on_headers;
        s->on_request = on_request;
        s->ud = ud;
        s->refs = 1;
        *ret = s;
        return 0;
}

static void on_deferred_idle(uv_idle_t *h);
static void on_sweep(uv_timer_t *t);
static void on_server_handle_closed(uv_handle_t *h);

/* Create a server on loop: see http.h. The sweep timer is unreferenced so that it alone
 * never keeps the loop running; the idle handle is active only while it has work, and then
 * it must keep the loop running for one more iteration. */
int http_server_new(uv_loop_t *loop, const struct http_limits *lim, http_headers_cb on_headers,
                    http_request_cb on_request, void *ud, struct http_server **ret)
{
        struct http_server *s;
        int r;

        if (!loop)
                return -EINVAL;
        r = server_alloc(loop, lim, on_headers, on_request, ud, &s);
        if (r < 0)
                return r;
        uv_timer_init(loop, &s->sweep);
        s->sweep.data = s;
        uv_unref((uv_handle_t *)&s->sweep);
        uv_idle_init(loop, &s->idle);
        s->idle.data = s;
        s->refs += 2;
        *ret = s;
        return 0;
}

/* Memory-mode server for the fuzz harness: no loop, no handles. */
int http_server_new_mem(const struct http_limits *lim, http_headers_cb on_headers,
                        http_request_cb on_request, void *ud, struct http_server **ret)
{
        return server_alloc(NULL, lim, on_headers, on_request, ud, ret);
}

/* Drop a server reference. Once closed, the idle handle goes when it holds the last one:
 * until then it may still have answered requests to free. */
static void server_unref(struct http_server *s)
{
        if (--s->refs == 0) {
                free(s->rbuf);
                free(s);
                return;
        }
        if (s->refs == 1 && s->closing && s->loop && !s->idle_closing) {
                s->idle_closing = true;
                uv_close((uv_handle_t *)&s->idle, on_server_handle_closed);
        }
}

static void on_server_handle_closed(uv_handle_t *h)
{
        server_unref(h->data);
}

size_t http_server_connections(const struct http_server *s)
{
        return s->n_conns;
}

/* Start the sweep timer once: its period is a quarter of the shortest timeout, clamped to
 * [10 ms, 1 s], so a deadline fires at most that late. One timer for all connections costs
 * nothing per connection; a scan of 10,000 connections per second is negligible. */
static void server_start_sweep(struct http_server *s)
{
        if (!s->loop || s->sweep_started)
                return;
        uint64_t p = s->lim.header_timeout_ms < s->lim.idle_timeout_ms ? s->lim.header_timeout_ms
                                                                        : s->lim.idle_timeout_ms;
        p /= 4;
        if (p < 10)
                p = 10;
        if (p > 1000)
                p = 1000;
        uv_timer_start(&s->sweep, on_sweep, p, p);
        s->sweep_period = p;
        s->sweep_started = true;
}

/* A WebSocket with shorter timers than the HTTP ones: sweep often enough for them. */
void http__server_sweep_hint(struct http_server *s, uint64_t ms)
{
        if (!s->loop || !s->sweep_started || s->closing)
                return;
        uint64_t p = ms / 4;
        if (p < 10)
                p = 10;
        if (p < s->sweep_period) {
                uv_timer_start(&s->sweep, on_sweep, p, p);
                s->sweep_period = p;
        }
}

/* ---- deferred work ---- */

static void server_wake_idle(struct http_server *s)
{
        if (s->loop && !s->idle_started && !s->idle_closing) {
                uv_idle_start(&s->idle, on_deferred_idle);
                s->idle_started = true;
        }
}

void http__server_wake(struct http_server *s)
{
        server_wake_idle(s);
}

/* Queue an answered (or abandoned) request to be freed on the next loop iteration. */
void http__server_queue_free(struct http_server *s, struct hreq *r)
{
        r->free_next = s->free_head;
        s->free_head = r;
        server_wake_idle(s);
}

/* Queue c for the deferred list (parsing input that waited, or closing after a failed
 * write). Runs on the next loop iteration, outside any handler callback. */
static void conn_defer(struct http_conn *c)
{
        struct http_server *s = c->server;

        if (c->deferred || c->closed || s->closing)
                return;
        c->deferred = true;
        c->refs++;
        c->defer_next = NULL;
        if (s->defer_tail)
                s->defer_tail->defer_next = c;
        else
                s->defer_head = c;
        s->defer_tail = c;
        server_wake_idle(s);
}

static size_t conn_feed(struct http_conn *c, const char *data, size_t len);
static bool conn_blocked(const struct http_conn *c);

/* Parse input that waited in c->in, if the connection may parse now. */
static void conn_feed_pending(struct http_conn *c)
{
        if (c->in_off >= c->in_len)
                return;
        size_t used = conn_feed(c, c->in + c->in_off, c->in_len - c->in_off);
        c->in_off += used;
        if (c->in_off >= c->in_len || c->closing || c->closed) {
                free(c->in);
                c->in = NULL;
                c->in_len = c->in_off = 0;
        }
}

/* Run the deferred list: every connection on it gets its waiting input parsed (or is closed
 * after a failed write). Connections queued while this runs wait for the next round. Then
 * the ended WebSockets get their on_close. */
static void server_run_deferred(struct http_server *s)
{
        struct http_conn *list = s->defer_head;
        struct hreq *frees = s->free_head;

        s->free_head = NULL;
        while (frees) {
                struct hreq *r = frees;
                frees = r->free_next;
                http__req_destroy(r);
        }
        s->defer_head = s->defer_tail = NULL;
        while (list) {
                struct http_conn *c = list;
                list = c->defer_next;
                c->deferred = false;
                if (!c->closed) {
                        if (c->write_failed)
                                conn_close(c);
                        else {
                                conn_feed_pending(c);
                                http__conn_update_reading(c);
                        }
                }
                http__conn_unref(c);
        }
        http__ws_run_deferred(s);
}

static void on_deferred_idle(uv_idle_t *h)
{
        struct http_server *s = h->data;

        /* Freeing may drop the server to its last reference: keep it until we are done. */
        s->refs++;
        server_run_deferred(s);
        if (!s->defer_head && !s->free_head && !s->ws_defer_head && s->idle_started) {
                uv_idle_stop(&s->idle);
                s->idle_started = false;
        }
        server_unref(s);
}

/* Make a connection continue after its request was answered or its handler resumed it:
 * parse waiting input on the next loop iteration, or just read again. */
void http__conn_schedule(struct http_conn *c)
{
        if (c->closed || c->in_parse)
                return;
        if (c->in_off < c->in_len && !conn_blocked(c))
                conn_defer(c);
        else
                http__conn_update_reading(c);
}

/* ---- connections ---- */

/* Something failed where the handler may be on the stack (an answer call): close the
 * connection from the deferred list instead of calling on_abort from here. */
void http__conn_abort_later(struct http_conn *c)
{
        c->write_failed = true;
        conn_defer(c);
}

void http__conn_unref(struct http_conn *c)
{
        if (--c->refs > 0)
                return;
        struct http_server *s = c->server;
        free(c->in);
        free(c->mem_out);
        free(c);
        server_unref(s);
}

void http__conn_set_deadline(struct http_conn *c, enum http_deadline kind, uint64_t ms)
{
        c->deadline_kind = kind;
        c->deadline = kind == HTTP_DL_NONE ? 0 : http__now(c->server) + ms;
}

static void on_conn_closed(uv_handle_t *h)
{
        struct http_conn *c = h->data;

        c->server->n_conns--;
        http__conn_unref(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* Start or stop reading to match the connection's state: read while lingering (to drain),
 * never while closing otherwise or while the handler paused the body, and stop once
 * HTTP_PIPELINE_MAX bytes wait unparsed. Reading goes on while a request is being
 * answered, so a client that goes away is noticed (and the handler gets on_abort). */
void http__conn_update_reading(struct http_conn *c)
{
        bool want;

        if (c->closed)
                return;
        if (c->lingering)
                want = true;
        else if (c->closing || c->handler_paused)
                want = false;
        else
                want = c->in_len - c->in_off < HTTP_PIPELINE_MAX;
        if (want == c->reading)
                return;
        if (c->mem) {
                c->reading = want;
                return;
        }
        if (want) {
                if (uv_read_start(&c->h.stream, on_alloc, on_read) < 0) {
                        c->write_failed = true;
                        conn_defer(c);
                        return;
                }
        } else {
                uv_read_stop(&c->h.stream);
        }
        c->reading = want;
}

/* Close at once. A request the handler owns and has not answered (on_request was called, or
 * it set on_abort) gets on_abort once and stays valid until answered; any other request is
 * freed. The memory goes in the uv_close callback, never here. */
static void conn_close(struct http_conn *c)
{
        struct http_server *s = c->server;
        struct hreq *r = c->cur;

        if (c->closed)
                return;
        if (c->ws)
                http__ws_conn_closing(c);
        c->closed = true;
        c->reading = false;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;

        if (r) {
                c->cur = NULL;
                r->detached = true;
                if (!r->answered && (r->handed || r->pub.on_abort)) {
                        if (r->pub.on_abort && !r->aborted) {
                                r->aborted = true;
                                r->pub.on_abort(&r->pub);
                        }
                } else {
                        http__req_free(r);
                }
        }

        if (c->mem) {
                s->n_conns--;
                http__conn_unref(c);
        } else {
                uv_close(&c->h.handle, on_conn_closed);
        }
}

void http__conn_close(struct http_conn *c)
{
        conn_close(c);
}

/* Graceful end: no more requests are parsed; the queued output is flushed, then the
 * lingering close starts (from on_write when the queue empties). */
void http__conn_end(struct http_conn *c)
{
        if (c->closed || c->closing)
                return;
        c->closing = true;
        http__conn_set_deadline(c, HTTP_DL_NONE, 0);
        http__conn_update_reading(c);
        if (c->wq_bytes == 0)
                conn_linger(c);
}

/* A server-side failure of the request being received (malformed, too large, too slow):
 * answer with a JSON error unless an answer to it already began, treat the request as
 * aborted (the handler, if it owns it, gets on_abort and must still answer; the answer is
 * dropped), and end the connection. */
void http__conn_fail(struct http_conn *c, int status, const char *code, const char *message)
{
        struct hreq *r = c->cur;

        if (c->closed || c->closing)
                return;
        /* No HTTP answer on a WebSocket stream. */
        if (c->ws) {
                conn_close(c);
                return;
        }
        if (!r || (!r->answered && !r->started))
                http__write_error(c, r && r->head, status, code, message);
        /* The client gets "Connection: close" and no further request is read. */
        c->last = true;
        if (r) {
                c->cur = NULL;
                r->detached = true;
                if (!r->answered && (r->handed || r->pub.on_abort)) {
                        if (r->pub.on_abort && !r->aborted) {
                                r->aborted = true;
                                r->pub.on_abort(&r->pub);
                        }
                } else {
                        http__req_free(r);
                }
        }
        http__conn_end(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
        struct http_conn *c = req->handle->data;

        free(req);
        if (status < 0 && !c->closed)
                conn_close(c);
}

/* Lingering close: FIN, then read and drop until EOF, HTTP_LINGER_BYTES or HTTP_LINGER_MS. */
static void conn_linger(struct http_conn *c)
{
        if (c->closed || c->lingering)
                return;
        if (c->mem) {
                conn_close(c);
                return;
        }
        uv_shutdown_t *sr = malloc(sizeof(*sr));
        if (!sr || uv_shutdown(sr, &c->h.stream, on_shutdown) < 0) {
                free(sr);
                conn_close(c);
                return;
        }
        c->lingering = true;
        http__conn_set_deadline(c, HTTP_DL_LINGER, HTTP_LINGER_MS);
        http__conn_update_reading(c);
}

static void on_write(uv_write_t *w, int status)
{
        struct http_wreq *wr = (struct http_wreq *)w;
        struct http_conn *c = w->handle->data;
        size_t before = c->wq_bytes;

        c->wq_bytes -= wr->len;
        free(wr);
        if (c->closed)
                return;
        if (status < 0) {
                conn_close(c);
                return;
        }
        c->write_progress = http__now(c->server);
        /* Below the high-water mark again: pipelined requests that waited may go on. */
        if (before > HTTP_OUTPUT_HIGH_WATER && c->wq_bytes <= HTTP_OUTPUT_HIGH_WATER &&
            !c->closing)
                http__conn_schedule(c);
        /* A WebSocket's input waits while its output is over its own limit (ws.c). */
        if (c->ws && !c->closing && c->in_off < c->in_len && !http__ws_output_full(c))
                http__conn_schedule(c);
        if (c->wq_bytes > 0)
                return;
        if (c->closing) {
                conn_linger(c);
                return;
        }
        if (c->ws) {
                http__ws_drained(c);
                return;
        }
        struct hreq *r = c->cur;
        if (r && r->started && !r->answered && r->on_drain)
                r->on_drain(&r->pub);
}

/* Queue bytes for the client, in order. Tries a direct write first when nothing is queued;
 * what is left is copied into one allocation for uv_write. A failure never calls back into
 * the handler from here (the caller may be a handler): the connection is closed from the
 * deferred list. */
void http__conn_write(struct http_conn *c, const uv_buf_t *bufs, unsigned n)
{
        size_t total = 0, done = 0;

        if (c->closed || c->write_failed)
                return;
        for (unsigned i = 0; i < n; i++)
                total += bufs[i].len;
        if (total == 0)
                return;
        if (c->mem) {
                for (unsigned i = 0; i < n; i++) {
                        size_t room = HTTP_MEM_OUT_MAX - c->mem_out_len;
                        size_t k = bufs[i].len < room ? bufs[i].len : room;
                        if (k && !c->mem_out)
                                c->mem_out = malloc(HTTP_MEM_OUT_MAX);
                        if (k && c->mem_out) {
                                memcpy(c->mem_out + c->mem_out_len, bufs[i].base, k);
                                c->mem_out_len += k;
                        }
                }
                c->mem_out_total += total;
                return;
        }
        if (c->wq_bytes == 0) {
                int r = uv_try_write(&c->h.stream, bufs, n);
                if (r >= 0) {
                        done = (size_t)r;
                } else if (r != UV_EAGAIN) {
                        c->write_failed = true;
                        conn_defer(c);
                        return;
                }
        }
        if (done == total)
                return;

        size_t rest = total - done;
        struct http_wreq *wr = malloc(sizeof(*wr) + rest);
        if (!wr) {
                c->write_failed = true;
                conn_defer(c);
                return;
        }
        size_t off = 0, skip = done;
        for (unsigned i = 0; i < n; i++) {
                size_t l = bufs[i].len;
                const char *p = bufs[i].base;
                if (skip >= l) {
                        skip -= l;
                        continue;
                }
                memcpy(wr->data + off, p + skip, l - skip);
                off += l - skip;
                skip = 0;
        }
        wr->len = rest;
        uv_buf_t b = uv_buf_init(wr->data, (unsigned)rest);
        if (uv_write(&wr->w, &c->h.stream, &b, 1, on_write) < 0) {
                free(wr);
                c->write_failed = true;
                conn_defer(c);
                return;
        }
        if (c->wq_bytes == 0)
                c->write_progress = http__now(c->server);
        c->wq_bytes += rest;
}

/* Keep bytes the parser did not take (it stopped at the end of a request, or the handler
 * paused) for later; c->in is empty whenever this is called with new input. */
static void conn_stash(struct http_conn *c, const char *data, size_t len)
{
        size_t have = c->in_len - c->in_off;

        if (len == 0)
                return;
        if (have + len > UINT32_MAX) {
                conn_close(c);
                return;
        }
        char *n = malloc(have + len);
        if (!n) {
                http__conn_fail(c, 503, "unavailable", "out of memory");
                return;
        }
        if (have)
                memcpy(n, c->in + c->in_off, have);
        memcpy(n + have, data, len);
        free(c->in);
        c->in = n;
        c->in_off = 0;
        c->in_len = (uint32_t)(have + len);
}

/* Whether the connection must not parse now: the current request was received in full and
 * waits for its answer, the handler paused the body, no request may follow, or the client
 * is not reading its answers (no new request starts above the output high-water mark). */
static bool conn_blocked(const struct http_conn *c)
{
        if (c->ws)
                return c->closed || c->closing || c->handler_paused || http__ws_output_full(c);
        return c->closed || c->closing || c->handler_paused || (c->cur && c->cur->parse_done) ||
               (c->last && !c->cur && c->n_requests > 0) ||
               (!c->cur && c->wq_bytes > HTTP_OUTPUT_HIGH_WATER);
}

/* Map an http_parser error to an answer; callback errors were answered where they arose. */
static void conn_parse_error(struct http_conn *c, enum http_errno e)
{
        if (c->closed || c->closing)
                return;
        if (e == HPE_HEADER_OVERFLOW)
                http__conn_fail(c, 431, "headers_too_large", "request headers too large");
        else
                http__conn_fail(c, 400, "bad_request", http_errno_description(e));
}

/* Run the parser over data as far as the connection may go; returns the bytes consumed.
 * The parser is paused at the end of every request (and when the handler pauses), then
 * unpaused here, so the loop re-checks after each request whether it may go on. */
static size_t conn_feed(struct http_conn *c, const char *data, size_t len)
{
        size_t used = 0;

        c->in_parse = true;
        while (used < len && !c->ws && !conn_blocked(c)) {
                size_t n = http_parser_execute(&c->parser, &http__parser_settings, data + used,
                                               len - used);
                used += n;
                enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
                if (e == HPE_PAUSED) {
                        http_parser_pause(&c->parser, 0);
                        continue;
                }
                if (e != HPE_OK) {
                        conn_parse_error(c, e);
                        used = len;
                        break;
                }
                if (c->parser.upgrade && !c->ws) {
                        /* What follows is another protocol that no handler took over (see
                         * ws.c): the request gets its answer (with Connection: close, as
                         * on_headers_complete made it the last) and the rest is dropped. */
                        c->last = true;
                        used = len;
                        if (!c->cur)
                                http__conn_end(c);
                        break;
                }
                if (n == 0)
                        break;
        }
        /* The request just parsed became a WebSocket (accepted from on_request): what
         * follows it are frames. */
        if (c->ws && used < len && !conn_blocked(c))
                used += http__ws_feed(c, data + used, len - used);
        c->in_parse = false;
        if (c->closed || c->closing)
                return len;
        return used;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct http_conn *c = h->data;

        *buf = uv_buf_init(c->server->rbuf, HTTP_READ_BUF_SIZE);
}

/* Input from the client: parse it, or keep it if parsing must wait (order is kept: new
 * input goes behind what already waits). EOF means the client is gone: a request a handler
 * holds is aborted, but queued answers are still flushed if nothing is outstanding (a
 * client that half-closed still gets its answer). */
static void conn_input(struct http_conn *c, const char *data, size_t len)
{
        if (c->closed)
                return;
        if (c->lingering) {
                c->linger_bytes += (uint32_t)len;
                if (c->linger_bytes > HTTP_LINGER_BYTES)
                        conn_close(c);
                return;
        }
        if (c->closing)
                return;
        if (c->deadline_kind == HTTP_DL_BODY)
                http__conn_set_deadline(c, HTTP_DL_BODY, c->server->lim.idle_timeout_ms);
        if (c->in_off < c->in_len || conn_blocked(c)) {
                conn_stash(c, data, len);
                http__conn_schedule(c);
                return;
        }
        size_t used = conn_feed(c, data, len);
        if (used < len && !c->closed && !c->closing)
                conn_stash(c, data + used, len - used);
        http__conn_update_reading(c);
}

static void conn_eof(struct http_conn *c)
{
        if (c->closed)
                return;
        /* A WebSocket peer that leaves without a close frame: 1006. */
        if (c->ws || c->cur || c->lingering || c->wq_bytes == 0) {
                conn_close(c);
                return;
        }
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_off = 0;
        c->last = true;
        http__conn_end(c);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
        struct http_conn *c = st->data;

        if (n == 0)
                return;
        if (n < 0) {
                if (n == UV_EOF)
                        conn_eof(c);
                else
                        conn_close(c);
                return;
        }
        conn_input(c, buf->base, (size_t)n);
}

/* Fill in the connection's peer address (for req->peer). */
static void conn_note_peer(struct http_conn *c)
{
        struct sockaddr_storage ss;
        int len = sizeof(ss);

        if (c->is_unix) {
                c->peer_family = AF_UNIX;
                return;
        }
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) < 0)
                return;
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
                c->peer_family = AF_INET;
                memcpy(c->peer_addr, &a->sin_addr, 4);
                c->peer_port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
                c->peer_family = AF_INET6;
                memcpy(c->peer_addr, &a->sin6_addr, 16);
                c->peer_port = ntohs(a->sin6_port);
        }
}

/* "127.0.0.1:5555", "[::1]:5555", "unix", or "" when unknown. */
void http__peer_string(const struct http_conn *c, char *buf, size_t len)
{
        char a[INET6_ADDRSTRLEN];

        buf[0] = '\0';
        if (c->peer_family == AF_UNIX || c->mem) {
                snprintf(buf, len, "%s", c->mem ? "memory" : "unix");
        } else if (c->peer_family == AF_INET) {
                if (inet_ntop(AF_INET, c->peer_addr, a, sizeof(a)))
                        snprintf(buf, len, "%s:%u", a, (unsigned)c->peer_port);
        } else if (c->peer_family == AF_INET6) {
                if (inet_ntop(AF_INET6, c->peer_addr, a, sizeof(a)))
                        snprintf(buf, len, "[%s]:%u", a, (unsigned)c->peer_port);
        }
}

/* Allocate a connection and link it into the server; the caller initialises the handle. */
static struct http_conn *conn_new(struct http_server *s)
{
        struct http_conn *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->server = s;
        c->refs = 1;
        s->refs++;
        s->n_conns++;
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        c->h.handle.data = c;
        return c;
}

static void on_reject_closed(uv_handle_t *h)
{
        free(h);
}

/* Over max_connections (or out of memory): accept and close at once, so the client gets a
 * clean close instead of waiting in the backlog. */
static void listener_reject(struct http_listener *l)
{
        union {
                uv_handle_t handle;
                uv_tcp_t tcp;
                uv_pipe_t pipe;
        } *h = malloc(sizeof(*h));

        if (!h)
                return;
        if (l->is_unix)
                uv_pipe_init(l->h.handle.loop, &h->pipe, 0);
        else
                uv_tcp_init(l->h.handle.loop, &h->tcp);
        (void)uv_accept(&l->h.stream, (uv_stream_t *)&h->handle);
        uv_close(&h->handle, on_reject_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
        struct http_listener *l = ls->data;
        struct http_server *s = l->server;
        struct http_conn *c;

        if (status < 0 || s->closing)
                return;
        if (s->n_conns >= s->lim.max_connections || !(c = conn_new(s))) {
                listener_reject(l);
                return;
        }
        c->is_unix = l->is_unix;
        if (l->is_unix)
                uv_pipe_init(s->loop, &c->h.pipe, 0);
        else
                uv_tcp_init(s->loop, &c->h.tcp);
        c->h.handle.data = c;
        if (uv_accept(ls, &c->h.stream) < 0) {
                conn_close(c);
                return;
        }
        if (!l->is_unix)
                uv_tcp_nodelay(&c->h.tcp, 1);
        conn_note_peer(c);
        /* The first request's headers are due within header_timeout_ms of the accept, so a
         * client cannot hold a connection by sending nothing (or one byte at a time). */
        http__conn_set_deadline(c, HTTP_DL_HEADERS, s->lim.header_timeout_ms);
        http__conn_update_reading(c);
}

/* One connection's share of the sweep. */
static void sweep_one(struct http_server *s, struct http_conn *c, uint64_t now)
{
        if (c->ws) {
                http__ws_sweep(c, now);
                return;
        }
        if (c->wq_bytes > 0 && now - c->write_progress >= s->lim.idle_timeout_ms) {
                conn_close(c);
                return;
        }
        if (c->deadline_kind == HTTP_DL_NONE || now < c->deadline || c->handler_paused)
                return;
        switch (c->deadline_kind) {
        case HTTP_DL_HEADERS:
                /* Nothing of a request arrived: close without a word (as for an idle
                 * keep-alive connection); a partial request gets its 408. */
                if (c->cur && !c->cur->headers_done)
                        http__conn_fail(c, 408, "request_timeout",
                                        "request headers not received in time");
                else
                        conn_close(c);
                break;
        case HTTP_DL_BODY:
                http__conn_fail(c, 408, "request_timeout", "request body not received in time");
                break;
        default:
                conn_close(c);
                break;
        }
}

/* The sweep: fire expired deadlines and close connections whose queued output made no
 * progress for idle_timeout_ms (a client that stopped reading). The current and the next
 * connection are referenced while a handler callback (on_abort) may run; if the list
 * changed under us, the rest waits for the next tick. */
static void on_sweep(uv_timer_t *t)
{
        struct http_server *s = t->data;
        uint64_t now = uv_now(s->loop);
        struct http_conn *c = s->conns;

        if (c)
                c->refs++;
        while (c) {
                struct http_conn *next = c->next;
                if (next)
                        next->refs++;
                if (!s->closing && !c->closed)
                        sweep_one(s, c, now);
                http__conn_unref(c);
                if (next && (next->closed || s->closing)) {
                        http__conn_unref(next);
                        break;
                }
                c = next;
        }
}

/* ---- listeners ---- */

static int listener_new(struct http_server *s, bool is_unix, struct http_listener **ret)
{
        struct http_listener *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        l->server = s;
        l->is_unix = is_unix;
        *ret = l;
        return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
        struct http_listener *l = h->data;
        struct http_server *s = l->server;
        struct stat st;

        /* Remove the socket file only if it is still ours: a newer daemon may own the path. */
        if (l->unix_path && stat(l->unix_path, &st) == 0 && st.st_dev == l->unix_dev &&
            st.st_ino == l->unix_ino)
                unlink(l->unix_path);
        free(l->unix_path);
        free(l);
        server_unref(s);
}

/* Link a listening handle into the server and start accepting. On failure the handle is
 * closed (and freed) here. */
static int listener_start(struct http_server *s, struct http_listener *l)
{
        l->h.handle.data = l;
        s->refs++;
        l->next = s->listeners;
        s->listeners = l;
        int r = uv_listen(&l->h.stream, 511, on_connection);
        if (r < 0) {
                s->listeners = l->next;
                uv_close(&l->h.handle, on_listener_closed);
                return r;
        }
        server_start_sweep(s);
        return 0;
}

/* Parse "A.B.C.D:PORT" or "[V6]:PORT" into ss. */
static int parse_addr_port(const char *ap, struct sockaddr_storage *ss)
{
        char host[INET6_ADDRSTRLEN + 1];
        const char *port_s;
        size_t hl;

        if (!ap)
                return -EINVAL;
        if (ap[0] == '[') {
                const char *e = strchr(ap, ']');
                if (!e || e[1] != ':')
                        return -EINVAL;
                hl = (size_t)(e - ap - 1);
                if (hl == 0 || hl >= sizeof(host))
                        return -EINVAL;
                memcpy(host, ap + 1, hl);
                port_s = e + 2;
        } else {
                const char *e = strrchr(ap, ':');
                if (!e)
                        return -EINVAL;
                hl = (size_t)(e - ap);
                if (hl == 0 || hl >= sizeof(host))
                        return -EINVAL;
                memcpy(host, ap, hl);
                port_s = e + 1;
        }
        host[hl] = '\0';
        if (!*port_s || strlen(port_s) > 5)
                return -EINVAL;
        unsigned long port = 0;
        for (const char *p = port_s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port > 65535)
                return -EINVAL;
        if (ap[0] == '[') {
                if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) < 0)
                        return -EINVAL;
        } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) < 0) {
                return -EINVAL;
        }
        return 0;
}

/* Listen on "ADDR:PORT"; see http.h. An IPv6 listener is IPv6-only. */
int http_server_listen_tcp(struct http_server *s, const char *addr_port, int *ret_port)
{
        struct sockaddr_storage ss = { 0 };
        struct http_listener *l;
        int r;

        if (!s || !s->loop || s->closing)
                return -EINVAL;
        r = parse_addr_port(addr_port, &ss);
        if (r < 0)
                return r;
        r = listener_new(s, false, &l);
        if (r < 0)
                return r;
        uv_tcp_init(s->loop, &l->h.tcp);
        l->h.handle.data = l;
        r = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&ss,
                        ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
        if (r < 0) {
                s->refs++; /* on_listener_closed drops it */
                uv_close(&l->h.handle, on_listener_closed);
                return r;
        }
        r = listener_start(s, l);
        if (r < 0)
                return r;
        if (ret_port) {
                struct sockaddr_storage bound;
                int len = sizeof(bound);
                r = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&bound, &len);
                if (r < 0)
                        return r;
                *ret_port = ntohs(bound.ss_family == AF_INET6
                                          ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                          : ((struct sockaddr_in *)&bound)->sin_port);
        }
        return 0;
}

/* Whether something listens on the unix socket at path (a live server: do not replace). */
static bool unix_socket_alive(const struct sockaddr_un *sa)
{
        int fd cleanup_close = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return false;
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
                return true;
        return errno == EAGAIN || errno == EINPROGRESS;
}

/* Listen on a unix socket; see http.h. The socket is bound under a temporary name,
 * chmod'ed to 0660 and renamed over path, so it is never reachable with the umask's
 * (possibly wider) mode, and a stale socket file is replaced atomically. A path that holds
 * something other than a socket, or a socket a live server listens on, is left alone. */
int http_server_listen_unix(struct http_server *s, const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX }, tmp = { .sun_family = AF_UNIX };
        struct http_listener *l;
        struct stat st;
        int r;

        if (!s || !s->loop || s->closing || !path || !*path)
                return -EINVAL;
        if (strlen(path) + 5 > sizeof(sa.sun_path) - 1)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.new", path);

        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                if (unix_socket_alive(&sa))
                        return -EADDRINUSE;
        } else if (errno != ENOENT) {
                return neg_errno();
        }

        int fd cleanup_close = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return neg_errno();
        (void)unlink(tmp.sun_path);
        if (bind(fd, (const struct sockaddr *)&tmp, sizeof(tmp)) < 0)
                return neg_errno();
        if (chmod(tmp.sun_path, 0660) < 0 || rename(tmp.sun_path, path) < 0) {
                r = neg_errno();
                (void)unlink(tmp.sun_path);
                return r;
        }
        if (stat(path, &st) < 0) {
                r = neg_errno();
                return r;
        }
        r = listener_new(s, true, &l);
        if (r >= 0 && !(l->unix_path = strdup(path))) {
                free(l);
                r = -ENOMEM;
        }
        if (r < 0) {
                (void)unlink(path);
                return r;
        }
        l->unix_dev = st.st_dev;
        l->unix_ino = st.st_ino;
        uv_pipe_init(s->loop, &l->h.pipe, 0);
        l->h.handle.data = l;
        r = uv_pipe_open(&l->h.pipe, fd);
        if (r < 0) {
                /* on_listener_closed unlinks the path and drops this reference */
                s->refs++;
                uv_close(&l->h.handle, on_listener_closed);
                return r;
        }
        TAKE_FD(fd);
        return listener_start(s, l);
}

/* Stop listening and close every connection; see http.h. The rule chosen: the server
 * memory stays valid until the loop has run the close callbacks and every request a
 * handler still holds has been answered (and freed on the following iteration); the caller
 * must not use s after this call, but the handlers may still answer (and read req->server
 * of) requests they hold. The loop keeps running until then. */
void http_server_close(struct http_server *s)
{
        if (!s || s->closing)
                return;
        s->closing = true;
        /* Keep s alive through the on_abort callbacks below. */
        s->refs++;
        while (s->listeners) {
                struct http_listener *l = s->listeners;
                s->listeners = l->next;
                uv_close(&l->h.handle, on_listener_closed);
        }
        while (s->conns)
                conn_close(s->conns);
        while (s->defer_head) {
                struct http_conn *c = s->defer_head;
                s->defer_head = c->defer_next;
                c->deferred = false;
                http__conn_unref(c);
        }
        s->defer_tail = NULL;
        if (s->loop)
                uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
        server_unref(s); /* the owner's reference */
        server_unref(s);
}

/* ---- memory mode (fuzzing) ---- */

int http_mem_conn_new(struct http_server *s, struct http_conn **ret)
{
        struct http_conn *c;

        if (!s || s->loop || s->closing)
                return -EINVAL;
        c = conn_new(s);
        if (!c)
                return -ENOMEM;
        c->mem = true;
        c->refs++; /* the caller's */
        http__conn_update_reading(c);
        *ret = c;
        return 0;
}

void http_mem_conn_input(struct http_conn *c, const char *data, size_t len)
{
        if (len > 0 && c->reading)
                conn_input(c, data, len);
}

void http_mem_conn_eof(struct http_conn *c)
{
        conn_eof(c);
}

bool http_mem_conn_reading(const struct http_conn *c)
{
        return c->reading && !c->closed;
}

bool http_mem_conn_closed(const struct http_conn *c)
{
        return c->closed;
}

void http_mem_run_deferred(struct http_server *s)
{
        s->refs++;
        server_run_deferred(s);
        server_unref(s);
}

void http_mem_conn_release(struct http_conn *c)
{
        http__conn_unref(c);
}
