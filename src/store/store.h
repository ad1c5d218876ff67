/* store.h - the only module that talks SQL. SQLite (WAL, synchronous=NORMAL, STRICT tables,
 * foreign keys on), schema migrations numbered and applied in order at open.
 *
 * Single-threaded use: the daemon calls the store from its event-loop thread only.
 * Returns 0 or negative errno (-ENOENT: no such row, or a key/sandbox for a missing
 * organisation; -EEXIST: unique key taken, e.g. a duplicate key hash or uid_base; -EIO:
 * SQLite error; -EPROTO: the database has a newer schema than this build). Never logs.
 * Walk callbacks (list, each_*) may call back into the store: rows are read first.
 */
#ifndef WARREN_STORE_H
#define WARREN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

#define STORE_ID_MAX 64
#define STORE_NAME_MAX 256

int store_open(const char *path, struct store **ret);
void store_close(struct store *st);

/* ---- organisations ---- */
int store_org_create(struct store *st, const char *id, const char *name);
/* Number of organisations (0 on a fresh store). */
int store_org_count(struct store *st, int64_t *ret);

/* ---- API keys (only the SHA-256 of a key is stored) ---- */
struct store_key {
        char id[STORE_ID_MAX];
        char org_id[STORE_ID_MAX];
        char name[STORE_NAME_MAX];
        char prefix[32]; /* first characters of the key, shown in lists */
        char role[16];   /* "admin" or "member" */
        int64_t created_at;
        int64_t revoked_at; /* 0 if active */
};
int store_key_insert(struct store *st, const struct store_key *k, const uint8_t hash[32]);
/* Find an active (not revoked) key by the hash of its secret. -ENOENT if none. */
int store_key_find_by_hash(struct store *st, const uint8_t hash[32], struct store_key *ret);

/* ---- sandboxes ---- */
struct store_sandbox {
        char id[STORE_ID_MAX];
        char org_id[STORE_ID_MAX];
        char status[16];   /* "creating", "running", "stopping", "stopped", "error" */
        char template[STORE_NAME_MAX];
        char isolation[16];
        int64_t cpu_millis;
        int64_t memory_bytes;
        int64_t disk_bytes;
        int64_t pids_limit;
        int64_t timeout_s;
        int64_t created_at; /* epoch seconds */
        int64_t expires_at;
        int64_t stopped_at; /* 0 if not stopped */
        uint32_t uid_base;
        int32_t init_pid;       /* 0 if not running */
        uint64_t init_starttime;
        char *env_json;   /* malloc'd JSON object text (may be NULL); freed by store_sandbox_clear */
        char *error;      /* malloc'd error text for status "error" (may be NULL) */
};
void store_sandbox_clear(struct store_sandbox *sb);

int store_sandbox_insert(struct store *st, const struct store_sandbox *sb);
/* Overwrite the mutable fields (status, stopped_at, init_pid, init_starttime, error,
 * expires_at) of the row with sb->id. -ENOENT if missing. */
int store_sandbox_update(struct store *st, const struct store_sandbox *sb);
/* Hand a sandbox to a tenant (warm pool): overwrite org_id, status, created_at, expires_at,
 * timeout_s and env_json of the row sb->id. -ENOENT if missing (or the org is). */
int store_sandbox_assign(struct store *st, const struct store_sandbox *sb);
int store_sandbox_get(struct store *st, const char *id, struct store_sandbox *ret);
int store_sandbox_delete(struct store *st, const char *id);

/* List an organisation's sandboxes, newest first, without those being deleted; status
 * filter may be NULL ("stopped" includes "stopping"); limit < 0 means no limit. Calls cb for
 * each row (the row is cleared after cb returns); a negative return from cb stops the walk
 * and is returned. *ret_total gets the number of matching rows (ignoring limit/offset). */
int store_sandbox_list(struct store *st, const char *org_id, const char *status, int64_t limit,
                       int64_t offset, int (*cb)(const struct store_sandbox *sb, void *ud),
                       void *ud, int64_t *ret_total);
/* Every sandbox whose status is not "stopped" (any org), for adoption at start. */
int store_sandbox_each_active(struct store *st, int (*cb)(const struct store_sandbox *sb, void *ud),
                              void *ud);
/* Sandboxes stopped before the given epoch second (for retention). */
int store_sandbox_each_stopped_before(struct store *st, int64_t before,
                                      int (*cb)(const struct store_sandbox *sb, void *ud),
                                      void *ud);
/* Count of an organisation's sandboxes that are creating or running (the quota). */
int store_sandbox_count_active(struct store *st, const char *org_id, int64_t *ret);
/* What an organisation's sandboxes that are creating or running hold (the quotas): their
 * number, total millicpus and memory bytes, and the earliest expires_at among them (0 if
 * none). */
struct store_org_usage {
        int64_t sandboxes;
        int64_t cpu_millis;
        int64_t memory_bytes;
        int64_t next_expiry;
};
int store_sandbox_org_usage(struct store *st, const char *org_id, struct store_org_usage *ret);
/* Lowest uid slot (0..max_slots-1) not used by any sandbox row (stopped ones keep theirs
 * until deleted, since their disk files are owned by that range). -ENOSPC if none. The
 * uid_base of slot n is computed by the caller. */
int store_uid_slot_free(struct store *st, uint32_t first_base, uint32_t range, uint32_t max_slots,
                        uint32_t *ret_slot);

/* ---- jobs (background processes and terminals of a sandbox) ---- */
struct store_job {
        int64_t id;
        char sandbox_id[STORE_ID_MAX];
        char *command;     /* JSON array (argv), malloc'd: store_job_clear() */
        char state[16];    /* "running", "exited", "killed", "timed_out", "failed" */
        int32_t pid;       /* inside the sandbox; 0 until started */
        bool has_exit;     /* exit_code is set */
        int32_t exit_code;
        int64_t started_at; /* epoch ms */
        int64_t ended_at;   /* epoch ms, 0 while running */
        bool pty;
        bool stdin_open;
        int64_t max_run_after_disconnect; /* seconds; 0 = until it exits */
        int64_t log_end;    /* output bytes recorded when it ended */
        char *error;        /* why it failed or was killed, or NULL (malloc'd) */
};
void store_job_clear(struct store_job *j);
/* Insert a running job (id ignored); *ret_id gets its id. -ENOENT if the sandbox is gone. */
int store_job_insert(struct store *st, const struct store_job *j, int64_t *ret_id);
/* Record the command's pid. */
int store_job_set_pid(struct store *st, int64_t id, int32_t pid);
/* Record the end of a job: state, exit code (has_exit false: NULL), log end, error. */
int store_job_end(struct store *st, int64_t id, const char *state, bool has_exit,
                  int32_t exit_code, int64_t ended_at, int64_t log_end, const char *error);
/* A job of a sandbox by id, or the newest one with that pid. -ENOENT. */
int store_job_get(struct store *st, const char *sandbox_id, int64_t id, struct store_job *ret);
int store_job_by_pid(struct store *st, const char *sandbox_id, int32_t pid,
                     struct store_job *ret);
/* Walk a sandbox's jobs, newest first, at most limit (the record is cleared after the
 * callback; a non-zero return stops the walk and is returned). */
typedef int (*store_job_cb)(const struct store_job *j, void *ud);
int store_job_list(struct store *st, const char *sandbox_id, int64_t limit, store_job_cb cb,
                   void *ud);
/* Walk every running job of a sandbox (sandbox_id NULL: of every sandbox). */
int store_job_each_running(struct store *st, const char *sandbox_id, store_job_cb cb, void *ud);
/* Number of a sandbox's jobs (running_only: in state running). */
int store_job_count(struct store *st, const char *sandbox_id, bool running_only, int64_t *ret);
/* The oldest ended job of a sandbox (pruning the history). -ENOENT if none. */
int store_job_oldest_done(struct store *st, const char *sandbox_id, int64_t *ret_id);
int store_job_delete(struct store *st, int64_t id);
/* ---- secrets (secret.c): sealed by the daemon; the store sees ciphertext only ---- */
#define STORE_SECRET_NAME_MAX 129 /* 128 characters + NUL */
struct store_secret {
        char org_id[STORE_ID_MAX];
        char name[STORE_SECRET_NAME_MAX];
        uint8_t key_id[8];     /* identifies the master key that sealed it */
        uint8_t nonce[12];
        uint8_t *ciphertext;   /* value + tag; malloc'd by store_secret_get (NULL in lists) */
        size_t ciphertext_len;
        int64_t created_at;    /* epoch seconds */
        int64_t updated_at;
};
/* Free the ciphertext of a record filled by store_secret_get. */
void store_secret_clear(struct store_secret *sec);
/* Insert, or replace the key_id, nonce, ciphertext and updated_at of the row (org_id,
 * name), at time now. *ret_created (may be NULL) says which. -ENOENT if the org does not
 * exist; -EEXIST if the nonce is already used by another row. */
int store_secret_put(struct store *st, const struct store_secret *sec, int64_t now,
                     bool *ret_created);
/* One secret with its ciphertext (clear it after use). -ENOENT if missing. */
int store_secret_get(struct store *st, const char *org_id, const char *name,
                     struct store_secret *ret);
/* -ENOENT if there was no such secret. */
int store_secret_delete(struct store *st, const char *org_id, const char *name);
/* An organisation's secrets by name, without ciphertext. A negative return from cb stops
 * the walk and is returned. */
int store_secret_list(struct store *st, const char *org_id,
                      int (*cb)(const struct store_secret *sec, void *ud), void *ud);
/* Number of an organisation's secrets and the total bytes of their ciphertexts, not counting
 * the one named except (NULL: none excepted). */
int store_secret_usage(struct store *st, const char *org_id, const char *except,
                       int64_t *ret_count, int64_t *ret_bytes);
/* Number of secrets (every organisation) sealed under a key other than key_id. */
int store_secret_count_other_key(struct store *st, const uint8_t key_id[8], int64_t *ret);

/* Which secrets a sandbox's commands get: names_json is a JSON array of names, or NULL for
 * every secret of its organisation. Replaces an earlier choice. -ENOENT if no such sandbox. */
int store_sandbox_secrets_set(struct store *st, const char *sandbox_id, const char *names_json);
/* Forget the choice: the sandbox gets no secrets. Fine if there was none. */
int store_sandbox_secrets_clear(struct store *st, const char *sandbox_id);
/* The choice for a sandbox: *ret_names_json is the malloc'd JSON array, or NULL for every
 * secret. -ENOENT if there is none (the sandbox gets no secrets). */
int store_sandbox_secrets_get(struct store *st, const char *sandbox_id, char **ret_names_json);
/* ---- identity (identity.c): transactions, the operator's organisation, key management,
 * users, session tokens and magic links. Secrets are stored only as SHA-256 hashes. ---- */

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK, for a caller that makes several changes that must
 * happen together. 0 or -errno (rollback cannot fail usefully and returns nothing). */
int store_tx_begin(struct store *st);
int store_tx_commit(struct store *st);
void store_tx_rollback(struct store *st);

struct store_org {
        char id[STORE_ID_MAX];
        char name[STORE_NAME_MAX];
        int64_t created_at;
        bool system; /* the operator's organisation (created at first start) */
};
/* Mark an organisation as the operator's. -ENOENT if missing. */
int store_org_set_system(struct store *st, const char *id);
int store_org_get(struct store *st, const char *id, struct store_org *ret);
/* Every organisation, oldest first; cb as in store_sandbox_list (a negative return stops). */
int store_org_each(struct store *st, int (*cb)(const struct store_org *o, void *ud), void *ud);

/* Any key by id, revoked or not (revoked_at set if revoked). -ENOENT if none. */
int store_key_get(struct store *st, const char *id, struct store_key *ret);
/* An organisation's active keys, oldest first. */
int store_key_each(struct store *st, const char *org_id,
                   int (*cb)(const struct store_key *k, void *ud), void *ud);
/* Revoke an active key of org_id at time now. -ENOENT if no such active key in that org. */
int store_key_revoke(struct store *st, const char *org_id, const char *id, int64_t now);
/* Active keys of an organisation with this role (NULL: any role). */
int store_key_count_active(struct store *st, const char *org_id, const char *role,
                           int64_t *ret);

/* ---- users (registration) ---- */
struct store_user {
        char id[STORE_ID_MAX];
        char org_id[STORE_ID_MAX];
        char email[STORE_NAME_MAX]; /* unique, compared without case */
        char first_name[STORE_NAME_MAX];
        char last_name[STORE_NAME_MAX];
        char role[16];
        int64_t created_at;
};
/* -EEXIST if the email (any case) or id is taken, -ENOENT if the org is missing. */
int store_user_insert(struct store *st, const struct store_user *u);

/* ---- session tokens: bearer credentials scoped to one sandbox ---- */
struct store_session {
        char id[STORE_ID_MAX];
        char org_id[STORE_ID_MAX];
        char sandbox_id[STORE_ID_MAX];
        char key_id[STORE_ID_MAX]; /* the API key that minted it */
        char description[STORE_NAME_MAX];
        int64_t created_at;
        int64_t expires_at;
        int64_t last_used_at; /* 0 if never used */
};
/* -EEXIST (id or hash taken), -ENOENT (org, sandbox or key missing). */
int store_session_insert(struct store *st, const struct store_session *s, const uint8_t hash[32]);
/* The token with this hash, provided the key that minted it is still active and its sandbox
 * still belongs to its organisation and is not being deleted. Expired tokens are returned
 * (the caller tells them apart by expires_at). -ENOENT if none. */
int store_session_find_by_hash(struct store *st, const uint8_t hash[32],
                               struct store_session *ret);
/* One token of a sandbox by id. -ENOENT if none. */
int store_session_get(struct store *st, const char *sandbox_id, const char *id,
                      struct store_session *ret);
/* A sandbox's tokens, oldest first. */
int store_session_each(struct store *st, const char *sandbox_id,
                       int (*cb)(const struct store_session *s, void *ud), void *ud);
/* Every token minted by a key (to end their connections when the key is revoked). */
int store_session_each_by_key(struct store *st, const char *key_id,
                              int (*cb)(const struct store_session *s, void *ud), void *ud);
/* Delete one token of a sandbox. -ENOENT if none. */
int store_session_delete(struct store *st, const char *sandbox_id, const char *id);
/* Record a use at now (written at most once a second per token). */
int store_session_touch(struct store *st, const char *id, int64_t now);
/* Tokens of a sandbox not expired at now. */
int store_session_count(struct store *st, const char *sandbox_id, int64_t now, int64_t *ret);
/* Delete a sandbox's tokens that expired at or before now. */
int store_session_purge_expired(struct store *st, const char *sandbox_id, int64_t now);

/* ---- magic links: one-time URLs that mint a session token ---- */
#define STORE_URL_MAX 2048
struct store_magic {
        char id[STORE_ID_MAX];
        char org_id[STORE_ID_MAX];
        char sandbox_id[STORE_ID_MAX];
        char key_id[STORE_ID_MAX];
        char redirect_url[STORE_URL_MAX + 1];
        int64_t created_at;
        int64_t expires_at;
};
int store_magic_insert(struct store *st, const struct store_magic *m, const uint8_t hash[32]);
/* Redeem the link with this hash at now: marks it used and returns it, if it was unused,
 * unexpired, and its key is still active. -ENOENT otherwise (unknown, used, expired). */
int store_magic_consume(struct store *st, const uint8_t hash[32], int64_t now,
                        struct store_magic *ret);
/* Unused, unexpired links of a sandbox at now. */
int store_magic_count(struct store *st, const char *sandbox_id, int64_t now, int64_t *ret);
/* Delete links that were used or expired before now. */
int store_magic_purge(struct store *st, int64_t now);

#endif
