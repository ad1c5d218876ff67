/* jobs.h - the daemon's job model: every background process and terminal of a sandbox.
 *
 * A job is a process started in the background (POST /processes, terminals). Its output,
 * stdout and stderr (or the PTY stream) interleaved as one byte sequence, is its log: each
 * byte has an offset from 0. The log lives in a file in the sandbox's state directory
 * (data_dir/sandboxes/ID/jobs/N.log), a circular file holding the latest JOB_LOG_MAX bytes,
 * with the latest JOB_RING_BYTES also in memory while the job runs. A client reads from any
 * offset still held; older bytes are reported as dropped. The job's record (state, pid, exit
 * code, times) is in the store, so finished jobs stay queryable until the sandbox goes.
 *
 * Jobs are "kept" jobs in warren-init (PROTO_SPAWN_KEEP): they survive the daemon. After a
 * restart or a reconnect, jobs_agent_ready() takes every running job back (ATTACH) and its
 * log continues where it stopped; output init sent to a daemon that died is a gap.
 *
 * Event-loop only.
 */
#ifndef WARREN_JOBS_H
#define WARREN_JOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "store.h"

struct sandbox;
struct proc;

/* A reader of a live job's log (a long poll, a WebSocket attachment). wake() runs on new
 * output and once when the job ends; the client then reads with jobs_read(). */
struct proc_client {
        struct proc_client *next;
        void (*wake)(struct proc_client *cl);
        void *ud;
        bool counted; /* counts against MAX_ATTACH_PER_JOB (set by jobs_add_client) */
};

/* Set up the job registry (app->jobs). */
int jobs_init(struct app *app);
/* Free every in-memory job (the processes keep running in their sandboxes). */
void jobs_shutdown(struct app *app);

/* The sandbox's agent is (again) connected: take over its running jobs. */
void jobs_agent_ready(struct app *app, struct sandbox *sb);
/* The sandbox stopped or is going away: its running jobs are recorded as killed. */
void jobs_sandbox_ended(struct app *app, const char *sandbox_id, const char *why);

/* What a new job runs. Strings are borrowed for the call. */
struct job_spec {
        const char **argv;
        uint32_t argc;
        const char **env;
        uint32_t envc;
        const char *cwd;
        uint32_t uid;
        uint32_t timeout_ms;            /* 0 = none */
        bool pty;
        uint16_t cols, rows;
        bool stdin_open;
        int64_t max_run_after_disconnect; /* seconds; 0 = until it exits */
        json_t *command;                  /* the request's command (recorded as given) */
};

/* Called once the job started (err 0, *rec is its record) or could not be created. */
typedef void (*jobs_start_cb)(void *ud, int err, const char *msg, const struct store_job *rec);

/* Start a job in sb. Checks the per-sandbox limits: -EUSERS (too many running jobs),
 * -EMLINK (too many PTYs). cb runs later, once init answered (never from inside the call
 * when 0 is returned). */
int jobs_start(struct app *app, struct sandbox *sb, const struct job_spec *spec,
               jobs_start_cb cb, void *ud);

/* The in-memory job (running, or ended with clients still attached), or NULL. */
struct proc *jobs_find(struct app *app, const char *sandbox_id, int64_t id);
/* The in-memory job of a record, loaded from the record and its log when it runs but is not
 * in memory yet (after a restart, before its sandbox's agent reconnected: the agent takes it
 * over when it does). NULL for an ended job that nobody reads, or out of memory. */
struct proc *jobs_load(struct app *app, const struct store_job *rec);

/* The job's record as the API shows it. */
json_t *jobs_record_json(const struct store_job *rec);

/* Offsets of what is readable now: [*ret_start, *ret_end); ended: the job is over and
 * nothing more will come. Works for in-memory jobs and (p NULL) for a record. */
struct log_range {
        uint64_t start, end;
        bool ended;
};
int jobs_range(struct app *app, struct proc *p, const struct store_job *rec,
               struct log_range *ret);

/* Read up to max bytes of the log from offset since (moved up to the first byte still held:
 * *ret_offset is where the data starts). *ret_len may be 0 (nothing new). */
int jobs_read(struct app *app, struct proc *p, const struct store_job *rec, uint64_t since,
              uint8_t *buf, size_t max, uint64_t *ret_offset, size_t *ret_len);

/* Live job operations: -ESRCH when the job has ended, -ENOTCONN while its sandbox's agent
 * is reconnecting, -EBADF (stdin not open), -ENOTTY (not a PTY), -EAGAIN (stdin backlog). */
int jobs_stdin(struct app *app, struct proc *p, const void *data, size_t len, bool eof);
int jobs_signal(struct app *app, struct proc *p, int sig);
int jobs_resize(struct app *app, struct proc *p, uint16_t cols, uint16_t rows);

/* Someone read the job's output: max_run_after_disconnect counts from now (a reader that
 * never has to wait never becomes a client). */
void jobs_note_read(struct proc *p);

/* Clients. -EMLINK beyond MAX_ATTACH_PER_JOB (count_limit true: attachments, which are
 * bounded; long polls are bounded by the connection limit). */
int jobs_add_client(struct proc *p, struct proc_client *cl, bool count_limit);
void jobs_remove_client(struct app *app, struct proc *p, struct proc_client *cl);

/* Accessors for live jobs. */
int64_t jobs_proc_id(const struct proc *p);
bool jobs_proc_ended(const struct proc *p);
bool jobs_proc_pty(const struct proc *p);
/* The job's current record (state, exit code...) as JSON. */
json_t *jobs_proc_json(struct app *app, struct proc *p);

/* A signal by name ("TERM" or "SIGTERM"); -EINVAL if unknown. */
int jobs_parse_signal(const char *name);

/* Number of jobs held in memory (tests and /api/v1/pool). */
size_t jobs_live_count(const struct app *app);

#endif
