/* http_request.c - http_parser callbacks: build a request from the bytes, enforce the limits
 * a client controls, decode the path, call the handler's on_headers / on_body / on_request.
 *
 * Every string of the request (url, header names and values, decoded path, query) lives in
 * one buffer per request (r->hbuf, inline for small requests), appended to as the parser
 * hands out fragments; the pointers in the public struct are resolved into it once the
 * headers are complete, when the buffer stops growing.
 *
 * A callback that rejects the request answers it (http__conn_fail) and then returns
 * non-zero so the parser stops; conn_feed() sees the connection closing and stops too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "util.h"

/* Grow r->hbuf so that extra more bytes fit. */
static int hbuf_reserve(struct hreq *r, size_t extra)
{
        size_t need = (size_t)r->hbuf_len + extra;

        if (need <= r->hbuf_cap)
                return 0;
        if (need > UINT32_MAX / 2)
                return -E2BIG;
        size_t cap = (size_t)r->hbuf_cap * 2;
        if (cap < need)
                cap = need;
        char *n;
        if (r->hbuf == r->hbuf_inline) {
                n = malloc(cap);
                if (!n)
                        return -ENOMEM;
                memcpy(n, r->hbuf, r->hbuf_len);
        } else {
                n = realloc(r->hbuf, cap);
                if (!n)
                        return -ENOMEM;
        }
        r->hbuf = n;
        r->hbuf_cap = (uint32_t)cap;
        return 0;
}

static int hbuf_append(struct hreq *r, const char *p, size_t n)
{
        int e = hbuf_reserve(r, n);

        if (e < 0)
                return e;
        if (n)
                memcpy(r->hbuf + r->hbuf_len, p, n);
        r->hbuf_len += (uint32_t)n;
        return 0;
}

static int hbuf_putc(struct hreq *r, char ch)
{
        return hbuf_append(r, &ch, 1);
}

/* Fail the request for lack of memory (returns the parser's stop value). */
static int fail_nomem(struct http_conn *c)
{
        http__conn_fail(c, 503, "unavailable", "out of memory");
        return -1;
}

/* Count header bytes against max_header_bytes (431 beyond). */
static int count_header_bytes(struct http_conn *c, struct hreq *r, size_t len)
{
        if (len > c->server->lim.max_header_bytes ||
            r->header_bytes + len > c->server->lim.max_header_bytes) {
                http__conn_fail(c, 431, "headers_too_large", "request headers too large");
                return -1;
        }
        r->header_bytes += (uint32_t)len;
        return 0;
}

/* Trailers of a chunked body are dropped, but bounded like headers. */
static int count_trailer_bytes(struct http_conn *c, struct hreq *r, size_t len)
{
        if (len > c->server->lim.max_header_bytes ||
            r->trailer_bytes + len > c->server->lim.max_header_bytes) {
                http__conn_fail(c, 431, "headers_too_large", "request trailers too large");
                return -1;
        }
        r->trailer_bytes += (uint32_t)len;
        return 0;
}

static int on_message_begin(http_parser *p)
{
        struct http_conn *c = p->data;
        struct http_server *s = c->server;
        struct hreq *r;

        /* conn_feed() never parses while a request is current and complete. */
        if (c->cur) {
                http__conn_fail(c, 500, "internal", "request overlap");
                return -1;
        }
        r = calloc(1, sizeof(*r));
        if (!r)
                return fail_nomem(c);
        r->conn = c;
        c->refs++;
        c->cur = r;
        r->hbuf = r->hbuf_inline;
        r->hbuf_cap = sizeof(r->hbuf_inline);
        r->hoff = r->hoff_inline;
        r->hoff_cap = ARRAY_SIZE(r->hoff_inline);
        r->rsp_remaining = -1;
        r->pub.server = s;
        r->pub.method = -1;
        r->pub.content_length = UINT64_MAX;
        r->pub.over_unix_socket = c->is_unix;
        r->pub.started_ns = util_now_ns();
        http__peer_string(c, r->pub.peer, sizeof(r->pub.peer));
        /* The first request's deadline runs from the accept; later ones from their first
         * byte. */
        if (c->n_requests > 0)
                http__conn_set_deadline(c, HTTP_DL_HEADERS, s->lim.header_timeout_ms);
        c->n_requests++;
        return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
        struct http_conn *c = p->data;
        struct hreq *r = c->cur;

        if (!r)
                return -1;
        if (len > c->server->lim.max_url || r->url_len + len > c->server->lim.max_url) {
                http__conn_fail(c, 414, "uri_too_long", "request URL too long");
                return -1;
        }
        if (count_header_bytes(c, r, len) < 0)
                return -1;
        if (hbuf_append(r, at, len) < 0)
                return fail_nomem(c);
        r->url_len += (uint32_t)len;
        r->last_cb = HTTP_CB_URL;
        return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
        struct http_conn *c = p->data;
        struct hreq *r = c->cur;

        if (!r)
                return -1;
        if (r->headers_done)
                return count_trailer_bytes(c, r, len);
        if (r->last_cb != HTTP_CB_FIELD) {
                /* A new header: terminate the url or the previous value. */
                if (r->n_hdr >= c->server->lim.max_headers) {
                        http__conn_fail(c, 431, "headers_too_large", "too many request headers");
                        return -1;
                }
                if (r->n_hdr + 1 > r->hoff_cap / 2) {
                        uint32_t cap = r->hoff_cap * 2;
                        uint32_t *n = malloc(cap * sizeof(*n));
                        if (!n)
                                return fail_nomem(c);
                        memcpy(n, r->hoff, r->hoff_cap * sizeof(*n));
                        if (r->hoff != r->hoff_inline)
                                free(r->hoff);
                        r->hoff = n;
                        r->hoff_cap = cap;
                }
                if (hbuf_putc(r, '\0') < 0)
                        return fail_nomem(c);
                r->hoff[2 * r->n_hdr] = r->hbuf_len;
                r->hoff[2 * r->n_hdr + 1] = UINT32_MAX;
                r->n_hdr++;
                /* ": " and CRLF count too, so many empty headers still add up. */
                if (count_header_bytes(c, r, 4) < 0)
                        return -1;
        }
        if (count_header_bytes(c, r, len) < 0)
                return -1;
        uint32_t start = r->hbuf_len;
        if (hbuf_append(r, at, len) < 0)
                return fail_nomem(c);
        for (uint32_t i = start; i < r->hbuf_len; i++) {
                char ch = r->hbuf[i];
                if (ch >= 'A' && ch <= 'Z')
                        r->hbuf[i] = (char)(ch - 'A' + 'a');
        }
        r->last_cb = HTTP_CB_FIELD;
        return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
        struct http_conn *c = p->data;
        struct hreq *r = c->cur;

        if (!r)
                return -1;
        if (r->headers_done)
                return count_trailer_bytes(c, r, len);
        if (r->last_cb == HTTP_CB_FIELD) {
                if (hbuf_putc(r, '\0') < 0)
                        return fail_nomem(c);
                r->hoff[2 * (r->n_hdr - 1) + 1] = r->hbuf_len;
        } else if (r->last_cb != HTTP_CB_VALUE) {
                http__conn_fail(c, 400, "bad_request", "header value without a name");
                return -1;
        }
        if (count_header_bytes(c, r, len) < 0)
                return -1;
        if (hbuf_append(r, at, len) < 0)
                return fail_nomem(c);
        r->last_cb = HTTP_CB_VALUE;
        return 0;
}

static int unhex(char ch)
{
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

/* Percent-decode n bytes of in into out (room for n bytes), '+' as a space if plus. Returns
 * the decoded length, -EINVAL on a malformed escape or if the result would contain NUL. */
static ssize_t pct_decode(const char *in, size_t n, bool plus, char *out)
{
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                char ch = in[i];
                if (ch == '%') {
                        if (n - i < 3)
                                return -EINVAL;
                        int hi = unhex(in[i + 1]), lo = unhex(in[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        ch = (char)(hi * 16 + lo);
                        i += 2;
                } else if (plus && ch == '+') {
                        ch = ' ';
                }
                if (ch == '\0')
                        return -EINVAL;
                out[o++] = ch;
        }
        return (ssize_t)o;
}

/* Split the request target (r->hbuf[0..url_len), NUL-terminated) into the decoded path and
 * the raw query, both appended to hbuf; origin-form ("/p?q") and absolute-form
 * ("http://h/p?q") are accepted, anything else ("*", authority-form) is not a path. */
static int decode_target(struct hreq *r, uint32_t *ret_path, uint32_t *ret_query,
                         const char **ret_err)
{
        size_t path_off, path_len, query_off = 0, query_len = 0;
        bool has_query = false;
        const char *url = r->hbuf;

        if (r->url_len > 0 && url[0] == '/') {
                size_t i = 0;
                while (i < r->url_len && url[i] != '?' && url[i] != '#')
                        i++;
                path_off = 0;
                path_len = i;
                if (i < r->url_len && url[i] == '?') {
                        size_t j = i + 1;
                        while (j < r->url_len && url[j] != '#')
                                j++;
                        has_query = true;
                        query_off = i + 1;
                        query_len = j - i - 1;
                }
        } else {
                struct http_parser_url u;
                http_parser_url_init(&u);
                if (r->url_len == 0 || url[0] == '*' ||
                    http_parser_parse_url(url, r->url_len, 0, &u) != 0 ||
                    !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST))) {
                        *ret_err = "request target is not an absolute path";
                        return -EINVAL;
                }
                if (u.field_set & (1 << UF_PATH)) {
                        path_off = u.field_data[UF_PATH].off;
                        path_len = u.field_data[UF_PATH].len;
                } else {
                        path_off = 0;
                        path_len = 0;
                }
                if (u.field_set & (1 << UF_QUERY)) {
                        has_query = true;
                        query_off = u.field_data[UF_QUERY].off;
                        query_len = u.field_data[UF_QUERY].len;
                }
        }

        /* Reserve first: appending must not move the url while it is read. */
        if (hbuf_reserve(r, path_len + query_len + 3) < 0) {
                *ret_err = "out of memory";
                return -ENOMEM;
        }
        url = r->hbuf;
        char *out = r->hbuf + r->hbuf_len;
        *ret_path = r->hbuf_len;
        if (path_len == 0) {
                /* absolute-form without a path means "/" */
                out[0] = '/';
                out[1] = '\0';
                r->hbuf_len += 2;
        } else {
                ssize_t n = pct_decode(url + path_off, path_len, false, out);
                if (n < 0) {
                        *ret_err = "invalid path encoding";
                        return -EINVAL;
                }
                if (out[0] != '/') {
                        *ret_err = "request target is not an absolute path";
                        return -EINVAL;
                }
                out[n] = '\0';
                r->hbuf_len += (uint32_t)n + 1;
        }
        *ret_query = UINT32_MAX;
        if (has_query) {
                *ret_query = r->hbuf_len;
                memcpy(r->hbuf + r->hbuf_len, url + query_off, query_len);
                r->hbuf[r->hbuf_len + query_len] = '\0';
                r->hbuf_len += (uint32_t)query_len + 1;
        }
        return 0;
}

/* Resolve the public pointers into hbuf (which no longer grows) and build the header
 * array, trimming trailing whitespace from values. */
static int resolve_request(struct hreq *r, uint32_t path_off, uint32_t query_off)
{
        struct http_header *h = r->hdr_inline;

        if (r->n_hdr > HREQ_INLINE_HEADERS) {
                h = calloc(r->n_hdr, sizeof(*h));
                if (!h)
                        return -ENOMEM;
        }
        for (uint32_t i = 0; i < r->n_hdr; i++) {
                h[i].name = r->hbuf + r->hoff[2 * i];
                h[i].value = r->hbuf + r->hoff[2 * i + 1];
                size_t vl = strlen(h[i].value);
                while (vl > 0 && (h[i].value[vl - 1] == ' ' || h[i].value[vl - 1] == '\t'))
                        h[i].value[--vl] = '\0';
        }
        r->pub.headers = h;
        r->pub.n_headers = r->n_hdr;
        r->pub.url = r->hbuf;
        r->pub.path = r->hbuf + path_off;
        r->pub.query = query_off == UINT32_MAX ? NULL : r->hbuf + query_off;
        return 0;
}

static int on_headers_complete(http_parser *p)
{
        struct http_conn *c = p->data;
        struct http_server *s = c->server;
        struct hreq *r = c->cur;
        uint32_t path_off, query_off;
        const char *err = NULL;

        if (!r)
                return -1;
        /* Terminate the last string; a name without a value gets an empty one. */
        if (hbuf_putc(r, '\0') < 0)
                return fail_nomem(c);
        if (r->last_cb == HTTP_CB_FIELD) {
                r->hoff[2 * (r->n_hdr - 1) + 1] = r->hbuf_len;
                if (hbuf_putc(r, '\0') < 0)
                        return fail_nomem(c);
        }
        int e = decode_target(r, &path_off, &query_off, &err);
        if (e == -ENOMEM)
                return fail_nomem(c);
        if (e < 0) {
                http__conn_fail(c, 400, "bad_request", err);
                return -1;
        }
        if (resolve_request(r, path_off, query_off) < 0)
                return fail_nomem(c);

        bool chunked = p->flags & F_CHUNKED;
        bool has_body = chunked || (p->content_length != ULLONG_MAX && p->content_length > 0);
        r->pub.method = p->method;
        r->pub.content_length = chunked ? UINT64_MAX : p->content_length;
        r->head = p->method == HTTP_HEAD;
        r->http10 = p->http_major < 1 || (p->http_major == 1 && p->http_minor == 0);
        /* An Upgrade (or CONNECT) request is the last one: what follows it is not HTTP (a
         * handler may switch the connection to WebSocket, see ws.c). */
        if (!http_should_keep_alive(p) || p->upgrade)
                c->last = true;
        /* A candidate for a WebSocket (ws.c): RFC 6455 4.1 wants an HTTP/1.1 GET. */
        r->ws_upgrade = p->upgrade && p->method == HTTP_GET && !r->http10 && !has_body;
        const char *expect = http_req_header(&r->pub, "expect");
        r->expect_continue = expect && !strcasecmp(expect, "100-continue") && !r->http10 &&
                             has_body;
        r->headers_done = true;
        http__conn_set_deadline(c, has_body ? HTTP_DL_BODY : HTTP_DL_NONE,
                                s->lim.idle_timeout_ms);

        enum http_body_mode mode = s->on_headers(&r->pub, s->ud);

        /* The handler may have answered (and, with Connection: close, freed r), closed the
         * server, or had the connection fail: stop parsing in all those cases. */
        if (c->closed || c->closing || c->cur != r)
                return -1;
        if (r->answered || r->started) {
                r->mode = HTTP_BODY_ANSWERED;
                return 0;
        }
        if (mode == HTTP_BODY_ANSWERED) {
                /* The handler said it answered but did not: answer for it. */
                http_respond_error(&r->pub, 500, "internal", "request was not answered");
                if (c->closed || c->closing || c->cur != r)
                        return -1;
                r->mode = HTTP_BODY_ANSWERED;
                return 0;
        }
        if (mode != HTTP_BODY_STREAM)
                mode = HTTP_BODY_BUFFER;
        r->mode = (uint8_t)mode;
        /* Announced too large for a buffer: refuse before reading a byte of it. */
        if (mode == HTTP_BODY_BUFFER && !chunked && p->content_length != ULLONG_MAX &&
            p->content_length > s->lim.max_body) {
                http__conn_fail(c, 413, "payload_too_large", "request body too large");
                return -1;
        }
        if (r->expect_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
                http__conn_write(c, &b, 1);
        }
        return 0;
}

/* Append a piece of a buffered body, growing the buffer geometrically but never past the
 * announced length (+1 for the NUL), so a lying Content-Length cannot make us reserve
 * max_body up front. */
static int body_append(struct http_conn *c, struct hreq *r, const char *at, size_t len)
{
        size_t need = r->pub.body_len + len + 1;

        if (need > r->body_cap) {
                size_t cap = r->body_cap ? r->body_cap * 2 : 16 * 1024;
                if (cap < need)
                        cap = need;
                if (r->pub.content_length != UINT64_MAX && cap > r->pub.content_length + 1 &&
                    need <= r->pub.content_length + 1)
                        cap = (size_t)r->pub.content_length + 1;
                char *n = realloc(r->pub.body, cap);
                if (!n)
                        return -ENOMEM;
                r->pub.body = n;
                r->body_cap = cap;
        }
        memcpy(r->pub.body + r->pub.body_len, at, len);
        r->pub.body_len += len;
        return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
        struct http_conn *c = p->data;
        struct http_server *s = c->server;
        struct hreq *r = c->cur;

        if (!r)
                return -1;
        /* Answered before the body came: the body is dropped. */
        if (r->answered || r->mode == HTTP_BODY_ANSWERED)
                return 0;
        if (r->mode == HTTP_BODY_BUFFER) {
                if (len > s->lim.max_body || r->pub.body_len + len > s->lim.max_body) {
                        http__conn_fail(c, 413, "payload_too_large", "request body too large");
                        return -1;
                }
                if (body_append(c, r, at, len) < 0)
                        return fail_nomem(c);
                return 0;
        }
        if (!r->pub.on_body)
                return 0;
        int rc = r->pub.on_body(&r->pub, at, len);
        if (c->closed || c->closing || c->cur != r)
                return -1;
        if (rc >= 0)
                return 0;
        /* The handler rejected the body: answer 400 for it (unless its answer already
         * began) and close. The request is done: the handler must not use it again, so it
         * gets no on_abort either. */
        c->last = true;
        r->pub.on_abort = NULL;
        if (!r->answered && !r->started) {
                http_respond_error(&r->pub, 400, "bad_request", "request body rejected");
        } else if (!r->answered) {
                /* A streamed answer is under way: the handler still ends it (dropped). */
                c->cur = NULL;
                r->detached = true;
                http__conn_end(c);
        } else {
                http__conn_end(c);
        }
        return -1;
}

static int on_message_complete(http_parser *p)
{
        struct http_conn *c = p->data;
        struct http_server *s = c->server;
        struct hreq *r = c->cur;

        if (!r)
                return -1;
        r->parse_done = true;
        http__conn_set_deadline(c, HTTP_DL_NONE, 0);
        /* Stop after each request: conn_feed() decides whether the next one may be parsed. */
        http_parser_pause(p, 1);
        if (r->answered) {
                c->cur = NULL;
                http__req_free(r);
                if (c->last)
                        http__conn_end(c);
                else
                        http__conn_set_deadline(c, HTTP_DL_IDLE, s->lim.idle_timeout_ms);
                return 0;
        }
        if (r->mode == HTTP_BODY_ANSWERED)
                return 0; /* a streamed answer began in on_headers; it ends later */
        if (r->pub.body)
                r->pub.body[r->pub.body_len] = '\0';
        r->handed = true;
        s->on_request(&r->pub, s->ud);
        return 0;
}

const http_parser_settings http__parser_settings = {
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
};

/* Done with a request: detach it from its connection now (further answer calls are
 * dropped) and free it on the next loop iteration, so the handler that answered it may
 * still read it until it returns. */
void http__req_free(struct hreq *r)
{
        struct http_conn *c = r->conn;

        if (r->freeing)
                return;
        r->freeing = true;
        r->detached = true;
        r->answered = true;
        if (c->cur == r)
                c->cur = NULL;
        http__server_queue_free(c->server, r);
}

/* Free a request's memory and drop its reference on the connection. */
void http__req_destroy(struct hreq *r)
{
        struct http_conn *c = r->conn;

        if (r->hbuf != r->hbuf_inline)
                free(r->hbuf);
        if (r->hoff != r->hoff_inline)
                free(r->hoff);
        if (r->pub.headers != r->hdr_inline)
                free(r->pub.headers);
        free(r->pub.body);
        free(r->rsp_hdrs);
        free(r);
        http__conn_unref(c);
}

/* Whether the rest of r's body (if any) is small enough to read and drop after an early
 * answer, so the connection can be kept. */
bool http__req_body_skippable(const struct hreq *r)
{
        const http_parser *p = &r->conn->parser;

        if (r->parse_done)
                return true;
        if (!r->headers_done || (p->flags & F_CHUNKED))
                return false;
        return p->content_length == ULLONG_MAX || p->content_length <= HTTP_SKIP_BODY_MAX;
}

/* Header value by lowercase name (the first one if repeated), or NULL. */
const char *http_req_header(const struct http_req *req, const char *name_lower)
{
        if (!req || !name_lower)
                return NULL;
        for (size_t i = 0; i < req->n_headers; i++)
                if (!strcmp(req->headers[i].name, name_lower))
                        return req->headers[i].value;
        return NULL;
}

/* Whether the query component in[0..n) decodes to exactly key[0..klen). */
static bool component_equals(const char *in, size_t n, const char *key, size_t klen)
{
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                char ch = in[i];
                if (ch == '%') {
                        if (n - i < 3)
                                return false;
                        int hi = unhex(in[i + 1]), lo = unhex(in[i + 2]);
                        if (hi < 0 || lo < 0)
                                return false;
                        ch = (char)(hi * 16 + lo);
                        i += 2;
                } else if (ch == '+') {
                        ch = ' ';
                }
                if (k >= klen || key[k] != ch)
                        return false;
                k++;
        }
        return k == klen;
}

/* Value of a query parameter; see http.h. "k" without '=' has the empty value. */
int http_req_query(const struct http_req *req, const char *key, char **ret)
{
        if (!req || !key || !ret)
                return -EINVAL;
        const char *q = req->query;
        size_t klen = strlen(key);

        while (q && *q) {
                const char *amp = strchr(q, '&');
                const char *end = amp ? amp : q + strlen(q);
                const char *eq = memchr(q, '=', (size_t)(end - q));
                const char *kend = eq ? eq : end;
                if (component_equals(q, (size_t)(kend - q), key, klen)) {
                        const char *v = eq ? eq + 1 : end;
                        size_t vl = (size_t)(end - v);
                        char *out = malloc(vl + 1);
                        if (!out)
                                return -ENOMEM;
                        ssize_t n = pct_decode(v, vl, true, out);
                        if (n < 0) {
                                free(out);
                                return (int)n;
                        }
                        out[n] = '\0';
                        *ret = out;
                        return 0;
                }
                q = amp ? amp + 1 : NULL;
        }
        return -ENOENT;
}
