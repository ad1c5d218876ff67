/* fuzz_http.c - libFuzzer harness for the HTTP server's request path (src/api/http*.c).
 *
 * Runs the real parser callbacks, limits, body modes, pipelining, early answers, pausing,
 * aborts and answers over one connection in memory mode (no sockets, no loop: fast and
 * deterministic). Input: byte 0 picks how the rest is cut into reads (bits 0-2) and
 * whether small limits apply (bit 3); the rest is what the client sends. The handlers are
 * chosen by the first letter of the path:
 *   /a  answered in on_headers (401)          /s  streamed body, paused every other chunk
 *                                             (/sp... also paused from on_headers)
 *   /e  streamed body answered from on_body   /h  held, answered later by the driver
 *   /q  query and header lookups              /l  streamed answer, Content-Length off by one
 *   else buffered body echoed back
 * Nothing may crash, leak or trip a sanitizer, and what the server writes must start with
 * a status line.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_internal.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        __builtin_trap();                                                          \
        } while (0)

#define MAX_HELD 8

static struct http_req *held[MAX_HELD];
static size_t n_held;
static struct http_req *stream_req; /* the /s or /e request while the handler owns it */
static bool stream_paused;
static unsigned stream_chunks;

static void forget_stream(struct http_req *req)
{
        if (stream_req == req) {
                stream_req = NULL;
                stream_paused = false;
        }
}

static void stream_abort(struct http_req *req)
{
        forget_stream(req);
        http_respond(req, 500, NULL, NULL, 0);
}

static void held_abort(struct http_req *req)
{
        /* Stays held: the driver answers it, and that answer is dropped. */
        req->user = (void *)1;
}

static int stream_body(struct http_req *req, const char *data, size_t len)
{
        if (len > 0 && data[0] == '!') {
                forget_stream(req);
                return -EIO;
        }
        if (req->path[1] == 'e') {
                http_respond(req, 200, "text/plain", data, len > 8 ? 8 : len);
                forget_stream(req);
                return 0;
        }
        if (++stream_chunks % 2 == 0) {
                http_req_pause(req);
                stream_paused = true;
        }
        return 0;
}

static enum http_body_mode on_headers(struct http_req *req, void *ud)
{
        CHECK(req->path && req->path[0] == '/');
        CHECK(strlen(req->path) <= strlen(req->url) + 1);
        for (size_t i = 0; i < req->n_headers; i++)
                CHECK(req->headers[i].name && req->headers[i].value);
        switch (req->path[1]) {
        case 'a':
                http_req_add_header(req, "WWW-Authenticate", "Bearer");
                http_respond_error(req, 401, "unauthorized", req->path);
                return HTTP_BODY_ANSWERED;
        case 's':
        case 'e':
                stream_req = req;
                stream_paused = false;
                req->on_body = stream_body;
                req->on_abort = stream_abort;
                if (req->path[2] == 'p') {
                        /* Held until "the file is open", as the upload route does. */
                        http_req_pause(req);
                        stream_paused = true;
                }
                return HTTP_BODY_STREAM;
        default:
                return HTTP_BODY_BUFFER;
        }
}

static void on_request(struct http_req *req, void *ud)
{
        char *v = NULL;

        /* A /s or /e request (with or without a body) is answered here at the latest. */
        forget_stream(req);
        switch (req->path[1]) {
        case 's':
                http_respond_start(req, 200, "text/plain", -1);
                http_respond_write(req, "one", 3);
                http_respond_write(req, req->path, strlen(req->path));
                http_respond_end(req);
                return;
        case 'h':
                if (n_held < MAX_HELD) {
                        req->on_abort = held_abort;
                        held[n_held++] = req;
                        return;
                }
                break;
        case 'q':
                if (http_req_query(req, "a", &v) == 0)
                        CHECK(strlen(v) <= strlen(req->query));
                free(v);
                v = NULL;
                if (http_req_query(req, "b c", &v) == 0)
                        free(v);
                (void)http_req_header(req, "host");
                http_respond_error(req, 404, req->path, req->query ? req->query : "");
                return;
        case 'l':
                http_respond_start(req, 200, NULL, 4);
                http_respond_write(req, "abcde", req->body_len % 2 ? 5 : 3);
                http_respond_end(req);
                return;
        default:
                break;
        }
        http_req_add_header(req, "X-Path", req->path);
        if (req->body)
                CHECK(req->body[req->body_len] == '\0');
        http_respond(req, 200, "application/octet-stream", req->body, req->body_len);
        /* Still readable until the handler returns. */
        CHECK(req->path[0] == '/');
        req->user = NULL;
}

static void answer_held(void)
{
        struct http_req *req = held[--n_held];
        http_respond(req, req->user ? 500 : 200, "text/plain", "held", 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const size_t cuts[8] = { SIZE_MAX, 1, 2, 3, 7, 16, 61, 512 };
        struct http_limits small = { .max_header_bytes = 512, .max_headers = 8, .max_url = 128,
                                     .max_body = 256 };
        struct http_server *s;
        struct http_conn *c;

        if (size < 1)
                return 0;
        size_t cut = cuts[data[0] & 7];
        bool use_small = data[0] & 8;
        data++;
        size--;

        n_held = 0;
        stream_req = NULL;
        stream_paused = false;
        stream_chunks = 0;
        CHECK(http_server_new_mem(use_small ? &small : NULL, on_headers, on_request, NULL, &s) ==
              0);
        CHECK(http_mem_conn_new(s, &c) == 0);

        size_t pos = 0;
        for (;;) {
                if (http_mem_conn_closed(c))
                        break;
                if (http_mem_conn_reading(c) && pos < size) {
                        size_t k = size - pos < cut ? size - pos : cut;
                        http_mem_conn_input(c, (const char *)data + pos, k);
                        pos += k;
                } else if (n_held > 0) {
                        answer_held();
                } else if (stream_req && stream_paused) {
                        stream_paused = false;
                        http_req_resume(stream_req);
                } else {
                        break;
                }
                http_mem_run_deferred(s);
        }
        /* The client leaves; what the handlers hold is aborted, then answered. */
        http_mem_conn_eof(c);
        http_mem_run_deferred(s);
        if (c->mem_out_len > 0)
                CHECK(c->mem_out_len >= 9 && memcmp(c->mem_out, "HTTP/1.1 ", 9) == 0);
        while (n_held > 0)
                answer_held();
        CHECK(stream_req == NULL);
        http_server_close(s);
        /* Answered requests are freed on the next "loop iteration". */
        http_mem_run_deferred(s);
        http_mem_conn_release(c);
        return 0;
}
