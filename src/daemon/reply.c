/* reply.c - answers, request logging and the errno -> HTTP status table. */
#include "app.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

void app_log(const char *fmt, ...)
{
        char ts[32];
        struct timespec now;
        struct tm tm;
        va_list ap;

        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        flockfile(stderr);
        fprintf(stderr, "%s.%03ldZ ", ts, now.tv_nsec / 1000000);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        funlockfile(stderr);
}

/* The one table that maps errno to an HTTP status (STYLE: it lives in the API layer). */
int errno_to_http(int err, const char **ret_code)
{
        static const struct {
                int err;
                int status;
                const char *code;
        } table[] = {
                { ENOENT, 404, "not_found" },
                { ESRCH, 404, "not_found" },
                { EINVAL, 400, "invalid_request" },
                { EISDIR, 400, "is_a_directory" },
                { ENOTDIR, 409, "not_a_directory" },
                { ELOOP, 400, "invalid_path" },
                { ENAMETOOLONG, 400, "invalid_path" },
                { EXDEV, 400, "invalid_path" },
                { EEXIST, 409, "already_exists" },
                { ENOTEMPTY, 409, "directory_not_empty" },
                { EBUSY, 409, "conflict" },
                { EALREADY, 409, "conflict" },
                { EACCES, 403, "permission_denied" },
                { EPERM, 403, "permission_denied" },
                { EROFS, 403, "read_only" },
                { EFBIG, 413, "payload_too_large" },
                { E2BIG, 413, "payload_too_large" },
                { EMSGSIZE, 413, "payload_too_large" },
                { ENOSPC, 507, "insufficient_storage" },
                { EDQUOT, 429, "quota_exceeded" },
                { EUSERS, 429, "quota_exceeded" },
                { ENOTCONN, 503, "unavailable" },
                { ECONNRESET, 503, "unavailable" },
                { ECONNREFUSED, 503, "unavailable" },
                { ETIMEDOUT, 504, "timeout" },
                { EOPNOTSUPP, 400, "not_supported" },
                { EKEYREJECTED, 500, "secret_unavailable" },
        };
        int e = err < 0 ? -err : err;
        for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
                if (table[i].err == e) {
                        *ret_code = table[i].code;
                        return table[i].status;
                }
        }
        *ret_code = "internal";
        return 500;
}

static void ctx_free(struct reqctx *c)
{
        if (c->op && c->op_free)
                c->op_free(c->op);
        c->req->user = NULL;
        free(c);
}

void reply_done(struct reqctx *c, int status)
{
        struct http_req *req = c->req;
        static const char *names[] = { [0] = "DELETE", [1] = "GET", [2] = "HEAD", [3] = "POST",
                                       [4] = "PUT", [6] = "OPTIONS" };
        const char *m = req->method >= 0 && req->method < 7 && names[req->method]
                                ? names[req->method]
                                : (req->method == HTTP_M_PATCH ? "PATCH" : "OTHER");
        /* Never the query string: it may carry file paths, but never keys or content. */
        app_log("%s %s %s %d %.2fms org=%s", req->peer, m, req->path, status,
                util_ms_since(req->started_ns), c->org_id[0] ? c->org_id : "-");
        ctx_free(c);
}

void reply_json(struct reqctx *c, int status, json_t *body)
{
        char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        json_decref(body);
        if (!text) {
                http_respond_error(c->req, 500, "internal", "could not encode the answer");
                reply_done(c, 500);
                return;
        }
        http_respond(c->req, status, "application/json", text, strlen(text));
        free(text);
        reply_done(c, status);
}

void reply_error(struct reqctx *c, int status, const char *code, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        http_respond_error(c->req, status, code, msg);
        reply_done(c, status);
}

void reply_errno(struct reqctx *c, int err, const char *what)
{
        const char *code;
        int status = errno_to_http(err, &code);
        if (status == 500)
                app_log("fault: %s: %s", what, strerror(err < 0 ? -err : err));
        reply_error(c, status, code, "%s: %s", what, strerror(err < 0 ? -err : err));
}

/* Length of the sequence starting with byte c (1-4), 0 if c cannot start one. */
static size_t utf8_seq_len(unsigned char c, uint32_t *ret_cp)
{
        if (c < 0x80) {
                *ret_cp = c;
                return 1;
        }
        if ((c & 0xe0) == 0xc0) {
                *ret_cp = c & 0x1f;
                return 2;
        }
        if ((c & 0xf0) == 0xe0) {
                *ret_cp = c & 0x0f;
                return 3;
        }
        if ((c & 0xf8) == 0xf0) {
                *ret_cp = c & 0x07;
                return 4;
        }
        return 0;
}

/* Whether cp, made of n bytes, is a valid scalar in its shortest form. */
static bool utf8_cp_ok(uint32_t cp, size_t n)
{
        return !((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                 (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff);
}

size_t utf8_valid_prefix(const uint8_t *s, size_t len, bool *ret_tail)
{
        size_t i = 0;
        *ret_tail = false;
        while (i < len) {
                uint32_t cp;
                size_t n = utf8_seq_len(s[i], &cp);
                if (n == 0)
                        return i;
                size_t k = 1;
                for (; k < n && i + k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return i;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (k < n) {
                        /* Cut short by the end of the data: fine so far if what is there could
                         * still begin a valid sequence (checked loosely: the lead byte). */
                        *ret_tail = true;
                        return i;
                }
                if (!utf8_cp_ok(cp, n))
                        return i;
                i += n;
        }
        return i;
}

char *utf8_sanitize(const uint8_t *s, size_t len, size_t *ret_len)
{
        /* Worst case: every byte becomes a 3-byte U+FFFD. */
        char *out = malloc(len * 3 + 1);
        size_t o = 0, i = 0;
        if (!out)
                return NULL;
        while (i < len) {
                unsigned char c = s[i];
                size_t n = 0;
                uint32_t cp = 0;
                if (c < 0x80) {
                        out[o++] = (char)c;
                        i++;
                        continue;
                } else if ((c & 0xe0) == 0xc0) {
                        n = 1;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 2;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        goto bad;
                }
                for (size_t k = 1; k <= n; k++) {
                        if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
                                goto bad;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        goto bad;
                memcpy(out + o, s + i, n + 1);
                o += n + 1;
                i += n + 1;
                continue;
        bad:
                out[o++] = (char)0xef;
                out[o++] = (char)0xbf;
                out[o++] = (char)0xbd;
                i++;
        }
        out[o] = '\0';
        *ret_len = o;
        return out;
}
