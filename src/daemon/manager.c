/* manager.c - sandbox lifecycle: create, adopt, expire, stop, delete.
 *
 * State machine of a live sandbox (struct sandbox):
 *
 *   (create) -> CREATING --runtime ok + agent HELLO--> RUNNING --stop/expiry/init died--> STOPPING
 *   STOPPING --runtime stop done--> (record "stopped", live state freed)
 *   any --delete--> DELETING --runtime destroy done--> (record removed, live state freed)
 *
 * Runtime calls block (clone, mounts, mkfs, waiting for processes to die), so they run on the
 * libuv threadpool; the loop thread only updates the store and the table.
 */
#include "manager.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MGR_BUCKETS 4096
/* Host uid ranges: slot n gets [MGR_UID_FIRST + n * RT_UID_RANGE, +RT_UID_RANGE). Far above
 * the uids of real users and of systemd's dynamic ranges. */
#define MGR_UID_FIRST 1000000000u
#define MGR_UID_SLOTS 45000u
/* How often stopped sandboxes past their retention are looked for. */
#define MGR_SWEEP_MS 60000
#define MGR_MAX_RECONNECTS 10

struct waiter {
        struct waiter *next;
        mgr_done_cb cb;
        void *ud;
};

struct create_op {
        mgr_create_cb cb;
        void *ud;
        struct rt_metrics metrics;
        uint64_t started_ns;
};

struct manager {
        struct app *app;
        struct sandbox *buckets[MGR_BUCKETS];
        size_t live;
        uv_timer_t sweep;
        bool shut;
};

enum work_kind { W_CREATE, W_STOP, W_DESTROY };

/* A runtime call on the threadpool. Inputs are copies: the live state may change meanwhile. */
struct work {
        uv_work_t w;
        struct manager *m;
        enum work_kind kind;
        char id[STORE_ID_MAX];
        char template[STORE_NAME_MAX];
        struct rt_spec spec;
        struct rt_instance inst;
        struct rt_metrics metrics;
        pid_t pid;
        uint64_t starttime;
        int r;
        char err[RT_ERR_LEN];
};

static void sb_agent_start(struct sandbox *sb);
static void sb_begin_stop(struct sandbox *sb, const char *why);

/* ---- table ---- */

static unsigned bucket_of(const char *id)
{
        uint32_t h = 2166136261u; /* FNV-1a */
        for (; *id; id++)
                h = (h ^ (uint8_t)*id) * 16777619u;
        return h % MGR_BUCKETS;
}

struct sandbox *mgr_find(struct manager *m, const char *id)
{
        for (struct sandbox *sb = m->buckets[bucket_of(id)]; sb; sb = sb->next)
                if (strcmp(sb->id, id) == 0)
                        return sb;
        return NULL;
}

static void table_add(struct manager *m, struct sandbox *sb)
{
        unsigned b = bucket_of(sb->id);
        sb->next = m->buckets[b];
        m->buckets[b] = sb;
        m->live++;
}

static void table_remove(struct manager *m, struct sandbox *sb)
{
        for (struct sandbox **l = &m->buckets[bucket_of(sb->id)]; *l; l = &(*l)->next) {
                if (*l == sb) {
                        *l = sb->next;
                        m->live--;
                        return;
                }
        }
}

size_t mgr_live_count(const struct manager *m)
{
        return m->live;
}

static struct sandbox *sb_new(struct manager *m, const char *id, const char *org_id)
{
        struct sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return NULL;
        sb->mgr = m;
        snprintf(sb->id, sizeof(sb->id), "%s", id);
        snprintf(sb->org_id, sizeof(sb->org_id), "%s", org_id);
        uv_timer_init(m->app->loop, &sb->timer);
        sb->timer.data = sb;
        table_add(m, sb);
        return sb;
}

static void sb_timer_closed(uv_handle_t *h)
{
        struct sandbox *sb = h->data;
        free(sb->ctl_path);
        free(sb);
}

/* Remove from the table and free once the timer handle is closed. Waiters must be done. */
static void sb_free(struct sandbox *sb)
{
        table_remove(sb->mgr, sb);
        agent_free(sb->agent);
        sb->agent = NULL;
        json_decref(sb->env);
        sb->env = NULL;
        uv_close((uv_handle_t *)&sb->timer, sb_timer_closed);
}

static void sb_notify(struct sandbox *sb, int err, const char *msg)
{
        struct waiter *w = sb->waiters;
        sb->waiters = NULL;
        while (w) {
                struct waiter *next = w->next;
                if (w->cb)
                        w->cb(w->ud, err, msg);
                free(w);
                w = next;
        }
}

static int sb_wait(struct sandbox *sb, mgr_done_cb cb, void *ud)
{
        struct waiter *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->cb = cb;
        w->ud = ud;
        w->next = sb->waiters;
        sb->waiters = w;
        return 0;
}

/* ---- store helpers ---- */

/* Update a record's status (and the pid fields) by id. */
static void record_status(struct manager *m, const char *id, const char *status, pid_t pid,
                          uint64_t starttime, const char *error)
{
        struct store_sandbox rec = {};
        if (store_sandbox_get(m->app->store, id, &rec) < 0)
                return;
        snprintf(rec.status, sizeof(rec.status), "%s", status);
        rec.init_pid = pid;
        rec.init_starttime = starttime;
        /* Clients see "stopping" as "stopped" (sandbox_to_json): it has a stop time from the
         * moment the stop begins. */
        if ((!strcmp(status, "stopped") || !strcmp(status, "stopping")) && rec.stopped_at == 0)
                rec.stopped_at = util_wall_s();
        if (error) {
                free(rec.error);
                rec.error = strdup(error);
        }
        int r = store_sandbox_update(m->app->store, &rec);
        if (r < 0)
                app_log("store: updating %s failed: %s", id, strerror(-r));
        store_sandbox_clear(&rec);
}

/* ---- threadpool work ---- */

static void work_run(uv_work_t *w)
{
        struct work *k = (struct work *)w;
        switch (k->kind) {
        case W_CREATE:
                k->spec.id = k->id;
                k->spec.template = k->template;
                k->r = rt_sandbox_create(&k->spec, &k->inst, &k->metrics, k->err);
                break;
        case W_STOP:
                k->r = rt_sandbox_stop(k->id, k->pid, k->starttime, k->err);
                break;
        case W_DESTROY:
                k->r = rt_sandbox_destroy(k->id, k->pid, k->starttime, k->err);
                break;
        }
}

static void work_done(uv_work_t *w, int status);

static int work_queue(struct manager *m, enum work_kind kind, struct sandbox *sb,
                      struct work **ret)
{
        struct work *k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->m = m;
        k->kind = kind;
        snprintf(k->id, sizeof(k->id), "%s", sb->id);
        k->pid = sb->init_pid;
        k->starttime = sb->init_starttime;
        if (ret)
                *ret = k;
        return 0;
}

static int work_submit(struct work *k)
{
        int r = uv_queue_work(k->m->app->loop, &k->w, work_run, work_done);
        if (r < 0)
                free(k);
        return r;
}

/* ---- create ---- */

/* Answer the create request (once). */
static void create_done(struct sandbox *sb, int err, const char *msg)
{
        struct create_op *op = sb->create;
        if (!op)
                return;
        sb->create = NULL;
        struct rt_metrics metrics = op->metrics;
        metrics.total_ms = util_ms_since(op->started_ns);
        if (op->cb)
                op->cb(op->ud, err, msg, sb->id, &metrics);
        free(op);
}

static void on_agent_ready(struct agent *a, int status, void *ud);
static void on_agent_closed(struct agent *a, void *ud);

static void expiry_fire(uv_timer_t *t)
{
        struct sandbox *sb = t->data;
        sb->timer_active = false;
        if (sb->state != SB_RUNNING)
                return;
        if (util_wall_s() < sb->expires_at) {
                /* Clock moved: wait the rest. */
                uv_timer_start(&sb->timer, expiry_fire,
                               (uint64_t)(sb->expires_at - util_wall_s()) * 1000, 0);
                sb->timer_active = true;
                return;
        }
        app_log("sandbox %s: timeout reached, stopping", sb->id);
        sb_begin_stop(sb, "timeout");
}

static void expiry_arm(struct sandbox *sb)
{
        int64_t left = sb->expires_at - util_wall_s();
        uv_timer_stop(&sb->timer);
        uv_timer_start(&sb->timer, expiry_fire, left > 0 ? (uint64_t)left * 1000 : 0, 0);
        sb->timer_active = true;
}

static void reconnect_fire(uv_timer_t *t)
{
        struct sandbox *sb = t->data;
        sb->timer_active = false;
        if (sb->state == SB_RUNNING && !sb->agent)
                sb_agent_start(sb);
}

static void sb_agent_start(struct sandbox *sb)
{
        int r = agent_connect(sb->mgr->app->loop, sb->ctl_path, on_agent_ready, on_agent_closed,
                              sb, &sb->agent);
        if (r < 0) {
                sb->agent = NULL;
                on_agent_ready(NULL, r, sb);
        }
}

static void on_agent_ready(struct agent *a, int status, void *ud)
{
        struct sandbox *sb = ud;

        if (status == 0) {
                sb->reconnects = 0;
                if (sb->state == SB_CREATING) {
                        sb->state = SB_RUNNING;
                        record_status(sb->mgr, sb->id, "running", sb->init_pid,
                                      sb->init_starttime, NULL);
                        expiry_arm(sb);
                        app_log("sandbox %s: running (org %s, init pid %d)", sb->id, sb->org_id,
                                (int)sb->init_pid);
                        create_done(sb, 0, NULL);
                } else if (sb->state == SB_RUNNING) {
                        expiry_arm(sb);
                }
                return;
        }
        /* The connection failed. */
        agent_free(sb->agent);
        sb->agent = NULL;
        if (sb->state == SB_CREATING) {
                /* Undo the create: the sandbox never answered. */
                app_log("sandbox %s: agent did not answer: %s", sb->id, strerror(-status));
                create_done(sb, -ECONNREFUSED, "the sandbox's agent did not answer");
                sb_begin_stop(sb, "create failed");
                return;
        }
        if (sb->state != SB_RUNNING)
                return;
        if (!rt_sandbox_alive(sb->init_pid, sb->init_starttime) ||
            ++sb->reconnects > MGR_MAX_RECONNECTS) {
                app_log("sandbox %s: agent gone, stopping", sb->id);
                sb_begin_stop(sb, "agent gone");
                return;
        }
        uv_timer_stop(&sb->timer);
        uv_timer_start(&sb->timer, reconnect_fire, 200, 0);
        sb->timer_active = true;
}

static void on_agent_closed(struct agent *a, void *ud)
{
        struct sandbox *sb = ud;
        agent_free(sb->agent);
        sb->agent = NULL;
        if (sb->state != SB_RUNNING)
                return;
        if (!rt_sandbox_alive(sb->init_pid, sb->init_starttime)) {
                app_log("sandbox %s: init exited, stopping", sb->id);
                sb_begin_stop(sb, "init exited");
                return;
        }
        /* The socket broke but init lives: reconnect (expiry is re-armed on success). */
        uv_timer_stop(&sb->timer);
        uv_timer_start(&sb->timer, reconnect_fire, 100, 0);
        sb->timer_active = true;
}

int mgr_create(struct manager *m, const struct mgr_create_args *args, mgr_create_cb cb, void *ud)
{
        struct store_sandbox rec = {};
        struct work *k;
        int64_t active;
        uint32_t slot;
        char id[STORE_ID_MAX];
        uint8_t rnd[6];
        int r;

        r = store_sandbox_count_active(m->app->store, args->org_id, &active);
        if (r < 0)
                return r;
        if (active >= m->app->cfg.max_sandboxes_per_org)
                return -EUSERS;
        r = store_uid_slot_free(m->app->store, MGR_UID_FIRST, RT_UID_RANGE, MGR_UID_SLOTS, &slot);
        if (r < 0)
                return r;
        r = util_random(rnd, sizeof(rnd));
        if (r < 0)
                return r;
        char hex[13];
        util_hex(rnd, sizeof(rnd), hex);
        snprintf(id, sizeof(id), "sandbox-%s", hex);

        int64_t now = util_wall_s();
        snprintf(rec.id, sizeof(rec.id), "%s", id);
        snprintf(rec.org_id, sizeof(rec.org_id), "%s", args->org_id);
        snprintf(rec.status, sizeof(rec.status), "creating");
        snprintf(rec.template, sizeof(rec.template), "%s", args->template);
        snprintf(rec.isolation, sizeof(rec.isolation), "%s", args->isolation);
        rec.cpu_millis = (int64_t)args->cpu_millis;
        rec.memory_bytes = (int64_t)args->memory_bytes;
        rec.disk_bytes = (int64_t)args->disk_bytes;
        rec.pids_limit = (int64_t)m->app->cfg.pids_limit;
        rec.timeout_s = args->timeout_s;
        rec.created_at = now;
        rec.expires_at = now + args->timeout_s;
        rec.uid_base = MGR_UID_FIRST + slot * RT_UID_RANGE;
        rec.env_json = args->env ? json_dumps(args->env, JSON_COMPACT) : NULL;
        r = store_sandbox_insert(m->app->store, &rec);
        free(rec.env_json);
        rec.env_json = NULL;
        if (r < 0)
                return r;

        struct sandbox *sb = sb_new(m, id, args->org_id);
        struct create_op *op = calloc(1, sizeof(*op));
        if (!sb || !op) {
                free(op);
                if (sb)
                        sb_free(sb);
                store_sandbox_delete(m->app->store, id);
                return -ENOMEM;
        }
        sb->state = SB_CREATING;
        sb->uid_base = rec.uid_base;
        sb->expires_at = rec.expires_at;
        sb->env = args->env ? json_incref(args->env) : json_object();
        op->cb = cb;
        op->ud = ud;
        op->started_ns = util_now_ns();
        sb->create = op;

        r = work_queue(m, W_CREATE, sb, &k);
        if (r == 0) {
                snprintf(k->template, sizeof(k->template), "%s", args->template);
                k->spec.uid_base = rec.uid_base;
                k->spec.limits.cpu_millis = args->cpu_millis;
                k->spec.limits.memory_bytes = args->memory_bytes;
                k->spec.limits.disk_bytes = args->disk_bytes;
                k->spec.limits.pids = m->app->cfg.pids_limit;
                k->spec.limits.nofile = m->app->cfg.nofile_limit;
                r = work_submit(k);
        }
        if (r < 0) {
                free(op);
                sb->create = NULL;
                sb_free(sb);
                store_sandbox_delete(m->app->store, id);
                return r;
        }
        return 0;
}

/* ---- stop and delete ---- */

static void sb_begin_stop(struct sandbox *sb, const char *why)
{
        struct work *k;
        int r;

        sb->state = SB_STOPPING;
        uv_timer_stop(&sb->timer);
        sb->timer_active = false;
        /* Jobs in flight learn that the sandbox is going (their requests get answers). */
        agent_free(sb->agent);
        sb->agent = NULL;
        record_status(sb->mgr, sb->id, "stopping", sb->init_pid, sb->init_starttime, NULL);
        r = work_queue(sb->mgr, W_STOP, sb, &k);
        if (r == 0)
                r = work_submit(k);
        if (r < 0) {
                app_log("sandbox %s: cannot queue stop: %s", sb->id, strerror(-r));
                sb_notify(sb, r, "cannot stop the sandbox");
                sb_free(sb);
        }
        (void)why;
}

static void sb_begin_destroy(struct sandbox *sb)
{
        struct work *k;
        int r;

        sb->state = SB_DELETING;
        uv_timer_stop(&sb->timer);
        agent_free(sb->agent);
        sb->agent = NULL;
        record_status(sb->mgr, sb->id, "deleting", sb->init_pid, sb->init_starttime, NULL);
        r = work_queue(sb->mgr, W_DESTROY, sb, &k);
        if (r == 0)
                r = work_submit(k);
        if (r < 0) {
                sb_notify(sb, r, "cannot delete the sandbox");
                sb_free(sb);
        }
}

static void work_done(uv_work_t *w, int status)
{
        struct work *k = (struct work *)w;
        struct manager *m = k->m;
        struct sandbox *sb = mgr_find(m, k->id);

        if (status == UV_ECANCELED)
                k->r = -ECANCELED;
        switch (k->kind) {
        case W_CREATE:
                if (!sb)
                        break;
                if (sb->create)
                        sb->create->metrics = k->metrics;
                if (k->r < 0) {
                        app_log("sandbox %s: create failed: %s (%s)", sb->id, k->err,
                                strerror(-k->r));
                        create_done(sb, k->r, k->err[0] ? k->err : "sandbox start failed");
                        /* The runtime undid its own work; remove the record too. */
                        store_sandbox_delete(m->app->store, sb->id);
                        sb_free(sb);
                        break;
                }
                sb->init_pid = k->inst.init_pid;
                sb->init_starttime = k->inst.init_starttime;
                sb->ctl_path = strdup(k->inst.ctl_path);
                if (!sb->ctl_path) {
                        create_done(sb, -ENOMEM, "out of memory");
                        sb_begin_stop(sb, "create failed");
                        break;
                }
                sb_agent_start(sb);
                break;
        case W_STOP:
                if (k->r < 0)
                        app_log("sandbox %s: stop: %s (%s)", k->id, k->err, strerror(-k->r));
                record_status(m, k->id, "stopped", 0, 0, NULL);
                app_log("sandbox %s: stopped", k->id);
                if (sb && sb->state == SB_STOPPING) {
                        /* A delete may have queued behind the stop: its waiter stays. */
                        if (sb->delete_after_stop) {
                                sb_begin_destroy(sb);
                                break;
                        }
                        sb_notify(sb, 0, NULL);
                        sb_free(sb);
                }
                break;
        case W_DESTROY:
                if (k->r < 0) {
                        app_log("sandbox %s: delete: %s (%s)", k->id, k->err, strerror(-k->r));
                        record_status(m, k->id, "error", 0, 0, k->err);
                } else {
                        store_sandbox_delete(m->app->store, k->id);
                        app_log("sandbox %s: deleted", k->id);
                }
                if (sb && sb->state == SB_DELETING) {
                        struct waiter *wt = sb->waiters;
                        sb->waiters = NULL;
                        while (wt) {
                                struct waiter *next = wt->next;
                                if (wt->cb)
                                        wt->cb(wt->ud, k->r, k->r < 0 ? k->err : NULL);
                                free(wt);
                                wt = next;
                        }
                        sb_free(sb);
                }
                break;
        }
        free(k);
}

int mgr_stop(struct manager *m, const char *id, mgr_done_cb cb, void *ud)
{
        struct sandbox *sb = mgr_find(m, id);
        int r;

        if (!sb) {
                /* Nothing live: the record may still say otherwise after a crash. */
                struct store_sandbox rec = {};
                r = store_sandbox_get(m->app->store, id, &rec);
                if (r < 0)
                        return r;
                bool stopped = strcmp(rec.status, "stopped") == 0;
                store_sandbox_clear(&rec);
                if (!stopped)
                        record_status(m, id, "stopped", 0, 0, NULL);
                if (cb)
                        cb(ud, 0, NULL);
                return 0;
        }
        switch (sb->state) {
        case SB_CREATING:
        case SB_DELETING:
                return -EBUSY;
        case SB_STOPPING:
                return sb_wait(sb, cb, ud);
        case SB_RUNNING:
                r = sb_wait(sb, cb, ud);
                if (r < 0)
                        return r;
                sb_begin_stop(sb, "request");
                return 0;
        }
        return -EINVAL;
}

int mgr_delete(struct manager *m, const char *id, mgr_done_cb cb, void *ud)
{
        struct sandbox *sb = mgr_find(m, id);
        struct store_sandbox rec = {};
        int r;

        if (sb) {
                switch (sb->state) {
                case SB_CREATING:
                        return -EBUSY;
                case SB_DELETING:
                        return sb_wait(sb, cb, ud);
                case SB_STOPPING:
                        /* Delete once the stop is done (see work_done). Stop waiters are
                         * answered when the delete completes. */
                        r = sb_wait(sb, cb, ud);
                        if (r == 0)
                                sb->delete_after_stop = true;
                        return r;
                case SB_RUNNING:
                        r = sb_wait(sb, cb, ud);
                        if (r < 0)
                                return r;
                        sb_begin_destroy(sb);
                        return 0;
                }
        }
        r = store_sandbox_get(m->app->store, id, &rec);
        if (r < 0)
                return r;
        sb = sb_new(m, id, rec.org_id);
        if (!sb) {
                store_sandbox_clear(&rec);
                return -ENOMEM;
        }
        sb->init_pid = rec.init_pid;
        sb->init_starttime = rec.init_starttime;
        sb->uid_base = rec.uid_base;
        store_sandbox_clear(&rec);
        r = sb_wait(sb, cb, ud);
        if (r < 0) {
                sb_free(sb);
                return r;
        }
        sb_begin_destroy(sb);
        return 0;
}

/* ---- adoption and retention ---- */

struct adopt_row {
        struct adopt_row *next;
        struct store_sandbox rec;
};

static int collect_row(const struct store_sandbox *sb, void *ud)
{
        struct adopt_row **head = ud;
        struct adopt_row *row = calloc(1, sizeof(*row));
        if (!row)
                return -ENOMEM;
        row->rec = *sb;
        row->rec.env_json = sb->env_json ? strdup(sb->env_json) : NULL;
        row->rec.error = NULL;
        row->next = *head;
        *head = row;
        return 0;
}

int mgr_adopt(struct manager *m)
{
        struct adopt_row *rows = NULL;
        int64_t now = util_wall_s();
        int r;

        r = store_sandbox_each_active(m->app->store, collect_row, &rows);
        if (r < 0)
                return r;
        while (rows) {
                struct adopt_row *row = rows;
                struct store_sandbox *rec = &row->rec;
                rows = row->next;

                struct sandbox *sb = sb_new(m, rec->id, rec->org_id);
                if (!sb) {
                        free(rec->env_json);
                        free(row);
                        return -ENOMEM;
                }
                sb->init_pid = rec->init_pid;
                sb->init_starttime = rec->init_starttime;
                sb->uid_base = rec->uid_base;
                sb->expires_at = rec->expires_at;
                json_error_t jerr;
                sb->env = rec->env_json ? json_loads(rec->env_json, 0, &jerr) : NULL;
                if (!sb->env)
                        sb->env = json_object();

                bool alive = rec->init_pid > 0 &&
                             rt_sandbox_alive(rec->init_pid, rec->init_starttime);
                char path[4096 + 128];
                snprintf(path, sizeof(path), "%s/sandboxes/%s/ctl.sock", m->app->cfg.run_dir,
                         rec->id);
                if (strcmp(rec->status, "deleting") == 0) {
                        app_log("sandbox %s: finishing an interrupted delete", rec->id);
                        sb_begin_destroy(sb);
                } else if (strcmp(rec->status, "running") == 0 && alive && rec->expires_at > now) {
                        sb->state = SB_RUNNING;
                        sb->ctl_path = strdup(path);
                        app_log("sandbox %s: adopted (init pid %d)", rec->id, (int)rec->init_pid);
                        sb_agent_start(sb);
                } else {
                        sb->state = SB_RUNNING;
                        app_log("sandbox %s: %s while the daemon was down, stopping", rec->id,
                                !alive ? "gone" : "expired");
                        sb_begin_stop(sb, "adopt");
                }
                free(rec->env_json);
                free(row);
        }
        return 0;
}

static void sweep_fire(uv_timer_t *t)
{
        struct manager *m = t->data;
        struct adopt_row *rows = NULL;

        if (store_sandbox_each_stopped_before(m->app->store,
                                              util_wall_s() - m->app->cfg.retention_s,
                                              collect_row, &rows) < 0)
                return;
        while (rows) {
                struct adopt_row *row = rows;
                rows = row->next;
                if (!mgr_find(m, row->rec.id)) {
                        app_log("sandbox %s: retention period over, removing", row->rec.id);
                        mgr_delete(m, row->rec.id, NULL, NULL);
                }
                free(row->rec.env_json);
                free(row);
        }
}

int mgr_new(struct app *app, struct manager **ret)
{
        struct manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->app = app;
        uv_timer_init(app->loop, &m->sweep);
        m->sweep.data = m;
        uv_timer_start(&m->sweep, sweep_fire, 1000, MGR_SWEEP_MS);
        uv_unref((uv_handle_t *)&m->sweep);
        *ret = m;
        return 0;
}

void mgr_shutdown(struct manager *m)
{
        m->shut = true;
        uv_timer_stop(&m->sweep);
        uv_close((uv_handle_t *)&m->sweep, NULL);
        for (unsigned b = 0; b < MGR_BUCKETS; b++) {
                for (struct sandbox *sb = m->buckets[b]; sb; sb = sb->next) {
                        uv_timer_stop(&sb->timer);
                        agent_free(sb->agent);
                        sb->agent = NULL;
                }
        }
}
