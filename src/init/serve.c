/* serve.c - warren-init's event loop: the control socket, daemon connections, job fds and
 * SIGCHLD, all in one thread with poll().
 *
 * As in redis's networking code, an object that fails or finishes inside a callback is only
 * marked dead; it is freed (and its fds closed) at the end of the loop iteration, so no
 * pollfd entry of the current iteration ever points at freed memory or a reused fd.
 *
 * Flow control: job output is read only while the owning connection has less than
 * INIT_OUTQ_SOFT queued; a connection whose queue passes INIT_OUTQ_HARD (only control frames
 * can get it there) is dropped. A connection's input is paused while a job it feeds has
 * more than INIT_INQ_MAX of stdin queued.
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frames.h"
#include "init.h"
#include "util.h"

/* Input buffered per connection: one whole frame plus room for the next read. */
#define IN_READ 16384u
#define IN_MAX ((size_t)PROTO_MAX_FRAME + 4 + IN_READ)
/* Buffers larger than this are freed once drained. */
#define KEEP_CAP 65536u

enum ref_kind {
        REF_SIGNAL,
        REF_LISTEN,
        REF_CONN,
        REF_PIPE, /* a job's status or result pipe */
        REF_OUT0,
        REF_OUT1,
        REF_STDIN,
};

/* What a pollfd entry belongs to. */
struct ref {
        enum ref_kind kind;
        void *obj;
};

/* Mark c closed: its jobs lose their owner now, the struct goes at the end of the loop. */
static void conn_close(struct init_state *st, struct conn *c)
{
        if (c->dead)
                return;
        c->dead = true;
        jobs_conn_closed(st, c);
}

/* Send as much of the queue as the socket takes. */
static void conn_flush(struct init_state *st, struct conn *c)
{
        while (conn_queued(c) > 0) {
                ssize_t n = send(c->fd, c->out + c->out_off, conn_queued(c),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                conn_close(st, c);
                        return;
                }
                c->out_off += (size_t)n;
        }
        c->out_off = c->out_len = 0;
        if (c->out_cap > KEEP_CAP) {
                free(c->out);
                c->out = NULL;
                c->out_cap = 0;
        }
}

/* Append bytes to c's queue, compacting or growing it. false if memory ran out. */
static bool conn_queue(struct conn *c, const void *p, size_t n)
{
        if (n == 0)
                return true;
        if (c->out_cap - c->out_len < n && c->out_off > 0) {
                memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
                c->out_len -= c->out_off;
                c->out_off = 0;
        }
        if (c->out_cap - c->out_len < n) {
                size_t cap = c->out_cap ? c->out_cap : 4096;
                while (cap - c->out_len < n)
                        cap *= 2;
                uint8_t *nb = realloc(c->out, cap);
                if (!nb)
                        return false;
                c->out = nb;
                c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, p, n);
        c->out_len += n;
        return true;
}

/* The loop's state, for conn_send(), which job code calls without it. */
static struct init_state *cur_state;

void conn_send(struct conn *c, uint8_t type, uint8_t flags, uint32_t job, const void *p1,
               size_t n1, const void *p2, size_t n2)
{
        uint8_t hdr[PROTO_HDR_SIZE];
        size_t sent = 0, total = sizeof(hdr) + n1 + n2;

        if (!c || c->dead)
                return;
        proto_hdr_encode(hdr, type, flags, job, n1 + n2);
        if (conn_queued(c) == 0) {
                struct iovec iov[3] = {
                        { hdr, sizeof(hdr) }, { (void *)p1, n1 }, { (void *)p2, n2 } };
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
                ssize_t w;
                do
                        w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                while (w < 0 && errno == EINTR);
                if (w < 0) {
                        if (errno != EAGAIN) {
                                conn_close(cur_state, c);
                                return;
                        }
                        w = 0;
                }
                sent = (size_t)w;
                if (sent == total)
                        return;
        }
        if (conn_queued(c) + total - sent > INIT_OUTQ_HARD) {
                conn_close(cur_state, c);
                return;
        }
        /* Queue what the socket did not take, piece by piece. */
        const uint8_t *pieces[3] = { hdr, p1, p2 };
        size_t lens[3] = { sizeof(hdr), n1, n2 };
        for (int i = 0; i < 3; i++) {
                size_t skip = sent < lens[i] ? sent : lens[i];
                sent -= skip;
                if (!conn_queue(c, pieces[i] + skip, lens[i] - skip)) {
                        conn_close(cur_state, c);
                        return;
                }
        }
}

void conn_send_raw(struct conn *c, const void *data, size_t len)
{
        if (!c || c->dead || len == 0)
                return;
        if (conn_queued(c) + len > INIT_OUTQ_HARD || !conn_queue(c, data, len)) {
                conn_close(cur_state, c);
                return;
        }
        conn_flush(cur_state, c);
}

void conn_send_error(struct conn *c, uint32_t job, int err, const char *msg)
{
        uint8_t e[4];

        proto_put_u32(e, (uint32_t)err);
        conn_send(c, PROTO_ERROR, 0, job, e, sizeof(e), msg, strlen(msg));
}

/* Whether c's input is paused because a job it feeds has too much stdin queued. */
static bool conn_blocked(const struct conn *c)
{
        const struct job *j = c->blocked_on;

        return j && !j->dead && j->inq_len - j->inq_off > INIT_INQ_MAX;
}

/* Act on one decoded request from c. */
static void handle_req(struct init_state *st, struct conn *c, struct init_req *req)
{
        struct job *j;

        switch (req->type) {
        case PROTO_SPAWN:
                jobs_spawn(st, c, req);
                return;
        case PROTO_PING:
                conn_send(c, PROTO_PONG, 0, req->job, NULL, 0, NULL, 0);
                return;
        case PROTO_KILLALL:
                jobs_kill_all();
                return;
        case PROTO_ATTACH:
                jobs_attach(st, c, req->job);
                return;
        case PROTO_RELEASE:
                jobs_release(st, req->job);
                return;
        default:
                break;
        }
        /* Frames for a job that is gone (or never was) are dropped: they race with EXIT. */
        j = jobs_find(st, req->job);
        if (!j)
                return;
        switch (req->type) {
        case PROTO_STDIN:
                jobs_stdin(st, c, j, req->data, req->data_len, req->flags & PROTO_F_EOF);
                break;
        case PROTO_SIGNAL:
                jobs_signal(j, (int)req->signo);
                break;
        case PROTO_RESIZE:
                jobs_resize(j, req->cols, req->rows);
                break;
        }
}

/* Decode and handle every complete frame buffered on c (until c is paused or closed). */
static void conn_process_input(struct init_state *st, struct conn *c)
{
        size_t off = 0;

        while (!c->dead && !conn_blocked(c)) {
                struct init_req req;
                size_t used;
                int r = frames_next(c->in + off, c->in_len - off, &req, &used);
                if (r == 0)
                        break;
                if (r < 0) {
                        /* Malformed or oversized: this connection only. */
                        conn_close(st, c);
                        return;
                }
                handle_req(st, c, &req);
                frames_req_free(&req);
                off += used;
        }
        if (off > 0) {
                memmove(c->in, c->in + off, c->in_len - off);
                c->in_len -= off;
        }
        if (c->in_len == 0 && c->in_cap > KEEP_CAP) {
                free(c->in);
                c->in = NULL;
                c->in_cap = 0;
        }
}

/* Read from c into its input buffer, then handle what arrived. */
static void conn_on_readable(struct init_state *st, struct conn *c)
{
        size_t want = c->in_len + IN_READ;

        /* Make room for a whole frame once its header says how big it is. */
        if (c->in_len >= 4) {
                size_t total = (size_t)proto_get_u32(c->in) + 4;
                if (total > want)
                        want = total;
        }
        if (want > IN_MAX)
                want = IN_MAX;
        if (c->in_cap < want) {
                uint8_t *nb = realloc(c->in, want);
                if (!nb) {
                        conn_close(st, c);
                        return;
                }
                c->in = nb;
                c->in_cap = want;
        }
        if (c->in_cap == c->in_len) {
                /* A full buffer without a complete frame: frames_next would have refused an
                 * oversized header already, so this cannot happen; be safe anyway. */
                conn_close(st, c);
                return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        conn_close(st, c);
                return;
        }
        if (n == 0) {
                conn_close(st, c);
                return;
        }
        c->in_len += (size_t)n;
        conn_process_input(st, c);
}

/* Accept a daemon connection and greet it with HELLO. Refuses processes of the sandbox: a
 * peer in our pid namespace has a non-zero pid here, the host's processes all show 0. */
static void on_accept(struct init_state *st)
{
        int fd = accept4(st->ctx.ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        uint8_t hello[8];

        if (fd < 0)
                return;
        if (st->nconns >= INIT_MAX_CONNS ||
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.pid != 0) {
                close(fd);
                return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return;
        }
        c->fd = fd;
        c->next = st->conns;
        st->conns = c;
        st->nconns++;
        proto_put_u32(hello, PROTO_VERSION);
        proto_put_u32(hello + 4, st->ctx.host_pid);
        conn_send(c, PROTO_HELLO, 0, 0, hello, sizeof(hello), NULL, 0);
}

/* Free the connections marked dead. */
static void conns_sweep(struct init_state *st)
{
        struct conn **pp = &st->conns;

        while (*pp) {
                struct conn *c = *pp;
                if (!c->dead) {
                        pp = &c->next;
                        continue;
                }
                *pp = c->next;
                close(c->fd);
                free(c->in);
                free(c->out);
                free(c);
                st->nconns--;
        }
}

/* Grow the pollfd and ref arrays to hold n entries. */
static int reserve(struct pollfd **pfds, struct ref **refs, size_t *cap, size_t n)
{
        if (n <= *cap)
                return 0;
        size_t nc = *cap ? *cap : 16;
        while (nc < n)
                nc *= 2;
        struct pollfd *np = realloc(*pfds, nc * sizeof(**pfds));
        if (!np)
                return -ENOMEM;
        *pfds = np;
        struct ref *nr = realloc(*refs, nc * sizeof(**refs));
        if (!nr)
                return -ENOMEM;
        *refs = nr;
        *cap = nc;
        return 0;
}

/* Add one entry to the arrays (capacity reserved by the caller). */
static void add(struct pollfd *pfds, struct ref *refs, size_t *n, int fd, short ev,
                enum ref_kind kind, void *obj)
{
        pfds[*n] = (struct pollfd){ .fd = fd, .events = ev };
        refs[*n] = (struct ref){ .kind = kind, .obj = obj };
        (*n)++;
}

int serve_run(struct init_state *st)
{
        struct pollfd *pfds = NULL;
        struct ref *refs = NULL;
        size_t cap = 0;
        sigset_t mask;
        int sfd;

        cur_state = st;
        /* Thousands of warren-inits idle at once: big buffers (frames, queues) come from mmap
         * and go back to the kernel when freed, and the heap is trimmed when work stops. */
        mallopt(M_MMAP_THRESHOLD, 64 * 1024);
        mallopt(M_TRIM_THRESHOLD, 64 * 1024);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return neg_errno();
        signal(SIGPIPE, SIG_IGN);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return neg_errno();

        for (;;) {
                int timeout = jobs_check_timeouts(st);
                size_t n = 0;

                if (reserve(&pfds, &refs, &cap, 2 + st->nconns + 5 * (size_t)st->njobs) < 0) {
                        /* Out of memory: wait a little and retry rather than die as PID 1. */
                        poll(NULL, 0, 10);
                        continue;
                }
                add(pfds, refs, &n, sfd, POLLIN, REF_SIGNAL, NULL);
                if (st->nconns < INIT_MAX_CONNS)
                        add(pfds, refs, &n, st->ctx.ctl_fd, POLLIN, REF_LISTEN, NULL);
                for (struct conn *c = st->conns; c; c = c->next) {
                        short ev = (conn_blocked(c) ? 0 : POLLIN) |
                                   (conn_queued(c) ? POLLOUT : 0);
                        add(pfds, refs, &n, c->fd, ev, REF_CONN, c);
                }
                for (struct job *j = st->jobs; j; j = j->next) {
                        if (j->dead)
                                continue;
                        if (j->status_fd >= 0)
                                add(pfds, refs, &n, j->status_fd, POLLIN, REF_PIPE, j);
                        if (j->result_fd >= 0)
                                add(pfds, refs, &n, j->result_fd, POLLIN, REF_PIPE, j);
                        if (!j->started)
                                continue;
                        bool want = jobs_output_wanted(j);
                        if (want && j->out_fd[0] >= 0)
                                add(pfds, refs, &n, j->out_fd[0], POLLIN, REF_OUT0, j);
                        if (want && j->out_fd[1] >= 0)
                                add(pfds, refs, &n, j->out_fd[1], POLLIN, REF_OUT1, j);
                        if (j->in_fd >= 0 && j->inq_len > j->inq_off)
                                add(pfds, refs, &n, j->in_fd, POLLOUT, REF_STDIN, j);
                }

                int pr = poll(pfds, n, timeout);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                for (size_t i = 0; i < n; i++) {
                        short re = pfds[i].revents;
                        if (!re)
                                continue;
                        struct conn *c = refs[i].obj;
                        struct job *j = refs[i].obj;
                        switch (refs[i].kind) {
                        case REF_SIGNAL: {
                                struct signalfd_siginfo si;
                                while (read(sfd, &si, sizeof(si)) > 0)
                                        ;
                                jobs_reap(st);
                                break;
                        }
                        case REF_LISTEN:
                                on_accept(st);
                                break;
                        case REF_CONN:
                                if (c->dead)
                                        break;
                                if (re & (POLLIN | POLLHUP | POLLERR))
                                        conn_on_readable(st, c);
                                if (!c->dead && (re & POLLOUT))
                                        conn_flush(st, c);
                                break;
                        case REF_PIPE:
                                if (!j->dead)
                                        jobs_on_pipe(st, j);
                                break;
                        case REF_OUT0:
                        case REF_OUT1:
                                if (!j->dead)
                                        jobs_on_output(st, j, refs[i].kind == REF_OUT1);
                                break;
                        case REF_STDIN:
                                if (!j->dead)
                                        jobs_on_stdin_writable(st, j);
                                break;
                        }
                }
                /* Input left buffered while a connection was paused. */
                for (struct conn *c = st->conns; c; c = c->next)
                        if (!c->dead && c->in_len > 0 && c->blocked_on && !conn_blocked(c)) {
                                c->blocked_on = NULL;
                                conn_process_input(st, c);
                        }
                unsigned before = st->njobs + st->nconns;
                jobs_sweep(st);
                conns_sweep(st);
                if (st->njobs == 0 && st->njobs + st->nconns < before)
                        malloc_trim(0);
        }
}
