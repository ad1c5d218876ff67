/* test_live.c - the registry of long-lived connections (live.c): revoking a key closes
 * exactly that key's connections, also when a close callback removes entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "app.h"
#include "live.h"

struct conn {
        struct app *app;
        struct live *l;
        int closed;
        bool remove_on_close;
};

static void on_close(void *ud)
{
        struct conn *c = ud;

        c->closed++;
        if (c->remove_on_close) {
                live_remove(c->app, c->l);
                c->l = NULL;
        }
}

static void test_revoke_closes_only_that_key(void **state)
{
        struct app app = {};
        struct conn c[5] = {};
        const char *keys[5] = { "key_a", "key_b", "key_a", "key_c", "key_a" };

        for (int i = 0; i < 5; i++) {
                c[i].app = &app;
                c[i].remove_on_close = i % 2 == 0; /* some leave at once, some later */
                assert_int_equal(live_add(&app, keys[i], on_close, &c[i], &c[i].l), 0);
        }
        assert_int_equal(live_count(&app), 5);
        assert_int_equal(live_revoke_key(&app, "key_a"), 3);
        assert_int_equal(c[0].closed + c[2].closed + c[4].closed, 3);
        assert_int_equal(c[1].closed + c[3].closed, 0);
        assert_int_equal(live_count(&app), 2);
        /* a second revoke of the same key closes nothing again */
        assert_int_equal(live_revoke_key(&app, "key_a"), 0);
        assert_int_equal(live_revoke_key(&app, "key_none"), 0);
        assert_int_equal(live_revoke_key(&app, "key_b"), 1);
        assert_int_equal(c[1].closed, 1);
        /* entries that were told to close but not yet removed stay until their owner goes */
        assert_int_equal(live_count(&app), 2);
        live_remove(&app, c[1].l);
        live_remove(&app, c[3].l);
        live_remove(&app, NULL);
        assert_int_equal(live_count(&app), 0);
        assert_null(app.live);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_revoke_closes_only_that_key),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
