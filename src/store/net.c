/* net.c - the sandbox_net table (store_net.h). */
#include "store_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "util.h"

/* Finalize a statement when the variable leaves scope. */
static void finalizep(sqlite3_stmt **s)
{
        sqlite3_finalize(*s);
}
#define cleanup_finalize __attribute__((cleanup(finalizep)))

/* Prepare sql (not cached: see store_net.h). */
static int prepare(struct store *st, const char *sql, sqlite3_stmt **ret)
{
        int rc = sqlite3_prepare_v2(st->db, sql, -1, ret, NULL);
        return rc == SQLITE_OK ? 0 : store_errno(rc);
}

void store_net_clear(struct store_net *n)
{
        free(n->policy_json);
        n->policy_json = NULL;
}

/* Bind addr, 0 as NULL. */
static int bind_addr(sqlite3_stmt *s, int idx, uint32_t addr)
{
        return store_bind_nz(s, idx, (int64_t)addr);
}

int store_net_insert(struct store *st, const char *id, const char *mode, uint32_t addr,
                     const char *policy_json)
{
        cleanup_finalize sqlite3_stmt *s = NULL;
        int r;

        if (!id || !mode || !policy_json)
                return -EINVAL;
        r = prepare(st, "INSERT INTO sandbox_net (sandbox_id, mode, addr, policy_json)"
                        " VALUES (?1, ?2, ?3, ?4)",
                    &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, id)) < 0 || (r = store_bind_opt(s, 2, mode)) < 0 ||
            (r = bind_addr(s, 3, addr)) < 0 || (r = store_bind_opt(s, 4, policy_json)) < 0)
                return r;
        return store_step_done(st, s);
}

int store_net_get(struct store *st, const char *id, struct store_net *ret)
{
        cleanup_finalize sqlite3_stmt *s = NULL;
        struct store_net n = { 0 };
        int r, rc;

        if (!id)
                return -EINVAL;
        r = prepare(st, "SELECT mode, coalesce(addr, 0), policy_json FROM sandbox_net"
                        " WHERE sandbox_id = ?1",
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
                return store_errno(rc);
        r = store_col_field(s, 0, n.mode, sizeof(n.mode));
        if (r < 0)
                return r;
        n.addr = (uint32_t)sqlite3_column_int64(s, 1);
        const unsigned char *p = sqlite3_column_text(s, 2);
        n.policy_json = strdup(p ? (const char *)p : "{}");
        if (!n.policy_json)
                return -ENOMEM;
        *ret = n;
        return 0;
}

/* UPDATE one column of sandbox id's row; -ENOENT if it has none. */
static int update(struct store *st, const char *sql, const char *id, const char *text,
                  uint32_t addr)
{
        cleanup_finalize sqlite3_stmt *s = NULL;
        int r;

        if (!id)
                return -EINVAL;
        r = prepare(st, sql, &s);
        if (r < 0)
                return r;
        r = store_bind_opt(s, 1, id);
        if (r >= 0)
                r = text ? store_bind_opt(s, 2, text) : bind_addr(s, 2, addr);
        if (r >= 0)
                r = store_step_done(st, s);
        if (r < 0)
                return r;
        return sqlite3_changes(st->db) > 0 ? 0 : -ENOENT;
}

int store_net_set_policy(struct store *st, const char *id, const char *policy_json)
{
        if (!policy_json)
                return -EINVAL;
        return update(st, "UPDATE sandbox_net SET policy_json = ?2 WHERE sandbox_id = ?1", id,
                      policy_json, 0);
}

int store_net_set_addr(struct store *st, const char *id, uint32_t addr)
{
        return update(st, "UPDATE sandbox_net SET addr = ?2 WHERE sandbox_id = ?1", id, NULL,
                      addr);
}

/* Lowest address in [lo, hi] not in the table, or -ENOSPC. */
static int lowest_free(struct store *st, int64_t lo, int64_t hi, uint32_t *ret)
{
        cleanup_finalize sqlite3_stmt *s = NULL;
        int64_t cand = lo;
        int r, rc;

        if (lo > hi)
                return -ENOSPC;
        r = prepare(st, "SELECT addr FROM sandbox_net WHERE addr BETWEEN ?1 AND ?2 ORDER BY addr",
                    &s);
        if (r < 0)
                return r;
        if ((r = store_errno(sqlite3_bind_int64(s, 1, lo))) < 0 ||
            (r = store_errno(sqlite3_bind_int64(s, 2, hi))) < 0)
                return r;
        /* Sorted and unique: the first row above the candidate leaves a gap at it. */
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                int64_t a = sqlite3_column_int64(s, 0);
                if (a > cand)
                        break;
                cand = a + 1;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return store_errno(rc);
        if (cand > hi)
                return -ENOSPC;
        *ret = (uint32_t)cand;
        return 0;
}

int store_net_addr_free(struct store *st, uint32_t first, uint32_t last, uint32_t hint,
                        uint32_t *ret_addr)
{
        int r;

        if (first == 0 || first > last)
                return -EINVAL;
        if (hint < first || hint > last)
                hint = first;
        /* From the hint onwards first, so a just-released address (whose connections may
         * still sit in conntrack) is reused as late as possible. */
        r = lowest_free(st, hint, last, ret_addr);
        if (r == -ENOSPC && hint > first)
                r = lowest_free(st, first, (int64_t)hint - 1, ret_addr);
        return r;
}
