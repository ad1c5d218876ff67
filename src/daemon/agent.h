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
};

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
