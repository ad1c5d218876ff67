/* live.c - registry of long-lived connections by the key that authenticated them (live.h).
 *
 * A plain doubly linked list: registrations and removals are O(1); revoking a key walks the
 * list, which is rare (an admin action) and bounded by the connection limit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "live.h"

struct live {
        struct live *prev, *next;
        char key_id[STORE_ID_MAX];
        live_close_fn close_fn;
        void *ud;
        bool closing; /* close_fn already called */
};

int live_add(struct app *app, const char *key_id, live_close_fn close_fn, void *ud,
             struct live **ret)
{
        struct live *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        snprintf(l->key_id, sizeof(l->key_id), "%s", key_id ? key_id : "");
        l->close_fn = close_fn;
        l->ud = ud;
        l->next = app->live;
        if (app->live)
                app->live->prev = l;
        app->live = l;
        app->n_live++;
        *ret = l;
        return 0;
}

void live_remove(struct app *app, struct live *l)
{
        if (!l)
                return;
        if (l->prev)
                l->prev->next = l->next;
        else
                app->live = l->next;
        if (l->next)
                l->next->prev = l->prev;
        app->n_live--;
        free(l);
}

size_t live_revoke_key(struct app *app, const char *key_id)
{
        size_t n = 0;
        struct live *l = app->live;

        /* close_fn may remove its own entry (or others): restart from the head after each
         * call, skipping entries already told to close. */
        while (l) {
                if (!l->closing && strcmp(l->key_id, key_id) == 0) {
                        l->closing = true;
                        n++;
                        l->close_fn(l->ud);
                        l = app->live;
                        continue;
                }
                l = l->next;
        }
        return n;
}

size_t live_count(const struct app *app)
{
        return app->n_live;
}
