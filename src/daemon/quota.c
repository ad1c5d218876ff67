/* quota.c - the rate limit and the sandbox quotas of an organisation; see quota.h. */
#include "quota.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "quantity.h"
#include "ratelimit.h"
#include "util.h"

int quota_init(struct app *app)
{
        const struct config *cfg = &app->cfg;

        app->ratelimit = NULL;
        if (cfg->rate_limit_rps == 0)
                return 0;
        return ratelimit_new((uint64_t)cfg->rate_limit_rps, (uint64_t)cfg->rate_limit_burst,
                             QUOTA_MAX_BUCKETS, &app->ratelimit);
}

/* Add a header with an unsigned number. */
static void add_num_header(struct reqctx *c, const char *name, uint64_t v)
{
        char buf[32];
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        http_req_add_header(c->req, name, buf);
}

int quota_check_rate(struct reqctx *c)
{
        struct ratelimit_result res;

        if (!c->app->ratelimit || !c->org_id[0])
                return 0;
        if (ratelimit_take(c->app->ratelimit, c->org_id, util_now_ns(), &res) < 0)
                return 0; /* out of memory: let it through (see ratelimit.h) */
        add_num_header(c, "X-RateLimit-Limit", res.limit);
        add_num_header(c, "X-RateLimit-Remaining", res.remaining);
        add_num_header(c, "X-RateLimit-Reset", res.reset_s);
        if (res.allowed)
                return 0;
        add_num_header(c, "Retry-After", res.retry_after_s);
        reply_error(c, 429, "rate_limited",
                    "this organisation is over its request rate (RATE_LIMIT_RPS=%lld, "
                    "RATE_LIMIT_BURST=%lld); retry in %" PRIu64 " s",
                    (long long)c->app->cfg.rate_limit_rps, (long long)c->app->cfg.rate_limit_burst,
                    res.retry_after_s);
        return -EUSERS;
}

int quota_admit_sandbox(struct reqctx *c, uint64_t cpu_millis, uint64_t memory_bytes)
{
        const struct config *cfg = &c->app->cfg;
        struct store_org_usage u;
        char have[32], want[32], max[32];
        const char *knob = NULL;
        int r;

        r = store_sandbox_org_usage(c->app->store, c->org_id, &u);
        if (r < 0) {
                reply_errno(c, r, "create");
                return r;
        }
        if (u.sandboxes >= cfg->max_sandboxes_per_org) {
                knob = "MAX_SANDBOXES_PER_ORG";
                snprintf(max, sizeof(max), "%lld", (long long)cfg->max_sandboxes_per_org);
        } else if (cfg->max_org_cpu_millis &&
                   (uint64_t)u.cpu_millis + cpu_millis > cfg->max_org_cpu_millis) {
                knob = "MAX_ORG_CPUS";
                qty_format_cpus((uint64_t)u.cpu_millis, have, sizeof(have));
                qty_format_cpus(cpu_millis, want, sizeof(want));
                qty_format_cpus(cfg->max_org_cpu_millis, max, sizeof(max));
        } else if (cfg->max_org_memory &&
                   (uint64_t)u.memory_bytes + memory_bytes > cfg->max_org_memory) {
                knob = "MAX_ORG_MEMORY";
                qty_format_bytes((uint64_t)u.memory_bytes, have, sizeof(have));
                qty_format_bytes(memory_bytes, want, sizeof(want));
                qty_format_bytes(cfg->max_org_memory, max, sizeof(max));
        }
        if (!knob)
                return 0;
        /* Nothing frees capacity on a schedule except expiry: the soonest one is the honest
         * hint (a stop or delete by the organisation frees it sooner). */
        int64_t wait = u.next_expiry - util_wall_s();
        add_num_header(c, "Retry-After", (uint64_t)(wait < 1 ? 1 : wait));
        if (strcmp(knob, "MAX_SANDBOXES_PER_ORG") == 0)
                reply_error(c, 429, "quota_exceeded",
                            "this organisation already has %s sandboxes that are not stopped "
                            "(MAX_SANDBOXES_PER_ORG)",
                            max);
        else
                reply_error(c, 429, "quota_exceeded",
                            "this organisation's running sandboxes hold %s; %s more would pass "
                            "%s=%s",
                            have, want, knob, max);
        return -EUSERS;
}
