/* quota.h - per-organisation limits as the API applies them: the request rate (a token
 * bucket per organisation, ratelimit.c) and what a new sandbox may add to the organisation's
 * running sandboxes (count, total cpus, total memory). Every refusal is a 429 with a JSON
 * error and a Retry-After header. Event-loop thread only.
 */
#ifndef WARREN_QUOTA_H
#define WARREN_QUOTA_H

#include <stdint.h>

#include "app.h"

/* Most organisations whose request rate is tracked at once (idle ones are forgotten first). */
#define QUOTA_MAX_BUCKETS 65536

/* Make app->ratelimit from the configuration (left NULL when RATE_LIMIT_RPS is 0). */
int quota_init(struct app *app);

/* Count one authenticated request of c's organisation against its rate. Adds
 * X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset to the answer (whatever it
 * will be). Over the rate: answers 429 rate_limited with Retry-After itself and returns
 * -EUSERS. 0 otherwise (also when the limiter is off or out of memory). */
int quota_check_rate(struct reqctx *c);

/* Whether c's organisation may start one more sandbox of cpu_millis and memory_bytes:
 * MAX_SANDBOXES_PER_ORG, MAX_ORG_CPUS and MAX_ORG_MEMORY (0: no limit) over its sandboxes
 * that are creating or running. Answers 429 quota_exceeded itself (Retry-After: seconds
 * until the first of them expires, at least 1) and returns -EUSERS; answers other errors
 * and returns them; 0 when admitted. */
int quota_admit_sandbox(struct reqctx *c, uint64_t cpu_millis, uint64_t memory_bytes);

#endif
