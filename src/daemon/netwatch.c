/* netwatch.c - the watch of the host's nftables ruleset (netwatch.h).
 *
 * Events come from a netlink socket polled on the loop (rt_net_watch_read says whether one
 * removed something of warren's). A flush announces many objects at once, so a round
 * starts a short delay after the first such event, and the rest of the burst joins it.
 *
 * A round snapshots, on the loop, every egress sandbox that has its rules (running, its
 * uplink made) with its stored policy, and rewrites them all on the threadpool in one
 * transaction (rt_net_restore). While it runs, those sandboxes are marked net_busy, so a
 * policy change cannot be overwritten by the older policy of the snapshot (it gets 409 and
 * is retried by the client).
 *
 * A sandbox whose own network change (its create's attach, a policy change, a hand-out)
 * was under way at snapshot time is left out: that change may have written its rules just
 * before the flush. A retry round follows until each of those is no longer busy, and then
 * covers it (a change that started after the flush needs nothing: it failed on the missing
 * table, or wrote its rules after the restore).
 */
#include "netwatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "net.h"
#include "netpolicy.h"
#include "store_net.h"
#include "util.h"

/* Delay between the first event of a burst and its round; between retry rounds; the most
 * retry rounds in a row. */
#define NETWATCH_DELAY_MS 100
#define NETWATCH_RETRY_MS 500
#define NETWATCH_MAX_RETRIES 20

/* One sandbox of a round. */
struct nw_item {
        char id[STORE_ID_MAX];
        bool marked;                  /* we set its net_busy */
        struct rt_net_policy *policy; /* NULL: a warm-pool sandbox */
};

/* A list of sandbox ids. */
struct nw_ids {
        char (*v)[STORE_ID_MAX];
        size_t n, cap;
};

/* A round on the threadpool. */
struct nw_round {
        uv_work_t w;
        bool check; /* only notifications were lost: restore only if a table is missing */
        bool retry; /* for the sandboxes left out of the last round (nw.left) */
        bool idle;  /* egress never started in this process: nothing of ours to restore */
        size_t n, cap;
        struct nw_item *items;
        struct rt_net_entry *entries;
        struct nw_ids left; /* left out: their change was under way */
        bool missing;       /* check: a table was missing */
        size_t done;
        int r;
        char err[RT_ERR_LEN];
        double ms;
};

static struct {
        struct app *app;
        int fd;
        uv_poll_t poll;
        uv_timer_t timer;
        bool started;
        bool running;     /* a round is on the threadpool */
        bool want;        /* something of ours was removed: a round is due */
        bool lost;        /* notifications were lost: a check is due */
        bool retry;       /* sandboxes were left out of the last round: a retry is due */
        struct nw_ids left; /* those sandboxes */
        unsigned retries; /* retry or failed rounds in a row */
} nw = { .fd = -1 };

static bool ids_has(const struct nw_ids *l, const char *id)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i], id) == 0)
                        return true;
        return false;
}

static int ids_add(struct nw_ids *l, const char *id)
{
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                char(*v)[STORE_ID_MAX] = reallocarray(l->v, cap, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        snprintf(l->v[l->n++], STORE_ID_MAX, "%s", id);
        return 0;
}

static void ids_free(struct nw_ids *l)
{
        free(l->v);
        *l = (struct nw_ids){ 0 };
}

/* Give back the net_busy marks of a round's sandboxes (those still live). */
static void unmark(struct nw_round *rd)
{
        for (size_t i = 0; i < rd->n; i++) {
                struct sandbox *sb = rd->items[i].marked
                                             ? mgr_find(nw.app->mgr, rd->items[i].id)
                                             : NULL;
                if (sb)
                        sb->net_busy = false;
        }
}

static void round_free(struct nw_round *rd)
{
        if (!rd)
                return;
        for (size_t i = 0; i < rd->n; i++)
                free(rd->items[i].policy);
        free(rd->items);
        free(rd->entries);
        ids_free(&rd->left);
        free(rd);
}

/* The policy stored for sandbox id (malloc'd), or NULL. */
static struct rt_net_policy *stored_policy(const char *id)
{
        char err[NETPOLICY_ERR_LEN];
        struct store_net n = { 0 };
        struct rt_net_policy *p = NULL;
        json_error_t jerr;

        if (store_net_get(nw.app->store, id, &n) < 0)
                return NULL;
        json_t *pj = n.policy_json ? json_loads(n.policy_json, 0, &jerr) : NULL;
        p = pj ? malloc(sizeof(*p)) : NULL;
        if (p && netpolicy_from_json(pj, NULL, p, err, sizeof(err)) < 0) {
                free(p);
                p = NULL;
        }
        json_decref(pj);
        store_net_clear(&n);
        return p;
}

/* mgr_foreach callback: add sb to the round if it has host-side rules to restore. */
static void collect(struct sandbox *sb, void *ud)
{
        struct nw_round *rd = ud;

        if (!sb->net_addr || sb->state == SB_STOPPING || sb->state == SB_DELETING)
                return;
        if (sb->init_pid <= 0 || sb->net_busy) {
                /* Its create or its policy change is under way. In a retry, only those
                 * left out before matter (see the top of the file). */
                if ((!rd->retry || ids_has(&nw.left, sb->id)) && ids_add(&rd->left, sb->id) < 0)
                        rd->r = -ENOMEM;
                return;
        }
        if (rd->n == rd->cap) {
                size_t cap = rd->cap ? rd->cap * 2 : 16;
                struct nw_item *v = reallocarray(rd->items, cap, sizeof(*v));
                if (!v) {
                        rd->r = -ENOMEM;
                        return;
                }
                rd->items = v;
                rd->cap = cap;
        }
        struct nw_item *it = &rd->items[rd->n];
        memset(it, 0, sizeof(*it));
        snprintf(it->id, sizeof(it->id), "%s", sb->id);
        if (!sb->pool) {
                it->policy = stored_policy(sb->id);
                if (!it->policy) {
                        app_log("sandbox %s: network: its stored policy is unreadable; its "
                                "host-side rules are not restored",
                                sb->id);
                        return;
                }
                sb->net_busy = true;
                it->marked = true;
        }
        rd->n++;
}

static void round_work(uv_work_t *w)
{
        struct nw_round *rd = (struct nw_round *)w;
        uint64_t t0 = util_now_ns();

        rd->idle = !rt_net_initialized();
        if (rd->idle)
                return;
        if (rd->check) {
                bool ok = true;
                rd->r = rt_net_tables_present(&ok, rd->err);
                rd->missing = !ok;
                if (rd->r < 0 || ok)
                        return;
        }
        rd->r = rt_net_restore(rd->entries, rd->n, &rd->done, rd->err);
        rd->ms = util_ms_since(t0);
}

static void on_timer(uv_timer_t *t);

/* Start a round in ms unless one is running (its end looks at what is due) or is about to
 * start. */
static void schedule(uint64_t ms)
{
        if (!nw.running && !uv_is_active((uv_handle_t *)&nw.timer))
                uv_timer_start(&nw.timer, on_timer, ms, 0);
}

static void round_done(uv_work_t *w, int status)
{
        struct nw_round *rd = (struct nw_round *)w;
        bool failed = status < 0 || rd->r < 0;

        nw.running = false;
        unmark(rd);
        if (failed) {
                app_log("network: restoring the host's nftables rules failed: %s",
                        status < 0 ? uv_strerror(status) : rd->err);
                nw.want = true; /* all of it again */
        } else if (!rd->idle && (!rd->check || rd->missing)) {
                app_log("network: another program removed warren's nftables rules from the "
                        "host (e.g. nft flush ruleset); restored the base rules and those of "
                        "%zu sandbox(es) in %.1f ms%s",
                        rd->done, rd->ms,
                        rd->left.n ? "; sandboxes with a change under way follow" : "");
                ids_free(&nw.left);
                nw.left = rd->left;
                rd->left = (struct nw_ids){ 0 };
                nw.retry = nw.left.n > 0;
        }
        round_free(rd);
        /* Retries (for a failure or a sandbox left out) are bounded; rounds for new
         * events are not (each answers something that happened). */
        nw.retries = failed || nw.retry ? nw.retries + 1 : 0;
        if (nw.retries > NETWATCH_MAX_RETRIES) {
                app_log("network: giving up restoring the host's nftables rules after %d "
                        "rounds; restart warrend to write them again",
                        NETWATCH_MAX_RETRIES);
                nw.retries = 0;
                nw.retry = false;
                ids_free(&nw.left);
                if (failed)
                        nw.want = false;
        }
        if (nw.started && (nw.want || nw.lost || nw.retry))
                schedule(!failed && (nw.want || nw.lost) ? NETWATCH_DELAY_MS
                                                         : NETWATCH_RETRY_MS);
}

static void on_timer(uv_timer_t *t)
{
        (void)t;
        if (nw.running || (!nw.want && !nw.lost && !nw.retry))
                return;
        struct nw_round *rd = calloc(1, sizeof(*rd));
        if (!rd) {
                schedule(NETWATCH_RETRY_MS);
                return;
        }
        rd->retry = !nw.want && nw.retry;
        rd->check = !nw.want && !nw.retry;
        nw.want = nw.lost = nw.retry = false;
        mgr_foreach(nw.app->mgr, collect, rd);
        rd->entries = calloc(rd->n ? rd->n : 1, sizeof(*rd->entries));
        if (rd->r < 0 || !rd->entries)
                goto fail;
        for (size_t i = 0; i < rd->n; i++) {
                struct sandbox *sb = mgr_find(nw.app->mgr, rd->items[i].id);
                rd->entries[i] = (struct rt_net_entry){
                        .id = rd->items[i].id,
                        .init_pid = sb->init_pid,
                        .starttime = sb->init_starttime,
                        .addr = sb->net_addr,
                        .policy = rd->items[i].policy,
                };
        }
        if (uv_queue_work(nw.app->loop, &rd->w, round_work, round_done) < 0)
                goto fail;
        nw.running = true;
        return;
fail:
        unmark(rd);
        round_free(rd);
        nw.want = true;
        schedule(NETWATCH_RETRY_MS);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
        bool hit = false, lost = false;
        int r;

        (void)events;
        r = rt_net_watch_read(nw.fd, &hit, &lost);
        if (r < 0) {
                app_log("network: reading nftables notifications: %s", strerror(-r));
                return;
        }
        /* An overflow of the socket's queue shows as POLLERR, on which libuv stops the
         * handle: once the error is read (as lost notifications), watch again. */
        if (status < 0) {
                lost = true;
                uv_poll_start(h, UV_READABLE, on_poll);
        }
        nw.want |= hit;
        nw.lost |= lost;
        if (hit || lost)
                schedule(NETWATCH_DELAY_MS);
}

int netwatch_start(struct app *app)
{
        int r;

        nw.app = app;
        r = rt_net_watch_open(&nw.fd);
        if (r < 0) {
                app_log("network: cannot watch the host's nftables ruleset (%s): if another "
                        "program flushes it, restart warrend to restore the sandboxes' NAT "
                        "and host-side rules",
                        strerror(-r));
                return r;
        }
        uv_timer_init(app->loop, &nw.timer);
        r = uv_poll_init(app->loop, &nw.poll, nw.fd);
        if (r == 0)
                r = uv_poll_start(&nw.poll, UV_READABLE, on_poll);
        if (r < 0) {
                app_log("network: cannot poll the nftables notifications: %s", uv_strerror(r));
                uv_close((uv_handle_t *)&nw.timer, NULL);
                close(nw.fd);
                nw.fd = -1;
                return r;
        }
        nw.started = true;
        return 0;
}

/* The fd is closed once the poll handle is (libuv must not watch a closed fd). */
static void on_poll_closed(uv_handle_t *h)
{
        (void)h;
        close(nw.fd);
        nw.fd = -1;
}

void netwatch_stop(void)
{
        if (!nw.started)
                return;
        nw.started = false;
        uv_poll_stop(&nw.poll);
        uv_close((uv_handle_t *)&nw.poll, on_poll_closed);
        uv_timer_stop(&nw.timer);
        uv_close((uv_handle_t *)&nw.timer, NULL);
        ids_free(&nw.left);
}
