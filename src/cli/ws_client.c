/* ws_client.c - the CLI's WebSocket client; see ws_client.h.
 *
 * The handshake is done by hand (a GET with Upgrade, then the 101 answer's head parsed
 * here): libcurl 7.88 has no WebSocket support worth using, and the answer is small. The
 * socket is non-blocking from the start; the blocking phase (connect, handshake) waits
 * with poll() against one deadline. Bytes that arrive behind the 101 head are frames and
 * are decoded before wsc_connect() returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "b64.h"
#include "util.h"
#include "ws_client.h"
#include "ws_codec.h"

#define WSC_DEFAULT_TIMEOUT_MS 10000
#define WSC_DEFAULT_MAX_MESSAGE ((size_t)64 << 20)
/* The server's answer head (status line and headers) must fit in this. */
#define WSC_MAX_HEAD (16 * 1024)
/* Largest body kept from a refusal. */
#define WSC_MAX_REFUSAL (64 * 1024)
#define WSC_READ_BUF (64 * 1024)

struct wsc {
        int fd;
        struct ws_codec *codec;
        wsc_message_cb on_message;
        void *ud;
        bool closed;
        uint16_t code;
};

/* ---- URL ---- */

struct url {
        char host[256];     /* for getaddrinfo: a name or an address, without brackets */
        char hostport[300]; /* the Host header: as written in the URL */
        char port[6];
};

/* Split http://HOST[:PORT][/PATH][?QUERY] into u and the request target (path and query,
 * malloc'd into *ret_target; "/" when the URL has none). The fragment is dropped; user
 * info and characters that cannot go into a request line are refused. */
static int parse_url(const char *url, struct url *u, char **ret_target)
{
        const char *p;

        memset(u, 0, sizeof(*u));
        if (!strncasecmp(url, "http://", 7))
                p = url + 7;
        else if (!strncasecmp(url, "ws://", 5))
                p = url + 5;
        else if (!strncasecmp(url, "https://", 8) || !strncasecmp(url, "wss://", 6))
                return -EPROTONOSUPPORT;
        else
                return -EINVAL;
        size_t alen = strcspn(p, "/?#");
        const char *auth = p, *rest = p + alen;
        if (alen == 0 || alen >= sizeof(u->hostport) || memchr(auth, '@', alen))
                return -EINVAL;
        memcpy(u->hostport, auth, alen);
        u->hostport[alen] = '\0';

        const char *hend, *port = NULL;
        size_t hl;
        if (auth[0] == '[') {
                hend = memchr(auth, ']', alen);
                if (!hend)
                        return -EINVAL;
                hl = (size_t)(hend - auth - 1);
                memcpy(u->host, auth + 1, hl < sizeof(u->host) ? hl : 0);
                if (hend + 1 < rest) {
                        if (hend[1] != ':')
                                return -EINVAL;
                        port = hend + 2;
                }
        } else {
                hend = memchr(auth, ':', alen);
                hl = hend ? (size_t)(hend - auth) : alen;
                memcpy(u->host, auth, hl < sizeof(u->host) ? hl : 0);
                if (hend)
                        port = hend + 1;
        }
        if (hl == 0 || hl >= sizeof(u->host))
                return -EINVAL;
        u->host[hl] = '\0';
        if (port) {
                size_t pl = (size_t)(rest - port);
                unsigned long v = 0;
                if (pl == 0 || pl > 5)
                        return -EINVAL;
                for (size_t i = 0; i < pl; i++) {
                        if (port[i] < '0' || port[i] > '9')
                                return -EINVAL;
                        v = v * 10 + (unsigned long)(port[i] - '0');
                }
                if (v == 0 || v > 65535)
                        return -EINVAL;
                snprintf(u->port, sizeof(u->port), "%lu", v);
        } else {
                strcpy(u->port, "80");
        }

        size_t tl = strcspn(rest, "#");
        for (size_t i = 0; i < tl; i++)
                if ((unsigned char)rest[i] <= ' ' || rest[i] == 0x7f)
                        return -EINVAL;
        char *target = malloc(tl + 2);
        if (!target)
                return -ENOMEM;
        size_t o = 0;
        if (tl == 0 || rest[0] != '/')
                target[o++] = '/';
        memcpy(target + o, rest, tl);
        target[o + tl] = '\0';
        *ret_target = target;
        return 0;
}

/* ---- blocking phase: deadline-bound I/O on a non-blocking socket ---- */

static int64_t remaining_ms(uint64_t deadline_ns)
{
        uint64_t now = util_now_ns();

        return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000);
}

/* Wait for events on fd until the deadline. 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
        struct pollfd p = { .fd = fd, .events = events };

        for (;;) {
                int64_t ms = remaining_ms(deadline_ns);
                if (ms <= 0)
                        return -ETIMEDOUT;
                int n = poll(&p, 1, ms > 60000 ? 60000 : (int)ms);
                if (n > 0)
                        return 0;
                if (n < 0 && errno != EINTR)
                        return -errno;
        }
}

/* Connect a non-blocking socket, waiting for completion until the deadline. */
static int connect_wait(int fd, const struct sockaddr *sa, socklen_t len, uint64_t deadline_ns)
{
        int err = 0;
        socklen_t el = sizeof(err);

        if (connect(fd, sa, len) == 0)
                return 0;
        if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR)
                return -errno;
        int r = wait_fd(fd, POLLOUT, deadline_ns);
        if (r < 0)
                return r;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                return -errno;
        return err ? -err : 0;
}

static int connect_unix(const char *path, uint64_t deadline_ns, int *ret_fd)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        int fd cleanup_close = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        int r = connect_wait(fd, (const struct sockaddr *)&sa, sizeof(sa), deadline_ns);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Try each address of host:port in turn; the last failure is returned. */
static int connect_tcp(const struct url *u, uint64_t deadline_ns, int *ret_fd)
{
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        int r = -ENOENT;

        int g = getaddrinfo(u->host, u->port, &hints, &res);
        if (g != 0)
                return g == EAI_SYSTEM ? -errno : g == EAI_MEMORY ? -ENOMEM : -ENOENT;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int fd cleanup_close = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
                                                                    SOCK_NONBLOCK,
                                              ai->ai_protocol);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                r = connect_wait(fd, ai->ai_addr, ai->ai_addrlen, deadline_ns);
                if (r == 0) {
                        int one = 1;
                        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                        *ret_fd = TAKE_FD(fd);
                        break;
                }
                if (r == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(res);
        return r;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline_ns)
{
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w > 0) {
                        p += w;
                        n -= (size_t)w;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno != EAGAIN)
                        return -errno;
                int r = wait_fd(fd, POLLOUT, deadline_ns);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Read more into buf[*len..cap) until the deadline. Returns the bytes read, 0 on EOF. */
static ssize_t recv_some(int fd, char *buf, size_t *len, size_t cap, uint64_t deadline_ns)
{
        for (;;) {
                ssize_t n = recv(fd, buf + *len, cap - *len, 0);
                if (n >= 0) {
                        *len += (size_t)n;
                        return n;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                int r = wait_fd(fd, POLLIN, deadline_ns);
                if (r < 0)
                        return r;
        }
}

/* ---- the handshake ---- */

static bool header_line_ok(const char *h)
{
        const char *colon = strchr(h, ':');

        if (!colon || colon == h)
                return false;
        for (const char *p = h; *p; p++)
                if (*p == '\r' || *p == '\n')
                        return false;
        return true;
}

/* The value of header name in the answer head (lines after the status line), copied into
 * out; NULL if absent. */
static const char *head_value(const char *head, const char *name, char *out, size_t cap)
{
        size_t nl = strlen(name);
        const char *p = strstr(head, "\r\n");

        while (p && p[2] && !(p[2] == '\r' && p[3] == '\n')) {
                p += 2;
                const char *eol = strstr(p, "\r\n");
                if (!eol)
                        return NULL;
                if ((size_t)(eol - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
                        const char *v = p + nl + 1;
                        while (v < eol && (*v == ' ' || *v == '\t'))
                                v++;
                        size_t n = (size_t)(eol - v);
                        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                                n--;
                        if (n >= cap)
                                n = cap - 1;
                        memcpy(out, v, n);
                        out[n] = '\0';
                        return out;
                }
                p = eol;
        }
        return NULL;
}

/* Whether the comma-separated list s contains token (case-insensitive). */
static bool list_has(const char *s, const char *token)
{
        size_t tl = strlen(token);

        while (*s) {
                while (*s == ' ' || *s == '\t' || *s == ',')
                        s++;
                const char *e = s;
                while (*e && *e != ',')
                        e++;
                const char *t = e;
                while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
                        t--;
                if ((size_t)(t - s) == tl && !strncasecmp(s, token, tl))
                        return true;
                s = e;
        }
        return false;
}

/* Keep the body of a refusal: Content-Length bytes (or up to EOF), at most
 * WSC_MAX_REFUSAL, until the deadline; body_have bytes of it are in buf already. */
static void keep_refusal(int fd, const char *head, const char *body_have, size_t have,
                         uint64_t deadline_ns, struct wsc_refusal *ref)
{
        char v[32];
        size_t want = WSC_MAX_REFUSAL;

        if (head_value(head, "Content-Length", v, sizeof(v))) {
                unsigned long long cl = strtoull(v, NULL, 10);
                if (cl < want)
                        want = (size_t)cl;
        }
        char *body = malloc(WSC_MAX_REFUSAL + 1);
        if (!body)
                return;
        size_t len = have < want ? have : want;
        memcpy(body, body_have, len);
        while (len < want && recv_some(fd, body, &len, want, deadline_ns) > 0)
                ;
        body[len] = '\0';
        ref->body = body;
        ref->len = len;
}

/* Send the upgrade request and check the answer. On success the bytes that came behind
 * the answer's head are left in buf[0..*ret_extra). */
static int handshake(int fd, const struct wsc_options *o, const struct url *u,
                     const char *target, uint64_t deadline_ns, char *buf, size_t *ret_extra,
                     struct wsc_refusal *ref)
{
        uint8_t raw[16];
        char key[WS_KEY_LEN + 1], expect[WS_ACCEPT_LEN + 1], v[256];
        size_t need = strlen(target) + strlen(u->hostport) + 256;
        int r;

        r = util_random(raw, sizeof(raw));
        if (r < 0)
                return r;
        b64_encode(raw, sizeof(raw), key);
        r = ws_accept_key(key, expect);
        if (r < 0)
                return r;
        for (const char *const *h = o->headers; h && *h; h++)
                need += strlen(*h) + 2;
        cleanup_free char *req = malloc(need);
        if (!req)
                return -ENOMEM;
        size_t n = (size_t)snprintf(req, need,
                                    "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                    "Sec-WebSocket-Version: 13\r\n",
                                    target, u->hostport, key);
        for (const char *const *h = o->headers; h && *h; h++) {
                size_t hl = strlen(*h);
                memcpy(req + n, *h, hl);
                memcpy(req + n + hl, "\r\n", 2);
                n += hl + 2;
        }
        memcpy(req + n, "\r\n", 2);
        n += 2;
        r = send_all(fd, req, n, deadline_ns);
        explicit_bzero(req, n); /* it may carry an API key */
        if (r < 0)
                return r;

        size_t len = 0;
        char *end;
        for (;;) {
                buf[len] = '\0';
                end = strstr(buf, "\r\n\r\n");
                if (end)
                        break;
                if (len >= WSC_MAX_HEAD)
                        return -EPROTO;
                ssize_t k = recv_some(fd, buf, &len, WSC_MAX_HEAD, deadline_ns);
                if (k < 0)
                        return (int)k;
                if (k == 0)
                        return len ? -EPROTO : -ECONNRESET;
        }
        size_t head_len = (size_t)(end - buf) + 4;
        char saved = buf[head_len];
        buf[head_len] = '\0';

        int status = 0;
        if (sscanf(buf, "HTTP/1.%*1[01] %3d", &status) != 1)
                status = 0;
        if (status != 101) {
                if (ref) {
                        ref->status = status;
                        buf[head_len] = saved;
                        char *head = strndup(buf, head_len);
                        if (head)
                                keep_refusal(fd, head, buf + head_len, len - head_len,
                                             deadline_ns, ref);
                        free(head);
                }
                return -EPROTO;
        }
        if (!head_value(buf, "Upgrade", v, sizeof(v)) || !list_has(v, "websocket") ||
            !head_value(buf, "Connection", v, sizeof(v)) || !list_has(v, "upgrade") ||
            !head_value(buf, "Sec-WebSocket-Accept", v, sizeof(v)) || strcmp(v, expect) != 0 ||
            head_value(buf, "Sec-WebSocket-Extensions", v, sizeof(v))) {
                if (ref)
                        ref->status = status;
                return -EPROTO;
        }
        buf[head_len] = saved;
        memmove(buf, buf + head_len, len - head_len);
        *ret_extra = len - head_len;
        return 0;
}

/* ---- the connection ---- */

static void on_codec_message(void *ud, bool binary, const uint8_t *data, size_t len)
{
        struct wsc *c = ud;

        c->on_message(c, c->ud, binary, data, len);
}

/* The connection is over: remember how it ended. */
static void mark_closed(struct wsc *c)
{
        if (c->closed)
                return;
        c->closed = true;
        c->code = ws_codec_close_code(c->codec);
        if (!c->code)
                c->code = WS_CLOSE_ABNORMAL;
}

/* Write what the codec holds until the socket would block. */
static int flush(struct wsc *c)
{
        for (;;) {
                size_t n;
                const uint8_t *out = ws_codec_output(c->codec, &n);
                if (n == 0)
                        return 0;
                ssize_t w = send(c->fd, out, n, MSG_NOSIGNAL);
                if (w > 0) {
                        ws_codec_output_done(c->codec, (size_t)w);
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN)
                        return 0;
                int e = w < 0 ? -errno : -EIO;
                mark_closed(c);
                return e;
        }
}

/* Decode bytes read from the socket; the connection is over once the codec is done. */
static int feed(struct wsc *c, const uint8_t *data, size_t len)
{
        (void)ws_codec_feed(c->codec, data, len);
        int r = flush(c);
        if (r < 0)
                return r;
        if (ws_codec_done(c->codec)) {
                mark_closed(c);
                return WSC_CLOSED;
        }
        return 0;
}

int wsc_connect(const struct wsc_options *o, struct wsc **ret, struct wsc_refusal *ret_refusal)
{
        struct url u;
        cleanup_free char *target = NULL;
        int fd cleanup_close = -1;
        int r;

        if (ret_refusal)
                memset(ret_refusal, 0, sizeof(*ret_refusal));
        if (!o || !o->url || !o->on_message || !ret)
                return -EINVAL;
        for (const char *const *h = o->headers; h && *h; h++)
                if (!header_line_ok(*h))
                        return -EINVAL;
        r = parse_url(o->url, &u, &target);
        if (r < 0)
                return r;
        uint64_t deadline = util_now_ns() +
                            (uint64_t)(o->timeout_ms > 0 ? o->timeout_ms : WSC_DEFAULT_TIMEOUT_MS) *
                                    1000000;

        r = o->unix_path ? connect_unix(o->unix_path, deadline, &fd)
                         : connect_tcp(&u, deadline, &fd);
        if (r < 0)
                return r;
        cleanup_free char *buf = malloc(WSC_MAX_HEAD + 1);
        if (!buf)
                return -ENOMEM;
        size_t extra = 0;
        r = handshake(fd, o, &u, target, deadline, buf, &extra, ret_refusal);
        if (r < 0)
                return r;

        struct wsc *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        struct ws_codec_limits lim = { .max_message = o->max_message ? o->max_message
                                                                     : WSC_DEFAULT_MAX_MESSAGE };
        r = ws_codec_new(false, &lim, on_codec_message, c, &c->codec);
        if (r < 0) {
                free(c);
                return r;
        }
        c->fd = TAKE_FD(fd);
        c->on_message = o->on_message;
        c->ud = o->ud;
        if (extra > 0)
                (void)feed(c, (const uint8_t *)buf, extra);
        *ret = c;
        return 0;
}

int wsc_fd(const struct wsc *c)
{
        return c->fd;
}

short wsc_events(const struct wsc *c)
{
        if (c->closed)
                return 0;
        return (short)(POLLIN | (wsc_queued(c) > 0 ? POLLOUT : 0));
}

int wsc_on_readable(struct wsc *c)
{
        uint8_t buf[WSC_READ_BUF];

        if (c->closed)
                return WSC_CLOSED;
        /* A bounded number of reads, so a fast server cannot starve the caller's loop. */
        for (int i = 0; i < 16; i++) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0) {
                        int e = -errno;
                        mark_closed(c);
                        return e;
                }
                if (n == 0) {
                        mark_closed(c);
                        return WSC_CLOSED;
                }
                int r = feed(c, buf, (size_t)n);
                if (r != 0)
                        return r;
                if ((size_t)n < sizeof(buf))
                        break;
        }
        return 0;
}

int wsc_on_writable(struct wsc *c)
{
        return c->closed ? 0 : flush(c);
}

int wsc_send(struct wsc *c, bool binary, const void *data, size_t len)
{
        if (c->closed)
                return -ENOTCONN;
        int r = ws_codec_send(c->codec, binary, data, len);
        return r < 0 ? r : flush(c);
}

size_t wsc_queued(const struct wsc *c)
{
        size_t n = 0;

        (void)ws_codec_output(c->codec, &n);
        return n;
}

int wsc_close(struct wsc *c, uint16_t code, const char *reason)
{
        if (c->closed)
                return -ENOTCONN;
        int r = ws_codec_close(c->codec, code, reason);
        return r < 0 ? r : flush(c);
}

int wsc_close_wait(struct wsc *c, uint16_t code, const char *reason, int timeout_ms)
{
        uint64_t deadline = util_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
        int r = wsc_close(c, code, reason);

        if (r < 0 && r != -EALREADY)
                return r;
        while (!c->closed) {
                r = wait_fd(c->fd, wsc_events(c), deadline);
                if (r < 0)
                        return r;
                r = wsc_on_writable(c);
                if (r < 0)
                        return r;
                r = wsc_on_readable(c);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool wsc_closed(const struct wsc *c)
{
        return c->closed;
}

uint16_t wsc_close_code(const struct wsc *c)
{
        return c->closed ? c->code : ws_codec_close_code(c->codec);
}

void wsc_free(struct wsc *c)
{
        if (!c)
                return;
        if (c->fd >= 0)
                close(c->fd);
        ws_codec_free(c->codec);
        free(c);
}
