/* test_store.c - the SQLite store: migrations, orgs and keys, sandbox rows, listings and
 * uid slot allocation. Each test gets a fresh database in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "store_internal.h"
#include "util.h"

struct fixture {
        char dir[64];
        char path[128];
        struct store *st;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        strcpy(f->dir, "/tmp/test_store.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/warren.db", f->dir);
        if (store_open(f->path, &f->st) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        store_close(f->st);
        util_rm_rf(f->dir);
        free(f);
        return 0;
}

static void make_org(struct store *st, const char *id)
{
        assert_int_equal(store_org_create(st, id, "Org name"), 0);
}

/* A sandbox row with every field set to something distinct. */
static struct store_sandbox make_sb(const char *id, const char *org, const char *status,
                                    int64_t created_at, uint32_t uid_base)
{
        struct store_sandbox sb = { 0 };

        snprintf(sb.id, sizeof(sb.id), "%s", id);
        snprintf(sb.org_id, sizeof(sb.org_id), "%s", org);
        snprintf(sb.status, sizeof(sb.status), "%s", status);
        snprintf(sb.template, sizeof(sb.template), "base");
        snprintf(sb.isolation, sizeof(sb.isolation), "container");
        sb.cpu_millis = 1500;
        sb.memory_bytes = 512ll << 20;
        sb.disk_bytes = 10ll << 30;
        sb.pids_limit = 256;
        sb.timeout_s = 300;
        sb.created_at = created_at;
        sb.expires_at = created_at + 300;
        sb.uid_base = uid_base;
        return sb;
}

static void insert_sb(struct store *st, const char *id, const char *org, const char *status,
                      int64_t created_at, uint32_t uid_base)
{
        struct store_sandbox sb = make_sb(id, org, status, created_at, uid_base);

        assert_int_equal(store_sandbox_insert(st, &sb), 0);
}

static void test_open_migrate_reopen(void **state)
{
        struct fixture *f = *state;
        struct stat stt;
        int64_t n = -1;

        /* The file holds key hashes: 0600 whatever the umask. */
        assert_int_equal(stat(f->path, &stt), 0);
        assert_int_equal(stt.st_mode & 0777, 0600);
        assert_int_equal(store_org_count(f->st, &n), 0);
        assert_int_equal(n, 0);
        make_org(f->st, "org_a");
        /* SQLite gives the WAL file the database file's mode. */
        char wal[160];
        snprintf(wal, sizeof(wal), "%s-wal", f->path);
        assert_int_equal(stat(wal, &stt), 0);
        assert_int_equal(stt.st_mode & 0777, 0600);
        store_close(f->st);

        /* Reopening keeps the data and does not run migration 1 again (it would fail:
         * its CREATE TABLEs have no IF NOT EXISTS). */
        assert_int_equal(store_open(f->path, &f->st), 0);
        assert_int_equal(store_org_count(f->st, &n), 0);
        assert_int_equal(n, 1);
        store_close(f->st);
        f->st = NULL;

        /* Look inside with plain SQLite: WAL, STRICT tables, one version row, node_id. */
        sqlite3 *db;
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
        sqlite3_finalize(s);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*), max(version) FROM schema_version",
                                            -1, &s, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        /* one row per migration, the newest last (versions may have gaps) */
        assert_int_equal(sqlite3_column_int(s, 0), (int)store_n_migrations);
        assert_int_equal(sqlite3_column_int(s, 1),
                         store_migrations[store_n_migrations - 1].version);
        sqlite3_finalize(s);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*) FROM pragma_table_list"
                                            " WHERE name IN ('orgs', 'api_keys', 'sandboxes')"
                                            " AND strict = 1",
                                            -1, &s, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(s, 0), 3);
        sqlite3_finalize(s);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT node_id FROM sandboxes", -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_finalize(s);
        sqlite3_close(db);

        /* A database from a newer daemon (unknown schema version) is refused. */
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES (999, 0)", NULL,
                                      NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(f->path, &f->st), -EPROTO);
        assert_null(f->st);
}

static void test_open_errors(void **state)
{
        struct fixture *f = *state;
        char p[160];
        struct store *st = NULL;

        assert_int_equal(store_open(NULL, &st), -EINVAL);
        assert_int_equal(store_open("", &st), -EINVAL);
        snprintf(p, sizeof(p), "%s/missing/dir/x.db", f->dir);
        assert_int_equal(store_open(p, &st), -ENOENT);
        /* A symlink in place of the database is not followed. */
        snprintf(p, sizeof(p), "%s/link.db", f->dir);
        assert_int_equal(symlink(f->path, p), 0);
        assert_true(store_open(p, &st) < 0);
        assert_null(st);
        /* An existing file readable by others is tightened to 0600. */
        snprintf(p, sizeof(p), "%s/loose.db", f->dir);
        FILE *fp = fopen(p, "we");
        assert_non_null(fp);
        fclose(fp);
        assert_int_equal(chmod(p, 0644), 0);
        assert_int_equal(store_open(p, &st), 0);
        struct stat stt;
        assert_int_equal(stat(p, &stt), 0);
        assert_int_equal(stt.st_mode & 0777, 0600);
        store_close(st);
        store_close(NULL);
}

static void test_orgs_and_keys(void **state)
{
        struct fixture *f = *state;
        struct store_key k = { 0 }, got, untouched;
        uint8_t hash[32], hash2[32], hash3[32];
        int64_t n;

        make_org(f->st, "org_a");
        assert_int_equal(store_org_create(f->st, "org_a", "again"), -EEXIST);
        assert_int_equal(store_org_create(f->st, "", "x"), -EINVAL);
        char longid[STORE_ID_MAX + 1];
        memset(longid, 'a', STORE_ID_MAX);
        longid[STORE_ID_MAX] = '\0';
        assert_int_equal(store_org_create(f->st, longid, "x"), -EINVAL);
        assert_int_equal(store_org_count(f->st, &n), 0);
        assert_int_equal(n, 1);

        memset(hash, 0x11, sizeof(hash));
        memset(hash2, 0x22, sizeof(hash2));
        memset(hash3, 0x33, sizeof(hash3));
        strcpy(k.id, "key_1");
        strcpy(k.org_id, "org_a");
        strcpy(k.name, "admin");
        strcpy(k.prefix, "wk_abcdef");
        strcpy(k.role, "admin");
        k.created_at = 1700000000;
        assert_int_equal(store_key_insert(f->st, &k, hash), 0);

        assert_int_equal(store_key_find_by_hash(f->st, hash, &got), 0);
        assert_string_equal(got.id, "key_1");
        assert_string_equal(got.org_id, "org_a");
        assert_string_equal(got.name, "admin");
        assert_string_equal(got.prefix, "wk_abcdef");
        assert_string_equal(got.role, "admin");
        assert_int_equal(got.created_at, 1700000000);
        assert_int_equal(got.revoked_at, 0);

        /* Unknown hash: -ENOENT and the output untouched. */
        memset(&untouched, 0x5a, sizeof(untouched));
        assert_int_equal(store_key_find_by_hash(f->st, hash3, &untouched), -ENOENT);
        assert_int_equal(((uint8_t *)&untouched)[0], 0x5a);

        /* The same hash twice is refused, as is the same id. */
        strcpy(k.id, "key_2");
        assert_int_equal(store_key_insert(f->st, &k, hash), -EEXIST);
        strcpy(k.id, "key_1");
        assert_int_equal(store_key_insert(f->st, &k, hash2), -EEXIST);

        /* A revoked key is never found. */
        strcpy(k.id, "key_revoked");
        k.revoked_at = 1700000500;
        assert_int_equal(store_key_insert(f->st, &k, hash2), 0);
        assert_int_equal(store_key_find_by_hash(f->st, hash2, &got), -ENOENT);

        /* A key for an organisation that does not exist breaks the foreign key. */
        strcpy(k.id, "key_orphan");
        strcpy(k.org_id, "org_missing");
        k.revoked_at = 0;
        assert_int_equal(store_key_insert(f->st, &k, hash3), -ENOENT);
        assert_int_equal(store_key_find_by_hash(f->st, hash3, &got), -ENOENT);

        /* A field that is not NUL-terminated is refused, not read past. */
        strcpy(k.org_id, "org_a");
        memset(k.role, 'r', sizeof(k.role));
        assert_int_equal(store_key_insert(f->st, &k, hash3), -EINVAL);
}

static void test_sandbox_crud(void **state)
{
        struct fixture *f = *state;
        struct store_sandbox sb, got = { 0 };

        make_org(f->st, "org_a");
        sb = make_sb("sb_1", "org_a", "creating", 1000, 100000);
        sb.env_json = "{\"A\":\"b\"}";
        assert_int_equal(store_sandbox_insert(f->st, &sb), 0);
        assert_int_equal(store_sandbox_insert(f->st, &sb), -EEXIST);

        assert_int_equal(store_sandbox_get(f->st, "sb_1", &got), 0);
        assert_string_equal(got.id, "sb_1");
        assert_string_equal(got.org_id, "org_a");
        assert_string_equal(got.status, "creating");
        assert_string_equal(got.template, "base");
        assert_string_equal(got.isolation, "container");
        assert_int_equal(got.cpu_millis, 1500);
        assert_int_equal(got.memory_bytes, 512ll << 20);
        assert_int_equal(got.disk_bytes, 10ll << 30);
        assert_int_equal(got.pids_limit, 256);
        assert_int_equal(got.timeout_s, 300);
        assert_int_equal(got.created_at, 1000);
        assert_int_equal(got.expires_at, 1300);
        assert_int_equal(got.stopped_at, 0);
        assert_int_equal(got.uid_base, 100000);
        assert_int_equal(got.init_pid, 0);
        assert_true(got.init_starttime == 0);
        assert_string_equal(got.env_json, "{\"A\":\"b\"}");
        assert_null(got.error);

        /* Update changes only the mutable fields. */
        strcpy(got.status, "error");
        got.stopped_at = 2000;
        got.init_pid = 4242;
        got.init_starttime = 0xfffffffffffull;
        got.expires_at = 5000;
        got.error = strdup("overlay failed");
        got.cpu_millis = 1; /* immutable: ignored */
        strcpy(got.template, "other");
        assert_int_equal(store_sandbox_update(f->st, &got), 0);
        store_sandbox_clear(&got);
        assert_null(got.error);
        assert_int_equal(got.id[0], '\0');

        assert_int_equal(store_sandbox_get(f->st, "sb_1", &got), 0);
        assert_string_equal(got.status, "error");
        assert_int_equal(got.stopped_at, 2000);
        assert_int_equal(got.init_pid, 4242);
        assert_true(got.init_starttime == 0xfffffffffffull);
        assert_int_equal(got.expires_at, 5000);
        assert_string_equal(got.error, "overlay failed");
        assert_int_equal(got.cpu_millis, 1500);
        assert_string_equal(got.template, "base");
        assert_string_equal(got.env_json, "{\"A\":\"b\"}");

        /* Clearing error and stopped_at back to "unset". */
        free(got.error);
        got.error = NULL;
        got.stopped_at = 0;
        assert_int_equal(store_sandbox_update(f->st, &got), 0);
        store_sandbox_clear(&got);
        assert_int_equal(store_sandbox_get(f->st, "sb_1", &got), 0);
        assert_null(got.error);
        assert_int_equal(got.stopped_at, 0);
        store_sandbox_clear(&got);

        assert_int_equal(store_sandbox_delete(f->st, "sb_1"), 0);
        assert_int_equal(store_sandbox_delete(f->st, "sb_1"), -ENOENT);
}

static void test_sandbox_missing(void **state)
{
        struct fixture *f = *state;
        struct store_sandbox sb, got;

        memset(&got, 0x5a, sizeof(got));
        assert_int_equal(store_sandbox_get(f->st, "nope", &got), -ENOENT);
        assert_int_equal(((uint8_t *)&got)[0], 0x5a); /* untouched on failure */
        sb = make_sb("nope", "org_a", "running", 1, 1);
        assert_int_equal(store_sandbox_update(f->st, &sb), -ENOENT);
        assert_int_equal(store_sandbox_delete(f->st, "nope"), -ENOENT);
        /* No such organisation: the foreign key refuses the row. */
        assert_int_equal(store_sandbox_insert(f->st, &sb), -ENOENT);
        store_sandbox_clear(NULL);
}

struct collected {
        char ids[32][STORE_ID_MAX];
        int n;
        int stop_after; /* return -ECANCELED after this many rows (0 = never) */
        struct store *st;
        bool delete_each; /* delete the row from inside the callback */
        bool nest;        /* run each_active again from inside the callback */
};

static int count_rows(const struct store_sandbox *sb, void *ud)
{
        (*(int *)ud)++;
        return 0;
}

static int collect(const struct store_sandbox *sb, void *ud)
{
        struct collected *c = ud;

        assert_true(c->n < 32);
        strcpy(c->ids[c->n++], sb->id);
        if (c->delete_each)
                assert_int_equal(store_sandbox_delete(c->st, sb->id), 0);
        if (c->nest) {
                /* The same cached statement, used again mid-walk. */
                int k = 0;

                assert_int_equal(store_sandbox_each_active(c->st, count_rows, &k), 0);
                assert_int_equal(k, 4);
        }
        if (c->stop_after && c->n >= c->stop_after)
                return -ECANCELED;
        return 0;
}

static void test_sandbox_list(void **state)
{
        struct fixture *f = *state;
        struct collected c = { 0 };
        int64_t total = -1;

        make_org(f->st, "org_a");
        make_org(f->st, "org_b");
        /* created_at 10..15; sb_4 and sb_5 share a timestamp (ties go by id, descending). */
        insert_sb(f->st, "sb_0", "org_a", "running", 10, 100000);
        insert_sb(f->st, "sb_1", "org_a", "stopped", 11, 165536);
        insert_sb(f->st, "sb_2", "org_a", "running", 12, 231072);
        insert_sb(f->st, "sb_3", "org_a", "stopped", 13, 296608);
        insert_sb(f->st, "sb_4", "org_a", "running", 14, 362144);
        insert_sb(f->st, "sb_5", "org_a", "error", 14, 427680);
        insert_sb(f->st, "sb_b", "org_b", "running", 99, 493216);

        assert_int_equal(store_sandbox_list(f->st, "org_a", NULL, 100, 0, collect, &c, &total),
                         0);
        assert_int_equal(total, 6);
        assert_int_equal(c.n, 6);
        const char *want_all[] = { "sb_5", "sb_4", "sb_3", "sb_2", "sb_1", "sb_0" };
        for (int i = 0; i < 6; i++)
                assert_string_equal(c.ids[i], want_all[i]);

        /* Status filter. */
        memset(&c, 0, sizeof(c));
        assert_int_equal(
                store_sandbox_list(f->st, "org_a", "running", 100, 0, collect, &c, &total), 0);
        assert_int_equal(total, 3);
        assert_int_equal(c.n, 3);
        assert_string_equal(c.ids[0], "sb_4");
        assert_string_equal(c.ids[1], "sb_2");
        assert_string_equal(c.ids[2], "sb_0");

        /* Pagination: total ignores limit/offset; pages tile the full list. */
        memset(&c, 0, sizeof(c));
        assert_int_equal(store_sandbox_list(f->st, "org_a", NULL, 2, 2, collect, &c, &total), 0);
        assert_int_equal(total, 6);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.ids[0], "sb_3");
        assert_string_equal(c.ids[1], "sb_2");
        memset(&c, 0, sizeof(c));
        assert_int_equal(store_sandbox_list(f->st, "org_a", NULL, 10, 5, collect, &c, &total), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.ids[0], "sb_0");
        memset(&c, 0, sizeof(c));
        assert_int_equal(store_sandbox_list(f->st, "org_a", "stopped", 1, 1, collect, &c, &total),
                         0);
        assert_int_equal(total, 2);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.ids[0], "sb_1");
        memset(&c, 0, sizeof(c));
        assert_int_equal(store_sandbox_list(f->st, "org_a", NULL, 0, 0, collect, &c, &total), 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(total, 6);
        memset(&c, 0, sizeof(c));
        assert_int_equal(store_sandbox_list(f->st, "org_a", NULL, -1, 0, collect, &c, &total), 0);
        assert_int_equal(c.n, 6);
        assert_int_equal(store_sandbox_list(f->st, "org_a", NULL, 1, -1, collect, &c, &total),
                         -EINVAL);

        /* An org with nothing, and a status nobody has. */
        memset(&c, 0, sizeof(c));
        assert_int_equal(store_sandbox_list(f->st, "org_x", NULL, 10, 0, collect, &c, &total), 0);
        assert_int_equal(total, 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(
                store_sandbox_list(f->st, "org_a", "stopping", 10, 0, collect, &c, &total), 0);
        assert_int_equal(total, 0);

        /* A negative callback return stops the walk and is returned. */
        memset(&c, 0, sizeof(c));
        c.stop_after = 2;
        assert_int_equal(store_sandbox_list(f->st, "org_a", NULL, 10, 0, collect, &c, &total),
                         -ECANCELED);
        assert_int_equal(c.n, 2);
}

static void test_sandbox_active_and_retention(void **state)
{
        struct fixture *f = *state;
        struct collected c = { 0 };
        struct store_sandbox sb;
        int64_t n = -1;

        make_org(f->st, "org_a");
        make_org(f->st, "org_b");
        insert_sb(f->st, "a_run", "org_a", "running", 10, 100000);
        insert_sb(f->st, "a_new", "org_a", "creating", 11, 165536);
        insert_sb(f->st, "a_err", "org_a", "error", 12, 231072);
        sb = make_sb("a_old", "org_a", "stopped", 1, 296608);
        sb.stopped_at = 100;
        assert_int_equal(store_sandbox_insert(f->st, &sb), 0);
        sb = make_sb("a_recent", "org_a", "stopped", 2, 362144);
        sb.stopped_at = 500;
        assert_int_equal(store_sandbox_insert(f->st, &sb), 0);
        sb = make_sb("b_old", "org_b", "stopped", 3, 427680);
        sb.stopped_at = 50;
        assert_int_equal(store_sandbox_insert(f->st, &sb), 0);
        insert_sb(f->st, "b_stopping", "org_b", "stopping", 13, 493216);

        /* The quota counts creating and running only: stopping, error and stopped rows hold
         * no processes (or are on their way out). */
        assert_int_equal(store_sandbox_count_active(f->st, "org_a", &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(store_sandbox_count_active(f->st, "org_b", &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(store_sandbox_count_active(f->st, "org_none", &n), 0);
        assert_int_equal(n, 0);

        /* Every org's non-stopped rows, oldest first. */
        assert_int_equal(store_sandbox_each_active(f->st, collect, &c), 0);
        assert_int_equal(c.n, 4);
        assert_string_equal(c.ids[0], "a_run");
        assert_string_equal(c.ids[1], "a_new");
        assert_string_equal(c.ids[2], "a_err");
        assert_string_equal(c.ids[3], "b_stopping");

        /* A callback may call back into the store, even into the same walk. */
        memset(&c, 0, sizeof(c));
        c.st = f->st;
        c.nest = true;
        assert_int_equal(store_sandbox_each_active(f->st, collect, &c), 0);
        assert_int_equal(c.n, 4);

        /* Retention: stopped before 400 (both orgs), oldest stop first. The callback deletes
         * each row, as the daemon's retention pass does, without upsetting the walk. */
        memset(&c, 0, sizeof(c));
        c.st = f->st;
        c.delete_each = true;
        assert_int_equal(store_sandbox_each_stopped_before(f->st, 400, collect, &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.ids[0], "b_old");
        assert_string_equal(c.ids[1], "a_old");
        memset(&c, 0, sizeof(c));
        assert_int_equal(store_sandbox_each_stopped_before(f->st, 400, collect, &c), 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(store_sandbox_each_stopped_before(f->st, 501, collect, &c), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.ids[0], "a_recent");
}

static void test_uid_slots(void **state)
{
        struct fixture *f = *state;
        const uint32_t first = 100000, range = 65536, max = 4;
        struct store_sandbox sb;
        uint32_t slot = 99;

        make_org(f->st, "org_a");
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), 0);
        assert_int_equal(slot, 0);

        /* Fill slots 0, 1, 3 (a stopped row keeps its slot): lowest free is 2. */
        insert_sb(f->st, "s0", "org_a", "running", 1, first + 0 * range);
        insert_sb(f->st, "s1", "org_a", "stopped", 2, first + 1 * range);
        insert_sb(f->st, "s3", "org_a", "running", 3, first + 3 * range);
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), 0);
        assert_int_equal(slot, 2);
        insert_sb(f->st, "s2", "org_a", "creating", 4, first + 2 * range);

        /* Full: -ENOSPC and the output untouched. */
        slot = 99;
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), -ENOSPC);
        assert_int_equal(slot, 99);

        /* A second row with a taken uid_base is refused by the schema. */
        sb = make_sb("dup", "org_a", "creating", 5, first + 2 * range);
        assert_int_equal(store_sandbox_insert(f->st, &sb), -EEXIST);

        /* Deleting frees the slot for reuse; the lowest free one comes first. */
        assert_int_equal(store_sandbox_delete(f->st, "s3"), 0);
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), 0);
        assert_int_equal(slot, 3);
        assert_int_equal(store_sandbox_delete(f->st, "s1"), 0);
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), 0);
        assert_int_equal(slot, 1);

        /* A row off the slot grid (say, from an older configuration) blocks every slot its
         * range overlaps: base in the middle of slot 1 covers slots 1 and 2... */
        assert_int_equal(store_sandbox_delete(f->st, "s2"), 0);
        insert_sb(f->st, "odd", "org_a", "running", 6, first + range + range / 2);
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), 0);
        assert_int_equal(slot, 3);
        /* ...and one starting below first_base still covers slot 0's start. */
        assert_int_equal(store_sandbox_delete(f->st, "s0"), 0);
        insert_sb(f->st, "low", "org_a", "running", 7, first - 10);
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), 0);
        assert_int_equal(slot, 3);
        insert_sb(f->st, "s3b", "org_a", "running", 8, first + 3 * range);
        assert_int_equal(store_uid_slot_free(f->st, first, range, max, &slot), -ENOSPC);

        /* Rows outside the whole window do not count; arithmetic past 2^32 is fine. */
        assert_int_equal(store_uid_slot_free(f->st, 4000000000u, range, 1000, &slot), 0);
        assert_int_equal(slot, 0);
        assert_int_equal(store_uid_slot_free(f->st, first, range, 0, &slot), -ENOSPC);
        assert_int_equal(store_uid_slot_free(f->st, first, 0, max, &slot), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open_migrate_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_orgs_and_keys, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sandbox_crud, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sandbox_missing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sandbox_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sandbox_active_and_retention, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_uid_slots, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
