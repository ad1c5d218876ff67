/* store_internal.h - what the store's own files share: the connection, the prepared
 * statement cache, SQLite-to-errno mapping and column helpers. Not for other modules. */
#ifndef WARREN_STORE_INTERNAL_H
#define WARREN_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

/* Every statement the store runs more than once, prepared on first use and kept for the
 * life of the connection. A new query gets a new id here; its SQL sits at its call site. */
enum store_stmt_id {
        STMT_ORG_INSERT,
        STMT_ORG_COUNT,
        STMT_KEY_INSERT,
        STMT_KEY_FIND_BY_HASH,
        STMT_SB_INSERT,
        STMT_SB_UPDATE,
        STMT_SB_GET,
        STMT_SB_DELETE,
        STMT_SB_LIST_ALL,
        STMT_SB_LIST_STATUS,
        STMT_SB_COUNT_ALL,
        STMT_SB_COUNT_STATUS,
        STMT_SB_EACH_ACTIVE,
        STMT_SB_STOPPED_BEFORE,
        STMT_SB_COUNT_ACTIVE,
        STMT_SB_UID_BASES,
        STMT_SB_ASSIGN,
        STMT_JOB_INSERT,
        STMT_JOB_STARTED,
        STMT_JOB_END,
        STMT_JOB_GET,
        STMT_JOB_BY_PID,
        STMT_JOB_LIST,
        STMT_JOB_RUNNING,
        STMT_JOB_COUNT,
        STMT_JOB_OLDEST_DONE,
        STMT_JOB_DELETE,
        STMT_SB_ORG_USAGE,
        STMT_SECRET_EXISTS,
        STMT_SECRET_PUT,
        STMT_SECRET_GET,
        STMT_SECRET_DELETE,
        STMT_SECRET_LIST,
        STMT_SECRET_USAGE,
        STMT_SECRET_OTHER_KEY,
        STMT_SBSEC_SET,
        STMT_SBSEC_CLEAR,
        STMT_SBSEC_GET,
        /* identity.c */
        STMT_KEY_GET,
        STMT_ORG_GET,
        STMT_SESS_FIND_BY_HASH,
        STMT_SESS_TOUCH,
        STMT_COUNT_ /* number of ids */
};

/* One open store: a single SQLite connection used from one thread. */
struct store {
        sqlite3 *db;
        sqlite3_stmt *stmts[STMT_COUNT_];
};

/* One schema migration: applied once, in order of version, inside the open transaction. */
struct store_migration {
        int version; /* increasing; gaps are fine (branches reserve numbers) */
        const char *sql;
};
/* The migrations, oldest first (schema.c). */
extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

/* The cached statement for id, prepared from sql on first use. The statement is reset and
 * its bindings cleared, ready to bind. 0 or -errno. */
int store_stmt(struct store *st, enum store_stmt_id id, const char *sql, sqlite3_stmt **ret);

/* Reset a cached statement when the variable leaves scope, so that no statement is left
 * mid-step (which would hold a read transaction open) on any return path. */
static inline void store_stmt_resetp(sqlite3_stmt **s)
{
        if (*s) {
                sqlite3_reset(*s);
                sqlite3_clear_bindings(*s);
        }
}
#define cleanup_stmt __attribute__((cleanup(store_stmt_resetp)))

/* Map an SQLite result code to a negative errno: constraint UNIQUE/PRIMARY KEY -> -EEXIST,
 * FOREIGN KEY -> -ENOENT (the referenced row is missing), other constraints -> -EINVAL,
 * BUSY/LOCKED -> -EBUSY, NOMEM -> -ENOMEM, FULL -> -ENOSPC, READONLY -> -EROFS, anything
 * else -> -EIO. */
int store_errno(int sqlite_rc);

/* Bind a fixed-size char array field: -EINVAL if it is not NUL-terminated within size
 * (it could not be read back into the same field). */
int store_bind_field(sqlite3_stmt *s, int idx, const char *field, size_t size);

/* Bind an optional string: NULL binds SQL NULL. */
int store_bind_opt(sqlite3_stmt *s, int idx, const char *str);

/* Bind an integer where 0 means "unset": 0 binds SQL NULL. */
int store_bind_nz(sqlite3_stmt *s, int idx, int64_t v);

/* Copy text column col into a fixed-size field; -EIO if it does not fit (the store only
 * writes values that fit, so a longer one means a damaged or foreign database). */
int store_col_field(sqlite3_stmt *s, int col, char *field, size_t size);

/* Step a statement that returns no rows (INSERT/UPDATE/DELETE). 0 or -errno. */
int store_step_done(struct store *st, sqlite3_stmt *s);

#endif
