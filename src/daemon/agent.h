/* agent.h - the daemon's side of the agent protocol (src/common/proto.h): one connection to a
 * sandbox's warren-init over its control socket, with jobs multiplexed by id.
 *
 * Event-loop only. Callbacks run on the loop. A job's callbacks end with exactly one of
 * exit() or error(); after that the job is gone.
 */
#ifndef WARREN_AGENT_H
#define WARREN_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto.h"

struct agent;

struct agent_job_ops {
        void (*started)(void *ud, uint32_t pid);
        void (*output)(void *ud, int stream, const uint8_t *data, size_t len);
        void (*exit)(void *ud, int exit_code, int term_signal, bool timed_out);
        /* The job could not start (err > 0 errno from init, with its message) or the
         * connection was lost (err = ECONNRESET). */
        void (*error)(void *ud, int err, const char *msg);
        /* agent_attach() succeeded: the command's pid (0 if not started yet) and the log
         * offset of the first OUTPUT byte that follows. */
        void (*attached)(void *ud, uint32_t pid, uint64_t offset);
};

/* Job ids at or above this are kept jobs (PROTO_SPAWN_KEEP) whose ids the daemon persists;
 * agent_spawn() picks ids below it. */
#define AGENT_KEPT_ID_BASE 0x80000000u

/* Called once when the connection is ready (status 0, HELLO received) or failed (< 0). */
typedef void (*agent_ready_cb)(struct agent *a, int status, void *ud);
/* Called once when an established connection closes (init died or the socket broke). */
typedef void (*agent_closed_cb)(struct agent *a, void *ud);

/* Connect to path. On success the callbacks fire later; the agent is owned by the caller and
 * freed with agent_free(). */
int agent_connect(uv_loop_t *loop, const char *path, agent_ready_cb on_ready,
                  agent_closed_cb on_closed, void *ud, struct agent **ret);

/* Start a job. *ret_job gets its id. -ENOTCONN if the agent is not ready. */
int agent_spawn(struct agent *a, const struct proto_spawn *spawn, const struct agent_job_ops *ops,
                void *ud, uint32_t *ret_job);

/* Start a job under an id the caller chose (kept jobs). -EEXIST if the id is in use. */
int agent_spawn_id(struct agent *a, uint32_t id, const struct proto_spawn *spawn,
                   const struct agent_job_ops *ops, void *ud);

/* Take over a kept job after a reconnect: ops->attached, then output, then exit; or
 * error(ENOENT) when init does not know the job. */
int agent_attach(struct agent *a, uint32_t id, const struct agent_job_ops *ops, void *ud);

/* Tell init a kept job's end is recorded (it may forget the job). */
int agent_release(struct agent *a, uint32_t id);

/* Write to a job's stdin (split into frames); eof closes it after the bytes. */
int agent_stdin(struct agent *a, uint32_t id, const void *data, size_t len, bool eof);

/* Set a PTY job's window size. */
int agent_resize(struct agent *a, uint32_t id, uint16_t cols, uint16_t rows);

/* Bytes queued for writing to init (stdin backpressure). */
size_t agent_write_queue(const struct agent *a);

/* Send a signal to a job's process group. */
int agent_signal(struct agent *a, uint32_t job, int sig);

/* Forget a job: no further callbacks (its process keeps running unless signalled). */
void agent_job_forget(struct agent *a, uint32_t job);

/* Ask init to SIGKILL every process but itself. */
int agent_killall(struct agent *a);

/* Whether HELLO was received and the socket is open. */
bool agent_ready(const struct agent *a);

/* Number of jobs in flight. */
size_t agent_jobs(const struct agent *a);

/* Close the connection (jobs get error(ECONNRESET); on_closed is not called) and free the
 * agent once libuv has released the handle. Safe with NULL. */
void agent_free(struct agent *a);

#endif
