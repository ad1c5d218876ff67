/* test_secrets.c - secrets at rest and on their way into a command's environment: sealed rows
 * in a real store, edited behind the daemon's back with plain SQLite (moved to another
 * organisation, renamed, swapped, damaged, sealed under another key), the per-org limits,
 * the plaintext never in the database files, and secrets_add_env's choice and precedence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "app.h"
#include "secrets.h"
#include "store.h"
#include "util.h"

#define CANARY "canary-9f3b2c7d5e1a4f60"

struct fixture {
        char dir[64];
        char path[128];
        struct store *st;
        struct secrets *sx;
        struct app app;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        uint8_t key[SECRETBOX_KEY_LEN];

        if (!f)
                return -1;
        strcpy(f->dir, "/tmp/test_secrets.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/warren.db", f->dir);
        if (store_open(f->path, &f->st) < 0 || secretbox_key_generate(key) < 0 ||
            secrets_from_key(key, &f->sx) < 0)
                return -1;
        if (store_org_create(f->st, "org_a", "A") < 0 || store_org_create(f->st, "org_b", "B") < 0)
                return -1;
        f->app.store = f->st;
        f->app.secrets = f->sx;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        secrets_free(f->sx);
        store_close(f->st);
        util_rm_rf(f->dir);
        free(f);
        return 0;
}

/* Run SQL on the database file through a second, plain connection (as an attacker or a
 * careless operator with the file would). */
static void sql(struct fixture *f, const char *text)
{
        sqlite3 *db;
        char *err = NULL;

        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        int rc = sqlite3_exec(db, text, NULL, NULL, &err);
        if (rc != SQLITE_OK)
                fail_msg("%s: %s", text, err ? err : "?");
        assert_int_equal(sqlite3_changes(db) > 0 || strncmp(text, "UPDATE", 6) != 0, 1);
        sqlite3_close(db);
}

/* Overwrite the ciphertext of org_a's secret name with a copy changed at byte i (from the
 * end when i < 0), through a plain connection. */
static void flip_byte(struct fixture *f, const char *name, int i)
{
        struct store_secret sec = {};
        sqlite3 *db;
        sqlite3_stmt *s;

        assert_int_equal(store_secret_get(f->st, "org_a", name, &sec), 0);
        size_t at = i < 0 ? sec.ciphertext_len - (size_t)-i : (size_t)i;
        sec.ciphertext[at] ^= 0x01;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "UPDATE secrets SET ciphertext = ?1"
                                            " WHERE org_id = 'org_a' AND name = ?2",
                                            -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_blob(s, 1, sec.ciphertext, (int)sec.ciphertext_len, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        assert_int_equal(sqlite3_changes(db), 1);
        sqlite3_finalize(s);
        sqlite3_close(db);
        store_secret_clear(&sec);
}

static void put(struct fixture *f, const char *org, const char *name, const char *value)
{
        assert_int_equal(secrets_put(f->sx, f->st, org, name, value, strlen(value), NULL), 0);
}

/* secrets_get must give exactly want. */
static void expect_secret(struct fixture *f, const char *org, const char *name, const char *want)
{
        char *v = NULL;
        size_t len = 0;

        assert_int_equal(secrets_get(f->sx, f->st, org, name, &v, &len), 0);
        assert_int_equal(len, strlen(want));
        assert_string_equal(v, want);
        secrets_value_free(v, len);
}

static void expect_get(struct fixture *f, const char *org, const char *name, int want)
{
        char *v = (char *)"untouched";
        size_t len = 12345;

        assert_int_equal(secrets_get(f->sx, f->st, org, name, &v, &len), want);
        /* Failure leaves the outputs alone: no half-decrypted value escapes. */
        assert_string_equal(v, "untouched");
        assert_int_equal(len, 12345);
}

/* Whether the bytes of needle occur in the file at path (missing file: no). */
static bool file_contains(const char *path, const char *needle)
{
        FILE *fp = fopen(path, "rb");
        if (!fp)
                return false;
        size_t cap = 1 << 20, n = 0, got;
        char *buf = malloc(cap);
        assert_non_null(buf);
        while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
                n += got;
                if (n == cap) {
                        cap *= 2;
                        buf = realloc(buf, cap);
                        assert_non_null(buf);
                }
        }
        fclose(fp);
        bool found = memmem(buf, n, needle, strlen(needle)) != NULL;
        free(buf);
        return found;
}

static void test_put_get_replace(void **state)
{
        struct fixture *f = *state;
        struct store_secret a = {}, b = {};
        bool created = false;

        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "API_TOKEN", CANARY, strlen(CANARY),
                                     &created),
                         0);
        assert_true(created);
        expect_secret(f, "org_a", "API_TOKEN", CANARY);
        /* Scoped by organisation: org_b has no such secret. */
        expect_get(f, "org_b", "API_TOKEN", -ENOENT);
        expect_get(f, "org_a", "OTHER", -ENOENT);

        /* Replacing seals again with a fresh nonce; created_at stays. */
        assert_int_equal(store_secret_get(f->st, "org_a", "API_TOKEN", &a), 0);
        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "API_TOKEN", "second", 6, &created),
                         0);
        assert_false(created);
        assert_int_equal(store_secret_get(f->st, "org_a", "API_TOKEN", &b), 0);
        assert_memory_not_equal(a.nonce, b.nonce, sizeof(a.nonce));
        assert_int_equal(a.created_at, b.created_at);
        assert_true(b.updated_at >= a.updated_at);
        assert_memory_equal(a.key_id, b.key_id, sizeof(a.key_id));
        store_secret_clear(&a);
        store_secret_clear(&b);
        expect_secret(f, "org_a", "API_TOKEN", "second");

        /* The same value twice gives two different ciphertexts. */
        put(f, "org_a", "X1", "same");
        put(f, "org_a", "X2", "same");
        assert_int_equal(store_secret_get(f->st, "org_a", "X1", &a), 0);
        assert_int_equal(store_secret_get(f->st, "org_a", "X2", &b), 0);
        assert_int_equal(a.ciphertext_len, 4 + SECRETBOX_TAG_LEN);
        assert_memory_not_equal(a.ciphertext, b.ciphertext, a.ciphertext_len);
        store_secret_clear(&a);
        store_secret_clear(&b);

        /* Empty values are values. */
        put(f, "org_a", "EMPTY", "");
        expect_secret(f, "org_a", "EMPTY", "");

        assert_int_equal(store_secret_delete(f->st, "org_a", "X1"), 0);
        assert_int_equal(store_secret_delete(f->st, "org_a", "X1"), -ENOENT);
        expect_get(f, "org_a", "X1", -ENOENT);
}

/* The plaintext reaches neither the database nor its WAL or shared-memory file. */
static void test_plaintext_not_in_files(void **state)
{
        struct fixture *f = *state;
        char p[200];

        put(f, "org_a", "CANARY_SECRET", CANARY);
        put(f, "org_a", "CANARY_SECRET", CANARY "-v2");
        expect_secret(f, "org_a", "CANARY_SECRET", CANARY "-v2");
        for (int i = 0; i < 3; i++) {
                snprintf(p, sizeof(p), "%s%s", f->path, i == 0 ? "" : i == 1 ? "-wal" : "-shm");
                assert_false(file_contains(p, CANARY));
        }
        /* ...also after a checkpoint moved the WAL into the main file. */
        store_close(f->st);
        f->st = NULL;
        assert_int_equal(store_open(f->path, &f->st), 0);
        f->app.store = f->st;
        for (int i = 0; i < 3; i++) {
                snprintf(p, sizeof(p), "%s%s", f->path, i == 0 ? "" : i == 1 ? "-wal" : "-shm");
                assert_false(file_contains(p, CANARY));
        }
        /* The name is stored in the clear (it is not secret), so the search above works. */
        assert_true(file_contains(f->path, "CANARY_SECRET") ||
                    file_contains(p, "CANARY_SECRET"));
        expect_secret(f, "org_a", "CANARY_SECRET", CANARY "-v2");
}

/* Rows edited in the file do not decrypt: moved to another organisation, renamed, two
 * ciphertexts swapped, one byte changed, a nonce changed. */
static void test_moved_or_damaged_rows_fail(void **state)
{
        struct fixture *f = *state;

        put(f, "org_a", "MOVED", CANARY);
        sql(f, "UPDATE secrets SET org_id = 'org_b' WHERE name = 'MOVED'");
        expect_get(f, "org_b", "MOVED", -EBADMSG);
        expect_get(f, "org_a", "MOVED", -ENOENT);
        /* Moved back, it works again: the binding is to (org, name), nothing else. */
        sql(f, "UPDATE secrets SET org_id = 'org_a' WHERE name = 'MOVED'");
        expect_secret(f, "org_a", "MOVED", CANARY);

        put(f, "org_a", "RENAMED", CANARY);
        sql(f, "UPDATE secrets SET name = 'RENAMED2' WHERE name = 'RENAMED'");
        expect_get(f, "org_a", "RENAMED2", -EBADMSG);

        put(f, "org_a", "S1", "value-one");
        put(f, "org_a", "S2", "value-two");
        /* S2's sealed value (nonce and ciphertext) under the name S1; S2 given a new nonce. */
        sql(f, "CREATE TEMP TABLE t AS SELECT nonce, ciphertext FROM secrets WHERE name = 'S2';"
               "UPDATE secrets SET nonce = randomblob(12) WHERE name = 'S2';"
               "UPDATE secrets SET nonce = (SELECT nonce FROM t),"
               " ciphertext = (SELECT ciphertext FROM t) WHERE name = 'S1' AND org_id = 'org_a'");
        expect_get(f, "org_a", "S1", -EBADMSG);
        expect_get(f, "org_a", "S2", -EBADMSG);

        put(f, "org_a", "FLIPPED", CANARY);
        flip_byte(f, "FLIPPED", 3);
        expect_get(f, "org_a", "FLIPPED", -EBADMSG);

        put(f, "org_a", "TAG", CANARY);
        flip_byte(f, "TAG", -1);
        expect_get(f, "org_a", "TAG", -EBADMSG);
}

/* A daemon with another master key says so (-EKEYREJECTED), and a row whose key id was
 * forged to match still fails to authenticate: never garbage. */
static void test_wrong_master_key(void **state)
{
        struct fixture *f = *state;
        struct secrets *other;
        uint8_t key[SECRETBOX_KEY_LEN];
        char *v = NULL;
        size_t len;
        int64_t n = -1;

        put(f, "org_a", "TOKEN", CANARY);
        assert_int_equal(secretbox_key_generate(key), 0);
        assert_int_equal(secrets_from_key(key, &other), 0);
        assert_string_not_equal(secrets_key_id_hex(other), secrets_key_id_hex(f->sx));
        assert_int_equal(secrets_get(other, f->st, "org_a", "TOKEN", &v, &len), -EKEYREJECTED);
        assert_null(v);
        uint8_t id[SECRETBOX_KEY_ID_LEN];
        assert_int_equal(secretbox_key_id(key, id), 0);
        assert_int_equal(store_secret_count_other_key(f->st, id, &n), 0);
        assert_int_equal(n, 1);

        char q[200], hex[2 * SECRETBOX_KEY_ID_LEN + 1];
        util_hex(id, sizeof(id), hex);
        snprintf(q, sizeof(q), "UPDATE secrets SET key_id = X'%s' WHERE name = 'TOKEN'", hex);
        sql(f, q);
        assert_int_equal(secrets_get(other, f->st, "org_a", "TOKEN", &v, &len), -EBADMSG);
        assert_null(v);
        /* No key at all. */
        assert_int_equal(secrets_get(NULL, f->st, "org_a", "TOKEN", &v, &len), -EKEYREJECTED);
        secrets_free(other);
}

static void test_limits(void **state)
{
        struct fixture *f = *state;
        char name[32];
        bool created;

        /* Names: like C identifiers, at most 128 characters. */
        static const char *bad_names[] = { "", "1ABC", "A-B", "A B", "A=B", "Ä", "A.B", NULL };
        for (size_t i = 0; bad_names[i]; i++) {
                assert_false(secrets_name_valid(bad_names[i]));
                assert_int_equal(secrets_put(f->sx, f->st, "org_a", bad_names[i], "v", 1, NULL),
                                 -EINVAL);
        }
        assert_false(secrets_name_valid(NULL));
        assert_true(secrets_name_valid("_x"));
        assert_true(secrets_name_valid("OPENAI_API_KEY"));
        char longest[SECRETS_NAME_MAX + 2];
        memset(longest, 'N', sizeof(longest));
        longest[SECRETS_NAME_MAX] = '\0';
        assert_true(secrets_name_valid(longest));
        put(f, "org_a", longest, "v");
        longest[SECRETS_NAME_MAX] = 'N';
        longest[SECRETS_NAME_MAX + 1] = '\0';
        assert_false(secrets_name_valid(longest));
        assert_int_equal(store_secret_delete(f->st, "org_a", longest), -ENOENT);

        /* Values: at most 64 KiB, no NUL. */
        char *big = malloc(SECRETS_VALUE_MAX + 1);
        assert_non_null(big);
        memset(big, 'v', SECRETS_VALUE_MAX + 1);
        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "BIG", big, SECRETS_VALUE_MAX + 1,
                                     NULL),
                         -EINVAL);
        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "BIG", big, SECRETS_VALUE_MAX, NULL),
                         0);
        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "NUL", "a\0b", 3, NULL), -EINVAL);
        /* No such organisation. */
        assert_int_equal(secrets_put(f->sx, f->st, "org_none", "A", "v", 1, NULL), -ENOENT);

        /* Total bytes per organisation: 4 x 64 KiB fills 256 KiB (BIG is one of them). */
        for (int i = 0; i < 3; i++) {
                snprintf(name, sizeof(name), "BIG%d", i);
                assert_int_equal(secrets_put(f->sx, f->st, "org_a", name, big, SECRETS_VALUE_MAX,
                                             NULL),
                                 i < 2 ? 0 : -E2BIG);
        }
        /* Replacing a value counts the new size, not both. */
        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "BIG", big, SECRETS_VALUE_MAX - 10,
                                     NULL),
                         0);
        assert_int_equal(store_secret_delete(f->st, "org_a", "BIG"), 0);
        assert_int_equal(store_secret_delete(f->st, "org_a", "BIG0"), 0);
        assert_int_equal(store_secret_delete(f->st, "org_a", "BIG1"), 0);
        free(big);

        /* Count per organisation: 100 (the long name above is one). */
        for (int i = 1; i < SECRETS_MAX_PER_ORG; i++) {
                snprintf(name, sizeof(name), "S%03d", i);
                put(f, "org_a", name, "v");
        }
        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "ONE_MORE", "v", 1, NULL), -EDQUOT);
        /* Replacing one at the limit is fine; another organisation has its own count. */
        assert_int_equal(secrets_put(f->sx, f->st, "org_a", "S001", "w", 1, &created), 0);
        assert_false(created);
        put(f, "org_b", "ONE_MORE", "v");
}

/* A sandbox row for the choice table (it references sandboxes). */
static void make_sandbox(struct fixture *f, const char *id, const char *org, uint32_t uid_base)
{
        struct store_sandbox sb = {};
        snprintf(sb.id, sizeof(sb.id), "%s", id);
        snprintf(sb.org_id, sizeof(sb.org_id), "%s", org);
        snprintf(sb.status, sizeof(sb.status), "running");
        snprintf(sb.template, sizeof(sb.template), "base");
        snprintf(sb.isolation, sizeof(sb.isolation), "container");
        sb.cpu_millis = 1000;
        sb.memory_bytes = 1 << 30;
        sb.disk_bytes = 1 << 30;
        sb.timeout_s = 60;
        sb.uid_base = uid_base;
        assert_int_equal(store_sandbox_insert(f->st, &sb), 0);
}

static void test_add_env(void **state)
{
        struct fixture *f = *state;
        json_t *env, *names;

        put(f, "org_a", "A", "value-a");
        put(f, "org_a", "B", "value-b");
        put(f, "org_a", "PATH", "evil-path");
        put(f, "org_b", "OTHER_ORG", "value-other");
        make_sandbox(f, "sb_none", "org_a", 100000);
        make_sandbox(f, "sb_all", "org_a", 200000);
        make_sandbox(f, "sb_some", "org_a", 300000);
        make_sandbox(f, "sb_empty", "org_a", 400000);
        assert_int_equal(secrets_bind_sandbox(&f->app, "sb_all", NULL), 0);
        names = json_pack("[s, s]", "B", "GONE_LATER");
        put(f, "org_a", "GONE_LATER", "x");
        assert_int_equal(secrets_bind_sandbox(&f->app, "sb_some", names), 0);
        json_decref(names);
        names = json_array();
        assert_int_equal(secrets_bind_sandbox(&f->app, "sb_empty", names), 0);
        json_decref(names);
        assert_int_equal(store_secret_delete(f->st, "org_a", "GONE_LATER"), 0);
        /* A sandbox that does not exist cannot get a choice. */
        assert_int_equal(secrets_bind_sandbox(&f->app, "sb_missing", NULL), -ENOENT);

        /* No recorded choice (a pooled sandbox, an old row): nothing. */
        env = json_object();
        assert_int_equal(secrets_add_env(&f->app, "org_a", "sb_none", env), 0);
        assert_int_equal(json_object_size(env), 0);
        json_decref(env);

        /* All of the org's, none of another org's; a variable already set wins (PATH). */
        env = json_pack("{s:s, s:s}", "PATH", "/usr/bin", "B", "from-request");
        assert_int_equal(secrets_add_env(&f->app, "org_a", "sb_all", env), 0);
        assert_int_equal(json_object_size(env), 3);
        assert_string_equal(json_string_value(json_object_get(env, "A")), "value-a");
        assert_string_equal(json_string_value(json_object_get(env, "B")), "from-request");
        assert_string_equal(json_string_value(json_object_get(env, "PATH")), "/usr/bin");
        assert_null(json_object_get(env, "OTHER_ORG"));
        json_decref(env);

        /* The chosen ones; a chosen secret deleted since is skipped. */
        env = json_object();
        assert_int_equal(secrets_add_env(&f->app, "org_a", "sb_some", env), 0);
        assert_int_equal(json_object_size(env), 1);
        assert_string_equal(json_string_value(json_object_get(env, "B")), "value-b");
        json_decref(env);

        /* []: none. */
        env = json_object();
        assert_int_equal(secrets_add_env(&f->app, "org_a", "sb_empty", env), 0);
        assert_int_equal(json_object_size(env), 0);
        json_decref(env);

        /* Replaced values are seen by the next command. */
        put(f, "org_a", "A", "value-a2");
        env = json_object();
        assert_int_equal(secrets_add_env(&f->app, "org_a", "sb_all", env), 0);
        assert_string_equal(json_string_value(json_object_get(env, "A")), "value-a2");
        json_decref(env);

        /* One secret that does not decrypt stops the command (-EKEYREJECTED), whatever the
         * cause: it is not silently left out. */
        sql(f, "UPDATE secrets SET nonce = randomblob(12) WHERE name = 'B' AND org_id = 'org_a'");
        env = json_object();
        assert_int_equal(secrets_add_env(&f->app, "org_a", "sb_some", env), -EKEYREJECTED);
        json_decref(env);
        struct secrets *saved = f->app.secrets, *other;
        uint8_t key[SECRETBOX_KEY_LEN];
        assert_int_equal(secretbox_key_generate(key), 0);
        assert_int_equal(secrets_from_key(key, &other), 0);
        f->app.secrets = other;
        env = json_object();
        assert_int_equal(secrets_add_env(&f->app, "org_a", "sb_all", env), -EKEYREJECTED);
        json_decref(env);
        f->app.secrets = saved;
        secrets_free(other);

        /* The choice goes with the sandbox row. */
        char *names_json = NULL;
        assert_int_equal(store_sandbox_secrets_get(f->st, "sb_some", &names_json), 0);
        assert_non_null(names_json);
        free(names_json);
        assert_int_equal(store_sandbox_delete(f->st, "sb_some"), 0);
        assert_int_equal(store_sandbox_secrets_get(f->st, "sb_some", &names_json), -ENOENT);
        assert_int_equal(store_sandbox_secrets_get(f->st, "sb_all", &names_json), 0);
        assert_null(names_json);
        assert_int_equal(store_sandbox_secrets_clear(f->st, "sb_all"), 0);
        assert_int_equal(store_sandbox_secrets_get(f->st, "sb_all", &names_json), -ENOENT);
}

static int list_cb(const struct store_secret *sec, void *ud)
{
        json_array_append_new(ud, json_string(sec->name));
        /* No ciphertext in listings. */
        assert_null(sec->ciphertext);
        return 0;
}

static void test_list_and_usage(void **state)
{
        struct fixture *f = *state;
        json_t *arr = json_array();
        int64_t count, bytes;

        put(f, "org_a", "ZED", "1");
        put(f, "org_a", "ALPHA", "22");
        put(f, "org_b", "BETA", "333");
        assert_int_equal(store_secret_list(f->st, "org_a", list_cb, arr), 0);
        assert_int_equal(json_array_size(arr), 2);
        assert_string_equal(json_string_value(json_array_get(arr, 0)), "ALPHA");
        assert_string_equal(json_string_value(json_array_get(arr, 1)), "ZED");
        json_decref(arr);
        assert_int_equal(store_secret_usage(f->st, "org_a", NULL, &count, &bytes), 0);
        assert_int_equal(count, 2);
        assert_int_equal(bytes, 3 + 2 * SECRETBOX_TAG_LEN);
        assert_int_equal(store_secret_usage(f->st, "org_a", "ZED", &count, &bytes), 0);
        assert_int_equal(count, 1);
        assert_int_equal(bytes, 2 + SECRETBOX_TAG_LEN);
}

/* secrets_open: a key file made on first use (0600, hex), read back the same, refused when
 * others can read it; WARREN_MASTER_KEY wins, must be a key, and is wiped once read. */
static void test_open_key_sources(void **state)
{
        struct fixture *f = *state;
        struct secrets *a = NULL, *b = NULL;
        char err[512], path[200];
        struct stat stt;

        unsetenv("WARREN_MASTER_KEY");
        unsetenv("WARREN_MASTER_KEY_FILE");
        assert_int_equal(secrets_open(f->dir, &a, err, sizeof(err)), 0);
        snprintf(path, sizeof(path), "%s/master.key", f->dir);
        assert_int_equal(stat(path, &stt), 0);
        assert_int_equal(stt.st_mode & 07777, 0600);
        assert_int_equal(stt.st_size, 65);
        assert_string_equal(secrets_key_source(a), path);
        assert_int_equal(secrets_open(f->dir, &b, err, sizeof(err)), 0);
        assert_string_equal(secrets_key_id_hex(a), secrets_key_id_hex(b));
        secrets_free(b);
        b = NULL;

        assert_int_equal(chmod(path, 0640), 0);
        assert_int_equal(secrets_open(f->dir, &b, err, sizeof(err)), -EPERM);
        assert_non_null(strstr(err, "chmod 600"));
        assert_int_equal(chmod(path, 0600), 0);

        /* WARREN_MASTER_KEY_FILE names another file. */
        char other[200];
        snprintf(other, sizeof(other), "%s/other.key", f->dir);
        setenv("WARREN_MASTER_KEY_FILE", other, 1);
        assert_int_equal(secrets_open(f->dir, &b, err, sizeof(err)), 0);
        assert_string_not_equal(secrets_key_id_hex(a), secrets_key_id_hex(b));
        assert_int_equal(stat(other, &stt), 0);
        secrets_free(b);
        b = NULL;
        unsetenv("WARREN_MASTER_KEY_FILE");

        /* A file that holds no key. */
        FILE *fp = fopen(other, "w");
        assert_non_null(fp);
        fputs("not a key\n", fp);
        fclose(fp);
        setenv("WARREN_MASTER_KEY_FILE", other, 1);
        assert_int_equal(secrets_open(f->dir, &b, err, sizeof(err)), -EINVAL);
        unsetenv("WARREN_MASTER_KEY_FILE");

        setenv("WARREN_MASTER_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 1);
        assert_int_equal(secrets_open(f->dir, &b, err, sizeof(err)), 0);
        assert_string_equal(secrets_key_source(b), "WARREN_MASTER_KEY");
        assert_string_equal(secrets_key_id_hex(b), "55362adc228be790");
        assert_null(getenv("WARREN_MASTER_KEY"));
        secrets_free(b);
        b = NULL;
        setenv("WARREN_MASTER_KEY", "too short", 1);
        assert_int_equal(secrets_open(f->dir, &b, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "WARREN_MASTER_KEY"));
        assert_null(getenv("WARREN_MASTER_KEY"));
        assert_null(b);
        secrets_free(a);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_put_get_replace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plaintext_not_in_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_moved_or_damaged_rows_fail, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_add_env, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_and_usage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_key_sources, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
