/* jobs.c - the jobs warren-init runs for the daemon (SPAWN): their state, output, stdin,
 * signals, timeouts and the end of each.
 *
 * A job's life: fork its reaper (exec.c), which forks the command. From the status pipe init
 * learns whether exec succeeded (EOF: STARTED) or failed (a message: ERROR, and no EXIT for
 * that job); from the result pipe the command's pid and then its wait status. Output is
 * read only after STARTED, so STARTED is always the job's first frame. When the command's
 * status arrives, what is left in its pipes is read without waiting for EOF (background
 * descendants may hold them open for ever) and EXIT goes out as the job's last frame.
 *
 * The job then stays until its reaper is reaped, which happens once nothing of it is left,
 * or at its deadline, when the reaper's whole subtree is killed: descendants that outlive
 * the command are still the job's, and die with it at the deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "frames.h"
#include "init.h"
#include "util.h"

/* Bytes read from each output fd of a job after its command exited, at most. */
#define DRAIN_MAX (256u * 1024)
/* Buffers larger than this are freed once drained. */
#define KEEP_CAP 65536u

/* Output read buffer, shared by all jobs (one read at a time). */
static uint8_t obuf[PROTO_MAX_DATA];

static void close_fd(int *fd)
{
        if (*fd >= 0) {
                close(*fd);
                *fd = -1;
        }
}

static void set_nonblock(int fd)
{
        int fl = fcntl(fd, F_GETFL);

        if (fl >= 0)
                fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct job *jobs_find(struct init_state *st, uint32_t id)
{
        for (struct job *j = st->jobs; j; j = j->next)
                if (j->id == id && !j->dead && !j->finished)
                        return j;
        return NULL;
}

/* A job by id, ended or not, as long as its record is kept. */
static struct job *find_any(struct init_state *st, uint32_t id)
{
        for (struct job *j = st->jobs; j; j = j->next)
                if (j->id == id && !j->dead)
                        return j;
        return NULL;
}

bool jobs_output_wanted(const struct job *j)
{
        if (j->owner)
                return conn_queued(j->owner) < INIT_OUTQ_SOFT;
        /* A kept job nobody owns: hold its output, then let it block on a full pipe. */
        if (j->keep && !j->finished)
                return j->held_len < INIT_HOLD_MAX;
        return true;
}

/* Append one encoded OUTPUT frame to the job's held output. false if memory ran out. */
static bool hold_output(struct job *j, uint8_t stream, const uint8_t *data, size_t n)
{
        size_t need = PROTO_HDR_SIZE + n;

        if (j->held_cap - j->held_len < need) {
                size_t cap = j->held_cap ? j->held_cap : 16384;
                while (cap - j->held_len < need)
                        cap *= 2;
                uint8_t *nb = realloc(j->held, cap);
                if (!nb)
                        return false;
                j->held = nb;
                j->held_cap = cap;
        }
        proto_hdr_encode(j->held + j->held_len, PROTO_OUTPUT, stream, j->id, n);
        memcpy(j->held + j->held_len + PROTO_HDR_SIZE, data, n);
        j->held_len += need;
        j->held_data += n;
        return true;
}

/* Forward output of a job: to its connection, into its held output (a kept job without
 * one), or nowhere. Output after EXIT (leftover descendants) is dropped. */
static void job_output(struct job *j, uint8_t stream, const uint8_t *data, size_t n)
{
        if (j->finished)
                return;
        j->out_total += n;
        if (j->owner)
                conn_send(j->owner, PROTO_OUTPUT, stream, j->id, data, n, NULL, 0);
        else if (j->keep)
                hold_output(j, stream, data, n); /* on failure the bytes are a gap */
}

/* Open a new pty pair: master nonblocking, slave opened through the master (TIOCGPTPEER,
 * never by path), window size set. */
static int open_pty(uint16_t cols, uint16_t rows, int *ret_master, int *ret_slave)
{
        cleanup_close int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        int unlock = 0;

        if (m < 0)
                return neg_errno();
        if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
                return neg_errno();
        struct winsize ws = { .ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80 };
        if (ioctl(m, TIOCSWINSZ, &ws) < 0)
                return neg_errno();
        int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0)
                return neg_errno();
        *ret_master = TAKE_FD(m);
        *ret_slave = s;
        return 0;
}

void jobs_spawn(struct init_state *st, struct conn *owner, const struct init_req *req)
{
        const struct proto_spawn *sp = &req->spawn;
        int status[2] = { -1, -1 }, result[2] = { -1, -1 }, in[2] = { -1, -1 };
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        int master = -1, slave = -1, r = 0;
        const char *what = "pipe";
        struct job *j = NULL;

        if (req->err) {
                conn_send_error(owner, req->job, req->err, req->errmsg);
                return;
        }
        if (find_any(st, req->job)) {
                conn_send_error(owner, req->job, EEXIST, "job id already in use");
                return;
        }
        if (st->njobs >= INIT_MAX_JOBS) {
                conn_send_error(owner, req->job, EAGAIN, "too many jobs");
                return;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                conn_send_error(owner, req->job, ENOMEM, "out of memory");
                return;
        }
        if (pipe2(status, O_CLOEXEC) < 0 || pipe2(result, O_CLOEXEC) < 0) {
                r = neg_errno();
                goto fail;
        }
        if (sp->flags & PROTO_SPAWN_PTY) {
                r = open_pty(sp->cols, sp->rows, &master, &slave);
                what = "opening a pty";
        } else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
                   ((sp->flags & PROTO_SPAWN_STDIN) && pipe2(in, O_CLOEXEC) < 0)) {
                r = neg_errno();
        }
        if (r < 0)
                goto fail;

        pid_t pid = fork();
        if (pid < 0) {
                r = neg_errno();
                what = "fork";
                goto fail;
        }
        if (pid == 0) {
                struct exec_fds f = {
                        .status = status[1],
                        .result = result[1],
                        .in = in[0] >= 0 ? in[0] : st->ctx.devnull_fd,
                        .out = out[1],
                        .err = err[1],
                        .pty = slave,
                };
                exec_reaper(sp, &f);
        }

        close_fd(&status[1]);
        close_fd(&result[1]);
        close_fd(&slave);
        close_fd(&in[0]);
        close_fd(&out[1]);
        close_fd(&err[1]);
        j->id = req->job;
        j->keep = sp->flags & PROTO_SPAWN_KEEP;
        j->pid = pid;
        j->owner = owner->dead ? NULL : owner;
        j->status_fd = status[0];
        j->result_fd = result[0];
        j->pty = master >= 0;
        if (j->pty) {
                j->out_fd[0] = master;
                j->out_fd[1] = -1;
                /* A second fd on the master for stdin, so output EOF and stdin are separate. */
                j->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
        } else {
                j->out_fd[0] = out[0];
                j->out_fd[1] = err[0];
                j->in_fd = in[1];
        }
        for (int i = 0; i < 2; i++)
                if (j->out_fd[i] >= 0)
                        set_nonblock(j->out_fd[i]);
        if (j->in_fd >= 0)
                set_nonblock(j->in_fd);
        set_nonblock(j->status_fd);
        set_nonblock(j->result_fd);
        if (sp->timeout_ms)
                j->deadline_ns = util_now_ns() + (uint64_t)sp->timeout_ms * 1000000u;
        j->next = st->jobs;
        st->jobs = j;
        st->njobs++;
        return;

fail:
        for (int i = 0; i < 2; i++) {
                close_fd(&status[i]);
                close_fd(&result[i]);
                close_fd(&in[i]);
                close_fd(&out[i]);
                close_fd(&err[i]);
        }
        close_fd(&master);
        close_fd(&slave);
        free(j);
        char msg[128];
        snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-r));
        conn_send_error(owner, req->job, -r, msg);
}

/* Read once from output fd idx and forward it. Returns the bytes read; 0 when the fd has
 * nothing now or is finished (EOF, EIO from a pty whose slave side is closed, an error: the
 * fd is then closed). */
static size_t read_output(struct job *j, int idx)
{
        ssize_t n;

        do
                n = read(j->out_fd[idx], obuf, sizeof(obuf));
        while (n < 0 && errno == EINTR);
        if (n > 0) {
                uint8_t stream = idx == 0 ? PROTO_STREAM_STDOUT : PROTO_STREAM_STDERR;
                job_output(j, stream, obuf, (size_t)n);
                return (size_t)n;
        }
        if (n == 0 || errno != EAGAIN)
                close_fd(&j->out_fd[idx]);
        return 0;
}

/* Take the reaper's messages off the result pipe. */
static void read_results(struct job *j)
{
        while (j->result_fd >= 0) {
                struct exec_result m;
                ssize_t n = read(j->result_fd, &m, sizeof(m));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n != (ssize_t)sizeof(m)) {
                        close_fd(&j->result_fd); /* EOF: the reaper is gone */
                        return;
                }
                if (m.type == EXEC_R_PID && j->cmd_pid == 0 && m.value > 1) {
                        j->cmd_pid = m.value;
                        if (j->pending_sig) {
                                jobs_signal(j, j->pending_sig);
                                j->pending_sig = 0;
                        }
                } else if (m.type == EXEC_R_EXIT && !j->cmd_exited) {
                        j->cmd_exited = true;
                        j->cmd_wstatus = m.value;
                }
        }
}

/* Read the exec status pipe. 1: exec succeeded (EOF), 0: not known yet, -1: exec failed
 * and ERROR was sent. */
static int read_status(struct job *j)
{
        struct exec_status s;
        ssize_t n;

        do
                n = read(j->status_fd, &s, sizeof(s));
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN)
                return 0;
        close_fd(&j->status_fd);
        if (n == 0)
                return 1;
        if (n != (ssize_t)sizeof(s)) {
                conn_send_error(j->owner, j->id, EIO, "the job's process died before exec");
        } else {
                s.msg[sizeof(s.msg) - 1] = '\0';
                conn_send_error(j->owner, j->id, s.err > 0 ? s.err : EIO, s.msg);
        }
        return -1;
}

/* Send EXIT with the command's status (or the reaper's, if the reaper died first), after
 * what its pipes still hold. From then on the job only waits for its reaper. */
static void job_finish(struct job *j)
{
        int ws = j->cmd_exited ? j->cmd_wstatus : j->wstatus, code, sig = 0;
        uint8_t p[9];

        for (int i = 0; i < 2; i++) {
                size_t got = 0, n = 1;
                while (j->out_fd[i] >= 0 && got < DRAIN_MAX && n > 0) {
                        n = read_output(j, i);
                        got += n;
                }
        }
        if (WIFSIGNALED(ws)) {
                sig = WTERMSIG(ws);
                code = 128 + sig;
        } else {
                code = WEXITSTATUS(ws);
        }
        if (j->timed_out)
                code = 124;
        proto_put_u32(p, (uint32_t)code);
        proto_put_u32(p + 4, (uint32_t)sig);
        p[8] = j->timed_out;
        memcpy(j->exit_msg, p, sizeof(p));
        j->exit_known = true;
        conn_send(j->owner, PROTO_EXIT, 0, j->id, p, sizeof(p), NULL, 0);
        /* Descendants that still hold the pipes keep writing into them: read and drop that
         * until they close them, rather than close our ends and kill them with SIGPIPE. */
        close_fd(&j->in_fd);
        j->owner = NULL;
        j->finished = true;
}

/* Whether the job's command still exists as our child: it is when its reaper was killed
 * (from inside the sandbox: root there may signal anything but PID 1) before it. */
static bool cmd_adopted(const struct job *j)
{
        char path[64], buf[512];
        ssize_t n;
        int ppid;

        if (j->cmd_pid <= 0 || j->cmd_exited)
                return false;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)j->cmd_pid);
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')');
        return rp && sscanf(rp + 1, " %*c %d", &ppid) == 1 && ppid == 1;
}

/* Move a job as far along as what is known allows: STARTED or ERROR, EXIT, then done. */
static void job_progress(struct job *j)
{
        if (j->dead)
                return;
        read_results(j);
        if (j->status_fd >= 0) {
                int r = read_status(j);
                if (r == 0)
                        return; /* the command has not exec'd yet */
                if (r < 0) {
                        /* Nothing to forward and no EXIT to send: wait for the reaper. */
                        j->failed = j->finished = true;
                        close_fd(&j->out_fd[0]);
                        close_fd(&j->out_fd[1]);
                        close_fd(&j->in_fd);
                } else {
                        uint8_t pid[4];
                        /* The reaper wrote the pid before closing its end of the status
                         * pipe: after EOF there, the pid is in the result pipe. */
                        read_results(j);
                        j->started = true;
                        proto_put_u32(pid, (uint32_t)j->cmd_pid);
                        conn_send(j->owner, PROTO_STARTED, 0, j->id, pid, sizeof(pid), NULL, 0);
                }
        }
        /* Normally the reaper reports the command's end. If the reaper died first, the
         * command became our child: wait for it, unless it is gone too. */
        if (!j->finished && (j->cmd_exited || (j->reaped && !cmd_adopted(j))))
                job_finish(j);
        if (j->finished && j->reaped && j->out_fd[0] < 0 && j->out_fd[1] < 0 &&
            (!j->keep || j->released))
                j->dead = true;
}

void jobs_attach(struct init_state *st, struct conn *c, uint32_t id)
{
        struct job *j = find_any(st, id);
        uint8_t p[12];

        if (!j || !j->keep) {
                conn_send_error(c, id, ENOENT, "no such job");
                return;
        }
        if (j->failed) {
                conn_send_error(c, id, EIO, "the job failed to start");
                return;
        }
        proto_put_u32(p, j->started ? (uint32_t)j->cmd_pid : 0);
        proto_put_u64(p + 4, j->out_total - j->held_data);
        conn_send(c, PROTO_ATTACHED, 0, id, p, sizeof(p), NULL, 0);
        conn_send_raw(c, j->held, j->held_len);
        /* Those sends close c when its daemon went away after asking (EPIPE, a full queue).
         * Then nothing changes hands: jobs_conn_closed() already ran for c, which is freed at
         * the end of this loop iteration, so it must not become the owner; the job keeps its
         * owner and its held output for the next ATTACH. */
        if (c->dead)
                return;
        free(j->held);
        j->held = NULL;
        j->held_len = j->held_cap = 0;
        j->held_data = 0;
        if (j->finished) {
                if (j->exit_known)
                        conn_send(c, PROTO_EXIT, 0, id, j->exit_msg, sizeof(j->exit_msg), NULL,
                                  0);
                return;
        }
        j->owner = c;
}

void jobs_release(struct init_state *st, uint32_t id)
{
        struct job *j = find_any(st, id);

        if (!j || !j->keep || !j->finished)
                return;
        j->released = true;
        job_progress(j);
}

void jobs_on_pipe(struct init_state *st, struct job *j)
{
        job_progress(j);
}

void jobs_on_output(struct init_state *st, struct job *j, int idx)
{
        if (j->out_fd[idx] >= 0)
                read_output(j, idx);
        if (j->out_fd[idx] < 0)
                job_progress(j);
}

void jobs_reap(struct init_state *st)
{
        for (;;) {
                int ws;
                pid_t pid = waitpid(-1, &ws, WNOHANG);
                if (pid <= 0)
                        return;
                struct job *j = NULL;
                bool is_cmd = false;
                for (struct job *k = st->jobs; k && !j; k = k->next) {
                        if (k->pid == pid && !k->reaped)
                                j = k;
                        else if (k->cmd_pid == pid && !k->cmd_exited)
                                j = k, is_cmd = true; /* adopted after its reaper died */
                }
                /* Neither: an orphan that ended up with us, reaped silently. */
                if (!j)
                        continue;
                if (is_cmd) {
                        j->cmd_exited = true;
                        j->cmd_wstatus = ws;
                } else {
                        /* The reaper wrote all it had to say before it exited: the result
                         * pipe holds it, and job_progress() reads it before deciding. */
                        j->reaped = true;
                        j->wstatus = ws;
                }
                job_progress(j);
        }
}

int jobs_check_timeouts(struct init_state *st)
{
        uint64_t now = util_now_ns(), next = 0;

        for (struct job *j = st->jobs; j; j = j->next) {
                /* What is left to kill: the reaper's subtree, or (reaper killed from inside)
                 * the command's; nothing once both are gone. */
                pid_t root = !j->reaped ? j->pid : !j->cmd_exited ? j->cmd_pid : 0;
                if (j->dead || !j->deadline_ns || root <= 0)
                        continue;
                if (j->deadline_ns <= now) {
                        /* EXIT may be out already (the command returned, its descendants did
                         * not): they go now all the same. */
                        if (!j->finished)
                                j->timed_out = true;
                        j->deadline_ns = 0;
                        /* The command is its session's and group's leader: kill the group
                         * before anything else. A /proc scan is no first step under a fork
                         * bomb: reading /proc/PID/stat of a process in the middle of fork()
                         * blocks, and the scan took 20 s in a measured run. */
                        if (j->cmd_pid > 1)
                                kill(-j->cmd_pid, SIGKILL);
                        tree_kill(root);
                        continue;
                }
                if (!next || j->deadline_ns < next)
                        next = j->deadline_ns;
        }
        if (!next)
                return -1;
        uint64_t ms = (next - now + 999999u) / 1000000u;
        return ms > 60000 ? 60000 : (int)ms;
}

void jobs_stdin(struct init_state *st, struct conn *from, struct job *j, const uint8_t *data,
                size_t len, bool eof)
{
        if (j->in_fd < 0 || j->in_eof)
                return;
        if (len > 0) {
                if (j->inq_cap - j->inq_len < len && j->inq_off > 0) {
                        memmove(j->inq, j->inq + j->inq_off, j->inq_len - j->inq_off);
                        j->inq_len -= j->inq_off;
                        j->inq_off = 0;
                }
                if (j->inq_cap - j->inq_len < len) {
                        size_t cap = j->inq_cap ? j->inq_cap : 4096;
                        while (cap - j->inq_len < len)
                                cap *= 2;
                        uint8_t *nb = realloc(j->inq, cap);
                        if (!nb)
                                return;
                        j->inq = nb;
                        j->inq_cap = cap;
                }
                memcpy(j->inq + j->inq_len, data, len);
                j->inq_len += len;
        }
        if (eof)
                j->in_eof = true;
        jobs_on_stdin_writable(st, j);
        if (j->inq_len - j->inq_off > INIT_INQ_MAX)
                from->blocked_on = j;
}

void jobs_on_stdin_writable(struct init_state *st, struct job *j)
{
        while (j->in_fd >= 0 && j->inq_len > j->inq_off) {
                ssize_t n = write(j->in_fd, j->inq + j->inq_off, j->inq_len - j->inq_off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        /* The reader is gone (EPIPE) or worse: drop what is queued. */
                        close_fd(&j->in_fd);
                        break;
                }
                j->inq_off += (size_t)n;
        }
        j->inq_off = j->inq_len = 0;
        if (j->inq_cap > KEEP_CAP) {
                free(j->inq);
                j->inq = NULL;
                j->inq_cap = 0;
        }
        if (j->in_eof && j->in_fd >= 0) {
                if (j->pty) {
                        /* A terminal has no half-close: send its EOF character instead. */
                        struct termios t;
                        char c = 4;
                        if (tcgetattr(j->in_fd, &t) == 0)
                                c = (char)t.c_cc[VEOF];
                        (void)!write(j->in_fd, &c, 1);
                        j->in_eof = false;
                        j->inq_off = j->inq_len = 0;
                        return;
                }
                close_fd(&j->in_fd);
        }
}

void jobs_signal(struct job *j, int signo)
{
        if (j->finished || j->reaped)
                return;
        if (j->cmd_pid == 0) {
                j->pending_sig = signo; /* delivered once the reaper tells the pid */
                return;
        }
        /* Before the command's setsid() there is no group yet: signal the process itself. */
        if (kill(-j->cmd_pid, signo) < 0 && errno == ESRCH)
                kill(j->cmd_pid, signo);
}

void jobs_resize(struct job *j, uint16_t cols, uint16_t rows)
{
        struct winsize ws = { .ws_row = rows, .ws_col = cols };

        if (j->pty && j->in_fd >= 0)
                ioctl(j->in_fd, TIOCSWINSZ, &ws);
}

void jobs_kill_all(void)
{
        /* From PID 1 this reaches every process of the pid namespace but init itself. */
        kill(-1, SIGKILL);
}

void jobs_conn_closed(struct init_state *st, struct conn *c)
{
        for (struct job *j = st->jobs; j; j = j->next)
                if (j->owner == c)
                        j->owner = NULL;
}

void jobs_sweep(struct init_state *st)
{
        struct job **pp = &st->jobs;

        while (*pp) {
                struct job *j = *pp;
                if (!j->dead) {
                        pp = &j->next;
                        continue;
                }
                *pp = j->next;
                for (struct conn *c = st->conns; c; c = c->next)
                        if (c->blocked_on == j)
                                c->blocked_on = NULL;
                close_fd(&j->out_fd[0]);
                close_fd(&j->out_fd[1]);
                close_fd(&j->in_fd);
                close_fd(&j->status_fd);
                close_fd(&j->result_fd);
                free(j->inq);
                free(j->held);
                free(j);
                st->njobs--;
        }
}
