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
 * is retried by the client). A sandbox whose own network change was under way at snapshot
 * time is left out, and another round follows once the first ends: it then has either its
 * new rules (written after the restore) or none (written before it, then flushed), and
 * the next round covers it.
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

/* Delay between the first event of a burst and its round; between rounds when some
 * sandboxes were busy or a round failed; the most rounds in a row. */
#define NETWATCH_DELAY_MS 100
#define NETWATCH_RETRY_MS 500
#define NETWATCH_MAX_ROUNDS 20

/* One sandbox of a round. */
struct nw_item {
        char id[STORE_ID_MAX];
        bool marked; /* we set its net_busy */
        struct rt_net_policy *policy; /* NULL: a warm-pool sandbox */
};

/* A round on the threadpool. */
struct nw_round {
        uv_work_t w;
        bool check;    /* only events were lost: restore only if a table is missing */
        size_t n, cap; /* items */
        struct nw_item *items;
        struct rt_net_entry *entries;
        size_t busy; /* sandboxes left out (a change of theirs was under way) */
        bool missing; /* check: a table was missing */
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
        bool running;  /* a round is on the threadpool */
        bool want;     /* something of ours was removed: a round is due */
        bool lost;     /* notifications were lost: a check is due */
        unsigned rounds;
} nw = { .fd = -1 };

static void round_free(struct nw_round *rd)
{
        if (!rd)
                return;
        for (size_t i = 0; i < rd->n; i++)
                free(rd->items[i].policy);
        free(rd->items);
        free(rd->entries);
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
                rd->busy++; /* its create or its policy change is under way */
                return;
        }
        if (rd->n == rd->cap) {
                size_t cap = rd->cap ? rd->cap * 2 : 16;
                struct nw_item *v = reallocarray(rd->items, cap, sizeof(*v));
                if (!v) {
                        rd->busy++; /* counted so that another round follows */
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
        bool again = false;

        nw.running = false;
        for (size_t i = 0; i < rd->n; i++) {
                struct sandbox *sb = rd->items[i].marked ? mgr_find(nw.app->mgr, rd->items[i].id)
                                                         : NULL;
                if (sb)
                        sb->net_busy = false;
        }
        if (status < 0 || rd->r < 0) {
                app_log("network: restoring the host's nftables rules failed: %s",
                        status < 0 ? uv_strerror(status) : rd->err);
                again = true;
        } else if (!rd->check || rd->missing) {
                app_log("network: another program removed warren's nftables rules from the "
                        "host (e.g. nft flush ruleset); restored the base rules and those of "
                        "%zu sandbox(es) in %.1f ms%s",
                        rd->done, rd->ms,
                        rd->busy ? "; sandboxes with a change under way follow" : "");
                again = rd->busy > 0;
        }
        round_free(rd);
        /* Rounds repeated for a failure or a busy sandbox are bounded; rounds for new
         * events are not (each answers something that happened). */
        nw.rounds = again ? nw.rounds + 1 : 0;
        if (nw.rounds > NETWATCH_MAX_ROUNDS) {
                app_log("network: giving up restoring the host's nftables rules after %d "
                        "rounds; restart warrend to write them again",
                        NETWATCH_MAX_ROUNDS);
                nw.rounds = 0;
                again = false;
        }
        nw.want |= again;
        if (nw.started && (nw.want || nw.lost))
                schedule(again ? NETWATCH_RETRY_MS : NETWATCH_DELAY_MS);
}

static void on_timer(uv_timer_t *t)
{
        (void)t;
        if (nw.running || (!nw.want && !nw.lost))
                return;
        struct nw_round *rd = calloc(1, sizeof(*rd));
        if (!rd) {
                schedule(NETWATCH_RETRY_MS);
                return;
        }
        rd->check = !nw.want;
        nw.want = nw.lost = false;
        mgr_foreach(nw.app->mgr, collect, rd);
        rd->entries = calloc(rd->n ? rd->n : 1, sizeof(*rd->entries));
        if (!rd->entries)
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
        for (size_t i = 0; i < rd->n; i++) {
                struct sandbox *sb = rd->items[i].marked ? mgr_find(nw.app->mgr, rd->items[i].id)
                                                         : NULL;
                if (sb)
                        sb->net_busy = false;
        }
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
}
