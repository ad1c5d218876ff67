/* test_ws.c - WebSocket connections on the HTTP server (src/api/ws.c, src/common/ws_codec.c)
 * and the CLI's client (src/cli/ws_client.c), over real sockets.
 *
 * As in test_http.c, each test starts a server on 127.0.0.1 (and [::1]) port 0 in a libuv
 * loop on its own thread and talks to it from the test thread: with blocking raw sockets
 * and hand-made frames (to send what a broken or hostile client would), or with the CLI's
 * client. Teardown closes the server from inside the loop and checks that the loop closed
 * with no handle left. The WebSocket routes:
 *   /ws        echo; a non-upgrade request gets "plain" (and http_ws_accept says -EINVAL).
 *              Text commands: "close" (server closes with 4000 "bye"), "pause" (pause,
 *              resume 50 ms later), "conns" (answers http_server_connections()),
 *              "fill N" (N bytes in 16 KiB binary messages with backpressure, then "done")
 *   /ws-hello  sends "hello" right after accepting
 *   /ws-flood  sends 1000 messages, then closes with 1000 "done"
 *   /ws-auth   401 unless "Authorization: ApiKey secret"
 *   /ws-proto  echoes a subprotocol in the 101 answer
 *   /ws-later  accepted 20 ms after the request, from a timer
 * The server records every on_close code, so each test checks how the server saw the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "http.h"
#include "ws.h"
#include "ws_client.h"
#include "ws_codec.h"

/* cmocka's asserts must not run off the test thread: the handlers abort instead. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

#define FLOOD_COUNT 1000
#define FILL_BLOCK 16384

struct srv {
        pthread_t thread;
        uv_loop_t loop;
        uv_async_t stop;
        struct http_server *s;
        struct http_limits lim;
        struct ws_limits wslim;
        int port, port6;
        char dir[64];
        char unix_path[128];
        sem_t ready;
        int listen_rc;
        int loop_close_rc;

        atomic_int accepted;
        atomic_int closes;
        atomic_int close_code;
        atomic_int drains;
        atomic_int enobufs;
        atomic_int plain;
};

/* Per-WebSocket state of the test handlers; freed in its timer's close callback. */
struct wsst {
        struct srv *sv;
        struct ws_conn *ws;
        uv_timer_t timer;
        bool paused;
        size_t fill_left, fill_sent;
};

/* ---- handlers (server thread) ---- */

static void st_freed(uv_handle_t *h)
{
        free(h->data);
}

static void on_ws_close(struct ws_conn *ws, uint16_t code, void *ud)
{
        struct wsst *st = ud;
        atomic_store(&st->sv->close_code, code);
        atomic_fetch_add(&st->sv->closes, 1);
        /* ws_send after the end is refused, never a crash (on_close is the last use). */
        CHECK(ws_send(ws, false, "x", 1) == -ENOTCONN);
        uv_close((uv_handle_t *)&st->timer, st_freed);
}

static void on_resume_timer(uv_timer_t *t)
{
        struct wsst *st = t->data;
        st->paused = false;
        ws_resume(st->ws);
}

static void fill_more(struct wsst *st)
{
        static uint8_t block[FILL_BLOCK];

        while (st->fill_left > 0) {
                size_t n = st->fill_left < FILL_BLOCK ? st->fill_left : FILL_BLOCK;
                for (size_t i = 0; i < n; i++)
                        block[i] = (uint8_t)((st->fill_sent + i) * 7 + 3);
                ssize_t q = ws_send(st->ws, true, block, n);
                if (q == -ENOBUFS) {
                        atomic_fetch_add(&st->sv->enobufs, 1);
                        return;
                }
                CHECK(q >= 0);
                st->fill_sent += n;
                st->fill_left -= n;
        }
        CHECK(ws_send(st->ws, false, "done", 4) >= 0);
}

static void on_ws_drain(struct ws_conn *ws, void *ud)
{
        struct wsst *st = ud;
        atomic_fetch_add(&st->sv->drains, 1);
        if (st->fill_left > 0)
                fill_more(st);
}

static void on_ws_message(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                          void *ud)
{
        struct wsst *st = ud;
        char text[64];

        /* Nothing is delivered while paused. */
        CHECK(!st->paused);
        if (!binary && len == 5 && !memcmp(data, "close", 5)) {
                ws_close(ws, 4000, "bye");
                /* Nothing more may be queued once closing. */
                CHECK(ws_send(ws, false, "late", 4) == -ENOTCONN);
                return;
        }
        if (!binary && len == 5 && !memcmp(data, "pause", 5)) {
                ws_pause(ws);
                st->paused = true;
                uv_timer_start(&st->timer, on_resume_timer, 50, 0);
                return;
        }
        if (!binary && len == 5 && !memcmp(data, "conns", 5)) {
                int n = snprintf(text, sizeof(text), "conns=%zu",
                                 http_server_connections(st->sv->s));
                CHECK(ws_send(ws, false, text, (size_t)n) >= 0);
                return;
        }
        if (!binary && len > 5 && len < sizeof(text) && !memcmp(data, "fill ", 5)) {
                memcpy(text, data, len);
                text[len] = '\0';
                st->fill_left = strtoul(text + 5, NULL, 10);
                fill_more(st);
                return;
        }
        CHECK(ws_send(ws, binary, data, len) >= 0);
}

static const struct ws_ops echo_ops = {
        .on_message = on_ws_message,
        .on_close = on_ws_close,
        .on_drain = on_ws_drain,
};

/* Accept req with the echo handlers; NULL if the client is gone. */
static struct wsst *accept_echo(struct srv *sv, struct http_req *req)
{
        struct wsst *st = calloc(1, sizeof(*st));
        CHECK(st);
        st->sv = sv;
        int r = http_ws_accept(req, &echo_ops, st, &sv->wslim, &st->ws);
        if (r < 0) {
                free(st);
                http_respond_error(req, 503, "unavailable", "no websocket");
                return NULL;
        }
        uv_timer_init(&sv->loop, &st->timer);
        st->timer.data = st;
        atomic_fetch_add(&sv->accepted, 1);
        return st;
}

struct later {
        uv_timer_t t;
        struct http_req *req;
        struct srv *sv;
};

static void later_closed(uv_handle_t *h)
{
        free(h->data);
}

static void accept_later(uv_timer_t *t)
{
        struct later *l = t->data;
        accept_echo(l->sv, l->req);
        uv_close((uv_handle_t *)&l->t, later_closed);
}

static enum http_body_mode on_headers(struct http_req *req, void *ud)
{
        return HTTP_BODY_BUFFER;
}

static void on_request(struct http_req *req, void *ud)
{
        struct srv *sv = ud;
        const char *p = req->path;
        struct wsst *st;

        if (!strcmp(p, "/ws")) {
                if (http_req_is_ws(req)) {
                        accept_echo(sv, req);
                        return;
                }
                struct ws_conn *ws = NULL;
                CHECK(http_ws_accept(req, &echo_ops, NULL, NULL, &ws) == -EINVAL && !ws);
                atomic_fetch_add(&sv->plain, 1);
                http_respond(req, 200, "text/plain", "plain", 5);
        } else if (!strcmp(p, "/ws-hello")) {
                st = accept_echo(sv, req);
                if (st)
                        CHECK(ws_send(st->ws, false, "hello", 5) >= 0);
        } else if (!strcmp(p, "/ws-flood")) {
                st = accept_echo(sv, req);
                if (!st)
                        return;
                for (int i = 0; i < FLOOD_COUNT; i++) {
                        char m[16];
                        int n = snprintf(m, sizeof(m), "m%04d", i);
                        CHECK(ws_send(st->ws, false, m, (size_t)n) >= 0);
                }
                ws_close(st->ws, 1000, "done");
        } else if (!strcmp(p, "/ws-auth")) {
                const char *a = http_req_header(req, "authorization");
                if (a && !strcmp(a, "ApiKey secret"))
                        accept_echo(sv, req);
                else
                        http_respond_error(req, 401, "unauthorized", "missing key");
        } else if (!strcmp(p, "/ws-proto")) {
                CHECK(http_req_add_header(req, "Sec-WebSocket-Protocol", "warren.v1") == 0);
                accept_echo(sv, req);
        } else if (!strcmp(p, "/ws-later")) {
                struct later *l = calloc(1, sizeof(*l));
                CHECK(l);
                l->req = req;
                l->sv = sv;
                uv_timer_init(&sv->loop, &l->t);
                l->t.data = l;
                uv_timer_start(&l->t, accept_later, 20, 0);
        } else {
                http_respond_error(req, 404, "not_found", "no such route");
        }
}

/* ---- server thread ---- */

static void on_stop(uv_async_t *a)
{
        struct srv *sv = a->data;
        http_server_close(sv->s);
        uv_close((uv_handle_t *)a, NULL);
}

static void *srv_main(void *arg)
{
        struct srv *sv = arg;

        uv_loop_init(&sv->loop);
        sv->loop.data = sv;
        uv_async_init(&sv->loop, &sv->stop, on_stop);
        sv->stop.data = sv;
        sv->listen_rc = http_server_new(&sv->loop, &sv->lim, on_headers, on_request, sv, &sv->s);
        if (sv->listen_rc == 0)
                sv->listen_rc = http_server_listen_tcp(sv->s, "127.0.0.1:0", &sv->port);
        if (sv->listen_rc == 0)
                sv->listen_rc = http_server_listen_tcp(sv->s, "[::1]:0", &sv->port6);
        if (sv->listen_rc == 0 && sv->unix_path[0])
                sv->listen_rc = http_server_listen_unix(sv->s, sv->unix_path);
        sem_post(&sv->ready);
        uv_run(&sv->loop, UV_RUN_DEFAULT);
        sv->loop_close_rc = uv_loop_close(&sv->loop);
        return NULL;
}

static struct srv *srv_start(const struct ws_limits *wslim, bool with_unix)
{
        struct srv *sv = calloc(1, sizeof(*sv));
        assert_non_null(sv);
        if (wslim)
                sv->wslim = *wslim;
        if (with_unix) {
                strcpy(sv->dir, "/tmp/test_ws.XXXXXX");
                assert_non_null(mkdtemp(sv->dir));
                snprintf(sv->unix_path, sizeof(sv->unix_path), "%s/api.sock", sv->dir);
        }
        sem_init(&sv->ready, 0, 0);
        assert_int_equal(pthread_create(&sv->thread, NULL, srv_main, sv), 0);
        sem_wait(&sv->ready);
        assert_int_equal(sv->listen_rc, 0);
        return sv;
}

/* Close the server from its loop and wait for the loop to end with every handle closed:
 * that needs every WebSocket's on_close to have run (their timers close there). */
static void srv_stop(struct srv *sv)
{
        uv_async_send(&sv->stop);
        pthread_join(sv->thread, NULL);
        assert_int_equal(sv->loop_close_rc, 0);
        assert_int_equal(atomic_load(&sv->closes), atomic_load(&sv->accepted));
        if (sv->dir[0])
                rmdir(sv->dir);
        sem_destroy(&sv->ready);
        free(sv);
}

static int setup_default(void **state)
{
        *state = srv_start(NULL, false);
        return 0;
}

static int setup_unix(void **state)
{
        *state = srv_start(NULL, true);
        return 0;
}

static int setup_idle(void **state)
{
        struct ws_limits l = { .ping_interval_ms = 100, .idle_timeout_ms = 600 };
        *state = srv_start(&l, false);
        return 0;
}

static int setup_small_queue(void **state)
{
        struct ws_limits l = { .max_queued = 64 * 1024 };
        *state = srv_start(&l, false);
        return 0;
}

static int teardown(void **state)
{
        srv_stop(*state);
        return 0;
}

/* ---- raw client ---- */

static const char sample_key[] = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 1.3 */
static const char sample_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static int connect_tcp(int port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        struct timeval tv = { .tv_sec = 5 };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        return fd;
}

static void send_n(int fd, const void *p, size_t n)
{
        const char *c = p;
        while (n > 0) {
                ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
                assert_true(w > 0);
                c += w;
                n -= (size_t)w;
        }
}

struct reader {
        int fd;
        size_t len;
        char buf[256 * 1024];
};

static struct reader *reader_new(int fd)
{
        struct reader *rd = calloc(1, sizeof(*rd));
        assert_non_null(rd);
        rd->fd = fd;
        return rd;
}

static bool fill(struct reader *rd)
{
        if (rd->len == sizeof(rd->buf))
                return false;
        ssize_t n = recv(rd->fd, rd->buf + rd->len, sizeof(rd->buf) - rd->len, 0);
        if (n <= 0)
                return false;
        rd->len += (size_t)n;
        return true;
}

static void consume(struct reader *rd, size_t n)
{
        memmove(rd->buf, rd->buf + n, rd->len - n);
        rd->len -= n;
}

static bool take(struct reader *rd, size_t n, char **out, size_t *out_len)
{
        *out = realloc(*out, *out_len + n + 1);
        assert_non_null(*out);
        (*out)[*out_len] = '\0';
        while (n > 0) {
                if (rd->len == 0 && !fill(rd))
                        return false;
                size_t k = rd->len < n ? rd->len : n;
                memcpy(*out + *out_len, rd->buf, k);
                *out_len += k;
                (*out)[*out_len] = '\0';
                consume(rd, k);
                n -= k;
        }
        return true;
}

/* Read a response head (and a Content-Length body unless head_only). */
struct resp {
        int status;
        char head[8192];
        char *body;
        size_t body_len;
};

static const char *resp_header(const struct resp *r, const char *name, char *out, size_t cap)
{
        size_t nl = strlen(name);
        const char *p = strstr(r->head, "\r\n");
        while (p && p[2]) {
                p += 2;
                if (!strncasecmp(p, name, nl) && p[nl] == ':') {
                        const char *v = p + nl + 1;
                        while (*v == ' ')
                                v++;
                        const char *e = strstr(v, "\r\n");
                        size_t n = e ? (size_t)(e - v) : strlen(v);
                        if (n >= cap)
                                n = cap - 1;
                        memcpy(out, v, n);
                        out[n] = '\0';
                        return out;
                }
                p = strstr(p, "\r\n");
        }
        return NULL;
}

static bool read_response(struct reader *rd, struct resp *r, bool head_only)
{
        char v[64];
        memset(r, 0, sizeof(*r));
        for (;;) {
                char *e = memmem(rd->buf, rd->len, "\r\n\r\n", 4);
                if (e) {
                        size_t n = (size_t)(e - rd->buf) + 4;
                        if (n >= sizeof(r->head))
                                return false;
                        memcpy(r->head, rd->buf, n);
                        r->head[n] = '\0';
                        consume(rd, n);
                        break;
                }
                if (!fill(rd))
                        return false;
        }
        if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
                return false;
        if (head_only || !resp_header(r, "Content-Length", v, sizeof(v)))
                return true;
        return take(rd, strtoul(v, NULL, 10), &r->body, &r->body_len);
}

/* Whether the server closed the connection (EOF or reset) within ms; data before it is
 * dropped. */
static bool peer_closed(int fd, int ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char b[4096];
        for (;;) {
                if (poll(&p, 1, ms) <= 0)
                        return false;
                ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        return true;
                if (n < 0)
                        return false;
        }
}

static bool wait_for(atomic_int *v, int want, int ms)
{
        for (int i = 0; i < ms; i++) {
                if (atomic_load(v) >= want)
                        return true;
                usleep(1000);
        }
        return atomic_load(v) >= want;
}

/* Build a frame into out (len + 14 bytes); masked with a fixed key unless !mask. */
static size_t frame_build(uint8_t *out, bool fin, int op, const void *payload, size_t len,
                          bool mask)
{
        static const uint8_t key[4] = { 0x12, 0x34, 0x56, 0x78 };
        const uint8_t *p = payload;
        size_t o = 0;
        uint8_t mb = mask ? 0x80 : 0;

        out[o++] = (uint8_t)((fin ? 0x80 : 0) | op);
        if (len < 126) {
                out[o++] = (uint8_t)(mb | len);
        } else if (len < 65536) {
                out[o++] = mb | 126;
                out[o++] = (uint8_t)(len >> 8);
                out[o++] = (uint8_t)len;
        } else {
                out[o++] = mb | 127;
                for (int i = 7; i >= 0; i--)
                        out[o++] = (uint8_t)((uint64_t)len >> (8 * i));
        }
        if (mask) {
                memcpy(out + o, key, 4);
                o += 4;
        }
        for (size_t i = 0; i < len; i++)
                out[o + i] = p[i] ^ (mask ? key[i % 4] : 0);
        return o + len;
}

static void send_frame(int fd, bool fin, int op, const void *payload, size_t len)
{
        uint8_t *b = malloc(len + 14);
        assert_non_null(b);
        send_n(fd, b, frame_build(b, fin, op, payload, len, true));
        free(b);
}

static void send_close(int fd, uint16_t code, const char *reason)
{
        uint8_t p[125] = { (uint8_t)(code >> 8), (uint8_t)code };
        size_t n = reason ? strlen(reason) : 0;
        if (n)
                memcpy(p + 2, reason, n);
        send_frame(fd, true, 8, p, n + 2);
}

struct frame {
        int op;
        bool fin;
        bool masked;
        char *data;
        size_t len;
};

/* Read one frame sent by the server (which must not mask). */
static bool read_frame(struct reader *rd, struct frame *f)
{
        free(f->data);
        memset(f, 0, sizeof(*f));
        while (rd->len < 2)
                if (!fill(rd))
                        return false;
        uint8_t b0 = (uint8_t)rd->buf[0], b1 = (uint8_t)rd->buf[1];
        size_t hl = 2 + ((b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0) +
                    (b1 & 0x80 ? 4 : 0);
        while (rd->len < hl)
                if (!fill(rd))
                        return false;
        uint64_t len = b1 & 0x7f;
        if (len == 126)
                len = ((uint64_t)(uint8_t)rd->buf[2] << 8) | (uint8_t)rd->buf[3];
        else if (len == 127)
                for (int i = 0; i < 8; i++)
                        len = (i ? len << 8 : 0) | (uint8_t)rd->buf[2 + i];
        f->fin = b0 & 0x80;
        f->op = b0 & 0x0f;
        f->masked = b1 & 0x80;
        consume(rd, hl);
        return take(rd, (size_t)len, &f->data, &f->len);
}

static void frame_clear(struct frame *f)
{
        free(f->data);
        memset(f, 0, sizeof(*f));
}

/* The next frame must be a data frame with exactly this content. */
static void expect_message(struct reader *rd, int op, const void *data, size_t len)
{
        struct frame f = { 0 };
        assert_true(read_frame(rd, &f));
        assert_int_equal(f.op, op);
        assert_true(f.fin);
        assert_false(f.masked);
        assert_int_equal(f.len, len);
        assert_memory_equal(f.data, data, len);
        frame_clear(&f);
}

/* The next frame must be a close frame; returns its code (1005 if it has none). */
static int expect_close(struct reader *rd)
{
        struct frame f = { 0 };
        assert_true(read_frame(rd, &f));
        assert_int_equal(f.op, 8);
        assert_false(f.masked);
        int code = f.len >= 2 ? ((uint8_t)f.data[0] << 8) | (uint8_t)f.data[1] : 1005;
        frame_clear(&f);
        return code;
}

static void upgrade_request(char *buf, size_t cap, const char *path, const char *extra)
{
        snprintf(buf, cap,
                 "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                 path, sample_key, extra ? extra : "");
}

/* Open a WebSocket on path with the raw client; checks the 101 answer. */
static int ws_open(struct srv *sv, const char *path, struct reader **ret_rd)
{
        char req[1024], v[128];
        struct resp r;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);

        upgrade_request(req, sizeof(req), path, NULL);
        send_n(fd, req, strlen(req));
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 101);
        assert_non_null(resp_header(&r, "Sec-WebSocket-Accept", v, sizeof(v)));
        assert_string_equal(v, sample_accept);
        assert_non_null(resp_header(&r, "Upgrade", v, sizeof(v)));
        assert_string_equal(v, "websocket");
        *ret_rd = rd;
        return fd;
}

static void ws_done(int fd, struct reader *rd)
{
        free(rd);
        close(fd);
}

/* The server's close frame must carry code, and the server must close the connection
 * (answering our echo first when it initiated). Then on_close must report code. */
static void expect_failed(struct srv *sv, int fd, struct reader *rd, int code, int closes)
{
        assert_int_equal(expect_close(rd), code);
        assert_true(peer_closed(fd, 3000));
        assert_true(wait_for(&sv->closes, closes, 3000));
        assert_int_equal(atomic_load(&sv->close_code), code);
}

/* ---- tests: server ---- */

static void test_handshake_echo(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);
        static const uint8_t bin[] = { 0, 1, 2, 0xff, 0xfe };

        send_frame(fd, true, 1, "hi there", 8);
        expect_message(rd, 1, "hi there", 8);
        send_frame(fd, true, 2, bin, sizeof(bin));
        expect_message(rd, 2, bin, sizeof(bin));
        send_frame(fd, true, 1, "", 0);
        expect_message(rd, 1, "", 0);
        send_frame(fd, true, 1, "\xe2\x82\xac", 3);
        expect_message(rd, 1, "\xe2\x82\xac", 3);
        /* The WebSocket counts as a connection of the server. */
        send_frame(fd, true, 1, "conns", 5);
        expect_message(rd, 1, "conns=1", 7);

        /* Client-initiated close: echoed with our code, then the server closes. */
        send_close(fd, 1000, "bye");
        assert_int_equal(expect_close(rd), 1000);
        assert_true(peer_closed(fd, 3000));
        assert_true(wait_for(&sv->closes, 1, 3000));
        assert_int_equal(atomic_load(&sv->close_code), 1000);
        ws_done(fd, rd);
}

static void test_handshake_rejected(void **state)
{
        struct srv *sv = *state;
        static const char *const bad[] = {
                /* version 8 */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
                /* key of 15 bytes */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\nSec-WebSocket-Version: 13\r\n\r\n",
                /* key not base64 */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                /* key of 20 bytes */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n",
                /* no key */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n",
                /* two keys */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                /* no Connection: upgrade */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                /* another protocol */
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                /* POST with a body */
                "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                "Content-Length: 2\r\n\r\nab",
                /* HTTP/1.0 */
                "GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        };
        struct resp r;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int fd = connect_tcp(sv->port);
                struct reader *rd = reader_new(fd);
                send_n(fd, bad[i], strlen(bad[i]));
                assert_true(read_response(rd, &r, false));
                if (r.status != 200)
                        fail_msg("request %zu: status %d", i, r.status);
                assert_string_equal(r.body, "plain");
                free(r.body);
                ws_done(fd, rd);
        }
        assert_int_equal(atomic_load(&sv->plain), (int)(sizeof(bad) / sizeof(bad[0])));
        assert_int_equal(atomic_load(&sv->accepted), 0);

        /* A plain request on the WebSocket route keeps its connection. */
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        for (int i = 0; i < 2; i++) {
                send_n(fd, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 29);
                assert_true(read_response(rd, &r, false));
                assert_int_equal(r.status, 200);
                assert_string_equal(r.body, "plain");
                free(r.body);
        }
        ws_done(fd, rd);
}

static void test_subprotocol_header(void **state)
{
        struct srv *sv = *state;
        char req[1024], v[64];
        struct resp r;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);

        upgrade_request(req, sizeof(req), "/ws-proto", "Sec-WebSocket-Protocol: warren.v1\r\n");
        send_n(fd, req, strlen(req));
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 101);
        assert_non_null(resp_header(&r, "Sec-WebSocket-Protocol", v, sizeof(v)));
        assert_string_equal(v, "warren.v1");
        send_frame(fd, true, 1, "ok", 2);
        expect_message(rd, 1, "ok", 2);
        ws_done(fd, rd);
        /* Leaving without a close frame: abnormal closure. */
        assert_true(wait_for(&sv->closes, 1, 3000));
        assert_int_equal(atomic_load(&sv->close_code), 1006);
}

static void test_fragmented(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);
        struct frame f = { 0 };

        /* Text in three fragments with a ping between them; a character split across
         * fragments is fine. */
        send_frame(fd, false, 1, "Hel", 3);
        send_frame(fd, true, 9, "p", 1);
        send_frame(fd, false, 0, "lo \xe2\x82", 5);
        send_frame(fd, true, 0, "\xac!", 2);
        assert_true(read_frame(rd, &f));
        assert_int_equal(f.op, 10);
        assert_int_equal(f.len, 1);
        assert_memory_equal(f.data, "p", 1);
        frame_clear(&f);
        expect_message(rd, 1, "Hello \xe2\x82\xac!", 10);

        /* Binary with an empty continuation in the middle. */
        send_frame(fd, false, 2, "\x01\x02", 2);
        send_frame(fd, false, 0, "", 0);
        send_frame(fd, true, 0, "\x03", 1);
        expect_message(rd, 2, "\x01\x02\x03", 3);
        ws_done(fd, rd);
}

static void test_ping_pong(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);
        struct frame f = { 0 };
        uint8_t p[125];

        for (size_t i = 0; i < sizeof(p); i++)
                p[i] = (uint8_t)i;
        send_frame(fd, true, 9, p, sizeof(p));
        assert_true(read_frame(rd, &f));
        assert_int_equal(f.op, 10);
        assert_int_equal(f.len, sizeof(p));
        assert_memory_equal(f.data, p, sizeof(p));
        frame_clear(&f);
        /* An unsolicited pong is ignored. */
        send_frame(fd, true, 10, "x", 1);
        send_frame(fd, true, 1, "after", 5);
        expect_message(rd, 1, "after", 5);
        ws_done(fd, rd);
}

static void test_message_too_big(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        size_t max = 1 << 20;
        uint8_t *big = malloc(max + 1);
        struct frame f = { 0 };

        assert_non_null(big);
        for (size_t i = 0; i <= max; i++)
                big[i] = (uint8_t)(i * 13);
        /* Exactly the limit: echoed whole. */
        int fd = ws_open(sv, "/ws", &rd);
        send_frame(fd, true, 2, big, max);
        assert_true(read_frame(rd, &f));
        assert_int_equal(f.op, 2);
        assert_int_equal(f.len, max);
        assert_memory_equal(f.data, big, max);
        frame_clear(&f);
        /* One byte more: 1009, refused from the header. */
        send_frame(fd, true, 2, big, max + 1);
        expect_failed(sv, fd, rd, 1009, 1);
        ws_done(fd, rd);

        /* The sum of the fragments counts. */
        fd = ws_open(sv, "/ws", &rd);
        send_frame(fd, false, 2, big, max / 2 + 1);
        send_frame(fd, true, 0, big, max / 2);
        expect_failed(sv, fd, rd, 1009, 2);
        ws_done(fd, rd);
        free(big);
}

static void test_invalid_utf8(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);

        send_frame(fd, true, 1, "ok", 2);
        expect_message(rd, 1, "ok", 2);
        send_frame(fd, true, 1, "\xc3\x28", 2);
        expect_failed(sv, fd, rd, 1007, 1);
        ws_done(fd, rd);

        /* A surrogate, split across fragments. */
        fd = ws_open(sv, "/ws", &rd);
        send_frame(fd, false, 1, "a\xed", 2);
        send_frame(fd, true, 0, "\xa0\x80", 2);
        expect_failed(sv, fd, rd, 1007, 2);
        ws_done(fd, rd);
}

static void test_protocol_errors(void **state)
{
        struct srv *sv = *state;
        struct {
                const char *what;
                uint8_t bytes[64];
                size_t len;
                int code;
        } cases[] = {
                { "unmasked", { 0x81, 0x02, 'h', 'i' }, 4, 1002 },
                { "ping over 125", { 0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4 }, 8, 1002 },
                { "fragmented ping", { 0x09, 0x80, 1, 2, 3, 4 }, 6, 1002 },
                { "reserved opcode", { 0x83, 0x80, 1, 2, 3, 4 }, 6, 1002 },
                { "reserved control opcode", { 0x8b, 0x80, 1, 2, 3, 4 }, 6, 1002 },
                { "rsv1", { 0xc1, 0x80, 1, 2, 3, 4 }, 6, 1002 },
                { "continuation first", { 0x80, 0x80, 1, 2, 3, 4 }, 6, 1002 },
                { "text inside fragmented", { 0x01, 0x80, 1, 2, 3, 4, 0x81, 0x80, 1, 2, 3, 4 },
                  12, 1002 },
                { "length not minimal", { 0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0, 'h', 'e', 'l', 'l',
                                          'o' },
                  13, 1002 },
                { "length with high bit", { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
                  14, 1002 },
                { "one-byte close", { 0x88, 0x81, 0, 0, 0, 0, 0x03 }, 7, 1002 },
                { "close code 999", { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe7 }, 8, 1002 },
                { "close code 1005", { 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed }, 8, 1002 },
        };
        int closes = 0;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct reader *rd;
                int fd = ws_open(sv, "/ws", &rd);
                send_n(fd, cases[i].bytes, cases[i].len);
                int code = expect_close(rd);
                if (code != cases[i].code)
                        fail_msg("%s: close code %d", cases[i].what, code);
                assert_true(peer_closed(fd, 3000));
                assert_true(wait_for(&sv->closes, ++closes, 3000));
                if (atomic_load(&sv->close_code) != cases[i].code)
                        fail_msg("%s: on_close code %d", cases[i].what,
                                 atomic_load(&sv->close_code));
                ws_done(fd, rd);
        }

        /* More than 4096 frames in one message: 1008. */
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);
        size_t n = 4098, off = 0;
        uint8_t *b = malloc(n * 6);
        assert_non_null(b);
        off += frame_build(b + off, false, 1, "", 0, true);
        for (size_t i = 1; i < n; i++)
                off += frame_build(b + off, i == n - 1, 0, "", 0, true);
        send_n(fd, b, off);
        free(b);
        expect_failed(sv, fd, rd, 1008, ++closes);
        ws_done(fd, rd);
}

static void test_server_close(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);

        send_frame(fd, true, 1, "close", 5);
        struct frame f = { 0 };
        assert_true(read_frame(rd, &f));
        assert_int_equal(f.op, 8);
        assert_int_equal(f.len, 5);
        assert_memory_equal(f.data, "\x0f\xa0" "bye", 5);
        frame_clear(&f);
        /* Messages after the server's close are not delivered (nor echoed). */
        send_frame(fd, true, 1, "ignored", 7);
        send_close(fd, 4000, "");
        assert_true(peer_closed(fd, 3000));
        assert_true(wait_for(&sv->closes, 1, 3000));
        assert_int_equal(atomic_load(&sv->close_code), 4000);
        ws_done(fd, rd);
}

static void test_pipelined_first_frame(void **state)
{
        struct srv *sv = *state;
        char req[2048], v[64];
        uint8_t fr[64];
        struct resp r;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);

        /* The request and two frames in one packet. */
        upgrade_request(req, sizeof(req), "/ws", NULL);
        size_t n = strlen(req);
        size_t k = frame_build(fr, true, 1, "early", 5, true);
        k += frame_build(fr + k, true, 2, "\x00\x01", 2, true);
        memcpy(req + n, fr, k);
        send_n(fd, req, n + k);
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 101);
        assert_non_null(resp_header(&r, "Sec-WebSocket-Accept", v, sizeof(v)));
        expect_message(rd, 1, "early", 5);
        expect_message(rd, 2, "\x00\x01", 2);
        ws_done(fd, rd);
}

static void test_accept_later(void **state)
{
        struct srv *sv = *state;
        char req[2048];
        uint8_t fr[64];
        struct resp r;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);

        /* Frames sent with the request wait for the (asynchronous) accept. */
        upgrade_request(req, sizeof(req), "/ws-later", NULL);
        size_t n = strlen(req);
        size_t k = frame_build(fr, true, 1, "waited", 6, true);
        memcpy(req + n, fr, k);
        send_n(fd, req, n + k);
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 101);
        expect_message(rd, 1, "waited", 6);
        send_frame(fd, true, 1, "then", 4);
        expect_message(rd, 1, "then", 4);
        ws_done(fd, rd);
}

static void test_close_after_queued(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws-flood", &rd);

        /* Every message queued before ws_close() arrives before the close frame. */
        for (int i = 0; i < FLOOD_COUNT; i++) {
                char m[16];
                int n = snprintf(m, sizeof(m), "m%04d", i);
                expect_message(rd, 1, m, (size_t)n);
        }
        assert_int_equal(expect_close(rd), 1000);
        send_close(fd, 1000, NULL);
        assert_true(peer_closed(fd, 3000));
        assert_true(wait_for(&sv->closes, 1, 3000));
        assert_int_equal(atomic_load(&sv->close_code), 1000);
        ws_done(fd, rd);
}

static void test_pause_resume(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);
        uint8_t b[128];
        size_t k = 0;

        /* "pause" and three messages in one packet: the three come after the resume (the
         * handler aborts if one is delivered while paused), in order. */
        k += frame_build(b + k, true, 1, "pause", 5, true);
        k += frame_build(b + k, true, 1, "a", 1, true);
        k += frame_build(b + k, false, 1, "b", 1, true);
        k += frame_build(b + k, true, 0, "c", 1, true);
        k += frame_build(b + k, true, 1, "d", 1, true);
        send_n(fd, b, k);
        expect_message(rd, 1, "a", 1);
        expect_message(rd, 1, "bc", 2);
        expect_message(rd, 1, "d", 1);
        ws_done(fd, rd);
}

static void test_idle_ping(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);
        struct frame f = { 0 };

        /* A silent peer is pinged; answering keeps the connection. */
        for (int i = 0; i < 3; i++) {
                assert_true(read_frame(rd, &f));
                assert_int_equal(f.op, 9);
                send_frame(fd, true, 10, f.data, f.len);
                frame_clear(&f);
        }
        send_frame(fd, true, 1, "alive", 5);
        expect_message(rd, 1, "alive", 5);
        /* Stop answering: pings, then a 1001 close. */
        for (;;) {
                assert_true(read_frame(rd, &f));
                if (f.op != 9)
                        break;
        }
        assert_int_equal(f.op, 8);
        assert_true(f.len >= 2);
        assert_int_equal(((uint8_t)f.data[0] << 8) | (uint8_t)f.data[1], 1001);
        frame_clear(&f);
        send_close(fd, 1001, NULL);
        assert_true(peer_closed(fd, 3000));
        assert_true(wait_for(&sv->closes, 1, 3000));
        assert_int_equal(atomic_load(&sv->close_code), 1001);
        ws_done(fd, rd);
}

static void test_backpressure(void **state)
{
        struct srv *sv = *state;
        struct reader *rd;
        size_t total = 8u << 20, got = 0;
        int rcvbuf = 32 * 1024;
        struct frame f = { 0 };
        char req[1024];
        struct resp r;

        /* A small receive window, so the server's queue must fill while we sleep. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)sv->port) };
        struct timeval tv = { .tv_sec = 5 };
        assert_true(fd >= 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        rd = reader_new(fd);
        upgrade_request(req, sizeof(req), "/ws", NULL);
        send_n(fd, req, strlen(req));
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 101);

        snprintf(req, sizeof(req), "fill %zu", total);
        send_frame(fd, true, 1, req, strlen(req));
        usleep(200 * 1000);
        while (got < total) {
                assert_true(read_frame(rd, &f));
                assert_int_equal(f.op, 2);
                for (size_t i = 0; i < f.len; i++)
                        if ((uint8_t)f.data[i] != (uint8_t)((got + i) * 7 + 3))
                                fail_msg("byte %zu differs", got + i);
                got += f.len;
        }
        frame_clear(&f);
        assert_int_equal(got, total);
        expect_message(rd, 1, "done", 4);
        assert_true(atomic_load(&sv->enobufs) > 0);
        assert_true(atomic_load(&sv->drains) > 0);
        ws_done(fd, rd);
}

/* A peer that sends pings and never reads: its pongs pile up in our write queue until reading
 * stops (max_queued + 64 KiB), so TCP pushes back on it long before 64 MiB; once it reads,
 * reading resumes and every ping gets its pong, in order. */
static void test_output_full_stops_reading(void **state)
{
        struct srv *sv = *state;
        int small = 64 * 1024;
        char req[1024];
        struct resp r;
        uint8_t ping[131], payload[125];
        size_t pings = 0, partial = 0, sent = 0, limit = (size_t)64 << 20;
        bool stalled = false;

        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)sv->port) };
        assert_true(fd >= 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        struct reader *rd = reader_new(fd);
        upgrade_request(req, sizeof(req), "/ws", NULL);
        send_n(fd, req, strlen(req));
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 101);
        assert_int_equal(rd->len, 0);

        memset(payload, 'p', sizeof(payload));
        assert_int_equal(frame_build(ping, true, 9, payload, sizeof(payload), true), 131);
        while (sent < limit) {
                if (partial == 0)
                        pings++;
                ssize_t w = send(fd, ping + partial, sizeof(ping) - partial,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w > 0) {
                        sent += (size_t)w;
                        partial = (partial + (size_t)w) % sizeof(ping);
                        continue;
                }
                assert_true(w < 0 && errno == EAGAIN);
                if (partial == 0)
                        pings--;
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                if (poll(&p, 1, 300) == 0) {
                        stalled = true;
                        break;
                }
        }
        assert_true(stalled);

        /* Drain: every pong (2 + 125 bytes), finishing the last ping on the way. */
        size_t want = pings * 127, got = 0;
        char buf[65536];
        while (got < want) {
                struct pollfd p = { .fd = fd, .events = POLLIN | (partial ? POLLOUT : 0) };
                assert_true(poll(&p, 1, 5000) > 0);
                if (p.revents & POLLOUT) {
                        ssize_t w = send(fd, ping + partial, sizeof(ping) - partial,
                                         MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (w > 0)
                                partial = (partial + (size_t)w) % sizeof(ping);
                }
                if (!(p.revents & POLLIN))
                        continue;
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                assert_true(n > 0);
                for (ssize_t i = 0; i < n; i++, got++) {
                        size_t pos = got % 127;
                        uint8_t want_byte = pos == 0 ? 0x8a : pos == 1 ? 0x7d : 'p';
                        if ((uint8_t)buf[i] != want_byte)
                                fail_msg("pong byte %zu: %02x", got, (uint8_t)buf[i]);
                }
        }
        assert_int_equal(got, want);
        assert_int_equal(partial, 0);
        send_frame(fd, true, 1, "end", 3);
        expect_message(rd, 1, "end", 3);
        ws_done(fd, rd);
}

/* http_server_close() with a WebSocket open: the peer gets a 1001 close frame, then the
 * connection closes; on_close reports 1001 and the loop ends with nothing left. */
static void test_server_shutdown(void **state)
{
        struct srv *sv = srv_start(NULL, false);
        struct reader *rd;
        int fd = ws_open(sv, "/ws", &rd);

        send_frame(fd, true, 1, "x", 1);
        expect_message(rd, 1, "x", 1);
        uv_async_send(&sv->stop);
        assert_int_equal(expect_close(rd), 1001);
        assert_true(peer_closed(fd, 3000));
        pthread_join(sv->thread, NULL);
        assert_int_equal(sv->loop_close_rc, 0);
        assert_int_equal(atomic_load(&sv->closes), 1);
        assert_int_equal(atomic_load(&sv->close_code), 1001);
        sem_destroy(&sv->ready);
        free(sv);
        ws_done(fd, rd);
}

/* ---- tests: the CLI client ---- */

struct got {
        int n;
        char last[256];
        size_t last_len;
        bool last_binary;
};

static void on_client_message(struct wsc *c, void *ud, bool binary, const uint8_t *data,
                              size_t len)
{
        struct got *g = ud;
        g->n++;
        g->last_binary = binary;
        g->last_len = len < sizeof(g->last) ? len : sizeof(g->last);
        memcpy(g->last, data, g->last_len);
}

/* Drive c until g has want messages (or 3 s pass). */
static void client_wait(struct wsc *c, struct got *g, int want)
{
        for (int i = 0; i < 300 && g->n < want; i++) {
                struct pollfd p = { .fd = wsc_fd(c), .events = wsc_events(c) };
                if (poll(&p, 1, 10) > 0) {
                        if (p.revents & POLLOUT)
                                assert_int_equal(wsc_on_writable(c), 0);
                        if (p.revents & (POLLIN | POLLHUP | POLLERR))
                                assert_int_equal(wsc_on_readable(c), 0);
                }
        }
        assert_int_equal(g->n, want);
}

static void client_roundtrip(struct srv *sv, const char *url, const char *unix_path)
{
        struct got g = { 0 };
        struct wsc_options o = { .url = url, .unix_path = unix_path,
                                 .on_message = on_client_message, .ud = &g };
        struct wsc *c = NULL;
        int closes = atomic_load(&sv->closes);

        assert_int_equal(wsc_connect(&o, &c, NULL), 0);
        assert_int_equal(wsc_send(c, false, "hello", 5), 0);
        client_wait(c, &g, 1);
        assert_false(g.last_binary);
        assert_int_equal(g.last_len, 5);
        assert_memory_equal(g.last, "hello", 5);
        assert_int_equal(wsc_send(c, true, "\x00\xff", 2), 0);
        client_wait(c, &g, 2);
        assert_true(g.last_binary);
        assert_memory_equal(g.last, "\x00\xff", 2);
        assert_int_equal(wsc_send(c, false, "\xff", 1), -EINVAL);
        assert_false(wsc_closed(c));
        /* Messages that arrive before the server's close frame are still delivered. */
        assert_int_equal(wsc_send(c, false, "tail", 4), 0);
        assert_int_equal(wsc_close_wait(c, 1000, "done", 3000), 0);
        assert_int_equal(g.n, 3);
        assert_memory_equal(g.last, "tail", 4);
        assert_true(wsc_closed(c));
        assert_int_equal(wsc_close_code(c), 1000);
        assert_int_equal(wsc_send(c, false, "x", 1), -ENOTCONN);
        wsc_free(c);
        assert_true(wait_for(&sv->closes, closes + 1, 3000));
        assert_int_equal(atomic_load(&sv->close_code), 1000);
}

static void test_client_tcp(void **state)
{
        struct srv *sv = *state;
        char url[128];

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/ws?x=1#frag", sv->port);
        client_roundtrip(sv, url, NULL);
        snprintf(url, sizeof(url), "ws://[::1]:%d/ws", sv->port6);
        client_roundtrip(sv, url, NULL);
        snprintf(url, sizeof(url), "http://localhost:%d/ws", sv->port);
        client_roundtrip(sv, url, NULL);
}

static void test_client_unix(void **state)
{
        struct srv *sv = *state;

        client_roundtrip(sv, "http://localhost/ws", sv->unix_path);
}

static void test_client_big_and_hello(void **state)
{
        struct srv *sv = *state;
        char url[128];
        struct got g = { 0 };
        struct wsc_options o = { .url = url, .on_message = on_client_message, .ud = &g };
        struct wsc *c = NULL;
        size_t n = 300 * 1024;
        uint8_t *big = malloc(n);

        /* The server speaks first. */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/ws-hello", sv->port);
        assert_int_equal(wsc_connect(&o, &c, NULL), 0);
        client_wait(c, &g, 1);
        assert_memory_equal(g.last, "hello", 5);
        /* A message larger than a socket buffer goes out through POLLOUT. */
        assert_non_null(big);
        for (size_t i = 0; i < n; i++)
                big[i] = (uint8_t)i;
        assert_int_equal(wsc_send(c, true, big, n), 0);
        client_wait(c, &g, 2);
        assert_int_equal(g.last_len, sizeof(g.last));
        assert_memory_equal(g.last, big, sizeof(g.last));
        assert_int_equal(wsc_queued(c), 0);
        free(big);
        /* The server closes: the client answers and reports its code. */
        assert_int_equal(wsc_send(c, false, "close", 5), 0);
        int r = 0;
        for (int i = 0; i < 300 && r == 0; i++) {
                struct pollfd p = { .fd = wsc_fd(c), .events = wsc_events(c) };
                if (poll(&p, 1, 10) > 0)
                        r = wsc_on_readable(c);
        }
        assert_int_equal(r, WSC_CLOSED);
        assert_int_equal(wsc_close_code(c), 4000);
        assert_int_equal(wsc_events(c), 0);
        wsc_free(c);
        assert_true(wait_for(&sv->closes, 1, 3000));
        assert_int_equal(atomic_load(&sv->close_code), 4000);
}

static void test_client_refused(void **state)
{
        struct srv *sv = *state;
        char url[128];
        struct got g = { 0 };
        const char *const auth[] = { "Authorization: ApiKey secret", NULL };
        struct wsc_options o = { .url = url, .on_message = on_client_message, .ud = &g };
        struct wsc_refusal ref;
        struct wsc *c = NULL;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/ws-auth", sv->port);
        assert_int_equal(wsc_connect(&o, &c, &ref), -EPROTO);
        assert_null(c);
        assert_int_equal(ref.status, 401);
        assert_non_null(ref.body);
        assert_non_null(strstr(ref.body, "\"unauthorized\""));
        assert_int_equal(ref.len, strlen(ref.body));
        free(ref.body);

        o.headers = auth;
        assert_int_equal(wsc_connect(&o, &c, &ref), 0);
        assert_int_equal(wsc_send(c, false, "k", 1), 0);
        client_wait(c, &g, 1);
        assert_int_equal(wsc_close_wait(c, 1000, NULL, 3000), 0);
        wsc_free(c);

        /* A route that is not a WebSocket. */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/nope", sv->port);
        o.headers = NULL;
        assert_int_equal(wsc_connect(&o, &c, &ref), -EPROTO);
        assert_int_equal(ref.status, 404);
        free(ref.body);
}

static void test_client_bad_options(void **state)
{
        struct srv *sv = *state;
        char url[128];
        struct got g = { 0 };
        const char *const bad_header[] = { "X-A: b\r\nX-Injected: 1", NULL };
        struct wsc_options o = { .url = url, .on_message = on_client_message, .ud = &g };
        struct wsc *c = NULL;

        snprintf(url, sizeof(url), "https://127.0.0.1:%d/ws", sv->port);
        assert_int_equal(wsc_connect(&o, &c, NULL), -EPROTONOSUPPORT);
        snprintf(url, sizeof(url), "ftp://127.0.0.1:%d/ws", sv->port);
        assert_int_equal(wsc_connect(&o, &c, NULL), -EINVAL);
        assert_int_equal(wsc_connect(&(struct wsc_options){ .url = "http://127.0.0.1:99999/",
                                                             .on_message = on_client_message },
                                     &c, NULL),
                         -EINVAL);
        assert_int_equal(wsc_connect(&(struct wsc_options){ .url = "http://u@127.0.0.1/",
                                                             .on_message = on_client_message },
                                     &c, NULL),
                         -EINVAL);
        assert_int_equal(wsc_connect(&(struct wsc_options){ .url = "http://127.0.0.1/a b",
                                                             .on_message = on_client_message },
                                     &c, NULL),
                         -EINVAL);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/ws", sv->port);
        o.headers = bad_header;
        assert_int_equal(wsc_connect(&o, &c, NULL), -EINVAL);
        o.headers = NULL;
        o.unix_path = "/nonexistent/warren.sock";
        assert_int_equal(wsc_connect(&o, &c, NULL), -ENOENT);
        assert_null(c);
        assert_int_equal(atomic_load(&sv->accepted), 0);
}

/* A fake server, to send what the real one never does. */
struct fake {
        int lfd;
        int port;
        pthread_t thread;
        bool bad_accept;
};

static void *fake_main(void *arg)
{
        struct fake *f = arg;
        char buf[4096], accept[WS_ACCEPT_LEN + 1], out[512];
        size_t len = 0;
        int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);

        CHECK(fd >= 0);
        while (!memmem(buf, len, "\r\n\r\n", 4)) {
                ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
                CHECK(n > 0);
                len += (size_t)n;
        }
        buf[len] = '\0';
        char *k = strcasestr(buf, "Sec-WebSocket-Key: ");
        CHECK(k);
        k += strlen("Sec-WebSocket-Key: ");
        k[WS_KEY_LEN] = '\0';
        CHECK(ws_accept_key(k, accept) == 0);
        if (f->bad_accept)
                accept[3] ^= 1;
        int n = snprintf(out, sizeof(out),
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                         "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                         accept);
        /* Behind the head, in the same packet: a message and a close frame. */
        memcpy(out + n, "\x81\x05" "early" "\x88\x02\x03\xe8", 11);
        CHECK(send(fd, out, (size_t)n + 11, MSG_NOSIGNAL) == n + 11);
        /* Wait for the client to go. */
        while (recv(fd, buf, sizeof(buf), 0) > 0)
                ;
        close(fd);
        return NULL;
}

static void fake_start(struct fake *f, bool bad_accept)
{
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t sl = sizeof(sa);

        f->bad_accept = bad_accept;
        f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(f->lfd >= 0);
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(f->lfd, 1), 0);
        assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
        f->port = ntohs(sa.sin_port);
        assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
        pthread_join(f->thread, NULL);
        close(f->lfd);
}

static void test_client_fake_server(void **state)
{
        struct fake f;
        char url[128];
        struct got g = { 0 };
        struct wsc_options o = { .url = url, .on_message = on_client_message, .ud = &g };
        struct wsc *c = NULL;

        /* Frames that came with the 101 answer are delivered from wsc_connect(). */
        fake_start(&f, false);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", f.port);
        assert_int_equal(wsc_connect(&o, &c, NULL), 0);
        assert_int_equal(g.n, 1);
        assert_memory_equal(g.last, "early", 5);
        assert_true(wsc_closed(c));
        assert_int_equal(wsc_close_code(c), 1000);
        assert_int_equal(wsc_on_readable(c), WSC_CLOSED);
        wsc_free(c);
        fake_stop(&f);

        /* A wrong Sec-WebSocket-Accept is refused. */
        fake_start(&f, true);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", f.port);
        c = NULL;
        assert_int_equal(wsc_connect(&o, &c, NULL), -EPROTO);
        assert_null(c);
        fake_stop(&f);
}

/* ---- codec helpers ---- */

static void test_codec_helpers(void **state)
{
        char out[WS_ACCEPT_LEN + 1];

        assert_int_equal(ws_accept_key(sample_key, out), 0);
        assert_string_equal(out, sample_accept);
        assert_true(ws_key_valid(sample_key));
        assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));
        assert_false(ws_key_valid(" GhlIHNhbXBsZSBub25jZQ=="));
        assert_int_equal(ws_accept_key("short", out), -EINVAL);
        assert_true(ws_utf8_valid((const uint8_t *)"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
        assert_false(ws_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
        assert_false(ws_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
        assert_false(ws_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
        assert_false(ws_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* cut short */
        assert_false(ws_utf8_valid((const uint8_t *)"\x80", 1));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_codec_helpers),
                cmocka_unit_test_setup_teardown(test_handshake_echo, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_handshake_rejected, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_subprotocol_header, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_fragmented, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_ping_pong, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_message_too_big, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_utf8, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_protocol_errors, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_server_close, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined_first_frame, setup_default,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_accept_later, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_close_after_queued, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_pause_resume, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_idle_ping, setup_idle, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure, setup_small_queue, teardown),
                cmocka_unit_test_setup_teardown(test_output_full_stops_reading, setup_small_queue,
                                                teardown),
                cmocka_unit_test(test_server_shutdown),
                cmocka_unit_test_setup_teardown(test_client_tcp, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_client_unix, setup_unix, teardown),
                cmocka_unit_test_setup_teardown(test_client_big_and_hello, setup_default,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_client_refused, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_client_bad_options, setup_default, teardown),
                cmocka_unit_test(test_client_fake_server),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
