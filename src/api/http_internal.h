/* http_internal.h - private structures of the HTTP server, shared by src/api/http*.c and the
 * fuzz harness. Nothing outside src/api/ and tests/ may include this header.
 *
 * Layout of the module:
 *   http.c          server, listeners, connections, reading, writing, timeouts, closing
 *   http_request.c  http_parser callbacks, request building, path and query decoding
 *   http_response.c response heads, whole and streamed answers, error bodies, status text
 *   ws.c            WebSocket connections (a connection with c->ws set carries frames)
 *
 * Lifetimes (the rule that keeps handlers away from freed memory, as redis does it: a
 * client is never freed inside its own callback):
 *   - A connection is reference counted: one reference for its libuv handle (dropped in the
 *     uv_close callback, never synchronously), one for the request it carries (c->cur, dropped
 *     when the request is freed) and one while it sits on the deferred list. It is freed
 *     when the count reaches zero, so a request held by a handler always points at valid
 *     connection memory, even after the socket is gone.
 *   - The server is reference counted the same way: one reference for its owner (dropped by
 *     http_server_close()), one per listener and per internal handle (dropped in their close
 *     callbacks) and one per connection (dropped when the connection is freed). So the
 *     server outlives every request that a handler still holds. After http_server_close()
 *     the idle handle is closed once it holds the last reference.
 *   - A request is never freed inside the call that answers it: the final answer detaches
 *     it from its connection and queues it on the server's free list, which the idle handle
 *     empties on the next loop iteration. So a handler may still read the request (and
 *     clear req->user) after answering, until it returns to the loop.
 */
#ifndef WARREN_HTTP_INTERNAL_H
#define WARREN_HTTP_INTERNAL_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "http.h"

/* Size of the one read buffer shared by every connection of a server. */
#define HTTP_READ_BUF_SIZE (64 * 1024)
/* Unread input kept per connection while a request is being answered (pipelining); reading
 * stops beyond it, so a client cannot make us buffer more. */
#define HTTP_PIPELINE_MAX (64 * 1024)
/* No further pipelined request is parsed while more than this much output waits to be
 * written: a client that sends requests and never reads the answers cannot grow the
 * output queue without bound. */
#define HTTP_OUTPUT_HIGH_WATER (256 * 1024)
/* A request answered before its body arrived: a body up to this size is read and dropped
 * so the connection can be kept; a larger (or chunked) one closes the connection. */
#define HTTP_SKIP_BODY_MAX (64 * 1024)
/* Lingering close: after the last answer is written we send FIN and read (and drop) what
 * the client still sends, for at most this long or this many bytes. Without it, unread
 * input makes the kernel answer with RST, which can destroy the answer (e.g. a 413) before
 * the client has read it. */
#define HTTP_LINGER_MS 2000
#define HTTP_LINGER_BYTES (1024 * 1024)

/* Inline storage in each request, so a typical request needs one allocation. */
#define HREQ_INLINE_HEADERS 16
#define HREQ_INLINE_BYTES 512

/* What the per-connection deadline means when it expires (checked by the sweep timer). */
enum http_deadline {
        HTTP_DL_NONE = 0,
        HTTP_DL_HEADERS, /* headers incomplete: 408 (or a silent close if nothing came) */
        HTTP_DL_BODY,    /* no body bytes for idle_timeout_ms: 408 */
        HTTP_DL_IDLE,    /* keep-alive connection idle: close */
        HTTP_DL_LINGER,  /* lingering close over: close */
};

/* Which parser data callback ran last, to tell a continued fragment from a new string. */
enum http_last_cb {
        HTTP_CB_NONE = 0,
        HTTP_CB_URL,
        HTTP_CB_FIELD,
        HTTP_CB_VALUE,
};

struct http_listener {
        union {
                uv_handle_t handle;
                uv_stream_t stream;
                uv_tcp_t tcp;
                uv_pipe_t pipe;
        } h;
        struct http_server *server;
        struct http_listener *next;
        bool is_unix;
        char *unix_path; /* unlinked at close if it is still our socket (same dev/ino) */
        dev_t unix_dev;
        ino_t unix_ino;
};

struct http_server {
        uv_loop_t *loop; /* NULL in memory mode (fuzzing): no sockets, no timers */
        struct http_limits lim;
        http_headers_cb on_headers;
        http_request_cb on_request;
        void *ud;

        struct http_listener *listeners;
        struct http_conn *conns; /* live (not closed) connections */
        size_t n_conns;          /* connections whose handle is not yet closed */
        struct http_conn *defer_head, *defer_tail;
        struct hreq *free_head; /* answered requests, freed on the next loop iteration */
        /* Ended WebSockets whose on_close runs on the next loop iteration (ws.c). */
        struct ws_conn *ws_defer_head, *ws_defer_tail;

        uv_timer_t sweep; /* deadlines: header/body/idle/linger timeouts, stalled writes */
        uint64_t sweep_period; /* ms */
        uv_idle_t idle;   /* runs the deferred and free lists on the next loop iteration */
        bool sweep_started;
        bool idle_started;
        bool idle_closing;

        char *rbuf; /* HTTP_READ_BUF_SIZE, shared: every read is consumed before the next */
        size_t refs;
        bool closing;

        int64_t date_s; /* second that date[] describes */
        char date[40];  /* "Sun, 06 Nov 1994 08:49:37 GMT" */
};

struct hreq;
struct ws_conn;

struct http_conn {
        union {
                uv_handle_t handle;
                uv_stream_t stream;
                uv_tcp_t tcp;
                uv_pipe_t pipe;
        } h;
        http_parser parser;
        struct http_server *server;
        struct http_conn *prev, *next; /* server->conns */
        struct http_conn *defer_next;  /* server->defer_head list */
        struct hreq *cur;              /* the request being parsed or answered, or NULL */
        /* An accepted WebSocket: input goes to it instead of the parser, the sweep asks it
         * instead of the HTTP deadlines. Cleared when it ends (it keeps a reference). */
        struct ws_conn *ws;

        char *in; /* input read but not parsed yet (pipelined, or read while paused) */
        uint32_t in_len, in_off;

        size_t wq_bytes;          /* bytes handed to uv_write and not yet written */
        uint64_t write_progress;  /* loop time (ms) of the last write progress */
        uint64_t deadline;        /* loop time (ms), meaning given by deadline_kind */
        uint32_t linger_bytes;    /* bytes dropped while lingering */
        uint32_t n_requests;      /* requests begun on this connection */
        uint32_t refs;

        uint8_t deadline_kind; /* enum http_deadline */
        uint8_t peer_family;   /* AF_INET, AF_INET6 or AF_UNIX */
        uint16_t peer_port;
        uint8_t peer_addr[16];

        bool mem : 1;            /* memory mode: no socket (fuzzing) */
        bool is_unix : 1;        /* accepted on the unix-socket listener */
        bool in_parse : 1;       /* inside conn_feed(): never re-enter the parser */
        bool reading : 1;        /* uv_read_start() is in effect */
        bool handler_paused : 1; /* http_req_pause() or ws_pause() */
        bool deferred : 1;       /* on the server's deferred list */
        bool write_failed : 1;   /* a write failed: close from the deferred list */
        bool last : 1;           /* the current request is the last one (close after it) */
        bool closing : 1;        /* no more requests: flush, then lingering close */
        bool lingering : 1;      /* FIN sent; reading and dropping until EOF or deadline */
        bool closed : 1;         /* handle closing or closed; nothing more happens */

        /* Memory mode only: what was written, for the fuzz harness's checks. */
        char *mem_out;
        size_t mem_out_len;
        size_t mem_out_total;
};

/* A request: the public part first, so &r->pub and r convert both ways. */
struct hreq {
        struct http_req pub;
        struct http_conn *conn; /* holds a reference: valid until the request is freed */

        /* Parse-time storage: url, then "name\0value\0" pairs, then the decoded path and the
         * query; pointers in pub are resolved into it once the headers are complete. */
        char *hbuf;
        uint32_t hbuf_len, hbuf_cap;
        uint32_t *hoff; /* 2 offsets (name, value) per header */
        uint32_t hoff_cap;
        uint32_t n_hdr;
        uint32_t url_len;
        uint32_t header_bytes;  /* url + names + values, against max_header_bytes */
        uint32_t trailer_bytes; /* chunked trailers (dropped), against max_header_bytes */
        size_t body_cap;

        /* Answer. */
        char *rsp_hdrs; /* extra "Name: value\r\n" lines from http_req_add_header() */
        size_t rsp_hdrs_len, rsp_hdrs_cap;
        void (*on_drain)(struct http_req *req);
        int64_t rsp_remaining; /* bytes still due by Content-Length, -1 if not counted */

        uint8_t last_cb; /* enum http_last_cb */
        uint8_t mode;    /* enum http_body_mode */
        bool headers_done : 1;
        bool parse_done : 1;    /* the whole request (body included) was parsed */
        bool handed : 1;        /* on_request was called: the handler owns it */
        bool answered : 1;      /* the final answer call was made */
        bool started : 1;       /* http_respond_start() was called */
        bool rsp_chunked : 1;   /* streamed answer in chunked encoding */
        bool rsp_nobody : 1;    /* HEAD, 1xx, 204 or 304: no body bytes go out */
        bool head : 1;          /* HEAD request */
        bool http10 : 1;        /* HTTP/1.0 client */
        bool expect_continue : 1;
        bool aborted : 1;       /* on_abort was called */
        bool detached : 1;      /* the connection no longer carries it: answers are dropped */
        bool close_after : 1;   /* the answer said Connection: close */
        bool freeing : 1;       /* on the server's free list */
        bool ws_upgrade : 1;    /* an upgrade GET without a body (http_req_is_ws checks the rest) */
        struct hreq *free_next;

        struct http_header hdr_inline[HREQ_INLINE_HEADERS];
        uint32_t hoff_inline[2 * HREQ_INLINE_HEADERS];
        char hbuf_inline[HREQ_INLINE_BYTES];
};

static inline struct hreq *hreq_of(const struct http_req *req)
{
        return (struct hreq *)req;
}

/* http.c */
uint64_t http__now(const struct http_server *s);
void http__server_queue_free(struct http_server *s, struct hreq *r);
void http__conn_write(struct http_conn *c, const uv_buf_t *bufs, unsigned n);
void http__conn_end(struct http_conn *c);
void http__conn_abort_later(struct http_conn *c);
void http__conn_close(struct http_conn *c);
void http__conn_fail(struct http_conn *c, int status, const char *code, const char *message);
void http__conn_schedule(struct http_conn *c);
void http__conn_update_reading(struct http_conn *c);
void http__conn_unref(struct http_conn *c);
void http__conn_set_deadline(struct http_conn *c, enum http_deadline kind, uint64_t ms);
void http__peer_string(const struct http_conn *c, char *buf, size_t len);
/* Run the deferred-work handle on the next loop iteration. */
void http__server_wake(struct http_server *s);
/* Make the sweep run at least every ms / 4 (clamped to [10 ms, 1 s]). */
void http__server_sweep_hint(struct http_server *s, uint64_t ms);

/* ws.c */
size_t http__ws_feed(struct http_conn *c, const char *data, size_t len);
bool http__ws_output_full(const struct http_conn *c);
void http__ws_drained(struct http_conn *c);
void http__ws_conn_closing(struct http_conn *c);
void http__ws_sweep(struct http_conn *c, uint64_t now);
void http__ws_run_deferred(struct http_server *s);

/* http_request.c */
extern const http_parser_settings http__parser_settings;
void http__req_free(struct hreq *r);
void http__req_destroy(struct hreq *r);
bool http__req_body_skippable(const struct hreq *r);

/* http_response.c */
void http__req_finish(struct hreq *r);
void http__write_error(struct http_conn *c, bool head, int status, const char *code,
                       const char *message);
char *http__error_json(const char *code, const char *message, size_t *ret_len);

/* Memory mode, for the fuzz harness: the whole request path without sockets or a loop.
 * Writes are collected in c->mem_out (first 64 KiB) and counted in c->mem_out_total. */
int http_server_new_mem(const struct http_limits *lim, http_headers_cb on_headers,
                        http_request_cb on_request, void *ud, struct http_server **ret);
/* A connection in memory mode; the caller holds one reference (http_mem_conn_release()). */
int http_mem_conn_new(struct http_server *s, struct http_conn **ret);
/* Deliver bytes as if read from the socket (only while http_mem_conn_reading()). */
void http_mem_conn_input(struct http_conn *c, const char *data, size_t len);
/* The client closed its side. */
void http_mem_conn_eof(struct http_conn *c);
bool http_mem_conn_reading(const struct http_conn *c);
bool http_mem_conn_closed(const struct http_conn *c);
/* Run what the loop would run on its next iteration (deferred parsing, resumes). */
void http_mem_run_deferred(struct http_server *s);
void http_mem_conn_release(struct http_conn *c);

#endif
