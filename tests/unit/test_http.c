/* test_http.c - the HTTP server (src/api/http.c) driven over real sockets.
 *
 * Each test starts a server on 127.0.0.1 port 0 in a libuv loop on its own thread (setup)
 * and talks to it with blocking sockets from the test thread; teardown closes the server
 * from inside the loop (uv_async), joins the thread and checks that the loop closed with no
 * handle left (the server frees itself once everything is closed; ASan's leak check sees
 * the rest). Handlers are routed by path prefix; the slow and streaming ones answer from
 * uv timers, so the asynchronous paths are exercised.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http.h"

struct srv {
        pthread_t thread;
        uv_loop_t loop;
        uv_async_t stop;
        struct http_server *s;
        struct http_limits lim;
        int port;
        char dir[64];
        char unix_path[128];
        sem_t ready;
        int listen_rc;
        int loop_close_rc;

        atomic_int requests;
        atomic_int aborts;
        atomic_int answered_after_abort;
        atomic_int held;
        atomic_int drains;
        atomic_int pauses;
};

/* ---- handlers (run on the server thread) ---- */

struct stream_state {
        struct srv *sv;
        int chunks;
        size_t bytes;
        uint64_t sum;
};

/* cmocka's asserts must not run off the test thread: the handlers abort instead. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

struct later {
        uv_timer_t t;
        struct http_req *req;
        int step;
        size_t sent;
};

static void on_later_closed(uv_handle_t *h)
{
        free(h->data);
}

static void later_free(struct later *l)
{
        uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static struct later *later_new(struct srv *sv, struct http_req *req, uv_timer_cb cb,
                               uint64_t ms)
{
        struct later *l = calloc(1, sizeof(*l));
        CHECK(l);
        uv_timer_init(&sv->loop, &l->t);
        l->t.data = l;
        l->req = req;
        uv_timer_start(&l->t, cb, ms, 0);
        return l;
}

static void on_stream_resume_closed(uv_handle_t *h)
{
        free(h->data);
}

/* Backpressure as a handler writing to disk would do it: pause on every chunk, resume 1 ms
 * later. The request is found through the timer's data. */
struct pause_timer {
        uv_timer_t t;
        struct http_req *req;
};

static void on_pause_timer(uv_timer_t *t)
{
        struct pause_timer *pt = t->data;
        http_req_resume(pt->req);
        uv_close((uv_handle_t *)t, on_stream_resume_closed);
}

static int stream_on_body(struct http_req *req, const char *data, size_t len)
{
        struct stream_state *st = req->user;
        st->chunks++;
        st->bytes += len;
        for (size_t i = 0; i < len; i++)
                st->sum = st->sum * 31 + (unsigned char)data[i];
        http_req_pause(req);
        atomic_fetch_add(&st->sv->pauses, 1);
        struct pause_timer *pt = calloc(1, sizeof(*pt));
        CHECK(pt);
        pt->req = req;
        uv_timer_init(&st->sv->loop, &pt->t);
        pt->t.data = pt;
        uv_timer_start(&pt->t, on_pause_timer, 1, 0);
        return 0;
}

/* Setting on_abort makes the handler answer even an aborted request (the answer is
 * dropped and the request freed). */
static void stream_on_abort(struct http_req *req)
{
        free(req->user);
        req->user = NULL;
        http_respond(req, 500, NULL, NULL, 0);
}

static int reject_on_body(struct http_req *req, const char *data, size_t len)
{
        return -EIO;
}

static void answer_slow(uv_timer_t *t)
{
        struct later *l = t->data;
        char *id = NULL;
        char body[64];
        if (http_req_query(l->req, "id", &id) < 0)
                id = strdup("?");
        snprintf(body, sizeof(body), "slow %s", id);
        free(id);
        http_respond(l->req, 200, "text/plain", body, strlen(body));
        later_free(l);
}

static void answer_after_abort(uv_timer_t *t)
{
        struct later *l = t->data;
        struct srv *sv = l->req->user;
        bool connected = http_req_connected(l->req);
        http_respond(l->req, 200, "text/plain", "late", 4);
        if (!connected)
                atomic_fetch_add(&sv->answered_after_abort, 1);
        later_free(l);
}

static void hold_on_abort(struct http_req *req)
{
        struct srv *sv = req->user;
        atomic_fetch_add(&sv->aborts, 1);
        /* Answer later, as a handler with work in flight would: the answer is dropped. */
        later_new(sv, req, answer_after_abort, 10);
}

static void chunked_step(uv_timer_t *t)
{
        struct later *l = t->data;
        char part[16];
        l->step++;
        snprintf(part, sizeof(part), "part%d", l->step);
        http_respond_write(l->req, part, strlen(part));
        if (l->step < 3) {
                uv_timer_start(&l->t, chunked_step, 5, 0);
                return;
        }
        http_respond_end(l->req);
        later_free(l);
}

#define BIG_TOTAL (8u * 1024 * 1024)

/* Produce BIG_TOTAL bytes, stopping above 1 MiB queued and going on from on_drain. */
static void big_produce(struct http_req *req)
{
        struct later *l = req->user;
        static char block[64 * 1024];
        while (l->sent < BIG_TOTAL) {
                for (size_t i = 0; i < sizeof(block); i++)
                        block[i] = (char)('a' + (l->sent + i) % 26);
                size_t q = http_respond_write(req, block, sizeof(block));
                l->sent += sizeof(block);
                if (q > 1024 * 1024)
                        return;
        }
        http_respond_end(req);
        later_free(l);
}

static void big_on_drain(struct http_req *req)
{
        struct later *l = req->user;
        struct srv *sv = l->t.loop->data;
        atomic_fetch_add(&sv->drains, 1);
        big_produce(req);
}

static enum http_body_mode on_headers(struct http_req *req, void *ud)
{
        struct srv *sv = ud;
        const char *p = req->path;

        if (!strcmp(p, "/auth")) {
                http_respond_error(req, 401, "unauthorized", "missing key");
                return HTTP_BODY_ANSWERED;
        }
        if (!strcmp(p, "/stream")) {
                struct stream_state *st = calloc(1, sizeof(*st));
                CHECK(st);
                st->sv = sv;
                req->user = st;
                req->on_body = stream_on_body;
                req->on_abort = stream_on_abort;
                /* Hold the body until "the file is open", as the upload route does. */
                http_req_pause(req);
                struct pause_timer *pt = calloc(1, sizeof(*pt));
                CHECK(pt);
                pt->req = req;
                uv_timer_init(&sv->loop, &pt->t);
                pt->t.data = pt;
                uv_timer_start(&pt->t, on_pause_timer, 20, 0);
                return HTTP_BODY_STREAM;
        }
        if (!strcmp(p, "/reject")) {
                req->on_body = reject_on_body;
                return HTTP_BODY_STREAM;
        }
        return HTTP_BODY_BUFFER;
}

static void on_request(struct http_req *req, void *ud)
{
        struct srv *sv = ud;
        const char *p = req->path;
        char body[512];

        atomic_fetch_add(&sv->requests, 1);
        if (!strcmp(p, "/hello")) {
                http_req_add_header(req, "X-Test", "yes");
                http_respond(req, 200, "text/plain", "hello", 5);
                /* The request stays readable until the handler returns (ASan checks). */
                CHECK(!strcmp(req->path, "/hello") && req->peer[0]);
                req->user = NULL;
        } else if (!strcmp(p, "/echo")) {
                http_respond(req, 200, "application/octet-stream", req->body ? req->body : "",
                             req->body_len);
        } else if (!strcmp(p, "/slow")) {
                later_new(sv, req, answer_slow, 30);
        } else if (!strcmp(p, "/hold")) {
                req->user = sv;
                req->on_abort = hold_on_abort;
                atomic_fetch_add(&sv->held, 1);
        } else if (!strcmp(p, "/stream")) {
                struct stream_state *st = req->user;
                snprintf(body, sizeof(body), "chunks=%d bytes=%zu sum=%llu", st->chunks, st->bytes,
                         (unsigned long long)st->sum);
                free(st);
                req->user = NULL;
                http_respond(req, 200, "text/plain", body, strlen(body));
        } else if (!strcmp(p, "/chunked")) {
                http_respond_start(req, 200, "text/plain", -1);
                later_new(sv, req, chunked_step, 5);
        } else if (!strcmp(p, "/big")) {
                struct later *l = calloc(1, sizeof(*l));
                CHECK(l);
                uv_timer_init(&sv->loop, &l->t);
                l->t.data = l;
                l->req = req;
                req->user = l;
                http_req_set_on_drain(req, big_on_drain);
                http_respond_start(req, 200, "application/octet-stream", BIG_TOTAL);
                big_produce(req);
        } else if (!strcmp(p, "/q")) {
                static const char *keys[] = { "a", "b", "e", "f", "k x", "n", "zz", "p%" };
                size_t off = 0;
                for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                        char *v = NULL;
                        int r = http_req_query(req, keys[i], &v);
                        if (r == 0)
                                off += (size_t)snprintf(body + off, sizeof(body) - off, "%s=%s;",
                                                        keys[i], v);
                        else
                                off += (size_t)snprintf(body + off, sizeof(body) - off, "%s=%d;",
                                                        keys[i], r);
                        free(v);
                }
                http_respond(req, 200, "text/plain", body, off);
        } else if (!strcmp(p, "/pad")) {
                static char pad[4096];
                char *i = NULL;
                CHECK(http_req_query(req, "i", &i) == 0);
                memset(pad, '.', sizeof(pad));
                int n = snprintf(pad, sizeof(pad), "%s;", i);
                pad[n] = '.';
                free(i);
                http_respond(req, 200, "text/plain", pad, sizeof(pad));
        } else if (!strncmp(p, "/path", 5)) {
                snprintf(body, sizeof(body), "path=%s query=%s peer=%s unix=%d", p,
                         req->query ? req->query : "(null)", req->peer, req->over_unix_socket);
                http_respond(req, 200, "text/plain", body, strlen(body));
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
        if (sv->listen_rc == 0 && sv->unix_path[0])
                sv->listen_rc = http_server_listen_unix(sv->s, sv->unix_path);
        sem_post(&sv->ready);
        uv_run(&sv->loop, UV_RUN_DEFAULT);
        sv->loop_close_rc = uv_loop_close(&sv->loop);
        return NULL;
}

static struct srv *srv_start(const struct http_limits *lim, bool with_unix)
{
        struct srv *sv = calloc(1, sizeof(*sv));
        assert_non_null(sv);
        if (lim)
                sv->lim = *lim;
        if (with_unix) {
                strcpy(sv->dir, "/tmp/test_http.XXXXXX");
                assert_non_null(mkdtemp(sv->dir));
                snprintf(sv->unix_path, sizeof(sv->unix_path), "%s/api.sock", sv->dir);
                /* A stale socket file, as a crashed daemon leaves it: bound, nobody listens. */
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                strcpy(sa.sun_path, sv->unix_path);
                assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
                close(fd);
        }
        sem_init(&sv->ready, 0, 0);
        assert_int_equal(pthread_create(&sv->thread, NULL, srv_main, sv), 0);
        sem_wait(&sv->ready);
        assert_int_equal(sv->listen_rc, 0);
        assert_true(sv->port > 0);
        return sv;
}

static void srv_stop(struct srv *sv)
{
        uv_async_send(&sv->stop);
        pthread_join(sv->thread, NULL);
        assert_int_equal(sv->loop_close_rc, 0);
        if (sv->unix_path[0]) {
                /* The listener removed its socket file on close. */
                assert_int_equal(access(sv->unix_path, F_OK), -1);
                rmdir(sv->dir);
        }
        sem_destroy(&sv->ready);
        free(sv);
}

static int setup_default(void **state)
{
        *state = srv_start(NULL, false);
        return 0;
}

static int setup_small(void **state)
{
        struct http_limits lim = { .max_body = 1024, .header_timeout_ms = 300,
                                   .idle_timeout_ms = 400 };
        *state = srv_start(&lim, false);
        return 0;
}

static int setup_maxconn(void **state)
{
        struct http_limits lim = { .max_connections = 2 };
        *state = srv_start(&lim, false);
        return 0;
}

static int setup_unix(void **state)
{
        *state = srv_start(NULL, true);
        return 0;
}

static int teardown(void **state)
{
        srv_stop(*state);
        return 0;
}

/* ---- client side ---- */

static void set_timeouts(int fd)
{
        struct timeval tv = { .tv_sec = 5 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_tcp(int port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        set_timeouts(fd);
        return fd;
}

static int connect_unix(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        set_timeouts(fd);
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

static void send_str(int fd, const char *s)
{
        send_n(fd, s, strlen(s));
}

struct reader {
        int fd;
        size_t len;
        char buf[256 * 1024];
};

struct resp {
        int status;
        char head[16384];
        char *body;
        size_t body_len;
};

static struct reader *reader_new(int fd)
{
        struct reader *rd = calloc(1, sizeof(*rd));
        assert_non_null(rd);
        rd->fd = fd;
        return rd;
}

/* Read more into the buffer; false on EOF, error or timeout. */
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

/* Take exactly n bytes (appending to *out). */
static bool take(struct reader *rd, size_t n, char **out, size_t *out_len)
{
        *out = realloc(*out, *out_len + n + 1);
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

static bool read_line(struct reader *rd, char *line, size_t cap)
{
        for (;;) {
                char *e = memmem(rd->buf, rd->len, "\r\n", 2);
                if (e) {
                        size_t n = (size_t)(e - rd->buf);
                        if (n >= cap)
                                return false;
                        memcpy(line, rd->buf, n);
                        line[n] = '\0';
                        consume(rd, n + 2);
                        return true;
                }
                if (!fill(rd))
                        return false;
        }
}

/* Value of a response header (case-insensitive name), or NULL. */
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

/* Read one response; head_only for answers to HEAD (and 1xx, which never has a body). */
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
        r->body = calloc(1, 1);
        if (head_only || r->status < 200 || r->status == 204 || r->status == 304)
                return true;
        if (resp_header(r, "Transfer-Encoding", v, sizeof(v))) {
                for (;;) {
                        char line[64];
                        if (!read_line(rd, line, sizeof(line)))
                                return false;
                        size_t n = strtoul(line, NULL, 16);
                        if (n == 0) {
                                return read_line(rd, line, sizeof(line)) && line[0] == '\0';
                        }
                        if (!take(rd, n, &r->body, &r->body_len))
                                return false;
                        if (!read_line(rd, line, sizeof(line)) || line[0])
                                return false;
                }
        }
        if (resp_header(r, "Content-Length", v, sizeof(v)))
                return take(rd, strtoul(v, NULL, 10), &r->body, &r->body_len);
        /* close-delimited */
        while (fill(rd))
                ;
        take(rd, rd->len, &r->body, &r->body_len);
        return true;
}

static void resp_clear(struct resp *r)
{
        free(r->body);
        r->body = NULL;
}

/* Whether the server closed the connection (EOF or reset) within ms. */
static bool peer_closed(int fd, int ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char b[256];
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

/* One request on a fresh connection, answer read, connection closed. */
static void one_shot(int port, const char *req, struct resp *r)
{
        int fd = connect_tcp(port);
        struct reader *rd = reader_new(fd);
        send_str(fd, req);
        assert_true(read_response(rd, r, false));
        free(rd);
        close(fd);
}

/* ---- tests ---- */

static void test_get_keepalive(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        char v[64];

        for (int i = 0; i < 2; i++) {
                send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
                assert_true(read_response(rd, &r, false));
                assert_int_equal(r.status, 200);
                assert_string_equal(r.body, "hello");
                assert_non_null(resp_header(&r, "X-Test", v, sizeof(v)));
                assert_string_equal(v, "yes");
                assert_non_null(resp_header(&r, "Content-Type", v, sizeof(v)));
                assert_string_equal(v, "text/plain");
                assert_non_null(resp_header(&r, "Date", v, sizeof(v)));
                assert_null(resp_header(&r, "Connection", v, sizeof(v)));
                resp_clear(&r);
        }
        assert_int_equal(atomic_load(&sv->requests), 2);
        assert_false(peer_closed(fd, 50));
        free(rd);
        close(fd);
}

static void test_pipelined_in_order(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;

        /* The first and last are answered later (30 ms timers); the order must hold. */
        send_str(fd, "GET /slow?id=a HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                     "GET /slow?id=d HTTP/1.1\r\nHost: x\r\n\r\n");
        const char *want[] = { "slow a", "hello", "xyz", "slow d" };
        for (int i = 0; i < 4; i++) {
                assert_true(read_response(rd, &r, false));
                assert_int_equal(r.status, 200);
                assert_string_equal(r.body, want[i]);
                resp_clear(&r);
        }
        free(rd);
        close(fd);
}

/* Many pipelined requests whose answers (8 MiB in all) the client reads only later: the
 * server stops parsing above its output high-water mark and goes on as the client reads,
 * so every answer arrives, in order. */
static void test_pipelined_flood(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        const int n = 2000;
        char *reqs = malloc((size_t)n * 48);
        size_t off = 0;
        struct resp r;

        assert_non_null(reqs);
        for (int i = 0; i < n; i++)
                off += (size_t)sprintf(reqs + off, "GET /pad?i=%d HTTP/1.1\r\n\r\n", i);
        send_n(fd, reqs, off);
        usleep(300 * 1000);
        for (int i = 0; i < n; i++) {
                char want[16];
                assert_true(read_response(rd, &r, false));
                assert_int_equal(r.status, 200);
                assert_int_equal(r.body_len, 4096);
                snprintf(want, sizeof(want), "%d;", i);
                assert_memory_equal(r.body, want, strlen(want));
                resp_clear(&r);
        }
        free(reqs);
        free(rd);
        close(fd);
}

static void test_post_content_length(void **state)
{
        struct srv *sv = *state;
        struct resp r;

        one_shot(sv->port,
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 11);
        assert_string_equal(r.body, "hello world");
        resp_clear(&r);
}

static void test_post_chunked(void **state)
{
        struct srv *sv = *state;
        struct resp r;

        one_shot(sv->port,
                 "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                 &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello world");
        resp_clear(&r);
}

static void test_stream_body(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        const size_t big = 1024 * 1024, total = 3 * 100 + big;
        char *buf = malloc(big);
        uint64_t sum = 0;
        char want[128];

        assert_non_null(buf);
        snprintf(want, sizeof(want),
                 "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", total);
        send_str(fd, want);
        /* Three small pieces that arrive apart, then 1 MiB at once (read in 64 KiB pieces,
         * each paused: the rest waits in the connection and is fed after each resume). */
        for (int i = 0; i < 3; i++) {
                usleep(30 * 1000);
                memset(buf, 'a' + i, 100);
                for (int k = 0; k < 100; k++)
                        sum = sum * 31 + (unsigned char)buf[k];
                send_n(fd, buf, 100);
        }
        for (size_t i = 0; i < big; i++) {
                buf[i] = (char)(i * 7 + i / 1000);
                sum = sum * 31 + (unsigned char)buf[i];
        }
        send_n(fd, buf, big);
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        int chunks = 0;
        size_t bytes = 0;
        unsigned long long got_sum = 0;
        assert_int_equal(sscanf(r.body, "chunks=%d bytes=%zu sum=%llu", &chunks, &bytes, &got_sum),
                         3);
        assert_int_equal(bytes, total);
        assert_true(chunks >= 4 + 15);
        assert_true((uint64_t)got_sum == sum);
        assert_int_equal(atomic_load(&sv->pauses), chunks);
        resp_clear(&r);
        free(buf);
        free(rd);
        close(fd);
}

static void test_stream_reject(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        char v[64];

        send_str(fd, "POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"error\""));
        assert_non_null(resp_header(&r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        assert_true(peer_closed(fd, 3000));
        resp_clear(&r);
        free(rd);
        close(fd);
}

static void expect_error(int port, const char *req, int status, const char *code)
{
        int fd = connect_tcp(port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        char v[64];

        send_str(fd, req);
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, status);
        assert_non_null(resp_header(&r, "Content-Type", v, sizeof(v)));
        assert_string_equal(v, "application/json");
        assert_non_null(resp_header(&r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        char want[96];
        snprintf(want, sizeof(want), "{\"error\":{\"code\":\"%s\",\"message\":", code);
        assert_non_null(strstr(r.body, want));
        assert_true(peer_closed(fd, 3000));
        resp_clear(&r);
        free(rd);
        close(fd);
}

static void test_header_limits(void **state)
{
        struct srv *sv = *state;
        size_t n = 20 * 1024;
        char *req = malloc(n + 200);

        assert_non_null(req);
        int off = sprintf(req, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
        memset(req + off, 'b', n);
        strcpy(req + off + n, "\r\n\r\n");
        expect_error(sv->port, req, 431, "headers_too_large");

        off = sprintf(req, "GET /hello HTTP/1.1\r\n");
        for (int i = 0; i < 100; i++)
                off += sprintf(req + off, "X-H%d: v\r\n", i);
        strcpy(req + off, "\r\n");
        expect_error(sv->port, req, 431, "headers_too_large");
        free(req);
}

static void test_long_url(void **state)
{
        struct srv *sv = *state;
        size_t n = 9000;
        char *req = malloc(n + 100);

        assert_non_null(req);
        strcpy(req, "GET /");
        memset(req + 5, 'u', n);
        strcpy(req + 5 + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
        expect_error(sv->port, req, 414, "uri_too_long");
        free(req);
}

static void test_body_too_large(void **state)
{
        struct srv *sv = *state;
        char req[4096];

        /* Announced: refused before any body byte is sent. */
        expect_error(sv->port,
                     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 413,
                     "payload_too_large");
        /* Chunked: counted as it comes (max_body is 1024 here). */
        int off = sprintf(req, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 3; i++) {
                off += sprintf(req + off, "200\r\n");
                memset(req + off, 'c', 0x200);
                off += 0x200;
                off += sprintf(req + off, "\r\n");
        }
        strcpy(req + off, "0\r\n\r\n");
        expect_error(sv->port, req, 413, "payload_too_large");
        /* Within the limit it passes. */
        struct resp r;
        one_shot(sv->port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "abcd");
        resp_clear(&r);
}

static void test_malformed(void **state)
{
        struct srv *sv = *state;

        expect_error(sv->port, "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400,
                     "bad_request");
        expect_error(sv->port, "\x01\x02garbage\r\n\r\n", 400, "bad_request");
        expect_error(sv->port,
                     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                     400, "bad_request");
        expect_error(sv->port, "GET /hello HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400,
                     "bad_request");
}

static void test_path_decoding(void **state)
{
        struct srv *sv = *state;
        struct resp r;

        one_shot(sv->port, "GET /path/a%2Fb%20c+d?x=1%202#frag HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "path=/path/a/b c+d query=x=1%202 peer=127.0.0.1:"));
        resp_clear(&r);
        one_shot(sv->port, "GET http://example.com/path/abs?y=2 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "path=/path/abs query=y=2 "));
        resp_clear(&r);
        expect_error(sv->port, "GET /path/%00x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
        expect_error(sv->port, "GET /path/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
        expect_error(sv->port, "GET /path/%4 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
        expect_error(sv->port, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
}

static void test_query(void **state)
{
        struct srv *sv = *state;
        struct resp r;

        one_shot(sv->port,
                 "GET /q?a=1%202&b=x+y&a=dup&e=&f&&k+x=v%26w&n=%00&p%25=%zz HTTP/1.1\r\n"
                 "Host: x\r\n\r\n",
                 &r);
        assert_int_equal(r.status, 200);
        char want[256];
        snprintf(want, sizeof(want), "a=1 2;b=x y;e=;f=;k x=v&w;n=%d;zz=%d;p%%=%d;", -EINVAL,
                 -ENOENT, -EINVAL);
        assert_string_equal(r.body, want);
        resp_clear(&r);
}

static void test_chunked_response(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        char v[64];

        send_str(fd, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        assert_non_null(resp_header(&r, "Transfer-Encoding", v, sizeof(v)));
        assert_string_equal(v, "chunked");
        assert_null(resp_header(&r, "Content-Length", v, sizeof(v)));
        assert_string_equal(r.body, "part1part2part3");
        resp_clear(&r);
        /* The connection is still usable. */
        send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_string_equal(r.body, "hello");
        resp_clear(&r);
        free(rd);
        close(fd);
}

static void test_big_response_drain(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;

        send_str(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
        /* Let the server fill its queue before reading. */
        usleep(100 * 1000);
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, BIG_TOTAL);
        for (size_t i = 0; i < r.body_len; i += 4093)
                assert_int_equal(r.body[i], 'a' + i % 26);
        assert_true(atomic_load(&sv->drains) >= 1);
        resp_clear(&r);
        free(rd);
        close(fd);
}

static void test_abort_held(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);

        send_str(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(wait_for(&sv->held, 1, 5000));
        close(fd);
        assert_true(wait_for(&sv->aborts, 1, 5000));
        assert_true(wait_for(&sv->answered_after_abort, 1, 5000));
        usleep(50 * 1000);
        assert_int_equal(atomic_load(&sv->aborts), 1);
}

static void test_abort_on_server_close(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);

        send_str(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(wait_for(&sv->held, 1, 5000));
        /* Stop the server while the request is held: on_abort, then the late answer, then
         * everything is freed and the loop ends (checked by srv_stop). */
        uv_async_send(&sv->stop);
        pthread_join(sv->thread, NULL);
        assert_int_equal(sv->loop_close_rc, 0);
        assert_int_equal(atomic_load(&sv->aborts), 1);
        assert_int_equal(atomic_load(&sv->answered_after_abort), 1);
        assert_true(peer_closed(fd, 1000));
        close(fd);
        /* Restart an idle server so teardown has one to stop. */
        sem_destroy(&sv->ready);
        free(sv);
        *state = srv_start(NULL, false);
}

static void test_unix_socket(void **state)
{
        struct srv *sv = *state;
        struct stat st;
        struct resp r;

        assert_int_equal(stat(sv->unix_path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0660);
        int fd = connect_unix(sv->unix_path);
        struct reader *rd = reader_new(fd);
        send_str(fd, "GET /path/u HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "peer=unix unix=1"));
        resp_clear(&r);
        free(rd);
        close(fd);
}

static void test_timeouts(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;

        /* Slowloris: headers never complete -> 408 and close (header_timeout_ms 300). */
        send_str(fd, "GET /hello HTTP/1.1\r\nHo");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 408);
        assert_true(peer_closed(fd, 3000));
        resp_clear(&r);
        free(rd);
        close(fd);

        /* Idle keep-alive connection: closed after idle_timeout_ms (400). */
        fd = connect_tcp(sv->port);
        rd = reader_new(fd);
        send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        resp_clear(&r);
        assert_false(peer_closed(fd, 200));
        assert_true(peer_closed(fd, 3000));
        free(rd);
        close(fd);

        /* A connection that sends nothing is closed silently after the header timeout. */
        fd = connect_tcp(sv->port);
        assert_true(peer_closed(fd, 3000));
        close(fd);
}

static void test_max_connections(void **state)
{
        struct srv *sv = *state;
        int fds[2];
        struct resp r;

        for (int i = 0; i < 2; i++) {
                fds[i] = connect_tcp(sv->port);
                struct reader *rd = reader_new(fds[i]);
                send_str(fds[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
                assert_true(read_response(rd, &r, false));
                assert_int_equal(r.status, 200);
                resp_clear(&r);
                free(rd);
        }
        int third = connect_tcp(sv->port);
        assert_true(peer_closed(third, 3000));
        close(third);
        close(fds[0]);
        usleep(100 * 1000);
        /* A slot is free again. */
        one_shot(sv->port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        resp_clear(&r);
        close(fds[1]);
}

static void test_head(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        char v[64];

        send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 200);
        assert_non_null(resp_header(&r, "Content-Length", v, sizeof(v)));
        assert_string_equal(v, "5");
        resp_clear(&r);
        /* No body bytes were sent: the next answer starts right away. */
        send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        resp_clear(&r);
        free(rd);
        close(fd);
}

static void test_expect_continue(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;

        send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\n\r\n");
        assert_true(read_response(rd, &r, true));
        assert_int_equal(r.status, 100);
        resp_clear(&r);
        send_str(fd, "abcde");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "abcde");
        resp_clear(&r);
        free(rd);
        close(fd);
}

static void test_answered_early(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        char v[64];

        /* A small body after an early answer is skipped; the connection stays. */
        send_str(fd, "POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
                     "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 401);
        assert_non_null(strstr(r.body, "\"unauthorized\""));
        assert_null(resp_header(&r, "Connection", v, sizeof(v)));
        resp_clear(&r);
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        resp_clear(&r);
        /* A large one is not read: Connection: close. */
        send_str(fd, "POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 401);
        assert_non_null(resp_header(&r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        assert_true(peer_closed(fd, 3000));
        resp_clear(&r);
        free(rd);
        close(fd);
        assert_int_equal(atomic_load(&sv->requests), 1);
}

static void test_http10(void **state)
{
        struct srv *sv = *state;
        int fd = connect_tcp(sv->port);
        struct reader *rd = reader_new(fd);
        struct resp r;
        char v[64];

        send_str(fd, "GET /hello HTTP/1.0\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        assert_non_null(resp_header(&r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        assert_true(peer_closed(fd, 3000));
        resp_clear(&r);
        free(rd);
        close(fd);

        fd = connect_tcp(sv->port);
        rd = reader_new(fd);
        for (int i = 0; i < 2; i++) {
                send_str(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
                assert_true(read_response(rd, &r, false));
                assert_int_equal(r.status, 200);
                assert_non_null(resp_header(&r, "Connection", v, sizeof(v)));
                assert_string_equal(v, "keep-alive");
                resp_clear(&r);
        }
        free(rd);
        close(fd);

        /* Connection: close on HTTP/1.1 is honoured, and what follows is not answered. */
        fd = connect_tcp(sv->port);
        rd = reader_new(fd);
        send_str(fd, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n"
                     "GET /hello HTTP/1.1\r\n\r\n");
        assert_true(read_response(rd, &r, false));
        assert_non_null(resp_header(&r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        resp_clear(&r);
        assert_false(read_response(rd, &r, false));
        resp_clear(&r);
        free(rd);
        close(fd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_get_keepalive, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined_flood, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_post_content_length, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_post_chunked, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_stream_body, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_stream_reject, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_header_limits, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_long_url, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_body_too_large, setup_small, teardown),
                cmocka_unit_test_setup_teardown(test_malformed, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_path_decoding, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_query, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_chunked_response, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_big_response_drain, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_abort_held, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_abort_on_server_close, setup_default,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_unix_socket, setup_unix, teardown),
                cmocka_unit_test_setup_teardown(test_timeouts, setup_small, teardown),
                cmocka_unit_test_setup_teardown(test_max_connections, setup_maxconn, teardown),
                cmocka_unit_test_setup_teardown(test_head, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_expect_continue, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_answered_early, setup_default, teardown),
                cmocka_unit_test_setup_teardown(test_http10, setup_default, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
