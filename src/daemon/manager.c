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
#include "jobs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "netpolicy.h"
#include "quantity.h"
#include "secrets.h"
#include "store_net.h"
#include "util.h"

#define MGR_BUCKETS 4096
/* Host uid ranges: slot n gets [MGR_UID_FIRST + n * RT_UID_RANGE, +RT_UID_RANGE). Far above
 * the uids of real users and of systemd's dynamic ranges. */
#define MGR_UID_FIRST 1000000000u
#define MGR_UID_SLOTS 45000u
/* How often stopped sandboxes past their retention are looked for. */
#define MGR_SWEEP_MS 60000
#define MGR_MAX_RECONNECTS 10
/* Warm pool: size classes kept at once, the refill tick, how long a class other than the
 * server's defaults stays pooled without demand, and how many pool creates run at once
 * (normally one, two while a class is missing sandboxes that requests asked for). */
#define MGR_POOL_MAX_CLASSES 8
#define MGR_POOL_TICK_MS 1000
#define MGR_POOL_IDLE_S 600
#define MGR_POOL_FILL 1
#define MGR_POOL_FILL_BUSY 2
#define MGR_POOL_BUSY_S 10
/* Disk sizes kept with ready blank images (the default one always). */
#define MGR_DISK_SIZES 8

struct create_op {
        mgr_create_cb cb;
        void *ud;
        struct rt_metrics metrics;
        uint64_t started_ns;
};

/* A warm-pool size class and its ready sandboxes (FIFO: the oldest is handed out first). */
struct pool_class {
        struct manager *m;
        bool in_use;
        bool is_default; /* the server's defaults: always pooled */
        char template[STORE_NAME_MAX];
        uint64_t cpu_millis, memory_bytes, disk_bytes;
        bool egress; /* network egress: an uplink with no policy until handed out */
        unsigned target, ready, creating;
        uint64_t hits, misses;
        int64_t last_used, last_miss;
        struct sandbox *head, *tail;
};

struct work;

/* The policy recorded for a warm-pool egress sandbox until it is handed out: nothing
 * allowed (it has no chain at all, see rt_net_attach). */
static const struct rt_net_policy pool_net_policy;

struct manager {
        struct app *app;
        struct sandbox *buckets[MGR_BUCKETS];
        size_t live;
        uv_timer_t sweep;
        bool shut;
        /* warm pool */
        bool pool_enabled;
        struct pool_class classes[MGR_POOL_MAX_CLASSES];
        unsigned pool_creating;
        uv_timer_t pool_timer;
        uv_timer_t refill_soon; /* a refill on the next loop turn, after the answer */
        bool refill_pending;
        /* teardown queue: at most cfg.teardown_concurrency stops/deletes run at once */
        struct work *tq_head, *tq_tail;
        unsigned td_running, td_queued;
        /* ready blank disks: the sizes in use, one fill on the threadpool at a time */
        uint64_t disk_sizes[MGR_DISK_SIZES];
        int64_t disk_used[MGR_DISK_SIZES];
        unsigned disk_rr;
        bool disk_filling;
        uint32_t net_next; /* where the search for a free uplink address starts */
};

enum work_kind { W_CREATE, W_STOP, W_DESTROY, W_DISK_FILL, W_NET_APPLY };

/* A runtime call on the threadpool. Inputs are copies: the live state may change meanwhile. */
struct work {
        uv_work_t w;
        struct work *next; /* teardown queue */
        struct manager *m;
        enum work_kind kind;
        char id[STORE_ID_MAX];
        char template[STORE_NAME_MAX];
        struct rt_spec spec;
        struct rt_instance inst;
        struct rt_metrics metrics;
        pid_t pid;
        uint64_t starttime;
        uint64_t disk_size;   /* W_DISK_FILL */
        unsigned disk_target; /* W_DISK_FILL */
        unsigned disk_made;   /* W_DISK_FILL */
        uint32_t net_addr;    /* the sandbox's uplink address, 0 for none */
        struct rt_net_policy *net_policy; /* W_CREATE (egress), W_NET_APPLY: owned */
        bool net_pooled;      /* W_CREATE: for the warm pool: an uplink without a policy;
                               * W_NET_APPLY: a pooled one handed out (it has no chain yet) */
        char *net_json;       /* W_NET_APPLY: the policy to store once applied; owned */
        mgr_done_cb net_cb;   /* W_NET_APPLY: the request waiting (NULL: adoption) */
        void *net_ud;
        int r;
        char err[RT_ERR_LEN];
        char net_err[RT_ERR_LEN]; /* W_STOP, W_DESTROY: removing the uplink's rules */
        int net_r;
};

static void sb_agent_start(struct sandbox *sb);
static void sb_begin_stop(struct sandbox *sb, const char *why);
static void sb_begin_destroy(struct sandbox *sb);
static void pool_unlink(struct sandbox *sb);
static void pool_refill(struct manager *m);
static int create_sandbox(struct manager *m, const struct mgr_create_args *args,
                          struct pool_class *pool, mgr_create_cb cb, void *ud);

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
        /* Its processes are gone (or going): so are its background jobs. */
        if (!strcmp(status, "stopping") || !strcmp(status, "stopped") ||
            !strcmp(status, "deleting") || !strcmp(status, "error"))
                jobs_sandbox_ended(m->app, id, strcmp(status, "deleting") == 0 ? "was deleted"
                                                                                  : "stopped");
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
                if (k->r == 0 && k->net_policy) {
                        uint64_t t = util_now_ns();
                        k->r = rt_net_attach(k->id, k->inst.init_pid, k->inst.init_starttime,
                                             k->net_addr, k->net_pooled ? NULL : k->net_policy,
                                             k->err);
                        k->metrics.net_ms = util_ms_since(t);
                        if (k->r < 0) /* undo the create: the runtime left it running */
                                (void)rt_sandbox_destroy(k->id, k->inst.init_pid,
                                                         k->inst.init_starttime, k->net_err);
                }
                break;
        case W_STOP:
                k->r = rt_sandbox_stop(k->id, k->pid, k->starttime, k->err);
                /* After the stop: warren-init is dead, so its namespace and the veth go
                 * in the kernel's own background cleanup; only the rules are ours. */
                if (k->net_addr)
                        k->net_r = rt_net_detach(k->id, k->net_addr, k->net_err);
                break;
        case W_DESTROY:
                k->r = rt_sandbox_destroy(k->id, k->pid, k->starttime, k->err);
                if (k->net_addr)
                        k->net_r = rt_net_detach(k->id, k->net_addr, k->net_err);
                break;
        case W_NET_APPLY:
                k->r = rt_net_apply(k->id, k->pid, k->starttime, k->net_addr, k->net_policy,
                                    !k->net_pooled, k->err);
                break;
        case W_DISK_FILL:
                k->r = rt_disk_pool_fill(k->disk_size, k->disk_target, &k->disk_made, k->err);
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
        k->net_addr = sb->net_addr;
        if (ret)
                *ret = k;
        return 0;
}

/* Free a work item and what it owns. */
static void work_free(struct work *k)
{
        free(k->net_policy);
        free(k->net_json);
        free(k);
}

static int work_submit(struct work *k)
{
        int r = uv_queue_work(k->m->app->loop, &k->w, work_run, work_done);
        if (r < 0)
                work_free(k);
        return r;
}

/* ---- create ---- */

/* Answer the create request (once). */
/* ---- ready blank disks (so a cold create skips mke2fs) ---- */

/* Remember that a disk of this size was asked for (the default size is slot 0, kept). */
static void disk_note_size(struct manager *m, uint64_t size)
{
        int64_t now = util_wall_s();
        unsigned free_slot = MGR_DISK_SIZES, oldest = 1;
        for (unsigned i = 0; i < MGR_DISK_SIZES; i++) {
                if (m->disk_sizes[i] == size) {
                        m->disk_used[i] = now;
                        return;
                }
                if (!m->disk_sizes[i] && free_slot == MGR_DISK_SIZES)
                        free_slot = i;
                if (i > 0 && m->disk_used[i] < m->disk_used[oldest])
                        oldest = i;
        }
        unsigned slot = free_slot < MGR_DISK_SIZES ? free_slot : oldest;
        m->disk_sizes[slot] = size;
        m->disk_used[slot] = now;
}

/* Start one fill on the threadpool for the next size in use, unless one runs already.
 * rt_disk_pool_fill counts what is ready and makes at most a few images per call. */
static void disk_fill_kick(struct manager *m)
{
        if (m->disk_filling || m->shut || m->app->cfg.disk_pool_size <= 0)
                return;
        int64_t now = util_wall_s();
        for (unsigned n = 0; n < MGR_DISK_SIZES; n++) {
                unsigned i = m->disk_rr++ % MGR_DISK_SIZES;
                if (!m->disk_sizes[i])
                        continue;
                if (i > 0 && now - m->disk_used[i] > MGR_POOL_IDLE_S) {
                        m->disk_sizes[i] = 0; /* a size nobody asked for lately */
                        continue;
                }
                struct work *k = calloc(1, sizeof(*k));
                if (!k)
                        return;
                k->m = m;
                k->kind = W_DISK_FILL;
                k->disk_size = m->disk_sizes[i];
                k->disk_target = (unsigned)m->app->cfg.disk_pool_size;
                if (work_submit(k) == 0)
                        m->disk_filling = true;
                return;
        }
}

/* Run a stop or destroy now if fewer than TEARDOWN_CONCURRENCY run, else queue it. */
static int teardown_submit(struct work *k)
{
        struct manager *m = k->m;
        if (m->td_running < (unsigned)m->app->cfg.teardown_concurrency) {
                int r = work_submit(k);
                if (r == 0)
                        m->td_running++;
                return r;
        }
        k->next = NULL;
        if (m->tq_tail)
                m->tq_tail->next = k;
        else
                m->tq_head = k;
        m->tq_tail = k;
        m->td_queued++;
        return 0;
}

/* A teardown finished: start the next queued one. */
static void teardown_next(struct manager *m)
{
        m->td_running--;
        while (m->tq_head && m->td_running < (unsigned)m->app->cfg.teardown_concurrency) {
                struct work *k = m->tq_head;
                m->tq_head = k->next;
                if (!m->tq_head)
                        m->tq_tail = NULL;
                m->td_queued--;
                if (work_submit(k) == 0)
                        m->td_running++;
                else
                        app_log("sandbox %s: cannot queue teardown", k->id);
        }
}

/* SIGKILL warren-init now, on the loop (two syscalls, no waiting): its pid namespace dies
 * with it, so a stop or delete can answer at once while the waiting and cleanup run in the
 * background. The pidfd is checked against the start time, so a reused pid is never hit. */
static void sb_kill_now(struct sandbox *sb)
{
        if (sb->init_pid <= 0)
                return;
        int fd = (int)syscall(SYS_pidfd_open, sb->init_pid, 0);
        if (fd < 0)
                return;
        if (util_proc_starttime(sb->init_pid) == sb->init_starttime)
                syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
        close(fd);
}

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
        if (sb->state != SB_RUNNING)
                return;
        if (util_wall_s() < sb->expires_at) {
                /* Clock moved: wait the rest. */
                uv_timer_start(&sb->timer, expiry_fire,
                               (uint64_t)(sb->expires_at - util_wall_s()) * 1000, 0);
                return;
        }
        sb_begin_stop(sb, "timeout reached");
}

static void expiry_arm(struct sandbox *sb)
{
        int64_t left = sb->expires_at - util_wall_s();
        uv_timer_stop(&sb->timer);
        uv_timer_start(&sb->timer, expiry_fire, left > 0 ? (uint64_t)left * 1000 : 0, 0);
}

static void reconnect_fire(uv_timer_t *t)
{
        struct sandbox *sb = t->data;
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
                        if (sb->pool) {
                                /* Ready for the pool: no expiry until it is handed out. */
                                struct pool_class *pc = sb->pool;
                                record_status(sb->mgr, sb->id, "pooled", sb->init_pid,
                                              sb->init_starttime, NULL);
                                sb->pool_ready = true;
                                sb->pool_next = NULL;
                                if (pc->tail)
                                        pc->tail->pool_next = sb;
                                else
                                        pc->head = sb;
                                pc->tail = sb;
                                pc->ready++;
                        } else {
                                record_status(sb->mgr, sb->id, "running", sb->init_pid,
                                              sb->init_starttime, NULL);
                                expiry_arm(sb);
                                app_log("sandbox %s: running (org %s, init pid %d)", sb->id,
                                        sb->org_id, (int)sb->init_pid);
                        }
                        create_done(sb, 0, NULL);
                } else if (sb->state == SB_RUNNING && !sb->pool) {
                        expiry_arm(sb);
                        /* Reconnected (or adopted after a restart): take its jobs back. */
                        jobs_agent_ready(sb->mgr->app, sb);
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
        if (sb->pool) {
                /* A pooled sandbox that does not answer is not worth saving. */
                sb_begin_destroy(sb);
                return;
        }
        if (!rt_sandbox_alive(sb->init_pid, sb->init_starttime) ||
            ++sb->reconnects > MGR_MAX_RECONNECTS) {
                sb_begin_stop(sb, "its agent is gone");
                return;
        }
        uv_timer_stop(&sb->timer);
        uv_timer_start(&sb->timer, reconnect_fire, 200, 0);
}

static void on_agent_closed(struct agent *a, void *ud)
{
        struct sandbox *sb = ud;
        agent_free(sb->agent);
        sb->agent = NULL;
        if (sb->state != SB_RUNNING)
                return;
        if (!rt_sandbox_alive(sb->init_pid, sb->init_starttime)) {
                sb_begin_stop(sb, "warren-init exited");
                return;
        }
        /* The socket broke but init lives: reconnect (expiry is re-armed on success). */
        uv_timer_stop(&sb->timer);
        uv_timer_start(&sb->timer, reconnect_fire, 100, 0);
}

/* Give sandbox id (its record just inserted) an uplink address and record it with policy.
 * Addresses are handed out round-robin from net_next, so a released one (whose flows may
 * linger in conntrack) is reused as late as possible. */
static int net_record(struct manager *m, const char *id, const struct rt_net_policy *policy,
                      uint32_t *ret_addr)
{
        uint32_t first, last, addr;
        int r;

        rt_net_addr_range(&first, &last);
        r = store_net_addr_free(m->app->store, first, last, m->net_next, &addr);
        if (r < 0)
                return r;
        json_t *pj = netpolicy_to_json(policy);
        char *text = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
        json_decref(pj);
        if (!text)
                return -ENOMEM;
        r = store_net_insert(m->app->store, id, "egress", addr, text);
        free(text);
        if (r < 0)
                return r;
        m->net_next = addr + 1;
        *ret_addr = addr;
        return 0;
}

int mgr_create(struct manager *m, const struct mgr_create_args *args, mgr_create_cb cb, void *ud)
{
        return create_sandbox(m, args, NULL, cb, ud);
}

/* Create a sandbox for a tenant (pool NULL) or for the warm pool. */
static int create_sandbox(struct manager *m, const struct mgr_create_args *args,
                          struct pool_class *pool, mgr_create_cb cb, void *ud)
{
        struct store_sandbox rec = {};
        struct work *k;
        int64_t active;
        uint32_t slot;
        char id[STORE_ID_MAX];
        uint8_t rnd[6];
        int r;

        if (!pool) {
                r = store_sandbox_count_active(m->app->store, args->org_id, &active);
                if (r < 0)
                        return r;
                if (active >= m->app->cfg.max_sandboxes_per_org)
                        return -EUSERS;
        }
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
        /* Which secrets its commands get, recorded before anything can run in it. Pooled
         * sandboxes get none until handed out (mgr_pool_take). */
        if (!pool) {
                r = secrets_bind_sandbox(m->app, id, args->secrets);
                if (r < 0) {
                        store_sandbox_delete(m->app->store, id);
                        return r;
                }
        }
        uint32_t net_addr = 0;
        if (args->net_policy) {
                r = net_record(m, id, args->net_policy, &net_addr);
                if (r < 0) {
                        store_sandbox_delete(m->app->store, id);
                        return r;
                }
        }

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
        sb->pool = pool;
        sb->net_addr = net_addr;
        sb->uid_base = rec.uid_base;
        sb->expires_at = rec.expires_at;
        sb->env = args->env ? json_incref(args->env) : json_object();
        op->cb = cb;
        op->ud = ud;
        op->started_ns = util_now_ns();
        sb->create = op;

        disk_note_size(m, args->disk_bytes);
        r = work_queue(m, W_CREATE, sb, &k);
        if (r == 0) {
                snprintf(k->template, sizeof(k->template), "%s", args->template);
                k->spec.uid_base = rec.uid_base;
                k->spec.limits.cpu_millis = args->cpu_millis;
                k->spec.limits.memory_bytes = args->memory_bytes;
                k->spec.limits.disk_bytes = args->disk_bytes;
                k->spec.limits.pids = m->app->cfg.pids_limit;
                k->spec.limits.nofile = m->app->cfg.nofile_limit;
                if (args->net_policy) {
                        k->net_pooled = pool != NULL;
                        k->net_policy = malloc(sizeof(*k->net_policy));
                        if (k->net_policy)
                                *k->net_policy = *args->net_policy;
                        else
                                r = -ENOMEM;
                }
                if (r == 0)
                        r = work_submit(k);
                else
                        work_free(k);
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

        if (sb->pool) {
                /* Pooled sandboxes belong to nobody: nothing to keep, delete instead. */
                sb_begin_destroy(sb);
                return;
        }
        sb->state = SB_STOPPING;
        uv_timer_stop(&sb->timer);
        app_log("sandbox %s: stopping (%s)", sb->id, why);
        /* Jobs in flight learn that the sandbox is going (their requests get answers). */
        agent_free(sb->agent);
        sb->agent = NULL;
        record_status(sb->mgr, sb->id, "stopping", sb->init_pid, sb->init_starttime, NULL);
        r = work_queue(sb->mgr, W_STOP, sb, &k);
        if (r == 0)
                r = teardown_submit(k);
        if (r < 0) {
                app_log("sandbox %s: cannot queue stop: %s", sb->id, strerror(-r));
                sb_free(sb);
        }
}

static void sb_begin_destroy(struct sandbox *sb)
{
        struct work *k;
        int r;

        pool_unlink(sb);
        sb->state = SB_DELETING;
        uv_timer_stop(&sb->timer);
        agent_free(sb->agent);
        sb->agent = NULL;
        record_status(sb->mgr, sb->id, "deleting", sb->init_pid, sb->init_starttime, NULL);
        r = work_queue(sb->mgr, W_DESTROY, sb, &k);
        if (r == 0)
                r = teardown_submit(k);
        if (r < 0) {
                app_log("sandbox %s: cannot queue delete: %s", sb->id, strerror(-r));
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
        case W_DISK_FILL:
                m->disk_filling = false;
                if (k->r < 0)
                        app_log("disk pool: %s (%s)", k->err, strerror(-k->r));
                else if (k->disk_made > 0)
                        disk_fill_kick(m); /* more may be missing; the tick covers the rest */
                break;
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
                if (!k->metrics.disk_pooled)
                        disk_fill_kick(m); /* that create paid for mke2fs: make spares */
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
                teardown_next(m);
                if (k->r < 0)
                        app_log("sandbox %s: stop: %s (%s)", k->id, k->err, strerror(-k->r));
                if (k->net_addr) {
                        if (k->net_r < 0)
                                app_log("sandbox %s: removing its uplink rules: %s", k->id,
                                        k->net_err);
                        /* Stopped: the address may go to another sandbox. */
                        store_net_set_addr(m->app->store, k->id, 0);
                        if (sb)
                                sb->net_addr = 0;
                }
                record_status(m, k->id, "stopped", 0, 0, NULL);
                app_log("sandbox %s: stopped", k->id);
                if (sb && sb->state == SB_STOPPING) {
                        /* A delete may have arrived during the stop. */
                        if (sb->delete_after_stop) {
                                sb_begin_destroy(sb);
                                break;
                        }
                        sb_free(sb);
                }
                break;
        case W_DESTROY:
                teardown_next(m);
                if (k->net_addr && k->net_r < 0)
                        app_log("sandbox %s: removing its uplink rules: %s", k->id, k->net_err);
                if (k->r < 0) {
                        app_log("sandbox %s: delete: %s (%s)", k->id, k->err, strerror(-k->r));
                        record_status(m, k->id, "error", 0, 0, k->err);
                } else {
                        store_sandbox_delete(m->app->store, k->id);
                        app_log("sandbox %s: deleted", k->id);
                }
                if (sb && sb->state == SB_DELETING)
                        sb_free(sb);
                pool_refill(m); /* a uid slot or idle memory may have come free */
                break;
        case W_NET_APPLY:
                if (sb)
                        sb->net_busy = false;
                if (k->r < 0) {
                        app_log("sandbox %s: network policy: %s (%s)", k->id, k->err,
                                strerror(-k->r));
                } else if (k->net_json) {
                        int r = store_net_set_policy(m->app->store, k->id, k->net_json);
                        if (r < 0) {
                                app_log("sandbox %s: storing its network policy: %s", k->id,
                                        strerror(-r));
                                k->r = r;
                                snprintf(k->err, sizeof(k->err), "storing the policy failed");
                        }
                }
                if (k->net_cb)
                        k->net_cb(k->net_ud, k->r, k->r < 0 ? k->err : NULL);
                break;
        }
        work_free(k);
}

/* mgr_net_set; pooled: the sandbox was just handed out by the warm pool (no chain yet). */
static int net_set(struct manager *m, const char *id, const struct rt_net_policy *policy,
                   bool pooled, mgr_done_cb cb, void *ud)
{
        struct sandbox *sb = mgr_find(m, id);
        struct work *k;
        int r;

        if (!sb || sb->state != SB_RUNNING || sb->pool)
                return -ESRCH;
        if (!sb->net_addr)
                return -EOPNOTSUPP;
        if (sb->net_busy)
                return -EBUSY;
        json_t *pj = netpolicy_to_json(policy);
        char *text = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
        json_decref(pj);
        r = text ? work_queue(m, W_NET_APPLY, sb, &k) : -ENOMEM;
        if (r < 0) {
                free(text);
                return r;
        }
        k->net_json = text;
        k->net_pooled = pooled;
        k->net_cb = cb;
        k->net_ud = ud;
        k->net_policy = malloc(sizeof(*k->net_policy));
        if (!k->net_policy) {
                work_free(k);
                return -ENOMEM;
        }
        *k->net_policy = *policy;
        r = work_submit(k);
        if (r < 0)
                return r;
        sb->net_busy = true;
        return 0;
}

int mgr_net_set(struct manager *m, const char *id, const struct rt_net_policy *policy,
                mgr_done_cb cb, void *ud)
{
        return net_set(m, id, policy, false, cb, ud);
}

/* After a restart: write the adopted sandbox's rules again from its stored policy (they
 * survive a daemon restart in the kernel, but not a flushed ruleset). */
static void net_resync(struct manager *m, struct sandbox *sb, const char *policy_json)
{
        char err[NETPOLICY_ERR_LEN];
        json_error_t jerr;
        struct work *k;

        json_t *pj = json_loads(policy_json, 0, &jerr);
        struct rt_net_policy *p = malloc(sizeof(*p));
        int r = pj && p ? netpolicy_from_json(pj, NULL, p, err, sizeof(err)) : -EINVAL;
        json_decref(pj);
        if (r == 0)
                r = work_queue(m, W_NET_APPLY, sb, &k);
        if (r < 0) {
                free(p);
                app_log("sandbox %s: cannot restore its network policy: %s", sb->id,
                        strerror(-r));
                return;
        }
        k->net_policy = p;
        if (work_submit(k) == 0)
                sb->net_busy = true;
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
                return -EBUSY;
        case SB_DELETING:
                return -ENOENT;
        case SB_STOPPING:
                break;
        case SB_RUNNING:
                /* Every process dies now; waiting for the cgroup to empty and the cleanup run
                 * in the background (bounded by TEARDOWN_CONCURRENCY). */
                sb_kill_now(sb);
                sb_begin_stop(sb, "requested");
                break;
        }
        if (cb)
                cb(ud, 0, NULL);
        return 0;
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
                        break;
                case SB_STOPPING:
                        /* Destroy once the stop is done (see work_done); hidden from now. */
                        sb->delete_after_stop = true;
                        record_status(m, id, "deleting", sb->init_pid, sb->init_starttime, NULL);
                        break;
                case SB_RUNNING:
                        sb_kill_now(sb);
                        sb_begin_destroy(sb);
                        break;
                }
                if (cb)
                        cb(ud, 0, NULL);
                return 0;
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
        struct store_net net = { 0 };
        if (store_net_get(m->app->store, id, &net) == 0) /* rules a failed stop left */
                sb->net_addr = net.addr;
        store_net_clear(&net);
        sb_begin_destroy(sb);
        if (cb)
                cb(ud, 0, NULL);
        return 0;
}

/* ---- warm pool ---- */

static struct pool_class *class_find(struct manager *m, const char *template, uint64_t cpu,
                                     uint64_t mem, uint64_t disk, bool egress)
{
        for (unsigned i = 0; i < MGR_POOL_MAX_CLASSES; i++) {
                struct pool_class *pc = &m->classes[i];
                if (pc->in_use && pc->cpu_millis == cpu && pc->memory_bytes == mem &&
                    pc->disk_bytes == disk && pc->egress == egress &&
                    strcmp(pc->template, template) == 0)
                        return pc;
        }
        return NULL;
}

/* Register a class (NULL when all slots are taken). */
static struct pool_class *class_add(struct manager *m, const char *template, uint64_t cpu,
                                    uint64_t mem, uint64_t disk, bool is_default, bool egress)
{
        for (unsigned i = 0; i < MGR_POOL_MAX_CLASSES; i++) {
                struct pool_class *pc = &m->classes[i];
                if (pc->in_use)
                        continue;
                memset(pc, 0, sizeof(*pc));
                pc->m = m;
                pc->in_use = true;
                pc->is_default = is_default;
                snprintf(pc->template, sizeof(pc->template), "%s", template);
                pc->cpu_millis = cpu;
                pc->memory_bytes = mem;
                pc->disk_bytes = disk;
                pc->egress = egress;
                pc->target = (unsigned)m->app->cfg.warm_pool_size;
                pc->last_used = util_wall_s();
                return pc;
        }
        return NULL;
}

/* Take sb out of its class (ready list and pointer). */
static void pool_unlink(struct sandbox *sb)
{
        struct pool_class *pc = sb->pool;
        if (!pc)
                return;
        if (sb->pool_ready) {
                struct sandbox *prev = NULL;
                for (struct sandbox *x = pc->head; x; prev = x, x = x->pool_next) {
                        if (x != sb)
                                continue;
                        if (prev)
                                prev->pool_next = x->pool_next;
                        else
                                pc->head = x->pool_next;
                        if (pc->tail == x)
                                pc->tail = prev;
                        break;
                }
                pc->ready--;
                sb->pool_ready = false;
        }
        sb->pool_next = NULL;
        sb->pool = NULL;
}

static void pool_created(void *ud, int err, const char *msg, const char *sb_id,
                         const struct rt_metrics *metrics)
{
        struct pool_class *pc = ud;
        pc->creating--;
        pc->m->pool_creating--;
        if (err < 0)
                app_log("warm pool: a create failed: %s", msg ? msg : strerror(-err));
        else
                pool_refill(pc->m);
}

/* Memory the idle pool uses now, from its sandboxes' cgroups (kernel counters). */
static uint64_t pool_idle_memory(struct manager *m)
{
        uint64_t sum = 0;
        for (unsigned i = 0; i < MGR_POOL_MAX_CLASSES; i++) {
                for (struct sandbox *sb = m->classes[i].head; sb; sb = sb->pool_next) {
                        uint64_t mem = 0, pids;
                        if (rt_sandbox_usage(sb->id, &mem, &pids) == 0)
                                sum += mem;
                }
        }
        return sum;
}

/* Start pool creates where classes are short, within the fill concurrency and the idle
 * memory cap. Cheap to call often. */
static void pool_refill(struct manager *m)
{
        if (!m->pool_enabled || m->shut)
                return;
        int64_t now = util_wall_s();
        unsigned limit = MGR_POOL_FILL;
        for (unsigned i = 0; i < MGR_POOL_MAX_CLASSES; i++)
                if (m->classes[i].in_use && now - m->classes[i].last_miss < MGR_POOL_BUSY_S)
                        limit = MGR_POOL_FILL_BUSY;
        if (m->pool_creating >= limit)
                return;
        if (pool_idle_memory(m) >= m->app->cfg.warm_pool_max_idle_memory)
                return;
        for (unsigned i = 0; i < MGR_POOL_MAX_CLASSES && m->pool_creating < limit; i++) {
                struct pool_class *pc = &m->classes[i];
                while (pc->in_use && pc->ready + pc->creating < pc->target &&
                       m->pool_creating < limit) {
                        struct mgr_create_args a = {
                                .org_id = MGR_POOL_ORG,
                                .cpu_millis = pc->cpu_millis,
                                .memory_bytes = pc->memory_bytes,
                                .disk_bytes = pc->disk_bytes,
                                .timeout_s = 0,
                                .template = pc->template,
                                .isolation = "container",
                                .net_policy = pc->egress ? &pool_net_policy : NULL,
                        };
                        pc->creating++;
                        m->pool_creating++;
                        int r = create_sandbox(m, &a, pc, pool_created, pc);
                        if (r < 0) {
                                pc->creating--;
                                m->pool_creating--;
                                if (r != -ENOSPC)
                                        app_log("warm pool: cannot start a create: %s",
                                                strerror(-r));
                                return;
                        }
                }
        }
}

static void refill_soon_fire(uv_timer_t *t)
{
        struct manager *m = t->data;
        m->refill_pending = false;
        pool_refill(m);
}

/* Refill after the current request is answered: a refill starts creates (a uid-slot query,
 * a store insert) and reads the pool's cgroups, none of which a hand-out should wait for. */
static void pool_refill_soon(struct manager *m)
{
        if (m->refill_pending || m->shut)
                return;
        m->refill_pending = true;
        uv_timer_start(&m->refill_soon, refill_soon_fire, 0, 0);
}

/* Every tick: shrink classes nobody asked for lately, then refill. */
static void pool_tick(uv_timer_t *t)
{
        struct manager *m = t->data;
        int64_t now = util_wall_s();
        for (unsigned i = 0; i < MGR_POOL_MAX_CLASSES; i++) {
                struct pool_class *pc = &m->classes[i];
                if (!pc->in_use)
                        continue;
                if (!pc->is_default && now - pc->last_used >= MGR_POOL_IDLE_S) {
                        pc->target = 0;
                        if (pc->creating == 0 && pc->ready == 0)
                                pc->in_use = false;
                }
                /* Above target (a shrunk class, or a restart with a smaller pool): the
                 * oldest ready ones go. */
                while (pc->ready > pc->target && pc->head)
                        sb_begin_destroy(pc->head);
        }
        pool_refill(m);
        disk_fill_kick(m);
}

/* Take a ready sandbox of the class of args (network by args->net_policy) and assign it to
 * args->org_id (record, env, expiry). -ENOENT on a miss (the class is registered). */
static int pool_take(struct manager *m, const struct mgr_create_args *args,
                     struct sandbox **ret_sb)
{
        bool egress = args->net_policy != NULL;
        if (!m->pool_enabled)
                return -ENOENT;
        struct pool_class *pc = class_find(m, args->template, args->cpu_millis,
                                           args->memory_bytes, args->disk_bytes, egress);
        int64_t now = util_wall_s();
        if (!pc) {
                pc = class_add(m, args->template, args->cpu_millis, args->memory_bytes,
                               args->disk_bytes, false, egress);
                if (pc) {
                        pc->misses++;
                        pc->last_miss = now;
                        pool_refill_soon(m);
                }
                return -ENOENT;
        }
        pc->last_used = now;
        while (pc->head) {
                struct sandbox *sb = pc->head;
                pool_unlink(sb);
                if (!agent_ready(sb->agent) ||
                    !rt_sandbox_alive(sb->init_pid, sb->init_starttime)) {
                        sb_begin_destroy(sb);
                        continue;
                }
                /* Hand it over: the record becomes the tenant's. */
                struct store_sandbox rec = {};
                snprintf(rec.id, sizeof(rec.id), "%s", sb->id);
                snprintf(rec.org_id, sizeof(rec.org_id), "%s", args->org_id);
                snprintf(rec.status, sizeof(rec.status), "running");
                rec.created_at = now;
                rec.expires_at = now + args->timeout_s;
                rec.timeout_s = args->timeout_s;
                rec.env_json = args->env ? json_dumps(args->env, JSON_COMPACT) : NULL;
                int r = store_sandbox_assign(m->app->store, &rec);
                free(rec.env_json);
                if (r == 0)
                        r = secrets_bind_sandbox(m->app, sb->id, args->secrets);
                if (r < 0) {
                        app_log("warm pool: cannot assign %s: %s", sb->id, strerror(-r));
                        sb_begin_destroy(sb);
                        continue;
                }
                snprintf(sb->org_id, sizeof(sb->org_id), "%s", args->org_id);
                json_decref(sb->env);
                sb->env = args->env ? json_incref(args->env) : json_object();
                sb->expires_at = rec.expires_at;
                expiry_arm(sb);
                pc->hits++;
                app_log("sandbox %s: handed out by the warm pool (org %s)", sb->id, sb->org_id);
                /* An egress hand-out still has its policy to write: the refill (a create,
                 * CPU-bound) waits until that is done (take_applied), not to slow it. */
                if (!egress)
                        pool_refill_soon(m);
                *ret_sb = sb;
                return 0;
        }
        pc->misses++;
        pc->last_miss = now;
        pool_refill_soon(m);
        return -ENOENT;
}

int mgr_pool_take(struct manager *m, const struct mgr_create_args *args, char *ret_id,
                  size_t id_len)
{
        struct sandbox *sb;

        /* An egress sandbox needs its policy written first: mgr_pool_take_egress. */
        if (args->net_policy || pool_take(m, args, &sb) < 0)
                return -ENOENT;
        snprintf(ret_id, id_len, "%s", sb->id);
        return 0;
}

/* A pooled egress sandbox being handed out: its policy is being written. */
struct take_op {
        struct manager *m;
        mgr_create_cb cb;
        void *ud;
        char id[STORE_ID_MAX];
        uint64_t started_ns;
};

static void take_applied(void *ud, int err, const char *msg)
{
        struct take_op *op = ud;
        struct rt_metrics metrics = { .total_ms = util_ms_since(op->started_ns) };

        if (err < 0) {
                /* Assigned but without its policy (so it forwards nothing), and the tenant
                 * never learned its id: not worth keeping. */
                struct sandbox *sb = mgr_find(op->m, op->id);
                if (sb && sb->state == SB_RUNNING)
                        sb_begin_destroy(sb);
        }
        op->cb(op->ud, err, msg, op->id, &metrics);
        pool_refill_soon(op->m);
        free(op);
}

int mgr_pool_take_egress(struct manager *m, const struct mgr_create_args *args,
                         mgr_create_cb cb, void *ud)
{
        struct sandbox *sb;
        int r;

        if (!args->net_policy || pool_take(m, args, &sb) < 0)
                return -ENOENT;
        struct take_op *op = calloc(1, sizeof(*op));
        if (!op) {
                sb_begin_stop(sb, "out of memory");
                return -ENOMEM;
        }
        op->m = m;
        op->cb = cb;
        op->ud = ud;
        op->started_ns = util_now_ns();
        snprintf(op->id, sizeof(op->id), "%s", sb->id);
        /* The pooled sandbox has an uplink but no chain (nothing forwarded): writing the
         * tenant's chain adds objects only, no removal, so no RCU wait (0.3 ms measured). */
        r = net_set(m, sb->id, args->net_policy, true, take_applied, op);
        if (r < 0) {
                free(op);
                sb_begin_stop(sb, "its network policy could not be queued");
                return r;
        }
        return 0;
}

json_t *mgr_pool_json(struct manager *m)
{
        json_t *arr = json_array();
        for (unsigned i = 0; i < MGR_POOL_MAX_CLASSES; i++) {
                struct pool_class *pc = &m->classes[i];
                char cpus[32], mem[32], disk[32];
                if (!pc->in_use)
                        continue;
                qty_format_cpus(pc->cpu_millis, cpus, sizeof(cpus));
                qty_format_bytes(pc->memory_bytes, mem, sizeof(mem));
                qty_format_bytes(pc->disk_bytes, disk, sizeof(disk));
                json_array_append_new(
                        arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:I}",
                                       "template", pc->template, "cpus", cpus, "memory", mem,
                                       "disk", disk, "network", pc->egress ? "egress" : "none",
                                       "ready", (int)pc->ready,
                                       "creating", (int)pc->creating, "target", (int)pc->target,
                                       "hits", (json_int_t)pc->hits, "misses",
                                       (json_int_t)pc->misses));
        }
        return json_pack("{s:b, s:o, s:I, s:{s:i, s:i, s:i}}", "enabled", m->pool_enabled,
                         "classes", arr, "idle_memory_bytes",
                         (json_int_t)pool_idle_memory(m), "teardown", "queued",
                         (int)m->td_queued, "running", (int)m->td_running, "concurrency",
                         (int)m->app->cfg.teardown_concurrency);
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
                struct store_net net = { 0 };
                if (store_net_get(m->app->store, rec->id, &net) == 0)
                        sb->net_addr = net.addr;
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
                } else if (strcmp(rec->org_id, MGR_POOL_ORG) == 0) {
                        /* A warm-pool sandbox: back into its class if the pool is on and it
                         * is alive and was ready (it joins the ready list on HELLO, as a new
                         * one would); otherwise it goes. */
                        struct pool_class *pc = NULL;
                        if (m->pool_enabled && alive && !strcmp(rec->status, "pooled") &&
                            (!sb->net_addr || m->app->cfg.network_egress)) {
                                pc = class_find(m, rec->template, (uint64_t)rec->cpu_millis,
                                                (uint64_t)rec->memory_bytes,
                                                (uint64_t)rec->disk_bytes, sb->net_addr != 0);
                                if (!pc)
                                        pc = class_add(m, rec->template,
                                                       (uint64_t)rec->cpu_millis,
                                                       (uint64_t)rec->memory_bytes,
                                                       (uint64_t)rec->disk_bytes, false,
                                                       sb->net_addr != 0);
                        }
                        struct create_op *op = pc ? calloc(1, sizeof(*op)) : NULL;
                        if (op) {
                                /* Counted as "creating" until its HELLO, exactly like a new
                                 * pool sandbox (pool_created settles it either way), so the
                                 * refill does not make a replacement meanwhile. */
                                op->cb = pool_created;
                                op->ud = pc;
                                op->started_ns = util_now_ns();
                                sb->create = op;
                                pc->creating++;
                                m->pool_creating++;
                                sb->state = SB_CREATING;
                                sb->pool = pc;
                                sb->ctl_path = strdup(path);
                                app_log("sandbox %s: adopted into the warm pool", rec->id);
                                sb_agent_start(sb);
                        } else {
                                app_log("sandbox %s: warm-pool sandbox %s, removing", rec->id,
                                        m->pool_enabled ? "gone" : "not needed (pool off)");
                                sb_begin_destroy(sb);
                        }
                } else if (strcmp(rec->status, "running") == 0 && alive && rec->expires_at > now) {
                        sb->state = SB_RUNNING;
                        sb->ctl_path = strdup(path);
                        app_log("sandbox %s: adopted (init pid %d)", rec->id, (int)rec->init_pid);
                        if (sb->net_addr && net.policy_json)
                                net_resync(m, sb, net.policy_json);
                        sb_agent_start(sb);
                } else {
                        sb->state = SB_RUNNING;
                        sb_begin_stop(sb, !alive ? "gone while the daemon was down"
                                                 : "expired while the daemon was down");
                }
                store_net_clear(&net);
                free(rec->env_json);
                free(row);
        }
        pool_refill(m);
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
        uv_timer_init(app->loop, &m->pool_timer);
        m->pool_timer.data = m;
        uv_timer_init(app->loop, &m->refill_soon);
        m->refill_soon.data = m;
        m->pool_enabled = app->cfg.warm_pool_enabled && app->cfg.warm_pool_size > 0;
        if (m->pool_enabled) /* the server's defaults always; other classes on demand */
                class_add(m, "base", app->cfg.default_cpu_millis, app->cfg.default_memory,
                          app->cfg.default_disk, true, false);
        m->disk_sizes[0] = app->cfg.default_disk;
        m->disk_used[0] = util_wall_s();
        /* One tick for the warm pool and the ready disks. */
        uv_timer_start(&m->pool_timer, pool_tick, MGR_POOL_TICK_MS, MGR_POOL_TICK_MS);
        uv_unref((uv_handle_t *)&m->pool_timer);
        *ret = m;
        return 0;
}

void mgr_foreach(struct manager *m, void (*fn)(struct sandbox *sb, void *ud), void *ud)
{
        for (unsigned b = 0; b < MGR_BUCKETS; b++)
                for (struct sandbox *sb = m->buckets[b]; sb; sb = sb->next)
                        fn(sb, ud);
}

void mgr_shutdown(struct manager *m)
{
        m->shut = true;
        uv_timer_stop(&m->sweep);
        uv_close((uv_handle_t *)&m->sweep, NULL);
        uv_timer_stop(&m->pool_timer);
        uv_close((uv_handle_t *)&m->pool_timer, NULL);
        uv_timer_stop(&m->refill_soon);
        uv_close((uv_handle_t *)&m->refill_soon, NULL);
        for (unsigned b = 0; b < MGR_BUCKETS; b++) {
                for (struct sandbox *sb = m->buckets[b]; sb; sb = sb->next) {
                        uv_timer_stop(&sb->timer);
                        agent_free(sb->agent);
                        sb->agent = NULL;
                }
        }
}
