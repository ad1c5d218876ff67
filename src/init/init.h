/* init.h - warren-init's internal interfaces.
 *
 * warren-init is PID 1 of one sandbox. main.c reads the launch spec, setup.c builds the
 * sandbox around the process (mounts, pivot_root, user namespace) and serve.c runs the
 * single-threaded event loop that carries the agent protocol (proto.h); jobs.c starts,
 * feeds, watches and reaps the processes the daemon asks for.
 *
 * Memory discipline: thousands of sandboxes each run one warren-init, so buffers are
 * allocated when used and given back when drained, and every queue is bounded.
 */
#ifndef WARREN_INIT_H
#define WARREN_INIT_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "launch_msg.h"
#include "proto.h"

/* A connection's queued outgoing bytes above which job output is no longer read. */
#define INIT_OUTQ_SOFT (4u << 20)
/* Queued outgoing bytes at which a connection that does not read is dropped. */
#define INIT_OUTQ_HARD (16u << 20)
/* Queued stdin bytes of one job above which its connection's input is paused. */
#define INIT_INQ_MAX (1u << 20)
/* Daemon connections open at once (the daemon uses one; a restart briefly two). */
#define INIT_MAX_CONNS 16
/* Output bytes (encoded frames) held for a kept job that no connection owns; beyond it the
 * job's pipes are not read until a connection attaches. */
#define INIT_HOLD_MAX (1u << 20)
/* Jobs alive at once (the pids cgroup bounds processes; this bounds our bookkeeping). */
#define INIT_MAX_JOBS 4096

/* The decoded launch spec (strings point into the received message). */
struct launch_cfg {
        uint32_t flags;    /* LAUNCH_F_* */
        uint32_t uid_base; /* host uid of root inside */
        uint32_t host_pid; /* our pid in the host's view */
        const char *str[LAUNCH_NSTR];
};

/* What setup leaves for the serve loop. */
struct init_ctx {
        int ctl_fd;                 /* listening control socket, nonblocking */
        int devnull_fd;             /* the sandbox's /dev/null: stdin of jobs without one */
        struct sock_filter *filter; /* seccomp program, during setup only (then NULL) */
        unsigned short filter_len;
        uint32_t host_pid; /* for HELLO */
};

struct job;

/* One daemon connection on the control socket. */
struct conn {
        int fd;
        bool dead;            /* closed; freed at the end of the loop iteration */
        uint8_t *in;          /* received bytes not yet decoded */
        size_t in_len, in_cap;
        uint8_t *out;         /* bytes to send: out[out_off .. out_len) */
        size_t out_off, out_len, out_cap;
        struct job *blocked_on; /* input paused until this job's stdin queue drains */
        struct conn *next;
};

/* One job started by SPAWN: a reaper process (exec.c) and, below it, the command. */
struct job {
        uint32_t id;        /* chosen by the daemon; unique among live jobs */
        pid_t pid;          /* the job's reaper (our child), in the sandbox's pid namespace */
        pid_t cmd_pid;      /* the command (its pgid and sid too); 0 until the reaper says */
        struct conn *owner; /* where its frames go; NULL once that connection closed */
        int out_fd[2];      /* stdout / stderr read ends (pty: [0] = master); -1 closed */
        int in_fd;          /* stdin write end (pty: a dup of the master); -1 if none */
        int status_fd;      /* exec status pipe: -1 once STARTED or ERROR is known */
        int result_fd;      /* the reaper's result pipe; -1 at EOF */
        bool pty;
        bool started;       /* STARTED sent */
        bool failed;        /* ERROR sent instead of STARTED: no EXIT will follow */
        bool cmd_exited;    /* the reaper reported the command's wait status */
        bool reaped;        /* the reaper is gone: nothing of the job is left */
        bool timed_out;     /* killed by its timeout */
        bool in_eof;        /* close stdin once inq drains */
        bool finished;      /* EXIT (or ERROR) sent; output of leftover descendants is read
                             * and dropped until EOF, so they never die of SIGPIPE because of
                             * us, and they are still killed at the deadline */
        bool dead;          /* done; freed at the end of the loop iteration */
        bool keep;          /* PROTO_SPAWN_KEEP: survives its connection, held until RELEASE */
        bool released;      /* RELEASE received (kept jobs only) */
        bool exit_known;    /* exit_msg holds the EXIT payload */
        uint8_t exit_msg[9];
        uint64_t out_total; /* output bytes produced so far (the job's log offset) */
        uint8_t *held;      /* encoded OUTPUT frames kept while no connection owns the job */
        size_t held_len, held_cap;
        uint64_t held_data; /* payload bytes among them */
        int pending_sig;    /* a SIGNAL that came before the command's pid was known */
        int cmd_wstatus;    /* the command's wait status, once cmd_exited */
        int wstatus;        /* the reaper's wait status, once reaped */
        uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = no timeout (or already handled) */
        uint8_t *inq;         /* stdin bytes not yet written: inq[inq_off .. inq_len) */
        size_t inq_off, inq_len, inq_cap;
        struct job *next;
};

/* The whole state of the serve loop. */
struct init_state {
        struct init_ctx ctx;
        struct conn *conns;
        unsigned nconns;
        struct job *jobs;
        unsigned njobs;
};

/* ---- setup.c ---- */

/* Decode the SPEC message in buf (len bytes, NUL-terminated strings inside buf) into *ret.
 * 0 or -EINVAL with a reason in err. */
int setup_parse_spec(const uint8_t *buf, size_t len, struct launch_cfg *ret, char *err,
                     size_t errlen);

/* Build the sandbox around this process (PID 1 of fresh pid/mount/uts/ipc/net namespaces,
 * still host root): mounts, control socket, pivot_root, user namespace (with the runtime's
 * help over launch_fd). On failure err holds what failed and the errno is returned
 * negative; the process is then in an unknown state and must exit. */
int setup_sandbox(const struct launch_cfg *cfg, int launch_fd, struct init_ctx *ret, char *err,
                  size_t errlen);

/* ---- serve.c ---- */

/* Run the event loop until the process is killed. Returns only on a fatal error. */
int serve_run(struct init_state *st);

/* Queue a frame (header + up to two payload pieces) to c; sends at once when nothing is
 * queued. A NULL or dead connection drops the frame. */
void conn_send(struct conn *c, uint8_t type, uint8_t flags, uint32_t job, const void *p1,
               size_t n1, const void *p2, size_t n2);

/* Queue bytes that are already encoded frames. */
void conn_send_raw(struct conn *c, const void *data, size_t len);

/* Send an ERROR frame for job: errno err (positive) and a message. */
void conn_send_error(struct conn *c, uint32_t job, int err, const char *msg);

/* Bytes queued for sending on c. */
static inline size_t conn_queued(const struct conn *c)
{
        return c->out_len - c->out_off;
}

/* ---- exec.c ---- */

/* What a command that could not be executed writes on the status pipe (one write). */
struct exec_status {
        int32_t err; /* positive errno */
        char msg[200];
};

/* What the reaper writes on the result pipe (8 bytes: atomic). */
struct exec_result {
        uint32_t type; /* EXEC_R_* */
        int32_t value; /* EXEC_R_PID: the command's pid; EXEC_R_EXIT: its wait status */
};
#define EXEC_R_PID 1u
#define EXEC_R_EXIT 2u

/* The fds a job's processes start from (write ends and the command's stdio). */
struct exec_fds {
        int status; /* exec status pipe (O_CLOEXEC) */
        int result; /* result pipe */
        int in, out, err; /* the command's stdin, stdout, stderr (pipes or /dev/null) */
        int pty;          /* the pty slave, or -1: then it is all three */
};

/* Run as a job's reaper (in a child of init): become a subreaper, fork and exec the command,
 * report its pid and wait status, reap until nothing is left below. Never returns. */
void exec_reaper(const struct proto_spawn *sp, const struct exec_fds *f)
        __attribute__((noreturn));

/* ---- tree.c ---- */

/* SIGKILL every descendant of root, in rounds until none is left (bounded), then root. */
void tree_kill(pid_t root);

/* ---- jobs.c ---- */

struct init_req;

/* Start the process a SPAWN asks for; owner gets STARTED (once exec succeeded) or ERROR. */
void jobs_spawn(struct init_state *st, struct conn *owner, const struct init_req *req);

/* The exec status pipe or the result pipe of a job is readable. */
void jobs_on_pipe(struct init_state *st, struct job *j);

/* An output fd (index 0 or 1) of a job is readable. */
void jobs_on_output(struct init_state *st, struct job *j, int idx);

/* The stdin fd of a job is writable: write what is queued. */
void jobs_on_stdin_writable(struct init_state *st, struct job *j);

/* Reap every child that has exited (SIGCHLD arrived); finish the jobs among them. */
void jobs_reap(struct init_state *st);

/* Kill the jobs whose deadline passed; return ms until the next deadline (-1: none). */
int jobs_check_timeouts(struct init_state *st);

/* Find a live job by id (one that has not ended). */
struct job *jobs_find(struct init_state *st, uint32_t id);

/* ATTACH: hand a kept job to c (ATTACHED, held output, EXIT if it ended). */
void jobs_attach(struct init_state *st, struct conn *c, uint32_t id);
/* RELEASE: forget a kept job that has ended. */
void jobs_release(struct init_state *st, uint32_t id);

/* STDIN, SIGNAL, RESIZE and KILLALL requests. */
void jobs_stdin(struct init_state *st, struct conn *from, struct job *j, const uint8_t *data,
                size_t len, bool eof);
void jobs_signal(struct job *j, int signo);
void jobs_resize(struct job *j, uint16_t cols, uint16_t rows);
void jobs_kill_all(void);

/* A connection closed: its jobs keep running, their output is discarded from now on. */
void jobs_conn_closed(struct init_state *st, struct conn *c);

/* Free the jobs marked dead. */
void jobs_sweep(struct init_state *st);

/* Whether the job's output may be read now (its owner's queue has room). */
bool jobs_output_wanted(const struct job *j);

#endif
