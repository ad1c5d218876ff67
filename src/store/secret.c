/* secret.c - rows of the secrets and sandbox_secrets tables. The values arrive sealed
 * (daemon/secretbox.c): this file never sees a plaintext. See store.h for the contract. */
#include "store_internal.h"

#include <string.h>

#include "util.h"

void store_secret_clear(struct store_secret *sec)
{
        if (!sec)
                return;
        free(sec->ciphertext);
        sec->ciphertext = NULL;
        sec->ciphertext_len = 0;
}

/* Copy a BLOB column of exactly len bytes into out; -EIO for any other length (a damaged
 * or foreign row: the CHECK constraints keep ours exact). */
static int col_blob_exact(sqlite3_stmt *s, int col, uint8_t *out, size_t len)
{
        const void *p = sqlite3_column_blob(s, col);
        int n = sqlite3_column_bytes(s, col);

        if (!p || n < 0 || (size_t)n != len)
                return -EIO;
        memcpy(out, p, len);
        return 0;
}

/* Whether the row (org_id, name) exists. */
static int secret_exists(struct store *st, const char *org_id, const char *name, bool *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r, rc;

        r = store_stmt(st, STMT_SECRET_EXISTS,
                       "SELECT 1 FROM secrets WHERE org_id = ?1 AND name = ?2", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, org_id)) < 0 || (r = store_bind_opt(s, 2, name)) < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return store_errno(sqlite3_extended_errcode(st->db));
        *ret = rc == SQLITE_ROW;
        return 0;
}

int store_secret_put(struct store *st, const struct store_secret *sec, int64_t now,
                     bool *ret_created)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        bool existed = false;
        int r;

        if (!sec || !sec->org_id[0] || !sec->name[0] || !sec->ciphertext ||
            sec->ciphertext_len > INT32_MAX)
                return -EINVAL;
        /* Same thread, same connection, no await between the two: nothing can slip in. */
        r = secret_exists(st, sec->org_id, sec->name, &existed);
        if (r < 0)
                return r;
        r = store_stmt(st, STMT_SECRET_PUT,
                       "INSERT INTO secrets (org_id, name, key_id, nonce, ciphertext, created_at,"
                       " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
                       " ON CONFLICT (org_id, name) DO UPDATE SET key_id = excluded.key_id,"
                       " nonce = excluded.nonce, ciphertext = excluded.ciphertext,"
                       " updated_at = excluded.updated_at",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, sec->org_id, sizeof(sec->org_id))) < 0 ||
            (r = store_bind_field(s, 2, sec->name, sizeof(sec->name))) < 0 ||
            (r = store_errno(sqlite3_bind_blob(s, 3, sec->key_id, sizeof(sec->key_id),
                                               SQLITE_TRANSIENT))) < 0 ||
            (r = store_errno(sqlite3_bind_blob(s, 4, sec->nonce, sizeof(sec->nonce),
                                               SQLITE_TRANSIENT))) < 0 ||
            (r = store_errno(sqlite3_bind_blob(s, 5, sec->ciphertext, (int)sec->ciphertext_len,
                                               SQLITE_TRANSIENT))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 6, now))) < 0)
                return r;
        r = store_step_done(st, s);
        if (r < 0)
                return r;
        if (ret_created)
                *ret_created = !existed;
        return 0;
}

int store_secret_get(struct store *st, const char *org_id, const char *name,
                     struct store_secret *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        struct store_secret sec = {};
        int r, rc;

        if (!org_id || !name || !ret)
                return -EINVAL;
        r = store_stmt(st, STMT_SECRET_GET,
                       "SELECT org_id, name, key_id, nonce, ciphertext, created_at, updated_at"
                       " FROM secrets WHERE org_id = ?1 AND name = ?2",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, org_id)) < 0 || (r = store_bind_opt(s, 2, name)) < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        if ((r = store_col_field(s, 0, sec.org_id, sizeof(sec.org_id))) < 0 ||
            (r = store_col_field(s, 1, sec.name, sizeof(sec.name))) < 0 ||
            (r = col_blob_exact(s, 2, sec.key_id, sizeof(sec.key_id))) < 0 ||
            (r = col_blob_exact(s, 3, sec.nonce, sizeof(sec.nonce))) < 0)
                return r;
        const void *ct = sqlite3_column_blob(s, 4);
        int n = sqlite3_column_bytes(s, 4);
        if (!ct || n <= 0)
                return -EIO;
        sec.ciphertext = malloc((size_t)n);
        if (!sec.ciphertext)
                return -ENOMEM;
        memcpy(sec.ciphertext, ct, (size_t)n);
        sec.ciphertext_len = (size_t)n;
        sec.created_at = sqlite3_column_int64(s, 5);
        sec.updated_at = sqlite3_column_int64(s, 6);
        *ret = sec;
        return 0;
}

int store_secret_delete(struct store *st, const char *org_id, const char *name)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!org_id || !name)
                return -EINVAL;
        r = store_stmt(st, STMT_SECRET_DELETE,
                       "DELETE FROM secrets WHERE org_id = ?1 AND name = ?2", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, org_id)) < 0 || (r = store_bind_opt(s, 2, name)) < 0)
                return r;
        r = store_step_done(st, s);
        if (r < 0)
                return r;
        return sqlite3_changes(st->db) > 0 ? 0 : -ENOENT;
}

int store_secret_list(struct store *st, const char *org_id,
                      int (*cb)(const struct store_secret *sec, void *ud), void *ud)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        struct store_secret *rows = NULL;
        size_t n = 0, cap = 0;
        int r, rc;

        if (!org_id || !cb)
                return -EINVAL;
        r = store_stmt(st, STMT_SECRET_LIST,
                       "SELECT name, created_at, updated_at FROM secrets WHERE org_id = ?1"
                       " ORDER BY name",
                       &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, org_id);
        if (r < 0)
                return r;
        /* Rows are read first, so the callback may use the store (see store.h). */
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        struct store_secret *nr = realloc(rows, ncap * sizeof(*rows));
                        if (!nr) {
                                r = -ENOMEM;
                                goto out;
                        }
                        rows = nr;
                        cap = ncap;
                }
                struct store_secret *sec = &rows[n];
                memset(sec, 0, sizeof(*sec));
                snprintf(sec->org_id, sizeof(sec->org_id), "%s", org_id);
                r = store_col_field(s, 0, sec->name, sizeof(sec->name));
                if (r < 0)
                        goto out;
                sec->created_at = sqlite3_column_int64(s, 1);
                sec->updated_at = sqlite3_column_int64(s, 2);
                n++;
        }
        if (rc != SQLITE_DONE) {
                r = store_errno(sqlite3_extended_errcode(st->db));
                goto out;
        }
        sqlite3_reset(s);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = cb(&rows[i], ud);
out:
        free(rows);
        return r < 0 ? r : 0;
}

int store_secret_usage(struct store *st, const char *org_id, const char *except,
                       int64_t *ret_count, int64_t *ret_bytes)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!org_id || !ret_count || !ret_bytes)
                return -EINVAL;
        r = store_stmt(st, STMT_SECRET_USAGE,
                       "SELECT count(*), coalesce(sum(length(ciphertext)), 0) FROM secrets"
                       " WHERE org_id = ?1 AND name IS NOT ?2",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, org_id)) < 0 || (r = store_bind_opt(s, 2, except)) < 0)
                return r;
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        *ret_count = sqlite3_column_int64(s, 0);
        *ret_bytes = sqlite3_column_int64(s, 1);
        return 0;
}

int store_secret_count_other_key(struct store *st, const uint8_t key_id[8], int64_t *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!key_id || !ret)
                return -EINVAL;
        r = store_stmt(st, STMT_SECRET_OTHER_KEY,
                       "SELECT count(*) FROM secrets WHERE key_id != ?1", &s);
        if (r < 0)
                return r;
        r = store_errno(sqlite3_bind_blob(s, 1, key_id, 8, SQLITE_TRANSIENT));
        if (r < 0)
                return r;
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        *ret = sqlite3_column_int64(s, 0);
        return 0;
}

int store_sandbox_secrets_set(struct store *st, const char *sandbox_id, const char *names_json)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!sandbox_id || !*sandbox_id)
                return -EINVAL;
        r = store_stmt(st, STMT_SBSEC_SET,
                       "INSERT INTO sandbox_secrets (sandbox_id, names_json) VALUES (?1, ?2)"
                       " ON CONFLICT (sandbox_id) DO UPDATE SET names_json = excluded.names_json",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) < 0 ||
            (r = store_bind_opt(s, 2, names_json)) < 0)
                return r;
        return store_step_done(st, s);
}

int store_sandbox_secrets_clear(struct store *st, const char *sandbox_id)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!sandbox_id)
                return -EINVAL;
        r = store_stmt(st, STMT_SBSEC_CLEAR, "DELETE FROM sandbox_secrets WHERE sandbox_id = ?1",
                       &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, sandbox_id);
        if (r < 0)
                return r;
        return store_step_done(st, s);
}

int store_sandbox_secrets_get(struct store *st, const char *sandbox_id, char **ret_names_json)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r, rc;

        if (!sandbox_id || !ret_names_json)
                return -EINVAL;
        r = store_stmt(st, STMT_SBSEC_GET,
                       "SELECT names_json FROM sandbox_secrets WHERE sandbox_id = ?1", &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, sandbox_id);
        if (r < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        const unsigned char *t = sqlite3_column_text(s, 0);
        char *names = NULL;
        if (t) {
                names = strdup((const char *)t);
                if (!names)
                        return -ENOMEM;
        } else if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
                return -ENOMEM;
        }
        *ret_names_json = names;
        return 0;
}
