/* manager.h - the sandbox manager: lifecycle state machine, timers, quotas, adoption.
 *
 * The store holds every sandbox's record; the manager holds the live state of the sandboxes
 * that have (or are getting, or are losing) processes: the agent connection, the expiry
 * timer, and which lifecycle operation is under way. Runtime calls (which block) run on the
 * libuv threadpool; their results come back to the loop.
 */
#ifndef WARREN_MANAGER_H
#define WARREN_MANAGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "app.h"
#include "net.h"
#include "runtime.h"

enum sb_state {
        SB_CREATING,
        SB_RUNNING,
        SB_STOPPING,
        SB_DELETING,
};

/* Live state of one sandbox. */
struct sandbox {
        struct sandbox *next; /* hash chain */
        struct manager *mgr;
        char id[STORE_ID_MAX];
        char org_id[STORE_ID_MAX];
        enum sb_state state;
        pid_t init_pid;
        uint64_t init_starttime;
        uint32_t uid_base;
        int64_t expires_at;
        json_t *env; /* the sandbox's env (object), applied to every command */
        struct agent *agent;
        char *ctl_path;
        uv_timer_t timer;   /* expiry, or agent reconnect */
        int reconnects;     /* consecutive failed agent connections */
        struct create_op *create; /* the create request, while CREATING */
        bool delete_after_stop;   /* a delete arrived while STOPPING */
        struct pool_class *pool;  /* the warm-pool class it is made for or waits in; NULL
                                   * once handed out (or never pooled) */
        bool pool_ready;          /* in pool->ready: running, never used, waiting */
        struct sandbox *pool_next;
        uint32_t net_addr;        /* uplink address (host byte order); 0: network none */
        bool net_busy;            /* a policy change is being applied */
};

/* The organisation that owns warm-pool sandboxes until they are handed out. It has no keys,
 * so no request can reach a pooled sandbox. */
#define MGR_POOL_ORG "org_pool"

/* Completion of a lifecycle operation: err 0 or negative errno, msg a cause or NULL. */
typedef void (*mgr_done_cb)(void *ud, int err, const char *msg);

struct mgr_create_args {
        const char *org_id;
        uint64_t cpu_millis, memory_bytes, disk_bytes;
        int64_t timeout_s;
        json_t *env; /* borrowed; the manager takes its own reference */
        json_t *secrets; /* borrowed: names of the org's secrets its commands get (an array),
                          * or NULL for all of them (secrets.h) */
        const char *template;
        const char *isolation;
        const struct rt_net_policy *net_policy; /* network egress with this policy (copied);
                                                 * NULL: network none */
};

/* Create callback: on success sb_id names the new sandbox and metrics are filled. */
typedef void (*mgr_create_cb)(void *ud, int err, const char *msg, const char *sb_id,
                              const struct rt_metrics *metrics);

int mgr_new(struct app *app, struct manager **ret);
/* Re-adopt sandboxes recorded as running (after a restart); stop the dead and expired ones. */
int mgr_adopt(struct manager *m);
/* Close every agent connection and timer; sandboxes keep running. */
void mgr_shutdown(struct manager *m);

/* Live state of a sandbox, or NULL if it has no processes and no operation under way. */
struct sandbox *mgr_find(struct manager *m, const char *id);

/* Start creating a sandbox. Errors before any work starts are returned directly (then cb is
 * never called): -EUSERS quota, -ENOSPC no uid range left. */
int mgr_create(struct manager *m, const struct mgr_create_args *args, mgr_create_cb cb, void *ud);
/* Stop a sandbox: warren-init is SIGKILLed at once (its pid namespace dies with it) and cb
 * runs before returning; waiting for the cgroup to empty runs in the background. The record
 * is kept as "stopped". Fine if already stopped. -EBUSY while it is being created, -ENOENT
 * while it is being deleted. */
int mgr_stop(struct manager *m, const char *id, mgr_done_cb cb, void *ud);
/* Delete: like stop, then cgroups, disk and record are removed in the background (the record
 * is hidden from the API at once, as "deleting"; a crash midway is finished on start). cb
 * runs before returning. */
int mgr_delete(struct manager *m, const char *id, mgr_done_cb cb, void *ud);

/* Replace the egress policy of a running sandbox: applied on the threadpool (one nftables
 * transaction), then stored; cb reports the outcome. Errors before any work: -ESRCH not
 * running, -EOPNOTSUPP it has network none, -EBUSY another change is under way. */
int mgr_net_set(struct manager *m, const char *id, const struct rt_net_policy *policy,
                mgr_done_cb cb, void *ud);

/* Call fn for every live sandbox (fn must not add or free sandboxes). */
void mgr_foreach(struct manager *m, void (*fn)(struct sandbox *sb, void *ud), void *ud);

/* Number of live sandboxes. */
size_t mgr_live_count(const struct manager *m);

/* Warm pool: hand a ready sandbox of the class of args to args->org_id, or -ENOENT (a miss:
 * the caller takes the cold path; the class is registered for pooling). On success *ret_id
 * names the sandbox, already running and assigned (org, env, timeout). Quota is the
 * caller's to check. */
int mgr_pool_take(struct manager *m, const struct mgr_create_args *args, char *ret_id,
                  size_t id_len);
/* Warm pool, network egress (args->net_policy set): take a ready egress sandbox of the
 * class, assign it, and write args->net_policy before cb runs (on the threadpool; cb gets
 * the sandbox id, or an error after which the sandbox is removed). 0: cb will run; -ENOENT:
 * a miss, take the cold path (the class is registered for pooling). */
int mgr_pool_take_egress(struct manager *m, const struct mgr_create_args *args,
                         mgr_create_cb cb, void *ud);
/* The pool and teardown state as JSON (GET /api/v1/pool). */
json_t *mgr_pool_json(struct manager *m);

#endif
