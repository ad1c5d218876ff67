/* identity.c - the store's identity rows: transactions, the operator's organisation, key
 * management, users, session tokens and magic links. See store.h for the contract.
 *
 * Walks read every row into memory and finalize their statement before the first callback
 * (as sandbox.c does), so a callback may call back into the store. Walks are bounded by the
 * callers' limits (keys per organisation, tokens per sandbox).
 */
#include "store_internal.h"

#include <string.h>

#include "util.h"

/* ---- transactions ---- */

int store_tx_begin(struct store *st)
{
        int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : store_errno(sqlite3_extended_errcode(st->db));
}

int store_tx_commit(struct store *st)
{
        int rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : store_errno(sqlite3_extended_errcode(st->db));
}

void store_tx_rollback(struct store *st)
{
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Step a one-off statement expected to change exactly one row: 0, -ENOENT if it changed
 * none, or -errno. */
static int step_one_change(struct store *st, sqlite3_stmt *s)
{
        int r = store_step_done(st, s);
        if (r < 0)
                return r;
        return sqlite3_changes(st->db) == 1 ? 0 : -ENOENT;
}

/* Prepare a statement that is not cached (rare admin queries). */
static int prepare(struct store *st, const char *sql, sqlite3_stmt **ret)
{
        int rc = sqlite3_prepare_v2(st->db, sql, -1, ret, NULL);
        return rc == SQLITE_OK ? 0 : store_errno(rc);
}

/* The one-row integer result of a prepared, bound statement. */
static int step_int(struct store *st, sqlite3_stmt *s, int64_t *ret)
{
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        *ret = sqlite3_column_int64(s, 0);
        return 0;
}

/* A growing array of fixed-size rows, for walks. */
struct rows {
        void *v;
        size_t n, cap, size;
};

/* Room for one more row; returns it zeroed, or NULL (out of memory). */
static void *rows_add(struct rows *a)
{
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 8;
                void *v = realloc(a->v, cap * a->size);
                if (!v)
                        return NULL;
                a->v = v;
                a->cap = cap;
        }
        void *p = (char *)a->v + a->n++ * a->size;
        memset(p, 0, a->size);
        return p;
}

/* ---- organisations ---- */

int store_org_set_system(struct store *st, const char *id)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "UPDATE orgs SET is_system = 1 WHERE id = ?1", &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, id);
        if (r == 0)
                r = step_one_change(st, s);
        sqlite3_finalize(s);
        return r;
}

/* Read an org row (id, name, created_at, is_system). */
static int read_org(sqlite3_stmt *s, struct store_org *o)
{
        int r;
        if ((r = store_col_field(s, 0, o->id, sizeof(o->id))) < 0 ||
            (r = store_col_field(s, 1, o->name, sizeof(o->name))) < 0)
                return r;
        o->created_at = sqlite3_column_int64(s, 2);
        o->system = sqlite3_column_int64(s, 3) != 0;
        return 0;
}

int store_org_get(struct store *st, const char *id, struct store_org *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        struct store_org o = { 0 };
        int r, rc;

        if (!id || strlen(id) >= STORE_ID_MAX)
                return -ENOENT;
        r = store_stmt(st, STMT_ORG_GET,
                       "SELECT id, name, created_at, is_system FROM orgs WHERE id = ?1", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, id)) < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        r = read_org(s, &o);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}

int store_org_each(struct store *st, int (*cb)(const struct store_org *o, void *ud), void *ud)
{
        struct rows a = { .size = sizeof(struct store_org) };
        sqlite3_stmt *s = NULL;
        int r, rc;

        r = prepare(st, "SELECT id, name, created_at, is_system FROM orgs"
                        " ORDER BY created_at, rowid", &s);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct store_org *o = rows_add(&a);
                if (!o) {
                        r = -ENOMEM;
                        break;
                }
                if ((r = read_org(s, o)) < 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        sqlite3_finalize(s);
        for (size_t i = 0; r == 0 && i < a.n; i++)
                r = cb((struct store_org *)a.v + i, ud);
        free(a.v);
        return r;
}

/* ---- API keys ---- */

#define KEY_COLUMNS "id, org_id, name, prefix, role, created_at, revoked_at"

/* Read a key row (KEY_COLUMNS). */
static int read_key(sqlite3_stmt *s, struct store_key *k)
{
        int r;
        if ((r = store_col_field(s, 0, k->id, sizeof(k->id))) < 0 ||
            (r = store_col_field(s, 1, k->org_id, sizeof(k->org_id))) < 0 ||
            (r = store_col_field(s, 2, k->name, sizeof(k->name))) < 0 ||
            (r = store_col_field(s, 3, k->prefix, sizeof(k->prefix))) < 0 ||
            (r = store_col_field(s, 4, k->role, sizeof(k->role))) < 0)
                return r;
        k->created_at = sqlite3_column_int64(s, 5);
        k->revoked_at = sqlite3_column_int64(s, 6);
        return 0;
}

int store_key_get(struct store *st, const char *id, struct store_key *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        struct store_key k = { 0 };
        int r, rc;

        if (!id || strlen(id) >= STORE_ID_MAX)
                return -ENOENT;
        r = store_stmt(st, STMT_KEY_GET, "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = ?1",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, id)) < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        r = read_key(s, &k);
        if (r < 0)
                return r;
        *ret = k;
        return 0;
}

int store_key_each(struct store *st, const char *org_id,
                   int (*cb)(const struct store_key *k, void *ud), void *ud)
{
        struct rows a = { .size = sizeof(struct store_key) };
        sqlite3_stmt *s = NULL;
        int r, rc = SQLITE_DONE;

        r = prepare(st, "SELECT " KEY_COLUMNS " FROM api_keys WHERE org_id = ?1"
                        " AND revoked_at IS NULL ORDER BY created_at, rowid", &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, org_id);
        while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct store_key *k = rows_add(&a);
                if (!k) {
                        r = -ENOMEM;
                        break;
                }
                r = read_key(s, k);
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        sqlite3_finalize(s);
        for (size_t i = 0; r == 0 && i < a.n; i++)
                r = cb((struct store_key *)a.v + i, ud);
        free(a.v);
        return r;
}

int store_key_revoke(struct store *st, const char *org_id, const char *id, int64_t now)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND org_id = ?2"
                            " AND revoked_at IS NULL", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, id)) == 0 && (r = store_bind_opt(s, 2, org_id)) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 3, now))) == 0)
                r = step_one_change(st, s);
        sqlite3_finalize(s);
        return r;
}

int store_key_count_active(struct store *st, const char *org_id, const char *role,
                           int64_t *ret)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "SELECT count(*) FROM api_keys WHERE org_id = ?1"
                            " AND revoked_at IS NULL AND (?2 IS NULL OR role = ?2)", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, org_id)) == 0 && (r = store_bind_opt(s, 2, role)) == 0)
                r = step_int(st, s, ret);
        sqlite3_finalize(s);
        return r;
}

/* ---- users ---- */

int store_user_insert(struct store *st, const struct store_user *u)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "INSERT INTO users (id, org_id, email, first_name, last_name, role,"
                            " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, u->id, sizeof(u->id))) == 0 &&
            (r = store_bind_field(s, 2, u->org_id, sizeof(u->org_id))) == 0 &&
            (r = store_bind_field(s, 3, u->email, sizeof(u->email))) == 0 &&
            (r = store_bind_field(s, 4, u->first_name, sizeof(u->first_name))) == 0 &&
            (r = store_bind_field(s, 5, u->last_name, sizeof(u->last_name))) == 0 &&
            (r = store_bind_field(s, 6, u->role, sizeof(u->role))) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 7, u->created_at))) == 0)
                r = store_step_done(st, s);
        sqlite3_finalize(s);
        return r;
}

/* ---- session tokens ---- */

#define SESS_COLUMNS                                                                               \
        "t.id, t.org_id, t.sandbox_id, t.key_id, t.description, t.created_at, t.expires_at,"       \
        " t.last_used_at"

/* Read a session token row (SESS_COLUMNS). */
static int read_session(sqlite3_stmt *s, struct store_session *t)
{
        int r;
        if ((r = store_col_field(s, 0, t->id, sizeof(t->id))) < 0 ||
            (r = store_col_field(s, 1, t->org_id, sizeof(t->org_id))) < 0 ||
            (r = store_col_field(s, 2, t->sandbox_id, sizeof(t->sandbox_id))) < 0 ||
            (r = store_col_field(s, 3, t->key_id, sizeof(t->key_id))) < 0 ||
            (r = store_col_field(s, 4, t->description, sizeof(t->description))) < 0)
                return r;
        t->created_at = sqlite3_column_int64(s, 5);
        t->expires_at = sqlite3_column_int64(s, 6);
        t->last_used_at = sqlite3_column_int64(s, 7);
        return 0;
}

int store_session_insert(struct store *st, const struct store_session *t, const uint8_t hash[32])
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "INSERT INTO session_tokens (id, org_id, sandbox_id, key_id, hash,"
                            " description, created_at, expires_at, last_used_at)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, t->id, sizeof(t->id))) == 0 &&
            (r = store_bind_field(s, 2, t->org_id, sizeof(t->org_id))) == 0 &&
            (r = store_bind_field(s, 3, t->sandbox_id, sizeof(t->sandbox_id))) == 0 &&
            (r = store_bind_field(s, 4, t->key_id, sizeof(t->key_id))) == 0 &&
            (r = store_errno(sqlite3_bind_blob(s, 5, hash, 32, SQLITE_TRANSIENT))) == 0 &&
            (r = store_bind_field(s, 6, t->description, sizeof(t->description))) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 7, t->created_at))) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 8, t->expires_at))) == 0)
                r = store_step_done(st, s);
        sqlite3_finalize(s);
        return r;
}

int store_session_find_by_hash(struct store *st, const uint8_t hash[32],
                               struct store_session *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        struct store_session t = { 0 };
        int r, rc;

        /* The joins are the revocation rule: a token is only as good as the key that minted
         * it, and only for a sandbox that is still its organisation's and not being deleted
         * (the row goes when the teardown ends; the token goes with it, by cascade). */
        r = store_stmt(st, STMT_SESS_FIND_BY_HASH,
                       "SELECT " SESS_COLUMNS " FROM session_tokens t"
                       " JOIN api_keys k ON k.id = t.key_id AND k.revoked_at IS NULL"
                       " JOIN sandboxes sb ON sb.id = t.sandbox_id AND sb.org_id = t.org_id"
                       " AND sb.status != 'deleting'"
                       " WHERE t.hash = ?1",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_errno(sqlite3_bind_blob(s, 1, hash, 32, SQLITE_TRANSIENT))) < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        r = read_session(s, &t);
        if (r < 0)
                return r;
        *ret = t;
        return 0;
}

int store_session_get(struct store *st, const char *sandbox_id, const char *id,
                      struct store_session *ret)
{
        sqlite3_stmt *s = NULL;
        struct store_session t = { 0 };
        int r, rc;

        r = prepare(st, "SELECT " SESS_COLUMNS " FROM session_tokens t"
                        " WHERE t.sandbox_id = ?1 AND t.id = ?2", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) == 0 && (r = store_bind_opt(s, 2, id)) == 0) {
                rc = sqlite3_step(s);
                if (rc == SQLITE_DONE)
                        r = -ENOENT;
                else if (rc != SQLITE_ROW)
                        r = store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
                else
                        r = read_session(s, &t);
        }
        sqlite3_finalize(s);
        if (r == 0)
                *ret = t;
        return r;
}

/* Walk the session tokens matching ?1 of sql (one text parameter). */
static int session_walk(struct store *st, const char *sql, const char *param,
                        int (*cb)(const struct store_session *t, void *ud), void *ud)
{
        struct rows a = { .size = sizeof(struct store_session) };
        sqlite3_stmt *s = NULL;
        int r, rc = SQLITE_DONE;

        r = prepare(st, sql, &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, param);
        while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct store_session *t = rows_add(&a);
                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                r = read_session(s, t);
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        sqlite3_finalize(s);
        for (size_t i = 0; r == 0 && i < a.n; i++)
                r = cb((struct store_session *)a.v + i, ud);
        free(a.v);
        return r;
}

int store_session_each(struct store *st, const char *sandbox_id,
                       int (*cb)(const struct store_session *s, void *ud), void *ud)
{
        return session_walk(st, "SELECT " SESS_COLUMNS " FROM session_tokens t"
                                " WHERE t.sandbox_id = ?1 ORDER BY t.created_at, t.rowid",
                            sandbox_id, cb, ud);
}

int store_session_each_by_key(struct store *st, const char *key_id,
                              int (*cb)(const struct store_session *s, void *ud), void *ud)
{
        return session_walk(st, "SELECT " SESS_COLUMNS " FROM session_tokens t"
                                " WHERE t.key_id = ?1",
                            key_id, cb, ud);
}

int store_session_delete(struct store *st, const char *sandbox_id, const char *id)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "DELETE FROM session_tokens WHERE sandbox_id = ?1 AND id = ?2", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) == 0 && (r = store_bind_opt(s, 2, id)) == 0)
                r = step_one_change(st, s);
        sqlite3_finalize(s);
        return r;
}

int store_session_touch(struct store *st, const char *id, int64_t now)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_SESS_TOUCH,
                           "UPDATE session_tokens SET last_used_at = ?2 WHERE id = ?1"
                           " AND (last_used_at IS NULL OR last_used_at < ?2)",
                           &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, id)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 2, now))) < 0)
                return r;
        return store_step_done(st, s);
}

int store_session_count(struct store *st, const char *sandbox_id, int64_t now, int64_t *ret)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "SELECT count(*) FROM session_tokens WHERE sandbox_id = ?1"
                            " AND expires_at > ?2", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 2, now))) == 0)
                r = step_int(st, s, ret);
        sqlite3_finalize(s);
        return r;
}

int store_session_purge_expired(struct store *st, const char *sandbox_id, int64_t now)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "DELETE FROM session_tokens WHERE sandbox_id = ?1"
                            " AND expires_at <= ?2", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 2, now))) == 0)
                r = store_step_done(st, s);
        sqlite3_finalize(s);
        return r;
}

/* ---- magic links ---- */

int store_magic_insert(struct store *st, const struct store_magic *m, const uint8_t hash[32])
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "INSERT INTO magic_links (id, org_id, sandbox_id, key_id, hash,"
                            " redirect_url, created_at, expires_at, used_at)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, m->id, sizeof(m->id))) == 0 &&
            (r = store_bind_field(s, 2, m->org_id, sizeof(m->org_id))) == 0 &&
            (r = store_bind_field(s, 3, m->sandbox_id, sizeof(m->sandbox_id))) == 0 &&
            (r = store_bind_field(s, 4, m->key_id, sizeof(m->key_id))) == 0 &&
            (r = store_errno(sqlite3_bind_blob(s, 5, hash, 32, SQLITE_TRANSIENT))) == 0 &&
            (r = store_bind_field(s, 6, m->redirect_url, sizeof(m->redirect_url))) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 7, m->created_at))) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 8, m->expires_at))) == 0)
                r = store_step_done(st, s);
        sqlite3_finalize(s);
        return r;
}

int store_magic_consume(struct store *st, const uint8_t hash[32], int64_t now,
                        struct store_magic *ret)
{
        struct store_magic m = { 0 };
        sqlite3_stmt *s = NULL;
        int r, rc;

        /* One statement marks the link used and returns it: two redemptions cannot both see
         * it unused. */
        r = prepare(st, "UPDATE magic_links SET used_at = ?2 WHERE hash = ?1"
                        " AND used_at IS NULL AND expires_at > ?2"
                        " AND key_id IN (SELECT id FROM api_keys WHERE revoked_at IS NULL)"
                        " RETURNING id, org_id, sandbox_id, key_id, redirect_url, created_at,"
                        " expires_at", &s);
        if (r < 0)
                return r;
        if ((r = store_errno(sqlite3_bind_blob(s, 1, hash, 32, SQLITE_TRANSIENT))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 2, now))) < 0)
                goto out;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
                r = -ENOENT;
                goto out;
        }
        if (rc != SQLITE_ROW) {
                r = store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
                goto out;
        }
        if ((r = store_col_field(s, 0, m.id, sizeof(m.id))) < 0 ||
            (r = store_col_field(s, 1, m.org_id, sizeof(m.org_id))) < 0 ||
            (r = store_col_field(s, 2, m.sandbox_id, sizeof(m.sandbox_id))) < 0 ||
            (r = store_col_field(s, 3, m.key_id, sizeof(m.key_id))) < 0 ||
            (r = store_col_field(s, 4, m.redirect_url, sizeof(m.redirect_url))) < 0)
                goto out;
        m.created_at = sqlite3_column_int64(s, 5);
        m.expires_at = sqlite3_column_int64(s, 6);
        /* Run the statement to its end so the change is complete before finalize. */
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
                ;
        if (rc != SQLITE_DONE) {
                r = store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
                goto out;
        }
        *ret = m;
out:
        sqlite3_finalize(s);
        return r;
}

int store_magic_count(struct store *st, const char *sandbox_id, int64_t now, int64_t *ret)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "SELECT count(*) FROM magic_links WHERE sandbox_id = ?1"
                            " AND used_at IS NULL AND expires_at > ?2", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) == 0 &&
            (r = store_errno(sqlite3_bind_int64(s, 2, now))) == 0)
                r = step_int(st, s, ret);
        sqlite3_finalize(s);
        return r;
}

int store_magic_purge(struct store *st, int64_t now)
{
        sqlite3_stmt *s = NULL;
        int r = prepare(st, "DELETE FROM magic_links WHERE used_at IS NOT NULL"
                            " OR expires_at <= ?1", &s);
        if (r < 0)
                return r;
        if ((r = store_errno(sqlite3_bind_int64(s, 1, now))) == 0)
                r = store_step_done(st, s);
        sqlite3_finalize(s);
        return r;
}
