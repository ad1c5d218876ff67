/* store.c - opening the database, migrations, the statement cache, organisations and API
 * keys. Sandboxes are in sandbox.c, the schema in schema.c. See store.h for the contract.
 */
#include "store_internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* How long a statement waits for a lock held by another connection (a backup tool, the
 * sqlite3 shell) before failing with -EBUSY. */
#define STORE_BUSY_TIMEOUT_MS 5000

int store_errno(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_CONSTRAINT:
                if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                        return -EEXIST;
                if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
                        return -ENOENT;
                return -EINVAL;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        default:
                return -EIO;
        }
}

int store_stmt(struct store *st, enum store_stmt_id id, const char *sql, sqlite3_stmt **ret)
{
        sqlite3_stmt *s = st->stmts[id];

        if (!s) {
                int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);

                if (rc != SQLITE_OK)
                        return store_errno(rc);
                st->stmts[id] = s;
        } else {
                sqlite3_reset(s);
                sqlite3_clear_bindings(s);
        }
        *ret = s;
        return 0;
}

int store_bind_field(sqlite3_stmt *s, int idx, const char *field, size_t size)
{
        size_t n = strnlen(field, size);

        if (n == size)
                return -EINVAL;
        return store_errno(sqlite3_bind_text(s, idx, field, (int)n, SQLITE_TRANSIENT));
}

int store_bind_opt(sqlite3_stmt *s, int idx, const char *str)
{
        if (!str)
                return store_errno(sqlite3_bind_null(s, idx));
        return store_errno(sqlite3_bind_text(s, idx, str, -1, SQLITE_TRANSIENT));
}

int store_bind_nz(sqlite3_stmt *s, int idx, int64_t v)
{
        if (v == 0)
                return store_errno(sqlite3_bind_null(s, idx));
        return store_errno(sqlite3_bind_int64(s, idx, v));
}

int store_col_field(sqlite3_stmt *s, int col, char *field, size_t size)
{
        const unsigned char *t = sqlite3_column_text(s, col);
        int n = sqlite3_column_bytes(s, col);

        if (!t) {
                field[0] = '\0';
                return sqlite3_column_type(s, col) == SQLITE_NULL ? 0 : -ENOMEM;
        }
        if (n < 0 || (size_t)n >= size || memchr(t, '\0', (size_t)n))
                return -EIO;
        memcpy(field, t, (size_t)n);
        field[n] = '\0';
        return 0;
}

int store_step_done(struct store *st, sqlite3_stmt *s)
{
        int rc = sqlite3_step(s);

        if (rc == SQLITE_DONE)
                return 0;
        if (rc == SQLITE_ROW)
                return -EIO;
        return store_errno(sqlite3_extended_errcode(st->db));
}

/* Run SQL text that returns no rows we need (PRAGMAs, BEGIN/COMMIT, migrations). */
static int exec(struct store *st, const char *sql)
{
        int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

        return rc == SQLITE_OK ? 0 : store_errno(sqlite3_extended_errcode(st->db));
}

/* The one-column, one-row result of sql as an integer (count, max, pragma). */
static int query_int(struct store *st, const char *sql, int64_t *ret)
{
        sqlite3_stmt *s = NULL;
        int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
        int r;

        if (rc != SQLITE_OK)
                return store_errno(rc);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                *ret = sqlite3_column_int64(s, 0);
                r = 0;
        } else {
                r = rc == SQLITE_DONE ? -EIO : store_errno(sqlite3_extended_errcode(st->db));
        }
        sqlite3_finalize(s);
        return r;
}

/* Switch to WAL and check that it took: a database on a filesystem without shared memory
 * support stays in its old mode, and synchronous=NORMAL is only safe with WAL. */
static int set_wal(struct store *st)
{
        sqlite3_stmt *s = NULL;
        int rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
        int r = -EIO;

        if (rc != SQLITE_OK)
                return store_errno(rc);
        if (sqlite3_step(s) == SQLITE_ROW) {
                const unsigned char *mode = sqlite3_column_text(s, 0);

                r = mode && strcmp((const char *)mode, "wal") == 0 ? 0 : -EIO;
        } else {
                r = store_errno(sqlite3_extended_errcode(st->db));
        }
        sqlite3_finalize(s);
        return r;
}

/* Bring the schema up to date: apply every migration newer than the recorded version, in
 * order, in one IMMEDIATE transaction so two processes opening a fresh file cannot both
 * migrate, and a failure leaves the file as it was. A database newer than this binary
 * (a version we do not know) is refused with -EPROTO rather than used half-understood. */
static int migrate(struct store *st)
{
        int64_t current = 0;
        int r;

        r = exec(st, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = exec(st, "CREATE TABLE IF NOT EXISTS schema_version ("
                     "  version    INTEGER PRIMARY KEY NOT NULL,"
                     "  applied_at INTEGER NOT NULL"
                     ") STRICT");
        if (r < 0)
                goto fail;
        r = query_int(st, "SELECT coalesce(max(version), 0) FROM schema_version", &current);
        if (r < 0)
                goto fail;
        if (current > store_migrations[store_n_migrations - 1].version) {
                r = -EPROTO;
                goto fail;
        }
        for (size_t i = 0; i < store_n_migrations; i++) {
                const struct store_migration *m = &store_migrations[i];
                sqlite3_stmt *s = NULL;

                if (m->version <= current)
                        continue;
                r = exec(st, m->sql);
                if (r < 0)
                        goto fail;
                int rc = sqlite3_prepare_v2(
                        st->db, "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                        -1, &s, NULL);
                if (rc != SQLITE_OK) {
                        r = store_errno(rc);
                        goto fail;
                }
                sqlite3_bind_int(s, 1, m->version);
                sqlite3_bind_int64(s, 2, util_wall_s());
                r = store_step_done(st, s);
                sqlite3_finalize(s);
                if (r < 0)
                        goto fail;
        }
        r = exec(st, "COMMIT");
        if (r < 0)
                goto fail;
        return 0;
fail:
        exec(st, "ROLLBACK");
        return r;
}

/* Create the file 0600 ourselves before SQLite sees it (SQLite would use 0644 less the
 * umask): it holds API key hashes. An existing file that others can read is tightened.
 * The WAL and shm files SQLite creates later copy the database file's mode. */
static int prepare_file(const char *path)
{
        struct stat stt;
        cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                                    0600);

        if (fd < 0)
                return neg_errno();
        if (fstat(fd, &stt) < 0)
                return neg_errno();
        if (!S_ISREG(stt.st_mode))
                return -EINVAL;
        if ((stt.st_mode & 077) && fchmod(fd, stt.st_mode & 0700) < 0)
                return neg_errno();
        return 0;
}

/* Open (creating if needed) the database at path and migrate it. The connection is for one
 * thread (NOMUTEX); symlinks at path are refused. On failure nothing is left open. */
int store_open(const char *path, struct store **ret)
{
        struct store *st;
        int rc, r;

        if (!path || !*path || !ret)
                return -EINVAL;
        r = prepare_file(path);
        if (r < 0)
                return r;
        st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
                                     SQLITE_OPEN_EXRESCODE,
                             NULL);
        if (rc != SQLITE_OK) {
                r = st->db ? store_errno(sqlite3_extended_errcode(st->db)) : -ENOMEM;
                goto fail;
        }
        sqlite3_extended_result_codes(st->db, 1);
        /* Defensive mode: no writes to the schema or shadow tables from SQL, so even an
         * injection bug could not corrupt the file's structure. */
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        rc = sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
        if (rc != SQLITE_OK) {
                r = store_errno(rc);
                goto fail;
        }
        r = set_wal(st);
        if (r < 0)
                goto fail;
        r = exec(st, "PRAGMA synchronous=NORMAL;"
                     "PRAGMA foreign_keys=ON;");
        if (r < 0)
                goto fail;
        int64_t fk = 0;
        r = query_int(st, "PRAGMA foreign_keys", &fk);
        if (r < 0)
                goto fail;
        if (fk != 1) {
                r = -EIO; /* SQLite built without foreign keys: relations would go unchecked */
                goto fail;
        }
        r = migrate(st);
        if (r < 0)
                goto fail;
        *ret = st;
        return 0;
fail:
        store_close(st);
        return r;
}

/* Finalize cached statements and close. Accepts NULL. */
void store_close(struct store *st)
{
        if (!st)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(st->stmts); i++)
                sqlite3_finalize(st->stmts[i]);
        if (st->db) {
                sqlite3_exec(st->db, "PRAGMA optimize", NULL, NULL, NULL);
                sqlite3_close_v2(st->db);
        }
        free(st);
}

/* ---- organisations ---- */

/* Insert an organisation; created_at is now. -EEXIST if the id is taken, -EINVAL if id or
 * name would not fit the fixed-size fields other rows are read into. */
int store_org_create(struct store *st, const char *id, const char *name)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!id || !*id || strlen(id) >= STORE_ID_MAX || !name || strlen(name) >= STORE_NAME_MAX)
                return -EINVAL;
        r = store_stmt(st, STMT_ORG_INSERT,
                       "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3)", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, id)) < 0 || (r = store_bind_opt(s, 2, name)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 3, util_wall_s()))) < 0)
                return r;
        return store_step_done(st, s);
}

int store_org_count(struct store *st, int64_t *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        r = store_stmt(st, STMT_ORG_COUNT, "SELECT count(*) FROM orgs", &s);
        if (r < 0)
                return r;
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        *ret = sqlite3_column_int64(s, 0);
        return 0;
}

/* ---- API keys ---- */

/* Insert a key row with the SHA-256 of its secret. created_at 0 means now; revoked_at 0
 * means valid. -EEXIST if the id or the hash is taken, -ENOENT if the org does not exist. */
int store_key_insert(struct store *st, const struct store_key *k, const uint8_t hash[32])
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!k || !hash || !k->id[0] || !k->org_id[0])
                return -EINVAL;
        r = store_stmt(st, STMT_KEY_INSERT,
                       "INSERT INTO api_keys (id, org_id, name, prefix, hash, role, created_at,"
                       " revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, k->id, sizeof(k->id))) < 0 ||
            (r = store_bind_field(s, 2, k->org_id, sizeof(k->org_id))) < 0 ||
            (r = store_bind_field(s, 3, k->name, sizeof(k->name))) < 0 ||
            (r = store_bind_field(s, 4, k->prefix, sizeof(k->prefix))) < 0 ||
            (r = store_errno(sqlite3_bind_blob(s, 5, hash, 32, SQLITE_TRANSIENT))) < 0 ||
            (r = store_bind_field(s, 6, k->role, sizeof(k->role))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(
                     s, 7, k->created_at ? k->created_at : util_wall_s()))) < 0 ||
            (r = store_bind_nz(s, 8, k->revoked_at)) < 0)
                return r;
        return store_step_done(st, s);
}

/* Look a key up by the hash of its secret. The lookup goes through the UNIQUE index on
 * hash: the secret has enough entropy that the timing of an index search on its SHA-256
 * reveals nothing usable. -ENOENT if no valid key has this hash. */
int store_key_find_by_hash(struct store *st, const uint8_t hash[32], struct store_key *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        struct store_key k = { 0 };
        int r, rc;

        if (!hash)
                return -EINVAL;
        r = store_stmt(st, STMT_KEY_FIND_BY_HASH,
                       "SELECT id, org_id, name, prefix, role, created_at FROM api_keys"
                       " WHERE hash = ?1 AND revoked_at IS NULL",
                       &s);
        if (r < 0)
                return r;
        r = store_errno(sqlite3_bind_blob(s, 1, hash, 32, SQLITE_TRANSIENT));
        if (r < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        if ((r = store_col_field(s, 0, k.id, sizeof(k.id))) < 0 ||
            (r = store_col_field(s, 1, k.org_id, sizeof(k.org_id))) < 0 ||
            (r = store_col_field(s, 2, k.name, sizeof(k.name))) < 0 ||
            (r = store_col_field(s, 3, k.prefix, sizeof(k.prefix))) < 0 ||
            (r = store_col_field(s, 4, k.role, sizeof(k.role))) < 0)
                return r;
        k.created_at = sqlite3_column_int64(s, 5);
        k.revoked_at = 0;
        *ret = k;
        return 0;
}
