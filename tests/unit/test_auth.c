/* test_auth.c - credentials against a real store: API keys, JWTs naming a key (revoked,
 * expired, forged), session tokens (expiry, last use, their key revoked, their sandbox
 * deleted), magic links (once, expiry, key revoked), and the identity rows of migration 3.
 * Each test gets a fresh database in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "auth.h"
#include "jwt.h"
#include "store.h"
#include "store_internal.h"
#include "util.h"

static const uint8_t jwt_key[] = "test-secret-test-secret-test-secret-!!";
#define JWT_KEY_LEN 38
static const int64_t now = 1800000000;

struct fixture {
        char dir[64];
        char path[128];
        struct store *st;
        char org[STORE_ID_MAX];
        char key[64];        /* the org's admin key */
        struct store_key k;  /* its row */
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        struct auth_identity id;
        struct auth_cred c;

        if (!f)
                return -1;
        strcpy(f->dir, "/tmp/test_auth.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/warren.db", f->dir);
        if (store_open(f->path, &f->st) < 0)
                return -1;
        if (auth_org_create(f->st, "acme", NULL, f->org, sizeof(f->org), f->key,
                            sizeof(f->key)) < 0)
                return -1;
        if (auth_parse_token(f->key, strlen(f->key), &c) < 0 ||
            auth_verify(f->st, NULL, 0, now, &c, &id) < 0 ||
            store_key_get(f->st, id.key_id, &f->k) < 0)
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

/* Verify text (any kind, classified by shape) at time t. */
static int verify_at(struct fixture *f, const char *text, int64_t t, struct auth_identity *id)
{
        struct auth_cred c;
        struct auth_identity tmp;
        if (auth_parse_token(text, strlen(text), &c) < 0)
                return -EACCES;
        return auth_verify(f->st, jwt_key, JWT_KEY_LEN, t, &c, id ? id : &tmp);
}

static void insert_sandbox(struct store *st, const char *id, const char *org, uint32_t uid)
{
        struct store_sandbox sb = { 0 };
        snprintf(sb.id, sizeof(sb.id), "%s", id);
        snprintf(sb.org_id, sizeof(sb.org_id), "%s", org);
        snprintf(sb.status, sizeof(sb.status), "running");
        snprintf(sb.template, sizeof(sb.template), "base");
        snprintf(sb.isolation, sizeof(sb.isolation), "container");
        sb.created_at = now;
        sb.expires_at = now + 300;
        sb.uid_base = uid;
        assert_int_equal(store_sandbox_insert(st, &sb), 0);
}

/* A new key of the fixture's org with a role; its secret into out (64 bytes). */
static void new_key(struct fixture *f, const char *role, char *out, struct store_key *ret)
{
        struct store_key k = { 0 };
        uint8_t hash[32];
        assert_int_equal(auth_key_generate(out, 64), 0);
        assert_int_equal(auth_make_id("key_", k.id, sizeof(k.id)), 0);
        snprintf(k.org_id, sizeof(k.org_id), "%s", f->org);
        snprintf(k.name, sizeof(k.name), "k");
        snprintf(k.prefix, sizeof(k.prefix), "%.10s", out);
        snprintf(k.role, sizeof(k.role), "%s", role);
        auth_key_hash(out, hash);
        assert_int_equal(store_key_insert(f->st, &k, hash), 0);
        *ret = k;
}

static void test_keys(void **state)
{
        struct fixture *f = *state;
        struct auth_identity id;
        struct store_key m, got;
        char mkey[64];
        int64_t n;

        assert_int_equal(strncmp(f->key, "wk_", 3), 0);
        assert_int_equal(strlen(f->key), 46);
        assert_int_equal(verify_at(f, f->key, now, &id), 0);
        assert_int_equal(id.kind, CRED_KEY);
        assert_string_equal(id.org_id, f->org);
        assert_string_equal(id.role, "admin");
        assert_string_equal(id.sandbox_id, "");
        assert_int_equal(verify_at(f, "wk_unknownunknownunknownunknown", now, NULL), -EACCES);

        new_key(f, "member", mkey, &m);
        assert_int_equal(verify_at(f, mkey, now, &id), 0);
        assert_string_equal(id.role, "member");
        assert_int_equal(store_key_count_active(f->st, f->org, NULL, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(store_key_count_active(f->st, f->org, "admin", &n), 0);
        assert_int_equal(n, 1);

        /* Revocation is immediate, once, and only within the key's org. */
        assert_int_equal(store_key_revoke(f->st, "org_other", m.id, now), -ENOENT);
        assert_int_equal(store_key_revoke(f->st, f->org, m.id, now), 0);
        assert_int_equal(store_key_revoke(f->st, f->org, m.id, now), -ENOENT);
        assert_int_equal(verify_at(f, mkey, now, NULL), -EACCES);
        assert_int_equal(store_key_get(f->st, m.id, &got), 0);
        assert_int_equal(got.revoked_at, now);
        assert_int_equal(store_key_count_active(f->st, f->org, NULL, &n), 0);
        assert_int_equal(n, 1);

        /* auth_request (keys only) still works for API keys. */
        char hdr[100];
        snprintf(hdr, sizeof(hdr), "ApiKey %s", f->key);
        assert_int_equal(auth_request(f->st, hdr, &got), 0);
        assert_string_equal(got.id, f->k.id);
        assert_int_equal(auth_request(f->st, "Bearer wst_abc", &got), -EACCES);
}

static void test_jwt_names_active_key(void **state)
{
        struct fixture *f = *state;
        struct auth_identity id;
        struct store_key m;
        char mkey[64], *tok = NULL, *mtok = NULL;

        assert_int_equal(auth_jwt_issue(jwt_key, JWT_KEY_LEN, &f->k, now, 600, &tok), 0);
        assert_int_equal(verify_at(f, tok, now + 1, &id), 0);
        assert_int_equal(id.kind, CRED_JWT);
        assert_string_equal(id.key_id, f->k.id);
        assert_string_equal(id.org_id, f->org);
        assert_string_equal(id.role, "admin");
        /* Expired; another secret. */
        assert_int_equal(verify_at(f, tok, now + 600, NULL), -EKEYEXPIRED);
        struct auth_cred c;
        assert_int_equal(auth_parse_token(tok, strlen(tok), &c), 0);
        static const uint8_t other[] = "another-secret-another-secret-another!";
        assert_int_equal(auth_verify(f->st, other, 38, now, &c, &id), -EACCES);
        assert_int_equal(auth_verify(f->st, NULL, 0, now, &c, &id), -EACCES);

        /* The kid (sub) of a revoked key: refused at once, though signature and exp hold. */
        new_key(f, "member", mkey, &m);
        assert_int_equal(auth_jwt_issue(jwt_key, JWT_KEY_LEN, &m, now, 600, &mtok), 0);
        assert_int_equal(verify_at(f, mtok, now, &id), 0);
        assert_string_equal(id.role, "member");
        assert_int_equal(store_key_revoke(f->st, f->org, m.id, now), 0);
        assert_int_equal(verify_at(f, mtok, now, NULL), -EACCES);
        assert_int_equal(verify_at(f, tok, now, NULL), 0);

        /* Signed with our secret but with claims we would not issue: no iss, another iss,
         * another org than the key's, an unknown key, a non-string sub, no exp. */
        json_t *cl[] = {
                json_pack("{s:s, s:s, s:I}", "sub", f->k.id, "org", f->org, "exp",
                          (json_int_t)(now + 60)),
                json_pack("{s:s, s:s, s:s, s:I}", "iss", "other", "sub", f->k.id, "org", f->org,
                          "exp", (json_int_t)(now + 60)),
                json_pack("{s:s, s:s, s:s, s:I}", "iss", "warren", "sub", f->k.id, "org",
                          "org_other", "exp", (json_int_t)(now + 60)),
                json_pack("{s:s, s:s, s:s, s:I}", "iss", "warren", "sub", "key_nope", "org",
                          f->org, "exp", (json_int_t)(now + 60)),
                json_pack("{s:s, s:i, s:s, s:I}", "iss", "warren", "sub", 5, "org", f->org,
                          "exp", (json_int_t)(now + 60)),
                json_pack("{s:s, s:s, s:s}", "iss", "warren", "sub", f->k.id, "org", f->org),
        };
        for (size_t i = 0; i < sizeof(cl) / sizeof(cl[0]); i++) {
                char *t = NULL;
                assert_int_equal(jwt_sign(jwt_key, JWT_KEY_LEN, cl[i], &t), 0);
                assert_int_equal(verify_at(f, t, now, NULL), -EACCES);
                free(t);
                json_decref(cl[i]);
        }
        free(tok);
        free(mtok);
}

/* Insert a session token for sandbox sid minted by key_id; its secret into out. */
static void new_session(struct fixture *f, const char *sid, const char *key_id, int64_t ttl,
                        char *out, struct store_session *ret)
{
        struct store_session t = { 0 };
        uint8_t hash[32];
        assert_int_equal(auth_secret_generate(AUTH_SESSION_PREFIX, out, 64), 0);
        assert_int_equal(auth_make_id("tok_", t.id, sizeof(t.id)), 0);
        snprintf(t.org_id, sizeof(t.org_id), "%s", f->org);
        snprintf(t.sandbox_id, sizeof(t.sandbox_id), "%s", sid);
        snprintf(t.key_id, sizeof(t.key_id), "%s", key_id);
        snprintf(t.description, sizeof(t.description), "d");
        t.created_at = now;
        t.expires_at = now + ttl;
        auth_key_hash(out, hash);
        assert_int_equal(store_session_insert(f->st, &t, hash), 0);
        *ret = t;
}

static int count_cb(const struct store_session *t, void *ud)
{
        (void)t;
        (*(int *)ud)++;
        return 0;
}

static void test_session_tokens(void **state)
{
        struct fixture *f = *state;
        struct auth_identity id;
        struct store_session t, t2, t3, got;
        struct store_key m;
        char tok[64], tok2[64], tok3[64], mkey[64];
        int64_t n;
        int cnt = 0;

        insert_sandbox(f->st, "sandbox-a", f->org, 100000);
        insert_sandbox(f->st, "sandbox-b", f->org, 200000);
        new_session(f, "sandbox-a", f->k.id, 3600, tok, &t);
        assert_int_equal(strncmp(tok, "wst_", 4), 0);
        assert_int_equal(strlen(tok), 47);

        assert_int_equal(store_session_get(f->st, "sandbox-a", t.id, &got), 0);
        assert_int_equal(got.last_used_at, 0);
        assert_int_equal(verify_at(f, tok, now + 10, &id), 0);
        assert_int_equal(id.kind, CRED_SESSION);
        assert_string_equal(id.sandbox_id, "sandbox-a");
        assert_string_equal(id.key_id, t.id);
        assert_string_equal(id.role, "session");
        assert_int_equal(store_session_get(f->st, "sandbox-a", t.id, &got), 0);
        assert_int_equal(got.last_used_at, now + 10);
        /* Not another sandbox's. */
        assert_int_equal(store_session_get(f->st, "sandbox-b", t.id, &got), -ENOENT);
        /* Expiry. */
        assert_int_equal(verify_at(f, tok, now + 3600, NULL), -EKEYEXPIRED);
        assert_int_equal(store_session_count(f->st, "sandbox-a", now, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(store_session_count(f->st, "sandbox-a", now + 3600, &n), 0);
        assert_int_equal(n, 0);

        /* Revoking the key that minted a token kills the token. */
        new_key(f, "member", mkey, &m);
        new_session(f, "sandbox-a", m.id, 3600, tok2, &t2);
        assert_int_equal(verify_at(f, tok2, now, NULL), 0);
        assert_int_equal(store_session_each_by_key(f->st, m.id, count_cb, &cnt), 0);
        assert_int_equal(cnt, 1);
        assert_int_equal(store_key_revoke(f->st, f->org, m.id, now), 0);
        assert_int_equal(verify_at(f, tok2, now, NULL), -EACCES);

        /* Deleting one token; deleting the sandbox deletes its tokens. */
        new_session(f, "sandbox-b", f->k.id, 3600, tok3, &t3);
        assert_int_equal(store_session_delete(f->st, "sandbox-a", t3.id), -ENOENT);
        assert_int_equal(verify_at(f, tok3, now, NULL), 0);
        assert_int_equal(store_sandbox_delete(f->st, "sandbox-b"), 0);
        assert_int_equal(verify_at(f, tok3, now, NULL), -EACCES);
        cnt = 0;
        assert_int_equal(store_session_each(f->st, "sandbox-a", count_cb, &cnt), 0);
        assert_int_equal(cnt, 2);
        assert_int_equal(store_session_delete(f->st, "sandbox-a", t.id), 0);
        assert_int_equal(store_session_delete(f->st, "sandbox-a", t.id), -ENOENT);
        assert_int_equal(verify_at(f, tok, now, NULL), -EACCES);

        /* Purging expired ones. */
        new_session(f, "sandbox-a", f->k.id, 5, tok, &t);
        assert_int_equal(store_session_purge_expired(f->st, "sandbox-a", now + 5), 0);
        assert_int_equal(store_session_get(f->st, "sandbox-a", t.id, &got), -ENOENT);

        /* A token for a sandbox of another org cannot be inserted under ours and found. */
        char o2[STORE_ID_MAX], k2[64];
        assert_int_equal(auth_org_create(f->st, "other", NULL, o2, sizeof(o2), k2, sizeof(k2)),
                         0);
        insert_sandbox(f->st, "sandbox-c", o2, 300000);
        new_session(f, "sandbox-c", f->k.id, 3600, tok, &t);
        assert_int_equal(verify_at(f, tok, now, NULL), -EACCES);
}

static void test_magic_links(void **state)
{
        struct fixture *f = *state;
        struct store_magic m = { 0 }, got;
        struct store_key mk;
        char mkey[64];
        uint8_t hash[32], hash2[32];
        int64_t n;

        insert_sandbox(f->st, "sandbox-a", f->org, 100000);
        snprintf(m.id, sizeof(m.id), "ml_1");
        snprintf(m.org_id, sizeof(m.org_id), "%s", f->org);
        snprintf(m.sandbox_id, sizeof(m.sandbox_id), "sandbox-a");
        snprintf(m.key_id, sizeof(m.key_id), "%s", f->k.id);
        snprintf(m.redirect_url, sizeof(m.redirect_url), "/x");
        m.created_at = now;
        m.expires_at = now + 300;
        auth_key_hash("wml_one", hash);
        assert_int_equal(store_magic_insert(f->st, &m, hash), 0);
        assert_int_equal(store_magic_count(f->st, "sandbox-a", now, &n), 0);
        assert_int_equal(n, 1);
        /* Expired: refused (and left unused). */
        assert_int_equal(store_magic_consume(f->st, hash, now + 300, &got), -ENOENT);
        /* Once. */
        assert_int_equal(store_magic_consume(f->st, hash, now + 299, &got), 0);
        assert_string_equal(got.sandbox_id, "sandbox-a");
        assert_string_equal(got.redirect_url, "/x");
        assert_string_equal(got.key_id, f->k.id);
        assert_int_equal(store_magic_consume(f->st, hash, now + 299, &got), -ENOENT);
        assert_int_equal(store_magic_count(f->st, "sandbox-a", now, &n), 0);
        assert_int_equal(n, 0);
        /* Unknown. */
        auth_key_hash("wml_two", hash2);
        assert_int_equal(store_magic_consume(f->st, hash2, now, &got), -ENOENT);
        /* Minted by a key revoked since. */
        new_key(f, "member", mkey, &mk);
        snprintf(m.id, sizeof(m.id), "ml_2");
        snprintf(m.key_id, sizeof(m.key_id), "%s", mk.id);
        assert_int_equal(store_magic_insert(f->st, &m, hash2), 0);
        assert_int_equal(store_key_revoke(f->st, f->org, mk.id, now), 0);
        assert_int_equal(store_magic_consume(f->st, hash2, now, &got), -ENOENT);
        /* Purge drops used and expired links. */
        assert_int_equal(store_magic_purge(f->st, now + 301), 0);
        assert_int_equal(store_magic_insert(f->st, &m, hash2), 0); /* id free again */
}

static int org_cb(const struct store_org *o, void *ud)
{
        (*(int *)ud) += o->system ? 100 : 1;
        return 0;
}

static void test_orgs_users_system(void **state)
{
        struct fixture *f = *state;
        struct store_org o;
        struct store_user u = { 0 };
        char sys[STORE_ID_MAX], skey[64];
        int acc = 0;

        assert_int_equal(store_org_get(f->st, f->org, &o), 0);
        assert_false(o.system);
        assert_int_equal(auth_org_create_system(f->st, "admin", "wk_custom_admin_key_1234", sys,
                                                sizeof(sys), skey, sizeof(skey)),
                         0);
        assert_string_equal(skey, "wk_custom_admin_key_1234");
        assert_int_equal(store_org_get(f->st, sys, &o), 0);
        assert_true(o.system);
        assert_int_equal(store_org_each(f->st, org_cb, &acc), 0);
        assert_int_equal(acc, 101);
        assert_int_equal(store_org_get(f->st, "org_nope", &o), -ENOENT);

        /* Operator-chosen keys that would be taken for another kind of credential. */
        char x[STORE_ID_MAX], xk[64];
        assert_int_equal(auth_org_create(f->st, "x", "wst_looks_like_a_session", x, sizeof(x),
                                         xk, sizeof(xk)),
                         -EINVAL);
        assert_int_equal(auth_org_create(f->st, "x", "eyJhbGciOi.eyJzdWIi.c2ln", x, sizeof(x),
                                         xk, sizeof(xk)),
                         -EINVAL);
        assert_int_equal(auth_org_create(f->st, "x", "short", x, sizeof(x), xk, sizeof(xk)),
                         -EINVAL);
        assert_int_equal(auth_org_create(f->st, "x", "has a space in the key", x, sizeof(x),
                                         xk, sizeof(xk)),
                         -EINVAL);

        /* Users: email unique without regard to case. */
        snprintf(u.id, sizeof(u.id), "user_1");
        snprintf(u.org_id, sizeof(u.org_id), "%s", f->org);
        snprintf(u.email, sizeof(u.email), "Agent@Example.com");
        snprintf(u.first_name, sizeof(u.first_name), "A");
        snprintf(u.last_name, sizeof(u.last_name), "B");
        snprintf(u.role, sizeof(u.role), "admin");
        u.created_at = now;
        assert_int_equal(store_user_insert(f->st, &u), 0);
        snprintf(u.id, sizeof(u.id), "user_2");
        snprintf(u.email, sizeof(u.email), "agent@example.COM");
        assert_int_equal(store_user_insert(f->st, &u), -EEXIST);
        snprintf(u.email, sizeof(u.email), "b@example.com");
        snprintf(u.org_id, sizeof(u.org_id), "org_missing");
        assert_int_equal(store_user_insert(f->st, &u), -ENOENT);

        /* A transaction rolled back leaves nothing. */
        assert_int_equal(store_tx_begin(f->st), 0);
        assert_int_equal(store_org_create(f->st, "org_tx", "tx"), 0);
        store_tx_rollback(f->st);
        assert_int_equal(store_org_get(f->st, "org_tx", &o), -ENOENT);
}

/* A database made before migration 3 gets the system flag on its first "admin" org. */
static void test_migration_marks_legacy_admin(void **state)
{
        struct fixture *f = *state;
        char path[160];
        sqlite3 *db;
        struct store *st = NULL;
        struct store_org o;

        snprintf(path, sizeof(path), "%s/legacy.db", f->dir);
        /* The real migration 1, then rows as the first start and a later org-create made
         * them. */
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "CREATE TABLE schema_version (version INTEGER PRIMARY KEY"
                                      " NOT NULL, applied_at INTEGER NOT NULL) STRICT;"
                                      "INSERT INTO schema_version VALUES (1, 0);",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(store_migrations[0].version, 1);
        assert_int_equal(sqlite3_exec(db, store_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "INSERT INTO orgs VALUES ('org_first', 'admin', 10);"
                                      "INSERT INTO orgs VALUES ('org_pool', 'warm pool', 11);"
                                      "INSERT INTO orgs VALUES ('org_later', 'admin', 12);",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(path, &st), 0);
        assert_int_equal(store_org_get(st, "org_first", &o), 0);
        assert_true(o.system);
        assert_int_equal(store_org_get(st, "org_later", &o), 0);
        assert_false(o.system);
        assert_int_equal(store_org_get(st, "org_pool", &o), 0);
        assert_false(o.system);
        store_close(st);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwt_names_active_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_session_tokens, setup, teardown),
                cmocka_unit_test_setup_teardown(test_magic_links, setup, teardown),
                cmocka_unit_test_setup_teardown(test_orgs_users_system, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migration_marks_legacy_admin, setup,
                                                teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
