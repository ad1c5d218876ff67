/* live.h - long-lived connections bound to a credential (WebSocket sessions, long polls).
 *
 * A request authenticated by an API key (or a token minted from one) can outlive the
 * request that opened it. Revoking the key must end those at once, so every such connection
 * registers here with the id of the key that authenticated it and a function that closes it.
 * Event-loop only.
 */
#ifndef WARREN_LIVE_H
#define WARREN_LIVE_H

#include <stddef.h>

struct app;
struct live;

/* Close the connection (called at most once, from live_revoke_key()); the owner must still
 * call live_remove() when the connection is gone. */
typedef void (*live_close_fn)(void *ud);

/* Register a connection authenticated by key_id. -ENOMEM. */
int live_add(struct app *app, const char *key_id, live_close_fn close_fn, void *ud,
             struct live **ret);
/* Unregister (the connection ended). Safe with NULL. */
void live_remove(struct app *app, struct live *l);
/* Close every connection authenticated by key_id; returns how many were closed. */
size_t live_revoke_key(struct app *app, const char *key_id);
/* Number of registered connections. */
size_t live_count(const struct app *app);

#endif
