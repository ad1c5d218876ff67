/* http_response.c - answers: response heads, whole and streamed bodies, JSON error bodies,
 * status texts, and the handler-facing request controls (extra headers, pause/resume).
 *
 * Every answer call copies what it is given, so the handler's buffers are free again when
 * it returns. An answer to a request whose connection is gone (r->detached) is dropped and
 * the final call (http_respond, http_respond_end) frees the request. A second final answer
 * is ignored: the request was freed by the first, so a handler that answers twice has a
 * use-after-free in its own code; nothing here can detect that reliably.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_internal.h"
#include "util.h"

/* Reason phrase for a status code. */
const char *http_status_text(int status)
{
        switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 206: return "Partial Content";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 303: return "See Other";
        case 304: return "Not Modified";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 412: return "Precondition Failed";
        case 413: return "Payload Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 416: return "Range Not Satisfiable";
        case 417: return "Expectation Failed";
        case 422: return "Unprocessable Entity";
        case 423: return "Locked";
        case 425: return "Too Early";
        case 426: return "Upgrade Required";
        case 428: return "Precondition Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 451: return "Unavailable For Legal Reasons";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        case 507: return "Insufficient Storage";
        default: break;
        }
        if (status >= 200 && status < 300)
                return "OK";
        if (status >= 300 && status < 400)
                return "Redirect";
        if (status >= 400 && status < 500)
                return "Client Error";
        return "Server Error";
}

/* Refresh the cached Date value once a second. Day and month names are spelled out here
 * because strftime() would follow the locale. */
static const char *server_date(struct http_server *s)
{
        static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        time_t now = time(NULL);
        struct tm tm;

        if (now == s->date_s && s->date[0])
                return s->date;
        if (!gmtime_r(&now, &tm))
                return "";
        snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        s->date_s = now;
        return s->date;
}

/* A status a handler may send as a final answer; anything else becomes 500. */
static int final_status(int status)
{
        return status >= 200 && status <= 599 ? status : 500;
}

/* Whether a header value (or content type) is safe to put on the wire: no CR, LF, NUL or
 * other control character but tab (response splitting). */
static bool value_ok(const char *v)
{
        for (const unsigned char *p = (const unsigned char *)v; *p; p++)
                if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                        return false;
        return true;
}

/* Whether the answer to r must close the connection: the request asked for it (or was the
 * last), the server or connection is ending, or a body still to come cannot be skipped. */
static bool rsp_will_close(const struct hreq *r)
{
        const struct http_conn *c = r->conn;

        return c->last || c->closing || c->server->closing || !http__req_body_skippable(r);
}

/* Append "Name: value\r\n" to buf at *off (the caller sized buf). */
static void put_header(char *buf, size_t *off, const char *name, const char *value)
{
        size_t nl = strlen(name), vl = strlen(value);

        memcpy(buf + *off, name, nl);
        *off += nl;
        memcpy(buf + *off, ": ", 2);
        *off += 2;
        memcpy(buf + *off, value, vl);
        *off += vl;
        memcpy(buf + *off, "\r\n", 2);
        *off += 2;
}

/* Build and queue a response head. content_length < 0 sends no Content-Length. */
static void write_head(struct hreq *r, int status, const char *ctype, int64_t content_length,
                       bool chunked, bool close, const uv_buf_t *body)
{
        struct http_conn *c = r->conn;
        const char *date = server_date(c->server);
        char stack[1024];
        char *buf = stack;
        char num[32];

        if (ctype && !value_ok(ctype))
                ctype = NULL;
        size_t need = 64 + strlen(http_status_text(status)) + strlen(date) +
                      (ctype ? strlen(ctype) + 16 : 0) + 48 + 32 + r->rsp_hdrs_len + 32;
        if (need > sizeof(stack)) {
                buf = malloc(need);
                if (!buf) {
                        http__conn_abort_later(c);
                        return;
                }
        }
        size_t off = (size_t)snprintf(buf, need, "HTTP/1.1 %d %s\r\n", status,
                                      http_status_text(status));
        put_header(buf, &off, "Date", date);
        if (ctype)
                put_header(buf, &off, "Content-Type", ctype);
        if (content_length >= 0) {
                snprintf(num, sizeof(num), "%" PRId64, content_length);
                put_header(buf, &off, "Content-Length", num);
        }
        if (chunked)
                put_header(buf, &off, "Transfer-Encoding", "chunked");
        if (r->rsp_hdrs_len) {
                memcpy(buf + off, r->rsp_hdrs, r->rsp_hdrs_len);
                off += r->rsp_hdrs_len;
        }
        if (close)
                put_header(buf, &off, "Connection", "close");
        else if (r->http10)
                put_header(buf, &off, "Connection", "keep-alive");
        memcpy(buf + off, "\r\n", 2);
        off += 2;

        uv_buf_t bufs[2] = { uv_buf_init(buf, (unsigned)off) };
        unsigned n = 1;
        if (body && body->len)
                bufs[n++] = *body;
        http__conn_write(c, bufs, n);
        if (buf != stack)
                free(buf);
}

/* The final answer call was made: free the request, and either end the connection or let
 * it go on to the next request (parsed from the deferred list, never from inside this
 * call, so the handler is not re-entered). An answer that came before the body was all
 * read leaves the request current: the rest of its (small) body is read and dropped, and
 * on_message_complete frees it. */
void http__req_finish(struct hreq *r)
{
        struct http_conn *c = r->conn;

        if (r->detached || c->closed) {
                http__req_free(r);
                return;
        }
        if (r->close_after || c->last) {
                http__req_free(r);
                c->last = true;
                http__conn_end(c);
                return;
        }
        if (!r->parse_done) {
                c->handler_paused = false;
                http__conn_schedule(c);
                return;
        }
        http__req_free(r);
        http__conn_set_deadline(c, HTTP_DL_IDLE, c->server->lim.idle_timeout_ms);
        http__conn_schedule(c);
}

/* Answer with a whole body; see http.h. */
void http_respond(struct http_req *req, int status, const char *content_type, const char *body,
                  size_t len)
{
        struct hreq *r = hreq_of(req);

        if (!req || r->answered)
                return;
        if (r->started) {
                /* A streamed answer is under way: this can only end it. */
                http_respond_end(req);
                return;
        }
        r->answered = true;
        if (r->detached || r->conn->closed) {
                http__req_free(r);
                return;
        }
        status = final_status(status);
        if (!body)
                len = 0;
        bool nobody = r->head || status == 204 || status == 304;
        r->close_after = rsp_will_close(r);
        uv_buf_t b = uv_buf_init((char *)body, (unsigned)(nobody || !body ? 0 : len));
        write_head(r, status, content_type, status == 204 || status == 304 ? -1 : (int64_t)len,
                   false, r->close_after, &b);
        http__req_finish(r);
}

/* Escape-safe JSON string: invalid UTF-8 (which jansson refuses) has its non-ASCII bytes
 * replaced by '?'. */
static json_t *json_string_lossy(const char *s)
{
        json_t *j;

        if (!s)
                s = "";
        j = json_string(s);
        if (j)
                return j;
        char *copy = strdup(s);
        if (!copy)
                return NULL;
        for (unsigned char *p = (unsigned char *)copy; *p; p++)
                if (*p >= 0x80)
                        *p = '?';
        j = json_string(copy);
        free(copy);
        return j;
}

/* {"error":{"code":code,"message":message}}, malloc'd, or NULL without memory. */
char *http__error_json(const char *code, const char *message, size_t *ret_len)
{
        json_t *root = json_object(), *err = json_object();
        char *out = NULL;

        if (root && err && json_object_set_new(err, "code", json_string_lossy(code)) == 0 &&
            json_object_set_new(err, "message", json_string_lossy(message)) == 0 &&
            json_object_set(root, "error", err) == 0)
                out = json_dumps(root, JSON_COMPACT);
        json_decref(err);
        json_decref(root);
        if (out)
                *ret_len = strlen(out);
        return out;
}

static const char nomem_json[] = "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}";

void http_respond_error(struct http_req *req, int status, const char *code, const char *message)
{
        size_t len = 0;
        char *json = http__error_json(code, message, &len);

        if (!json)
                http_respond(req, 503, "application/json", nomem_json, sizeof(nomem_json) - 1);
        else
                http_respond(req, status, "application/json", json, len);
        free(json);
}

/* A server-made error answer on a connection, outside any handler's answer: always with
 * Connection: close, and without the handler's extra headers. */
void http__write_error(struct http_conn *c, bool head, int status, const char *code,
                       const char *message)
{
        char hdr[256];
        size_t len = 0;
        char *json = http__error_json(code, message, &len);
        const char *body = json ? json : nomem_json;

        if (!json)
                len = sizeof(nomem_json) - 1;
        int n = snprintf(hdr, sizeof(hdr),
                         "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         status, http_status_text(status), server_date(c->server), len);
        uv_buf_t bufs[2] = { uv_buf_init(hdr, (unsigned)n), uv_buf_init((char *)body, (unsigned)len) };
        http__conn_write(c, bufs, head ? 1 : 2);
        free(json);
}

/* Start a streamed answer; see http.h. An HTTP/1.0 client cannot take chunked encoding, so
 * an answer of unknown length goes to it close-delimited. */
void http_respond_start(struct http_req *req, int status, const char *content_type,
                        int64_t content_length)
{
        struct hreq *r = hreq_of(req);

        if (!req || r->answered || r->started)
                return;
        r->started = true;
        if (r->detached || r->conn->closed)
                return;
        status = final_status(status);
        bool no_length = status == 204 || status == 304;
        r->rsp_nobody = r->head || no_length;
        r->rsp_chunked = content_length < 0 && !r->http10 && !r->rsp_nobody;
        r->close_after = rsp_will_close(r) || (content_length < 0 && r->http10);
        r->rsp_remaining = content_length >= 0 && !r->rsp_nobody ? content_length : -1;
        write_head(r, status, content_type, no_length ? -1 : content_length, r->rsp_chunked,
                   r->close_after, NULL);
}

/* Queue part of a streamed answer; see http.h. More than the announced Content-Length is
 * cut off and the connection is closed after the answer (the framing cannot be mended). */
size_t http_respond_write(struct http_req *req, const void *data, size_t len)
{
        struct hreq *r = hreq_of(req);

        if (!req || !r->started || r->answered || r->detached)
                return 0;
        struct http_conn *c = r->conn;
        if (c->closed || c->write_failed)
                return 0;
        if (r->rsp_nobody || len == 0 || !data)
                return c->wq_bytes;
        if (r->rsp_remaining >= 0) {
                if ((uint64_t)len > (uint64_t)r->rsp_remaining) {
                        len = (size_t)r->rsp_remaining;
                        r->close_after = true;
                }
                r->rsp_remaining -= (int64_t)len;
                if (len == 0)
                        return c->wq_bytes;
        }
        if (r->rsp_chunked) {
                char hdr[24];
                int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
                uv_buf_t bufs[3] = { uv_buf_init(hdr, (unsigned)n),
                                     uv_buf_init((char *)data, (unsigned)len),
                                     uv_buf_init((char *)"\r\n", 2) };
                http__conn_write(c, bufs, 3);
        } else {
                uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
                http__conn_write(c, &b, 1);
        }
        return c->closed || c->write_failed ? 0 : c->wq_bytes;
}

void http_req_set_on_drain(struct http_req *req, void (*on_drain)(struct http_req *req))
{
        if (req)
                hreq_of(req)->on_drain = on_drain;
}

/* End a streamed answer; see http.h. A body shorter than the announced Content-Length
 * leaves the client waiting for bytes that will not come: the connection is closed. */
void http_respond_end(struct http_req *req)
{
        struct hreq *r = hreq_of(req);

        if (!req || r->answered)
                return;
        if (!r->started) {
                http_respond_error(req, 500, "internal", "answer ended before it started");
                return;
        }
        r->answered = true;
        if (r->detached || r->conn->closed) {
                http__req_free(r);
                return;
        }
        if (r->rsp_chunked) {
                uv_buf_t b = uv_buf_init((char *)"0\r\n\r\n", 5);
                http__conn_write(r->conn, &b, 1);
        }
        if (r->rsp_remaining > 0)
                r->close_after = true;
        http__req_finish(r);
}

/* Whether c is an RFC 7230 token character (header names). */
static bool tchar(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Add a response header; see http.h. The framing headers (Content-Length,
 * Transfer-Encoding, Connection) belong to the server and are refused, as is anything that
 * could split the response. -EINVAL, -EALREADY once the answer began, -ENOMEM. */
int http_req_add_header(struct http_req *req, const char *name, const char *value)
{
        struct hreq *r = hreq_of(req);

        if (!req || !name || !value || !*name)
                return -EINVAL;
        if (r->answered || r->started)
                return -EALREADY;
        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
                if (!tchar(*p))
                        return -EINVAL;
        if (!value_ok(value) || !strcasecmp(name, "content-length") ||
            !strcasecmp(name, "transfer-encoding") || !strcasecmp(name, "connection"))
                return -EINVAL;
        size_t nl = strlen(name), vl = strlen(value), need = nl + vl + 4;
        if (r->rsp_hdrs_len + need > r->rsp_hdrs_cap) {
                size_t cap = r->rsp_hdrs_cap ? r->rsp_hdrs_cap * 2 : 256;
                while (cap < r->rsp_hdrs_len + need)
                        cap *= 2;
                char *n = realloc(r->rsp_hdrs, cap);
                if (!n)
                        return -ENOMEM;
                r->rsp_hdrs = n;
                r->rsp_hdrs_cap = cap;
        }
        put_header(r->rsp_hdrs, &r->rsp_hdrs_len, name, value);
        return 0;
}

/* Pause reading the body (backpressure); see http.h. Inside a parser callback the parser
 * itself is paused too, so no further on_body comes from the bytes already read. */
void http_req_pause(struct http_req *req)
{
        struct hreq *r = hreq_of(req);

        if (!req || r->detached || r->answered)
                return;
        struct http_conn *c = r->conn;
        if (c->closed || c->cur != r || c->handler_paused)
                return;
        c->handler_paused = true;
        if (c->in_parse && HTTP_PARSER_ERRNO(&c->parser) == HPE_OK)
                http_parser_pause(&c->parser, 1);
        http__conn_update_reading(c);
}

/* Resume reading the body; see http.h. Bytes that waited are parsed on the next loop
 * iteration, not from inside this call. */
void http_req_resume(struct http_req *req)
{
        struct hreq *r = hreq_of(req);

        if (!req || r->detached)
                return;
        struct http_conn *c = r->conn;
        if (c->closed || c->cur != r || !c->handler_paused)
                return;
        c->handler_paused = false;
        if (c->deadline_kind == HTTP_DL_BODY)
                http__conn_set_deadline(c, HTTP_DL_BODY, c->server->lim.idle_timeout_ms);
        http__conn_schedule(c);
}

bool http_req_connected(const struct http_req *req)
{
        const struct hreq *r = hreq_of(req);

        return req && !r->detached && !r->conn->closed && !r->conn->write_failed;
}
