/* http.h - a small HTTP/1.1 server on libuv + http_parser.
 *
 * One libuv loop, one thread. Serves TCP and unix-socket listeners. Keep-alive, pipelined
 * requests (answered one at a time, in order), chunked and Content-Length request bodies,
 * Content-Length and chunked responses, streamed bodies in both directions with
 * backpressure. Everything a client controls is bounded (see struct http_limits); a
 * violation is answered with a JSON error ({"error":{"code","message"}}) and the connection
 * is closed; a malformed request never crashes the server.
 *
 * Request lifetime: the server calls on_headers, then (unless the body is streamed)
 * buffers the body, then calls on_request. The handler must eventually answer every request
 * exactly once, with http_respond() or http_respond_start()..http_respond_end(), either from
 * inside the callback or later (asynchronously). If the client goes away before that, the
 * server calls req->on_abort (if set) once; the request stays valid and the handler must
 * still answer it: the answer is then discarded and the request freed.
 */
#ifndef WARREN_HTTP_H
#define WARREN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_server;
struct http_req;

/* Methods (same values as http_parser's enum http_method for the ones we use). */
enum http_method_id {
        HTTP_M_DELETE = 0,
        HTTP_M_GET = 1,
        HTTP_M_HEAD = 2,
        HTTP_M_POST = 3,
        HTTP_M_PUT = 4,
        HTTP_M_OPTIONS = 6,
        HTTP_M_PATCH = 28,
};

struct http_limits {
        size_t max_header_bytes; /* request line + all headers; default 16 KiB */
        size_t max_headers;      /* default 64 */
        size_t max_url;          /* default 8 KiB */
        size_t max_body;         /* largest buffered body; default 64 MiB */
        unsigned header_timeout_ms; /* headers must arrive within this; default 30 s */
        unsigned idle_timeout_ms;   /* keep-alive idle close; default 120 s */
        size_t max_connections;     /* further accepts are closed at once; default 10000 */
};

/* What on_headers decides about the body. */
enum http_body_mode {
        HTTP_BODY_BUFFER = 0, /* buffer up to max_body (413 beyond), then on_request */
        HTTP_BODY_STREAM = 1, /* deliver chunks to req->on_body; on_request after the last */
        HTTP_BODY_ANSWERED = 2, /* the handler already answered (e.g. 401); body is discarded */
};

struct http_header {
        char *name; /* lowercased */
        char *value;
};

/* A request. Fields are read-only for handlers except the callbacks and user. */
struct http_req {
        struct http_server *server;
        int method;      /* enum http_method_id (other http_parser values possible) */
        char *url;       /* raw request target */
        char *path;      /* percent-decoded path, without the query; never contains NUL */
        char *query;     /* raw query string without '?', or NULL */
        struct http_header *headers;
        size_t n_headers;
        char *body; /* buffered body (NUL-terminated for convenience), NULL if none/streamed */
        size_t body_len;
        uint64_t content_length; /* from the header, or UINT64_MAX if absent/chunked */
        bool over_unix_socket;   /* arrived on the unix-socket listener */
        char peer[64];           /* "127.0.0.1:5555" or "unix" */
        uint64_t started_ns;     /* util_now_ns() at the first byte */

        /* Handler-owned. */
        void *user;
        /* Streamed body chunk. Return 0 to continue; a negative errno aborts the request (the
         * server answers 400 unless the handler already answered). The data is only valid
         * during the call. */
        int (*on_body)(struct http_req *req, const char *data, size_t len);
        /* Client disconnected before the answer was complete. */
        void (*on_abort)(struct http_req *req);
};

/* Called when the headers are complete. Return a body mode. May call http_respond() and
 * return HTTP_BODY_ANSWERED. */
typedef enum http_body_mode (*http_headers_cb)(struct http_req *req, void *ud);
/* Called when the request (and its body) is complete. */
typedef void (*http_request_cb)(struct http_req *req, void *ud);

/* Create a server on loop. lim may be NULL for defaults (zero fields take defaults too). */
int http_server_new(uv_loop_t *loop, const struct http_limits *lim, http_headers_cb on_headers,
                    http_request_cb on_request, void *ud, struct http_server **ret);
/* Listen on "ADDR:PORT" (IPv4 or [IPv6]:PORT). Port 0 picks one: *ret_port gets it. */
int http_server_listen_tcp(struct http_server *s, const char *addr_port, int *ret_port);
/* Listen on a unix socket path (an old socket file is replaced), mode 0660. */
int http_server_listen_unix(struct http_server *s, const char *path);
/* Stop listening and close every connection; pending requests get on_abort. */
void http_server_close(struct http_server *s);
/* Number of open connections. */
size_t http_server_connections(const struct http_server *s);

/* Header value by lowercase name, or NULL. */
const char *http_req_header(const struct http_req *req, const char *name_lower);
/* Value of a query parameter, percent-decoded (+ as space), malloc'd into *ret. -ENOENT if
 * missing, -EINVAL if it decodes to a string containing NUL. */
int http_req_query(const struct http_req *req, const char *key, char **ret);

/* Add a response header (copied) before answering. */
int http_req_add_header(struct http_req *req, const char *name, const char *value);

/* Answer with a whole body (copied). content_type may be NULL (no header). */
void http_respond(struct http_req *req, int status, const char *content_type, const char *body,
                  size_t len);
/* Shortcut: {"error":{"code":code,"message":message}} with status. */
void http_respond_error(struct http_req *req, int status, const char *code, const char *message);

/* Start a streamed answer: content_length >= 0 sends Content-Length, -1 uses chunked
 * encoding. Then http_respond_write() any number of times and http_respond_end() once. */
void http_respond_start(struct http_req *req, int status, const char *content_type,
                        int64_t content_length);
/* Queue data (copied). Returns the number of bytes queued on the socket and not yet
 * written; callers stop producing while it is above a bound (e.g. 1 MiB) and resume from
 * the on_drain callback. Returns 0 if the connection is gone (data dropped). */
size_t http_respond_write(struct http_req *req, const void *data, size_t len);
/* Called once when the queued bytes drop to zero after a write (set before writing). */
void http_req_set_on_drain(struct http_req *req, void (*on_drain)(struct http_req *req));
void http_respond_end(struct http_req *req);

/* Pause / resume reading the request body from the socket (streamed bodies: backpressure
 * while the handler writes a chunk to disk). */
void http_req_pause(struct http_req *req);
void http_req_resume(struct http_req *req);

/* Whether the client is still connected. */
bool http_req_connected(const struct http_req *req);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
