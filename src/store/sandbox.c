/* sandbox.c - sandbox rows: insert, update, get, delete, the listings the daemon walks,
 * and uid slot allocation. See store.h for the contract.
 *
 * Walks (list, each_active, each_stopped_before) read every matching row into memory and
 * reset the statement before the first callback, so a callback may call back into the
 * store (update or delete the row it is given, even run another walk) without disturbing
 * the walk or holding a read transaction open across it.
 */
#include "store_internal.h"

#include <string.h>

#include "util.h"

/* Columns of a sandbox row, in the order read_row() expects. */
#define SB_COLUMNS                                                                                 \
        "id, org_id, status, template, isolation, cpu_millis, memory_bytes, disk_bytes,"           \
        " pids_limit, timeout_s, created_at, expires_at, stopped_at, uid_base, init_pid,"          \
        " init_starttime, env_json, error"

/* Free the strings of sb and zero it. Accepts NULL and a zeroed struct. */
void store_sandbox_clear(struct store_sandbox *sb)
{
        if (!sb)
                return;
        free(sb->env_json);
        free(sb->error);
        memset(sb, 0, sizeof(*sb));
}

/* Copy an optional text column into a malloc'd string (NULL for SQL NULL). */
static int col_strdup(sqlite3_stmt *s, int col, char **ret)
{
        const unsigned char *t = sqlite3_column_text(s, col);
        int n = sqlite3_column_bytes(s, col);
        char *p;

        if (!t) {
                if (sqlite3_column_type(s, col) != SQLITE_NULL)
                        return -ENOMEM;
                *ret = NULL;
                return 0;
        }
        p = malloc((size_t)n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, t, (size_t)n);
        p[n] = '\0';
        *ret = p;
        return 0;
}

/* Read the current row (SB_COLUMNS) into *ret, which the caller owns and clears. */
static int read_row(sqlite3_stmt *s, struct store_sandbox *ret)
{
        struct store_sandbox sb = { 0 };
        int r;

        if ((r = store_col_field(s, 0, sb.id, sizeof(sb.id))) < 0 ||
            (r = store_col_field(s, 1, sb.org_id, sizeof(sb.org_id))) < 0 ||
            (r = store_col_field(s, 2, sb.status, sizeof(sb.status))) < 0 ||
            (r = store_col_field(s, 3, sb.template, sizeof(sb.template))) < 0 ||
            (r = store_col_field(s, 4, sb.isolation, sizeof(sb.isolation))) < 0)
                return r;
        sb.cpu_millis = sqlite3_column_int64(s, 5);
        sb.memory_bytes = sqlite3_column_int64(s, 6);
        sb.disk_bytes = sqlite3_column_int64(s, 7);
        sb.pids_limit = sqlite3_column_int64(s, 8);
        sb.timeout_s = sqlite3_column_int64(s, 9);
        sb.created_at = sqlite3_column_int64(s, 10);
        sb.expires_at = sqlite3_column_int64(s, 11);
        sb.stopped_at = sqlite3_column_int64(s, 12); /* NULL reads as 0 */
        sb.uid_base = (uint32_t)sqlite3_column_int64(s, 13);
        sb.init_pid = (int32_t)sqlite3_column_int64(s, 14);
        sb.init_starttime = (uint64_t)sqlite3_column_int64(s, 15);
        r = col_strdup(s, 16, &sb.env_json);
        if (r < 0)
                return r;
        r = col_strdup(s, 17, &sb.error);
        if (r < 0) {
                store_sandbox_clear(&sb);
                return r;
        }
        *ret = sb;
        return 0;
}

/* Rows read by a walk before its callbacks run. */
struct rows {
        struct store_sandbox *v;
        size_t n, cap;
};

static void rows_free(struct rows *rs)
{
        for (size_t i = 0; i < rs->n; i++)
                store_sandbox_clear(&rs->v[i]);
        free(rs->v);
        rs->v = NULL;
        rs->n = rs->cap = 0;
}

/* Step s to the end, appending each row to rs. Resets s (through the caller's guard) only
 * after the last row, so the caller resets before running callbacks. */
static int rows_collect(struct store *st, sqlite3_stmt *s, struct rows *rs)
{
        int rc, r;

        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                if (rs->n == rs->cap) {
                        size_t cap = rs->cap ? rs->cap * 2 : 16;
                        struct store_sandbox *v = realloc(rs->v, cap * sizeof(*v));

                        if (!v)
                                return -ENOMEM;
                        rs->v = v;
                        rs->cap = cap;
                }
                r = read_row(s, &rs->v[rs->n]);
                if (r < 0)
                        return r;
                rs->n++;
        }
        if (rc != SQLITE_DONE)
                return store_errno(sqlite3_extended_errcode(st->db));
        return 0;
}

/* Run cb over the collected rows, clearing each after its callback. A negative return
 * from cb stops the walk and is returned. Always frees rs. */
static int rows_run(struct rows *rs, int (*cb)(const struct store_sandbox *sb, void *ud),
                    void *ud)
{
        int r = 0;

        for (size_t i = 0; i < rs->n && r >= 0; i++) {
                r = cb(&rs->v[i], ud);
                store_sandbox_clear(&rs->v[i]);
        }
        rows_free(rs);
        return r < 0 ? r : 0;
}

/* Collect every row of s (bound by the caller), reset s, then call cb for each. */
static int walk(struct store *st, sqlite3_stmt *s,
                int (*cb)(const struct store_sandbox *sb, void *ud), void *ud)
{
        struct rows rs = { 0 };
        int r = rows_collect(st, s, &rs);

        sqlite3_reset(s);
        if (r < 0) {
                rows_free(&rs);
                return r;
        }
        return rows_run(&rs, cb, ud);
}

/* Insert a new row. Fixed-size fields must be NUL-terminated; id and org_id non-empty.
 * -EEXIST if the id (or, on this node, the uid_base) is taken; -ENOENT if the org does
 * not exist. node_id is left NULL (this host). */
int store_sandbox_insert(struct store *st, const struct store_sandbox *sb)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!sb || !sb->id[0] || !sb->org_id[0])
                return -EINVAL;
        r = store_stmt(st, STMT_SB_INSERT,
                       "INSERT INTO sandboxes (" SB_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
                       " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, sb->id, sizeof(sb->id))) < 0 ||
            (r = store_bind_field(s, 2, sb->org_id, sizeof(sb->org_id))) < 0 ||
            (r = store_bind_field(s, 3, sb->status, sizeof(sb->status))) < 0 ||
            (r = store_bind_field(s, 4, sb->template, sizeof(sb->template))) < 0 ||
            (r = store_bind_field(s, 5, sb->isolation, sizeof(sb->isolation))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 6, sb->cpu_millis))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 7, sb->memory_bytes))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 8, sb->disk_bytes))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 9, sb->pids_limit))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 10, sb->timeout_s))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 11, sb->created_at))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 12, sb->expires_at))) < 0 ||
            (r = store_bind_nz(s, 13, sb->stopped_at)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 14, sb->uid_base))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 15, sb->init_pid))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 16, (int64_t)sb->init_starttime))) < 0 ||
            (r = store_bind_opt(s, 17, sb->env_json)) < 0 ||
            (r = store_bind_opt(s, 18, sb->error)) < 0)
                return r;
        return store_step_done(st, s);
}

/* Overwrite the mutable fields of the row sb->id. -ENOENT if there is no such row. */
int store_sandbox_update(struct store *st, const struct store_sandbox *sb)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!sb || !sb->id[0])
                return -EINVAL;
        r = store_stmt(st, STMT_SB_UPDATE,
                       "UPDATE sandboxes SET status = ?2, stopped_at = ?3, init_pid = ?4,"
                       " init_starttime = ?5, error = ?6, expires_at = ?7 WHERE id = ?1",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, sb->id, sizeof(sb->id))) < 0 ||
            (r = store_bind_field(s, 2, sb->status, sizeof(sb->status))) < 0 ||
            (r = store_bind_nz(s, 3, sb->stopped_at)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 4, sb->init_pid))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 5, (int64_t)sb->init_starttime))) < 0 ||
            (r = store_bind_opt(s, 6, sb->error)) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 7, sb->expires_at))) < 0)
                return r;
        r = store_step_done(st, s);
        if (r < 0)
                return r;
        return sqlite3_changes(st->db) > 0 ? 0 : -ENOENT;
}

/* Hand a sandbox to a tenant (warm pool): overwrite org, status, times, timeout and env of
 * the row sb->id. -ENOENT if there is no such row or the organisation does not exist. */
int store_sandbox_assign(struct store *st, const struct store_sandbox *sb)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!sb || !sb->id[0])
                return -EINVAL;
        r = store_stmt(st, STMT_SB_ASSIGN,
                       "UPDATE sandboxes SET org_id = ?2, status = ?3, created_at = ?4,"
                       " expires_at = ?5, timeout_s = ?6, env_json = ?7 WHERE id = ?1",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, sb->id, sizeof(sb->id))) < 0 ||
            (r = store_bind_field(s, 2, sb->org_id, sizeof(sb->org_id))) < 0 ||
            (r = store_bind_field(s, 3, sb->status, sizeof(sb->status))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 4, sb->created_at))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 5, sb->expires_at))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 6, sb->timeout_s))) < 0 ||
            (r = store_bind_opt(s, 7, sb->env_json)) < 0)
                return r;
        r = store_step_done(st, s);
        if (r < 0)
                return r;
        return sqlite3_changes(st->db) > 0 ? 0 : -ENOENT;
}

/* Read the row with this id into *ret (the caller clears it). -ENOENT if missing. */
int store_sandbox_get(struct store *st, const char *id, struct store_sandbox *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r, rc;

        if (!id || !ret)
                return -EINVAL;
        r = store_stmt(st, STMT_SB_GET, "SELECT " SB_COLUMNS " FROM sandboxes WHERE id = ?1",
                       &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, id);
        if (r < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        return read_row(s, ret);
}

/* Delete the row with this id. -ENOENT if there was none. */
int store_sandbox_delete(struct store *st, const char *id)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!id)
                return -EINVAL;
        r = store_stmt(st, STMT_SB_DELETE, "DELETE FROM sandboxes WHERE id = ?1", &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, id);
        if (r < 0)
                return r;
        r = store_step_done(st, s);
        if (r < 0)
                return r;
        return sqlite3_changes(st->db) > 0 ? 0 : -ENOENT;
}

/* Count of an org's rows, optionally with one status. */
static int count_org(struct store *st, const char *org_id, const char *status, int64_t *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (status)
                r = store_stmt(st, STMT_SB_COUNT_STATUS,
                               "SELECT count(*) FROM sandboxes WHERE org_id = ?1 AND (status = ?2"
                               " OR (?2 = 'stopped' AND status = 'stopping'))",
                               &s);
        else
                r = store_stmt(st, STMT_SB_COUNT_ALL,
                               "SELECT count(*) FROM sandboxes WHERE org_id = ?1"
                               " AND status != 'deleting'", &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, org_id)) < 0 ||
            (status && (r = store_bind_opt(s, 2, status)) < 0))
                return r;
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        *ret = sqlite3_column_int64(s, 0);
        return 0;
}

/* List an org's sandboxes newest first (ties broken by id, so pages are stable). limit < 0
 * means no limit; offset must be >= 0. The total counts every matching row. */
int store_sandbox_list(struct store *st, const char *org_id, const char *status, int64_t limit,
                       int64_t offset, int (*cb)(const struct store_sandbox *sb, void *ud),
                       void *ud, int64_t *ret_total)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int64_t total = 0;
        int r;

        if (!org_id || !cb || offset < 0)
                return -EINVAL;
        if (limit < 0)
                limit = -1; /* SQLite: no limit */
        r = count_org(st, org_id, status, &total);
        if (r < 0)
                return r;
        if (status)
                r = store_stmt(st, STMT_SB_LIST_STATUS,
                               "SELECT " SB_COLUMNS " FROM sandboxes WHERE org_id = ?1 AND"
                               " (status = ?2 OR (?2 = 'stopped' AND status = 'stopping'))"
                               " ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4",
                               &s);
        else
                r = store_stmt(st, STMT_SB_LIST_ALL,
                               "SELECT " SB_COLUMNS " FROM sandboxes WHERE org_id = ?1"
                               " AND status != 'deleting'"
                               " ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4",
                               &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, org_id)) < 0 ||
            (status && (r = store_bind_opt(s, 2, status)) < 0) ||
            (r = store_errno(sqlite3_bind_int64(s, 3, limit))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 4, offset))) < 0)
                return r;
        r = walk(st, s, cb, ud);
        if (r < 0)
                return r;
        if (ret_total)
                *ret_total = total;
        return 0;
}

/* Every row whose status is not "stopped", oldest first. */
int store_sandbox_each_active(struct store *st, int (*cb)(const struct store_sandbox *sb, void *ud),
                              void *ud)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!cb)
                return -EINVAL;
        r = store_stmt(st, STMT_SB_EACH_ACTIVE,
                       "SELECT " SB_COLUMNS " FROM sandboxes WHERE status != 'stopped'"
                       " ORDER BY created_at, id",
                       &s);
        if (r < 0)
                return r;
        return walk(st, s, cb, ud);
}

/* Rows with status "stopped" and stopped_at < before, oldest stop first. */
int store_sandbox_each_stopped_before(struct store *st, int64_t before,
                                      int (*cb)(const struct store_sandbox *sb, void *ud),
                                      void *ud)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!cb)
                return -EINVAL;
        r = store_stmt(st, STMT_SB_STOPPED_BEFORE,
                       "SELECT " SB_COLUMNS " FROM sandboxes WHERE stopped_at IS NOT NULL AND"
                       " stopped_at < ?1 AND status = 'stopped' ORDER BY stopped_at, id",
                       &s);
        if (r < 0)
                return r;
        r = store_errno(sqlite3_bind_int64(s, 1, before));
        if (r < 0)
                return r;
        return walk(st, s, cb, ud);
}

int store_sandbox_count_active(struct store *st, const char *org_id, int64_t *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!org_id || !ret)
                return -EINVAL;
        r = store_stmt(st, STMT_SB_COUNT_ACTIVE,
                       "SELECT count(*) FROM sandboxes WHERE org_id = ?1 AND"
                       " status IN ('creating', 'running')",
                       &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, org_id);
        if (r < 0)
                return r;
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        *ret = sqlite3_column_int64(s, 0);
        return 0;
}

int store_sandbox_org_usage(struct store *st, const char *org_id, struct store_org_usage *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r;

        if (!org_id || !ret)
                return -EINVAL;
        r = store_stmt(st, STMT_SB_ORG_USAGE,
                       "SELECT count(*), coalesce(sum(cpu_millis), 0),"
                       " coalesce(sum(memory_bytes), 0), coalesce(min(expires_at), 0)"
                       " FROM sandboxes WHERE org_id = ?1 AND status IN ('creating', 'running')",
                       &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, org_id);
        if (r < 0)
                return r;
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db)) ?: -EIO;
        *ret = (struct store_org_usage){
                .sandboxes = sqlite3_column_int64(s, 0),
                .cpu_millis = sqlite3_column_int64(s, 1),
                .memory_bytes = sqlite3_column_int64(s, 2),
                .next_expiry = sqlite3_column_int64(s, 3),
        };
        return 0;
}

/* Lowest free slot n in 0..max_slots-1, where slot n is the uid range
 * [first_base + n*range, first_base + (n+1)*range). A row occupies every slot its own
 * range [uid_base, uid_base+range) overlaps, so rows written with another layout (a changed
 * configuration) still keep their uids from being handed out twice. All arithmetic is in
 * 64 bits: first_base + range*max_slots may pass 2^32. */
int store_uid_slot_free(struct store *st, uint32_t first_base, uint32_t range, uint32_t max_slots,
                        uint32_t *ret_slot)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        const int64_t first = first_base, rng = range;
        const int64_t end = first + rng * (int64_t)max_slots;
        int64_t candidate = 0;
        int r, rc;

        if (!ret_slot || range == 0)
                return -EINVAL;
        if (max_slots == 0)
                return -ENOSPC;
        r = store_stmt(st, STMT_SB_UID_BASES,
                       "SELECT DISTINCT uid_base FROM sandboxes WHERE uid_base + ?2 > ?1 AND"
                       " uid_base < ?3 ORDER BY uid_base",
                       &s);
        if (r < 0)
                return r;
        if ((r = store_errno(sqlite3_bind_int64(s, 1, first))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 2, rng))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 3, end))) < 0)
                return r;
        /* Bases come sorted, so the slots each occupies (lo..hi) never move backwards: the
         * first gap before a row's lo is the lowest free slot. */
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                int64_t b = sqlite3_column_int64(s, 0);
                int64_t lo = b <= first ? 0 : (b - first) / rng;
                int64_t hi = (b + rng - 1 - first) / rng;

                if (candidate < lo)
                        break;
                if (hi + 1 > candidate)
                        candidate = hi + 1;
                if (candidate >= max_slots)
                        return -ENOSPC;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return store_errno(sqlite3_extended_errcode(st->db));
        if (candidate >= max_slots)
                return -ENOSPC;
        *ret_slot = (uint32_t)candidate;
        return 0;
}
