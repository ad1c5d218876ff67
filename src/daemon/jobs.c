/* jobs.c - background jobs: start, log, reattach, end (jobs.h).
 *
 * In memory is only what is live: a job that runs, or one that ended while clients were
 * still reading it. Everything else is the store's record plus the log file, so a finished
 * job costs no memory however many there are (JOB_HISTORY bounds them per sandbox).
 *
 * The log itself (circular file + memory ring) is joblog.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "joblog.h"
#include "jobs.h"
#include "manager.h"
#include "routes.h"
#include "util.h"

#define JOBS_BUCKETS 256

struct proc {
        struct proc *next; /* registry chain */
        struct app *app;
        int64_t id;
        char sandbox_id[STORE_ID_MAX];
        uint32_t agent_id;
        struct agent *agent; /* the connection it is registered with, or NULL */
        int32_t pid;
        bool pty, stdin_open, started, ended;
        int64_t max_run_after_disconnect;
        uv_timer_t *idle_timer; /* max_run_after_disconnect, while nobody reads */
        jobs_start_cb start_cb; /* the create request, until init answers */
        void *start_ud;
        struct joblog log;
        struct proc_client *clients;
        unsigned n_clients, n_attach;
        unsigned waking; /* inside wake_clients(): a client leaving must not free the job */
};

struct jobs {
        struct proc *buckets[JOBS_BUCKETS];
        size_t n;
};

static const struct agent_job_ops proc_ops;

/* ---- registry ---- */

static unsigned bucket_of(int64_t id)
{
        return (unsigned)((uint64_t)id * 2654435761u) % JOBS_BUCKETS;
}

struct proc *jobs_find(struct app *app, const char *sandbox_id, int64_t id)
{
        for (struct proc *p = app->jobs->buckets[bucket_of(id)]; p; p = p->next)
                if (p->id == id && strcmp(p->sandbox_id, sandbox_id) == 0)
                        return p;
        return NULL;
}

size_t jobs_live_count(const struct app *app)
{
        return app->jobs ? app->jobs->n : 0;
}

int jobs_init(struct app *app)
{
        app->jobs = calloc(1, sizeof(*app->jobs));
        return app->jobs ? 0 : -ENOMEM;
}

static void timer_free_cb(uv_handle_t *h)
{
        free(h);
}

static void proc_free(struct proc *p)
{
        struct jobs *js = p->app->jobs;

        for (struct proc **l = &js->buckets[bucket_of(p->id)]; *l; l = &(*l)->next) {
                if (*l == p) {
                        *l = p->next;
                        js->n--;
                        break;
                }
        }
        if (p->agent && !p->ended)
                agent_job_forget(p->agent, p->agent_id);
        if (p->idle_timer)
                uv_close((uv_handle_t *)p->idle_timer, timer_free_cb);
        joblog_close(&p->log);
        free(p);
}

void jobs_shutdown(struct app *app)
{
        if (!app->jobs)
                return;
        for (unsigned b = 0; b < JOBS_BUCKETS; b++)
                while (app->jobs->buckets[b])
                        proc_free(app->jobs->buckets[b]);
        free(app->jobs);
        app->jobs = NULL;
}

/* ---- log file ---- */

static int log_path(struct app *app, const char *sandbox_id, int64_t id, char *buf, size_t len)
{
        int n = snprintf(buf, len, "%s/sandboxes/%s/jobs/%lld.log", app->cfg.data_dir,
                         sandbox_id, (long long)id);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Create a new log (truncating an old file of the same id) or open an existing one; when
 * neither works the job keeps a memory-only log from offset end. */
static void log_open(struct proc *p, bool create, uint64_t end)
{
        char path[4096];
        size_t ring = (size_t)p->app->cfg.job_ring_bytes;
        int r = log_path(p->app, p->sandbox_id, p->id, path, sizeof(path));

        if (r == 0 && create) {
                char *slash = strrchr(path, '/');
                *slash = '\0';
                if (mkdir(path, 0700) < 0 && errno != EEXIST)
                        r = neg_errno();
                *slash = '/';
                if (r == 0)
                        r = joblog_create(&p->log, path, p->app->cfg.job_log_max, ring);
        } else if (r == 0) {
                r = joblog_open(&p->log, path, ring);
        }
        if (r < 0) {
                app_log("job %lld of %s: log file: %s (output kept in memory only)",
                        (long long)p->id, p->sandbox_id, strerror(-r));
                joblog_init_memory(&p->log, end, ring);
        }
}

/* Wake every client (they read what is new, or see the end). A client may remove itself. */
static void wake_clients(struct proc *p)
{
        struct proc_client *cl = p->clients;

        p->waking++;
        while (cl) {
                struct proc_client *next = cl->next;
                cl->wake(cl);
                cl = next;
        }
        p->waking--;
}

/* Append output to the log, then tell the clients. */
static void log_append(struct proc *p, const uint8_t *data, size_t n)
{
        if (n == 0 || p->ended)
                return;
        joblog_append(&p->log, data, n);
        wake_clients(p);
}

/* ---- reading ---- */

int jobs_range(struct app *app, struct proc *p, const struct store_job *rec,
               struct log_range *ret)
{
        char path[4096];

        if (p) {
                ret->start = p->log.start;
                ret->end = p->log.end;
                ret->ended = p->ended;
                return 0;
        }
        ret->ended = strcmp(rec->state, "running") != 0;
        if (log_path(app, rec->sandbox_id, rec->id, path, sizeof(path)) < 0 ||
            joblog_file_range(path, &ret->start, &ret->end) < 0)
                ret->start = ret->end = (uint64_t)rec->log_end;
        return 0;
}

int jobs_read(struct app *app, struct proc *p, const struct store_job *rec, uint64_t since,
              uint8_t *buf, size_t max, uint64_t *ret_offset, size_t *ret_len)
{
        char path[4096];
        int r;

        if (p)
                return joblog_read(&p->log, since, buf, max, ret_offset, ret_len);
        r = log_path(app, rec->sandbox_id, rec->id, path, sizeof(path));
        if (r < 0)
                return r;
        r = joblog_file_read(path, since, buf, max, ret_offset, ret_len);
        if (r == -ENOENT) {
                /* No file (it could not be made): nothing is held. */
                *ret_offset = (uint64_t)rec->log_end;
                *ret_len = 0;
                return 0;
        }
        return r;
}

/* ---- records ---- */

json_t *jobs_record_json(const struct store_job *rec)
{
        char id[32];
        json_t *cmd = json_loads(rec->command, JSON_DECODE_ANY, NULL);

        snprintf(id, sizeof(id), "job_%lld", (long long)rec->id);
        json_t *o = json_pack("{s:s, s:i, s:o, s:s, s:o, s:o, s:o, s:b, s:b, s:I}", "id", id,
                              "pid", (int)rec->pid, "command", cmd ? cmd : json_null(),
                              "state", rec->state,
                              "exit_code", rec->has_exit ? json_integer(rec->exit_code)
                                                         : json_null(),
                              "started_at", json_time(rec->started_at / 1000),
                              "ended_at", rec->ended_at ? json_time(rec->ended_at / 1000)
                                                        : json_null(),
                              "pty", rec->pty, "stdin", rec->stdin_open,
                              "max_run_after_disconnect",
                              (json_int_t)rec->max_run_after_disconnect);
        if (o && rec->error)
                json_object_set_new(o, "error", json_string(rec->error));
        return o;
}

json_t *jobs_proc_json(struct app *app, struct proc *p)
{
        struct store_job rec = {};

        if (store_job_get(app->store, p->sandbox_id, p->id, &rec) < 0)
                return NULL;
        json_t *o = jobs_record_json(&rec);
        store_job_clear(&rec);
        return o;
}

int64_t jobs_proc_id(const struct proc *p)
{
        return p->id;
}

bool jobs_proc_ended(const struct proc *p)
{
        return p->ended;
}

bool jobs_proc_pty(const struct proc *p)
{
        return p->pty;
}

/* ---- the end of a job ---- */

/* Free an ended job once nobody reads it any more. */
static void proc_maybe_free(struct proc *p)
{
        if (p->ended && !p->clients && !p->waking)
                proc_free(p);
}

/* Answer the create request, if it still waits: with the record, or an error. */
static void answer_start(struct proc *p, int err, const char *msg)
{
        jobs_start_cb cb = p->start_cb;
        struct store_job rec = {};

        if (!cb)
                return;
        p->start_cb = NULL;
        if (err == 0 && store_job_get(p->app->store, p->sandbox_id, p->id, &rec) < 0)
                err = -EIO;
        cb(p->start_ud, err, msg, err == 0 ? &rec : NULL);
        store_job_clear(&rec);
}

/* Record the end: state, exit code, where the log stops; tell readers. */
static void proc_end(struct proc *p, const char *state, bool has_exit, int code, const char *error)
{
        if (p->ended)
                return;
        p->ended = true;
        p->stdin_open = false;
        int r = store_job_end(p->app->store, p->id, state, has_exit, code, util_wall_ms(),
                              (int64_t)p->log.end, error);
        if (r < 0)
                app_log("job %lld of %s: recording its end failed: %s", (long long)p->id,
                        p->sandbox_id, strerror(-r));
        /* Init may forget the job once its end is in the store, not before: if the write
         * failed, init keeps it, and the next connection learns the end again (ATTACH). */
        else if (p->agent && agent_ready(p->agent))
                agent_release(p->agent, p->agent_id);
        if (p->idle_timer)
                uv_timer_stop(p->idle_timer);
        joblog_drop_ring(&p->log);
        answer_start(p, 0, NULL);
        wake_clients(p);
        proc_maybe_free(p);
}

/* ---- agent callbacks ---- */

static void proc_started(void *ud, uint32_t pid)
{
        struct proc *p = ud;

        p->started = true;
        p->pid = (int32_t)pid;
        store_job_set_pid(p->app->store, p->id, p->pid);
        answer_start(p, 0, NULL);
}

static void proc_output(void *ud, int stream, const uint8_t *data, size_t len)
{
        log_append(ud, data, len);
}

static void proc_exit(void *ud, int exit_code, int term_signal, bool timed_out)
{
        struct proc *p = ud;
        const char *state = timed_out ? "timed_out" : term_signal ? "killed" : "exited";

        proc_end(p, state, true, timed_out ? 124 : exit_code, NULL);
}

static void proc_error(void *ud, int err, const char *msg)
{
        struct proc *p = ud;
        char line[600];

        if (err == ECONNRESET) {
                /* The connection broke, not the job: it is taken back on reconnect. */
                p->agent = NULL;
                answer_start(p, -ECONNRESET, "the sandbox's agent connection was lost");
                return;
        }
        if (!p->started && p->start_cb) {
                /* It could not start: say why in its output, exit like a shell would. */
                snprintf(line, sizeof(line), "warren: %s\n", msg && *msg ? msg : strerror(err));
                log_append(p, (const uint8_t *)line, strlen(line));
                proc_end(p, "failed", true, err == ENOENT ? 127 : 126, msg);
                return;
        }
        /* ATTACH answered ENOENT: init does not know it any more. */
        proc_end(p, "killed", false, 0, "lost: the sandbox no longer knows this job");
}

static void proc_attached(void *ud, uint32_t pid, uint64_t offset)
{
        struct proc *p = ud;

        if (pid) {
                p->started = true;
                p->pid = (int32_t)pid;
        }
        /* Output sent to a daemon that died never reached the log: a gap. */
        joblog_gap(&p->log, offset);
}

static const struct agent_job_ops proc_ops = {
        .started = proc_started,
        .output = proc_output,
        .exit = proc_exit,
        .error = proc_error,
        .attached = proc_attached,
};

/* ---- idle kill (max_run_after_disconnect) ---- */

static void idle_fire(uv_timer_t *t)
{
        struct proc *p = t->data;

        if (p->ended || p->clients)
                return;
        if (!p->agent) {
                /* Its agent is reconnecting: the kill is due as soon as it is back (nothing
                 * else re-arms the countdown of a job nobody reads). */
                uv_timer_start(t, idle_fire, 1000, 0);
                return;
        }
        app_log("job %lld of %s: nobody attached for %llds: killing it", (long long)p->id,
                p->sandbox_id, (long long)p->max_run_after_disconnect);
        agent_signal(p->agent, p->agent_id, SIGKILL);
}

/* (Re)start the idle countdown when nobody reads the job. */
static void idle_arm(struct proc *p)
{
        if (!p->idle_timer || p->ended || p->clients)
                return;
        uv_timer_start(p->idle_timer, idle_fire, (uint64_t)p->max_run_after_disconnect * 1000, 0);
}

void jobs_note_read(struct proc *p)
{
        idle_arm(p);
}

int jobs_add_client(struct proc *p, struct proc_client *cl, bool count_limit)
{
        if (count_limit && p->n_attach >= (unsigned)p->app->cfg.max_attach_per_job)
                return -EMLINK;
        cl->next = p->clients;
        p->clients = cl;
        p->n_clients++;
        cl->counted = count_limit;
        if (count_limit)
                p->n_attach++;
        if (p->idle_timer)
                uv_timer_stop(p->idle_timer);
        return 0;
}

void jobs_remove_client(struct app *app, struct proc *p, struct proc_client *cl)
{
        for (struct proc_client **l = &p->clients; *l; l = &(*l)->next) {
                if (*l == cl) {
                        *l = cl->next;
                        p->n_clients--;
                        if (cl->counted)
                                p->n_attach--;
                        break;
                }
        }
        idle_arm(p);
        proc_maybe_free(p);
}

/* ---- creating and taking over jobs ---- */

static struct proc *proc_new(struct app *app, const char *sandbox_id, int64_t id)
{
        struct proc *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->app = app;
        p->id = id;
        joblog_init_memory(&p->log, 0, 0);
        snprintf(p->sandbox_id, sizeof(p->sandbox_id), "%s", sandbox_id);
        p->agent_id = AGENT_KEPT_ID_BASE | (uint32_t)id;
        unsigned b = bucket_of(id);
        p->next = app->jobs->buckets[b];
        app->jobs->buckets[b] = p;
        app->jobs->n++;
        return p;
}

/* Arm max_run_after_disconnect for a job that has it. */
static void proc_idle_setup(struct proc *p, int64_t seconds)
{
        p->max_run_after_disconnect = seconds;
        if (seconds <= 0)
                return;
        p->idle_timer = malloc(sizeof(*p->idle_timer));
        if (!p->idle_timer)
                return;
        uv_timer_init(p->app->loop, p->idle_timer);
        p->idle_timer->data = p;
        idle_arm(p);
}

/* Remove the oldest ended jobs (and their logs) while the sandbox has too many. */
static void prune_history(struct app *app, const char *sandbox_id)
{
        int64_t n = 0, id;
        char path[4096];

        if (store_job_count(app->store, sandbox_id, false, &n) < 0)
                return;
        while (n-- >= app->cfg.job_history &&
               store_job_oldest_done(app->store, sandbox_id, &id) == 0) {
                struct proc *p = jobs_find(app, sandbox_id, id);
                if (p)
                        return; /* still being read: keep it for now */
                if (log_path(app, sandbox_id, id, path, sizeof(path)) == 0)
                        unlink(path);
                store_job_delete(app->store, id);
        }
}

int jobs_start(struct app *app, struct sandbox *sb, const struct job_spec *spec,
               jobs_start_cb cb, void *ud)
{
        struct store_job rec = {};
        int64_t running = 0, id;
        cleanup_free char *cmd = NULL;
        int r;

        if (!agent_ready(sb->agent))
                return -ENOTCONN;
        r = store_job_count(app->store, sb->id, true, &running);
        if (r < 0)
                return r;
        if (running >= app->cfg.max_jobs_per_sandbox)
                return -EUSERS;
        if (spec->pty) {
                int64_t ptys = 0;
                for (unsigned b = 0; b < JOBS_BUCKETS; b++)
                        for (struct proc *q = app->jobs->buckets[b]; q; q = q->next)
                                ptys += q->pty && !q->ended &&
                                        strcmp(q->sandbox_id, sb->id) == 0;
                if (ptys >= app->cfg.max_ptys_per_sandbox)
                        return -EMLINK;
        }
        prune_history(app, sb->id);
        cmd = json_dumps(spec->command, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!cmd)
                return -ENOMEM;
        snprintf(rec.sandbox_id, sizeof(rec.sandbox_id), "%s", sb->id);
        rec.command = cmd;
        rec.started_at = util_wall_ms();
        rec.pty = spec->pty;
        rec.stdin_open = spec->stdin_open || spec->pty;
        rec.max_run_after_disconnect = spec->max_run_after_disconnect;
        r = store_job_insert(app->store, &rec, &id);
        if (r < 0)
                return r;
        if (id <= 0 || id >= (int64_t)AGENT_KEPT_ID_BASE) {
                store_job_delete(app->store, id);
                return -EOVERFLOW;
        }
        struct proc *p = proc_new(app, sb->id, id);
        if (!p) {
                store_job_delete(app->store, id);
                return -ENOMEM;
        }
        p->pty = spec->pty;
        p->stdin_open = rec.stdin_open;
        log_open(p, true, 0);
        struct proto_spawn sp = {
                .uid = spec->uid,
                .gid = spec->uid,
                .timeout_ms = spec->timeout_ms,
                .flags = PROTO_SPAWN_KEEP | (spec->pty ? PROTO_SPAWN_PTY : 0) |
                         (rec.stdin_open ? PROTO_SPAWN_STDIN : 0),
                .cols = spec->cols,
                .rows = spec->rows,
                .nofile = app->cfg.nofile_limit,
                .cwd = spec->cwd,
                .argc = spec->argc,
                .argv = spec->argv,
                .envc = spec->envc,
                .env = spec->env,
        };
        r = agent_spawn_id(sb->agent, p->agent_id, &sp, &proc_ops, p);
        if (r < 0)
                goto fail;
        p->agent = sb->agent;
        p->start_cb = cb;
        p->start_ud = ud;
        proc_idle_setup(p, spec->max_run_after_disconnect);
        return 0;
fail:
        proc_free(p);
        {
                char path[4096];
                if (log_path(app, sb->id, id, path, sizeof(path)) == 0)
                        unlink(path);
        }
        store_job_delete(app->store, id);
        return r;
}

struct reattach_ctx {
        struct app *app;
        struct sandbox *sb;
};

/* Take one running job back after a (re)connect. */
struct proc *jobs_load(struct app *app, const struct store_job *rec)
{
        struct proc *p = jobs_find(app, rec->sandbox_id, rec->id);

        if (p || strcmp(rec->state, "running") != 0)
                return p;
        p = proc_new(app, rec->sandbox_id, rec->id);
        if (!p)
                return NULL;
        p->pty = rec->pty;
        p->stdin_open = rec->stdin_open;
        p->pid = rec->pid;
        p->started = rec->pid != 0;
        log_open(p, false, (uint64_t)rec->log_end);
        proc_idle_setup(p, rec->max_run_after_disconnect);
        return p;
}

static int reattach_one(const struct store_job *rec, void *ud)
{
        struct reattach_ctx *x = ud;
        struct sandbox *sb = x->sb;
        struct proc *p = jobs_load(x->app, rec);

        if (!p || p->agent == sb->agent)
                return 0;
        if (agent_attach(sb->agent, p->agent_id, &proc_ops, p) == 0)
                p->agent = sb->agent;
        return 0;
}

void jobs_agent_ready(struct app *app, struct sandbox *sb)
{
        struct reattach_ctx x = { app, sb };
        int r = store_job_each_running(app->store, sb->id, reattach_one, &x);
        if (r < 0)
                app_log("sandbox %s: listing its jobs failed: %s", sb->id, strerror(-r));
}

/* End a running record that has no job in memory. */
static int end_record(const struct store_job *rec, void *ud)
{
        struct app *app = ((void **)ud)[0];
        const char *why = ((void **)ud)[1];
        struct log_range rg;

        if (jobs_find(app, rec->sandbox_id, rec->id))
                return 0;
        if (jobs_range(app, NULL, rec, &rg) < 0)
                rg.end = (uint64_t)rec->log_end;
        store_job_end(app->store, rec->id, "killed", false, 0, util_wall_ms(), (int64_t)rg.end,
                      why);
        return 0;
}

void jobs_sandbox_ended(struct app *app, const char *sandbox_id, const char *why)
{
        char msg[128];
        void *args[2] = { app, msg };

        if (!app->jobs)
                return;
        snprintf(msg, sizeof(msg), "the sandbox %s", why);
        for (unsigned b = 0; b < JOBS_BUCKETS; b++) {
                struct proc *p = app->jobs->buckets[b];
                while (p) {
                        struct proc *next = p->next;
                        if (!p->ended && strcmp(p->sandbox_id, sandbox_id) == 0) {
                                p->agent = NULL;
                                proc_end(p, "killed", false, 0, msg);
                        }
                        p = next;
                }
        }
        store_job_each_running(app->store, sandbox_id, end_record, args);
}

/* ---- live operations ---- */

/* The job's agent, if it can take a request now. */
static int live_agent(struct proc *p, struct agent **ret)
{
        if (p->ended)
                return -ESRCH;
        if (!p->agent || !agent_ready(p->agent))
                return -ENOTCONN;
        *ret = p->agent;
        return 0;
}

int jobs_stdin(struct app *app, struct proc *p, const void *data, size_t len, bool eof)
{
        struct agent *a;
        int r = live_agent(p, &a);

        if (r < 0)
                return r;
        if (!p->stdin_open)
                return -EBADF;
        if (agent_write_queue(a) > (4u << 20))
                return -EAGAIN;
        r = agent_stdin(a, p->agent_id, data, len, eof);
        if (r == 0 && eof && !p->pty)
                p->stdin_open = false;
        return r;
}

int jobs_signal(struct app *app, struct proc *p, int sig)
{
        struct agent *a;
        int r = live_agent(p, &a);

        return r < 0 ? r : agent_signal(a, p->agent_id, sig);
}

int jobs_resize(struct app *app, struct proc *p, uint16_t cols, uint16_t rows)
{
        struct agent *a;
        int r = live_agent(p, &a);

        if (r < 0)
                return r;
        if (!p->pty)
                return -ENOTTY;
        return agent_resize(a, p->agent_id, cols, rows);
}

int jobs_parse_signal(const char *name)
{
        static const struct {
                const char *name;
                int sig;
        } names[] = {
                { "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
                { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "CONT", SIGCONT },
                { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "WINCH", SIGWINCH },
                { "ALRM", SIGALRM }, { "PIPE", SIGPIPE },
        };

        if (strncmp(name, "SIG", 3) == 0)
                name += 3;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(name, names[i].name) == 0)
                        return names[i].sig;
        return -EINVAL;
}
