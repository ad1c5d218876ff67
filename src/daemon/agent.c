/* agent.c - daemon-side agent protocol client over a unix socket (libuv). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A job waiting for frames. Kept in a small singly linked list: a sandbox rarely runs more
 * than a few jobs at once, and the lookup is by id. */
struct job {
        struct job *next;
        uint32_t id;
        const struct agent_job_ops *ops;
        void *ud;
};

struct agent {
        uv_pipe_t pipe;
        uv_connect_t connect_req;
        uv_loop_t *loop;
        agent_ready_cb on_ready;
        agent_closed_cb on_closed;
        void *ud;
        bool ready;      /* HELLO received */
        bool closing;    /* uv_close called */
        bool freed;      /* agent_free called: free in the close callback */
        bool closed;     /* the close callback ran */
        uint8_t *buf;    /* receive buffer */
        size_t buf_len, buf_cap;
        struct job *jobs;
        size_t n_jobs;
        uint32_t next_job;
};

struct write_req {
        uv_write_t req;
        uint8_t *data;
};

static struct job *job_find(struct agent *a, uint32_t id, struct job ***ret_link)
{
        struct job **link = &a->jobs;
        for (; *link; link = &(*link)->next) {
                if ((*link)->id == id) {
                        if (ret_link)
                                *ret_link = link;
                        return *link;
                }
        }
        return NULL;
}

static void job_remove(struct agent *a, uint32_t id)
{
        struct job **link;
        struct job *j = job_find(a, id, &link);
        if (!j)
                return;
        *link = j->next;
        a->n_jobs--;
        free(j);
}

/* Fail every job (connection gone). Callbacks may start new jobs on other agents, not on
 * this one (it is not ready any more). */
static void fail_all_jobs(struct agent *a)
{
        while (a->jobs) {
                struct job *j = a->jobs;
                a->jobs = j->next;
                a->n_jobs--;
                const struct agent_job_ops *ops = j->ops;
                void *ud = j->ud;
                free(j);
                if (ops && ops->error)
                        ops->error(ud, ECONNRESET, "connection to the sandbox agent lost");
        }
}

static void on_close(uv_handle_t *h)
{
        struct agent *a = h->data;
        a->closed = true;
        if (a->freed) {
                free(a->buf);
                free(a);
        }
}

/* Close the socket after a failure. Runs callbacks unless the owner already freed us. */
static void agent_shutdown(struct agent *a, int status)
{
        if (a->closing)
                return;
        a->closing = true;
        bool was_ready = a->ready;
        a->ready = false;
        uv_close((uv_handle_t *)&a->pipe, on_close);
        if (a->freed)
                return;
        fail_all_jobs(a);
        if (!was_ready) {
                if (a->on_ready)
                        a->on_ready(a, status < 0 ? status : -ECONNRESET, a->ud);
        } else if (a->on_closed) {
                a->on_closed(a, a->ud);
        }
}

static void on_write(uv_write_t *req, int status)
{
        struct write_req *w = (struct write_req *)req;
        free(w->data);
        free(w);
}

/* Queue one frame: header + payload (copied). */
static int send_frame(struct agent *a, uint8_t type, uint8_t flags, uint32_t job,
                      const void *payload, size_t len)
{
        if (a->closing)
                return -ENOTCONN;
        if (len > PROTO_MAX_FRAME - 8)
                return -E2BIG;
        struct write_req *w = malloc(sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->data = malloc(PROTO_HDR_SIZE + len);
        if (!w->data) {
                free(w);
                return -ENOMEM;
        }
        proto_hdr_encode(w->data, type, flags, job, len);
        if (len)
                memcpy(w->data + PROTO_HDR_SIZE, payload, len);
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(PROTO_HDR_SIZE + len));
        int r = uv_write(&w->req, (uv_stream_t *)&a->pipe, &b, 1, on_write);
        if (r < 0) {
                free(w->data);
                free(w);
                return r;
        }
        return 0;
}

/* Handle one complete frame. Returns < 0 on a protocol error (connection is then closed). */
static int handle_frame(struct agent *a, const struct proto_hdr *h, const uint8_t *p, size_t n)
{
        struct job *j;

        if (h->type == PROTO_HELLO) {
                if (n < 4 || proto_get_u32(p) != PROTO_VERSION)
                        return -EPROTO;
                if (!a->ready) {
                        a->ready = true;
                        if (a->on_ready)
                                a->on_ready(a, 0, a->ud);
                }
                return 0;
        }
        if (h->type == PROTO_PONG)
                return 0;
        j = job_find(a, h->job, NULL);
        if (!j)
                return 0; /* a forgotten job: drop its frames */
        switch (h->type) {
        case PROTO_STARTED:
                if (n < 4)
                        return -EPROTO;
                if (j->ops->started)
                        j->ops->started(j->ud, proto_get_u32(p));
                return 0;
        case PROTO_ATTACHED:
                if (n < 12)
                        return -EPROTO;
                if (j->ops->attached)
                        j->ops->attached(j->ud, proto_get_u32(p), proto_get_u64(p + 4));
                return 0;
        case PROTO_OUTPUT:
                if (j->ops->output)
                        j->ops->output(j->ud, h->flags == PROTO_STREAM_STDERR ? 2 : 1, p, n);
                return 0;
        case PROTO_EXIT: {
                if (n < 9)
                        return -EPROTO;
                const struct agent_job_ops *ops = j->ops;
                void *ud = j->ud;
                job_remove(a, h->job);
                if (ops->exit)
                        ops->exit(ud, (int32_t)proto_get_u32(p), (int32_t)proto_get_u32(p + 4),
                                  p[8] != 0);
                return 0;
        }
        case PROTO_ERROR: {
                if (n < 4)
                        return -EPROTO;
                char msg[512];
                size_t mlen = n - 4 < sizeof(msg) - 1 ? n - 4 : sizeof(msg) - 1;
                memcpy(msg, p + 4, mlen);
                msg[mlen] = '\0';
                /* The message comes from the sandbox side: keep it printable. */
                for (size_t i = 0; i < mlen; i++)
                        if ((unsigned char)msg[i] < 0x20)
                                msg[i] = ' ';
                const struct agent_job_ops *ops = j->ops;
                void *ud = j->ud;
                int err = (int32_t)proto_get_u32(p);
                job_remove(a, h->job);
                if (ops->error)
                        ops->error(ud, err > 0 ? err : EIO, msg);
                return 0;
        }
        default:
                return 0; /* unknown frame types from a newer init are ignored */
        }
}

/* Reads land in one buffer shared by every agent connection (the loop is single-threaded
 * and libuv pairs each alloc with its read), and complete frames are handled straight from
 * it. A connection keeps memory of its own only for a partial frame, freed as soon as it is
 * complete: thousands of idle sandboxes cost no receive buffers. */
#define SHARED_BUF_SIZE (256u * 1024)
static uint8_t *shared_buf;
static bool shared_in_use;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct agent *a = h->data;
        if (a->buf_len == 0 && !shared_in_use) {
                if (!shared_buf)
                        shared_buf = malloc(SHARED_BUF_SIZE);
                if (shared_buf) {
                        shared_in_use = true;
                        *buf = uv_buf_init((char *)shared_buf, SHARED_BUF_SIZE);
                        return;
                }
        }
        /* Continuing a partial frame: read into the connection's own buffer. */
        if (a->buf_cap - a->buf_len < 65536) {
                size_t cap = a->buf_cap ? a->buf_cap * 2 : 65536;
                if (cap > PROTO_MAX_FRAME + PROTO_HDR_SIZE + 65536)
                        cap = PROTO_MAX_FRAME + PROTO_HDR_SIZE + 65536;
                uint8_t *nb = cap > a->buf_cap ? realloc(a->buf, cap) : a->buf;
                if (nb) {
                        a->buf = nb;
                        a->buf_cap = cap;
                }
        }
        *buf = uv_buf_init((char *)a->buf + a->buf_len, (unsigned)(a->buf_cap - a->buf_len));
}

/* Handle the complete frames in data[0..len); returns the bytes used, or < 0 after the
 * connection was closed (protocol error, or a callback closed it). */
static ssize_t consume(struct agent *a, const uint8_t *data, size_t len)
{
        size_t off = 0;
        while (len - off >= PROTO_HDR_SIZE) {
                struct proto_hdr h;
                if (proto_hdr_decode(data + off, &h) < 0) {
                        agent_shutdown(a, -EPROTO);
                        return -EPROTO;
                }
                size_t total = 4 + (size_t)h.len;
                if (len - off < total)
                        break;
                int r = handle_frame(a, &h, data + off + PROTO_HDR_SIZE, total - PROTO_HDR_SIZE);
                if (r < 0) {
                        agent_shutdown(a, r);
                        return r;
                }
                if (a->closing)
                        return -ECONNRESET; /* a callback closed or freed us */
                off += total;
        }
        return (ssize_t)off;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        struct agent *a = s->data;
        bool shared = buf->base == (char *)shared_buf && shared_buf;

        if (shared)
                shared_in_use = false;
        if (nread < 0) {
                agent_shutdown(a, (int)nread);
                return;
        }
        if (shared) {
                ssize_t used = consume(a, shared_buf, (size_t)nread);
                if (used < 0)
                        return;
                size_t left = (size_t)nread - (size_t)used;
                if (left) {
                        /* Keep the partial frame; room for a whole maximal read after it. */
                        size_t cap = left + 65536;
                        uint8_t *nb = realloc(a->buf, cap);
                        if (!nb) {
                                agent_shutdown(a, -ENOMEM);
                                return;
                        }
                        a->buf = nb;
                        a->buf_cap = cap;
                        memcpy(a->buf, shared_buf + used, left);
                        a->buf_len = left;
                }
                return;
        }
        a->buf_len += (size_t)nread;
        ssize_t used = consume(a, a->buf, a->buf_len);
        if (used < 0)
                return;
        if ((size_t)used == a->buf_len) {
                free(a->buf);
                a->buf = NULL;
                a->buf_len = a->buf_cap = 0;
        } else if (used) {
                memmove(a->buf, a->buf + used, a->buf_len - (size_t)used);
                a->buf_len -= (size_t)used;
        }
}

static void on_connect(uv_connect_t *req, int status)
{
        struct agent *a = req->data;
        if (a->freed || a->closing)
                return;
        if (status < 0) {
                agent_shutdown(a, status);
                return;
        }
        int r = uv_read_start((uv_stream_t *)&a->pipe, on_alloc, on_read);
        if (r < 0)
                agent_shutdown(a, r);
}

int agent_connect(uv_loop_t *loop, const char *path, agent_ready_cb on_ready,
                  agent_closed_cb on_closed, void *ud, struct agent **ret)
{
        struct agent *a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->loop = loop;
        a->on_ready = on_ready;
        a->on_closed = on_closed;
        a->ud = ud;
        /* Jobs of an earlier connection (a daemon before a restart) may still run in init
         * under their ids: start somewhere random so a new connection does not collide. */
        if (util_random(&a->next_job, sizeof(a->next_job)) < 0 || a->next_job == 0)
                a->next_job = 1;
        int r = uv_pipe_init(loop, &a->pipe, 0);
        if (r < 0) {
                free(a);
                return r;
        }
        a->pipe.data = a;
        a->connect_req.data = a;
        /* A unix socket path holds at most 107 bytes; a deep data directory can exceed it.
         * Then connect through an fd of the socket's directory (warren-init binds the same
         * way). libuv calls connect() inside uv_pipe_connect, so the fd can close after. */
        struct sockaddr_un sun;
        if (strlen(path) >= sizeof(sun.sun_path)) {
                cleanup_free char *dir = strdup(path);
                char *slash = dir ? strrchr(dir, '/') : NULL;
                if (!slash) {
                        a->freed = true;
                        a->closing = true;
                        uv_close((uv_handle_t *)&a->pipe, on_close);
                        return -ENAMETOOLONG;
                }
                *slash = '\0';
                cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                char short_path[sizeof(sun.sun_path)];
                if (dfd < 0 || snprintf(short_path, sizeof(short_path), "/proc/self/fd/%d/%s",
                                        dfd, slash + 1) >= (int)sizeof(short_path)) {
                        int r2 = dfd < 0 ? neg_errno() : -ENAMETOOLONG;
                        /* The handle was initialised: it must be closed, and freed after. */
                        a->freed = true;
                        a->closing = true;
                        uv_close((uv_handle_t *)&a->pipe, on_close);
                        return r2;
                }
                uv_pipe_connect(&a->connect_req, &a->pipe, short_path, on_connect);
        } else {
                uv_pipe_connect(&a->connect_req, &a->pipe, path, on_connect);
        }
        *ret = a;
        return 0;
}

/* Register a job under id and send its first frame (SPAWN with payload, or ATTACH). */
static int job_start(struct agent *a, uint8_t type, uint32_t id, const void *payload,
                     size_t len, const struct agent_job_ops *ops, void *ud)
{
        if (job_find(a, id, NULL))
                return -EEXIST;
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->id = id;
        j->ops = ops;
        j->ud = ud;
        int r = send_frame(a, type, 0, id, payload, len);
        if (r < 0) {
                free(j);
                return r;
        }
        j->next = a->jobs;
        a->jobs = j;
        a->n_jobs++;
        return 0;
}

int agent_spawn_id(struct agent *a, uint32_t id, const struct proto_spawn *spawn,
                   const struct agent_job_ops *ops, void *ud)
{
        cleanup_free uint8_t *payload = NULL;
        size_t len;
        int r;

        if (!a->ready || a->closing)
                return -ENOTCONN;
        if (id == 0)
                return -EINVAL;
        r = proto_spawn_encode(spawn, &payload, &len);
        if (r < 0)
                return r;
        return job_start(a, PROTO_SPAWN, id, payload, len, ops, ud);
}

int agent_spawn(struct agent *a, const struct proto_spawn *spawn, const struct agent_job_ops *ops,
                void *ud, uint32_t *ret_job)
{
        /* Ids of request-scoped jobs stay below AGENT_KEPT_ID_BASE, where kept jobs live. */
        uint32_t id = a->next_job & (AGENT_KEPT_ID_BASE - 1);
        if (id == 0)
                id = 1;
        a->next_job = id + 1;
        int r = agent_spawn_id(a, id, spawn, ops, ud);
        if (r < 0)
                return r;
        *ret_job = id;
        return 0;
}

int agent_attach(struct agent *a, uint32_t id, const struct agent_job_ops *ops, void *ud)
{
        if (!a->ready || a->closing)
                return -ENOTCONN;
        return job_start(a, PROTO_ATTACH, id, NULL, 0, ops, ud);
}

int agent_release(struct agent *a, uint32_t id)
{
        return send_frame(a, PROTO_RELEASE, 0, id, NULL, 0);
}

int agent_stdin(struct agent *a, uint32_t id, const void *data, size_t len, bool eof)
{
        const uint8_t *p = data;

        if (!a->ready || a->closing)
                return -ENOTCONN;
        do {
                size_t n = len > PROTO_MAX_DATA ? PROTO_MAX_DATA : len;
                bool last = n == len;
                int r = send_frame(a, PROTO_STDIN, last && eof ? PROTO_F_EOF : 0, id, p, n);
                if (r < 0)
                        return r;
                p += n;
                len -= n;
        } while (len > 0);
        return 0;
}

int agent_resize(struct agent *a, uint32_t id, uint16_t cols, uint16_t rows)
{
        uint8_t p[4];

        proto_put_u16(p, cols);
        proto_put_u16(p + 2, rows);
        return send_frame(a, PROTO_RESIZE, 0, id, p, sizeof(p));
}

size_t agent_write_queue(const struct agent *a)
{
        return a && !a->closing ? uv_stream_get_write_queue_size((const uv_stream_t *)&a->pipe)
                                : 0;
}

int agent_signal(struct agent *a, uint32_t job, int sig)
{
        uint8_t p[4];
        proto_put_u32(p, (uint32_t)sig);
        return send_frame(a, PROTO_SIGNAL, 0, job, p, sizeof(p));
}

void agent_job_forget(struct agent *a, uint32_t job)
{
        job_remove(a, job);
}

int agent_killall(struct agent *a)
{
        return send_frame(a, PROTO_KILLALL, 0, 0, NULL, 0);
}

bool agent_ready(const struct agent *a)
{
        return a && a->ready && !a->closing;
}

size_t agent_jobs(const struct agent *a)
{
        return a ? a->n_jobs : 0;
}

void agent_free(struct agent *a)
{
        if (!a)
                return;
        a->freed = true;
        fail_all_jobs(a);
        if (a->closing) {
                /* The handle is already closing; free now if its close callback ran, else
                 * the callback frees. */
                if (a->closed) {
                        free(a->buf);
                        free(a);
                }
                return;
        }
        a->closing = true;
        a->ready = false;
        uv_close((uv_handle_t *)&a->pipe, on_close);
}
