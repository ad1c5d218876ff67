/* job.c - the jobs table: background processes and terminals of sandboxes (store.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "util.h"

#define JOB_COLUMNS                                                                            \
        "id, sandbox_id, command, state, pid, exit_code, started_at, ended_at, pty, stdin, "  \
        "max_run_after_disconnect, log_end, error"

void store_job_clear(struct store_job *j)
{
        if (!j)
                return;
        free(j->command);
        free(j->error);
        j->command = j->error = NULL;
}

/* A malloc'd copy of a text column (NULL stays NULL). */
static int col_dup(sqlite3_stmt *s, int col, char **ret)
{
        const unsigned char *t = sqlite3_column_text(s, col);

        *ret = NULL;
        if (!t)
                return 0;
        *ret = strdup((const char *)t);
        return *ret ? 0 : -ENOMEM;
}

static int read_job(sqlite3_stmt *s, struct store_job *ret)
{
        struct store_job j = {};
        int r;

        j.id = sqlite3_column_int64(s, 0);
        r = store_col_field(s, 1, j.sandbox_id, sizeof(j.sandbox_id));
        if (r >= 0)
                r = store_col_field(s, 3, j.state, sizeof(j.state));
        if (r < 0)
                return r;
        j.pid = sqlite3_column_int(s, 4);
        j.has_exit = sqlite3_column_type(s, 5) != SQLITE_NULL;
        j.exit_code = sqlite3_column_int(s, 5);
        j.started_at = sqlite3_column_int64(s, 6);
        j.ended_at = sqlite3_column_int64(s, 7);
        j.pty = sqlite3_column_int(s, 8) != 0;
        j.stdin_open = sqlite3_column_int(s, 9) != 0;
        j.max_run_after_disconnect = sqlite3_column_int64(s, 10);
        j.log_end = sqlite3_column_int64(s, 11);
        if (col_dup(s, 2, &j.command) < 0 || col_dup(s, 12, &j.error) < 0) {
                store_job_clear(&j);
                return -ENOMEM;
        }
        if (!j.command) {
                store_job_clear(&j);
                return -EIO;
        }
        *ret = j;
        return 0;
}

int store_job_insert(struct store *st, const struct store_job *j, int64_t *ret_id)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_INSERT,
                           "INSERT INTO jobs (sandbox_id, command, state, started_at, pty, "
                           "stdin, max_run_after_disconnect) "
                           "VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6)",
                           &s);
        if (r < 0)
                return r;
        if ((r = store_bind_field(s, 1, j->sandbox_id, sizeof(j->sandbox_id))) < 0 ||
            (r = store_bind_opt(s, 2, j->command)) < 0)
                return r;
        sqlite3_bind_int64(s, 3, j->started_at);
        sqlite3_bind_int(s, 4, j->pty);
        sqlite3_bind_int(s, 5, j->stdin_open);
        sqlite3_bind_int64(s, 6, j->max_run_after_disconnect);
        r = store_step_done(st, s);
        if (r < 0)
                return r;
        *ret_id = sqlite3_last_insert_rowid(st->db);
        return 0;
}

int store_job_set_pid(struct store *st, int64_t id, int32_t pid)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_STARTED, "UPDATE jobs SET pid = ?2 WHERE id = ?1", &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int(s, 2, pid);
        return store_step_done(st, s);
}

int store_job_end(struct store *st, int64_t id, const char *state, bool has_exit,
                  int32_t exit_code, int64_t ended_at, int64_t log_end, const char *error)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_END,
                           "UPDATE jobs SET state = ?2, exit_code = ?3, ended_at = ?4, "
                           "log_end = ?5, error = ?6, stdin = 0 WHERE id = ?1",
                           &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, id);
        if ((r = store_bind_opt(s, 2, state)) < 0)
                return r;
        if (has_exit)
                sqlite3_bind_int(s, 3, exit_code);
        sqlite3_bind_int64(s, 4, ended_at);
        sqlite3_bind_int64(s, 5, log_end);
        if ((r = store_bind_opt(s, 6, error)) < 0)
                return r;
        return store_step_done(st, s);
}

/* Step a statement expected to return at most one job. */
static int one_job(struct store *st, sqlite3_stmt *s, struct store_job *ret)
{
        int rc = sqlite3_step(s);

        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        return read_job(s, ret);
}

int store_job_get(struct store *st, const char *sandbox_id, int64_t id, struct store_job *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_GET,
                           "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1 AND sandbox_id = ?2",
                           &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, id);
        if ((r = store_bind_opt(s, 2, sandbox_id)) < 0)
                return r;
        return one_job(st, s, ret);
}

int store_job_by_pid(struct store *st, const char *sandbox_id, int32_t pid, struct store_job *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_BY_PID,
                           "SELECT " JOB_COLUMNS " FROM jobs WHERE sandbox_id = ?1 AND pid = ?2 "
                           "ORDER BY id DESC LIMIT 1",
                           &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) < 0)
                return r;
        sqlite3_bind_int(s, 2, pid);
        return one_job(st, s, ret);
}

/* Read every row of s first, then run cb on each: callbacks may use the store. */
static int walk(struct store *st, sqlite3_stmt *s, store_job_cb cb, void *ud)
{
        struct store_job *v = NULL;
        size_t n = 0, cap = 0;
        int r = 0, rc;

        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 16;
                        struct store_job *nv = realloc(v, nc * sizeof(*v));
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        v = nv;
                        cap = nc;
                }
                r = read_job(s, &v[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = store_errno(sqlite3_extended_errcode(st->db));
        sqlite3_reset(s);
        for (size_t i = 0; i < n; i++) {
                if (r == 0)
                        r = cb(&v[i], ud);
                store_job_clear(&v[i]);
        }
        free(v);
        return r;
}

int store_job_list(struct store *st, const char *sandbox_id, int64_t limit, store_job_cb cb,
                   void *ud)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_LIST,
                           "SELECT " JOB_COLUMNS " FROM jobs WHERE sandbox_id = ?1 "
                           "ORDER BY id DESC LIMIT ?2",
                           &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) < 0)
                return r;
        sqlite3_bind_int64(s, 2, limit);
        return walk(st, s, cb, ud);
}

int store_job_each_running(struct store *st, const char *sandbox_id, store_job_cb cb, void *ud)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_RUNNING,
                           "SELECT " JOB_COLUMNS " FROM jobs WHERE state = 'running' "
                           "AND (?1 IS NULL OR sandbox_id = ?1) ORDER BY id",
                           &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) < 0)
                return r;
        return walk(st, s, cb, ud);
}

int store_job_count(struct store *st, const char *sandbox_id, bool running_only, int64_t *ret)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_COUNT,
                           "SELECT count(*) FROM jobs WHERE sandbox_id = ?1 "
                           "AND (?2 = 0 OR state = 'running')",
                           &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) < 0)
                return r;
        sqlite3_bind_int(s, 2, running_only);
        if (sqlite3_step(s) != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        *ret = sqlite3_column_int64(s, 0);
        return 0;
}

int store_job_oldest_done(struct store *st, const char *sandbox_id, int64_t *ret_id)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_OLDEST_DONE,
                           "SELECT id FROM jobs WHERE sandbox_id = ?1 AND state != 'running' "
                           "ORDER BY id LIMIT 1",
                           &s);
        if (r < 0)
                return r;
        if ((r = store_bind_opt(s, 1, sandbox_id)) < 0)
                return r;
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(sqlite3_extended_errcode(st->db));
        *ret_id = sqlite3_column_int64(s, 0);
        return 0;
}

int store_job_delete(struct store *st, int64_t id)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int r = store_stmt(st, STMT_JOB_DELETE, "DELETE FROM jobs WHERE id = ?1", &s);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, id);
        return store_step_done(st, s);
}
