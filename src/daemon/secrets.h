/* secrets.h - per-organisation secrets (bring your own keys): the /api/v1/secrets routes, the
 * master key, and the injection of secrets into the environment of sandbox commands.
 *
 * At rest a value exists only sealed (secretbox.c: AES-256-GCM, fresh random nonce per write,
 * the organisation id and the name bound as associated data) under a master key that never
 * enters the database: WARREN_MASTER_KEY, or the key file (DATA_DIR/master.key, 0600,
 * generated at first start). Plaintext exists only in the daemon's memory, for the time it
 * takes to build one command's environment, and in that command's environment inside the
 * sandbox. A sandbox's stored env (sandboxes.env_json) never holds secrets: the sandbox
 * records only WHICH secrets it gets (table sandbox_secrets), and the values are decrypted
 * each time a command is spawned.
 *
 * EVERY PATH THAT SPAWNS A COMMAND IN A SANDBOX (exec.c for execute and run-code, jobs.c
 * for background processes) calls secrets_add_env() on that command's environment once the
 * environment is otherwise complete, and answers a failure with secrets_reply_error().
 *
 * Precedence on a name clash: the request's env > the sandbox's env > the built-in defaults
 * (PATH, HOME...) > secrets. A secret never replaces a variable that is already there: the
 * more specific setting wins (an org-wide secret must not override what one sandbox or one
 * command asked for), and a secret cannot change the basic environment of every command.
 *
 * Event-loop thread only (the store is single-threaded).
 */
#ifndef WARREN_SECRETS_H
#define WARREN_SECRETS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "secretbox.h"
#include "store.h"

/* Limits: name length (names are [A-Za-z_][A-Za-z0-9_]*), one value, the number of secrets
 * of an organisation and the total bytes of their values (a command's environment travels
 * in one agent frame of at most 1 MiB, arguments included). */
#define SECRETS_NAME_MAX 128
#define SECRETS_VALUE_MAX (64 * 1024)
#define SECRETS_MAX_PER_ORG 100
#define SECRETS_MAX_TOTAL (256 * 1024)

/* The master key, loaded once at start. */
struct secrets;

/* Load the master key: WARREN_MASTER_KEY (64 hex digits or base64 of 32 bytes; wiped from the
 * process environment once read, so it is not in /proc/PID/environ nor inherited), else the
 * file WARREN_MASTER_KEY_FILE or DATA_DIR/master.key, created with a random key (mode 0600)
 * when missing. A key file must be a regular file owned by this user and not accessible to
 * group or others. On failure err (errlen bytes) says why, for the operator. */
int secrets_open(const char *data_dir, struct secrets **ret, char *err, size_t errlen);
/* Use a given key (tests). */
int secrets_from_key(const uint8_t key[SECRETBOX_KEY_LEN], struct secrets **ret);
/* Wipe and free. NULL is fine. */
void secrets_free(struct secrets *sx);
/* Where the key came from ("WARREN_MASTER_KEY" or the file's path) and its public id (16
 * hex digits), for log lines. */
const char *secrets_key_source(const struct secrets *sx);
const char *secrets_key_id_hex(const struct secrets *sx);

/* Seal value (len bytes, no NUL) as the secret org_id/name, replacing any earlier value
 * (with a new nonce). *ret_created (may be NULL) says whether it is new. -EINVAL (bad name
 * or value), -EDQUOT (SECRETS_MAX_PER_ORG reached), -E2BIG (SECRETS_MAX_TOTAL would be
 * passed), -ENOENT (no such organisation), store errors. */
int secrets_put(const struct secrets *sx, struct store *st, const char *org_id, const char *name,
                const char *value, size_t len, bool *ret_created);
/* Decrypt the secret org_id/name into a malloc'd NUL-terminated *ret_value of *ret_len bytes
 * (free it with secrets_value_free). -ENOENT if missing; -EKEYREJECTED if it was sealed
 * under another master key; -EBADMSG if it does not authenticate (damaged, or moved to
 * another organisation or name). */
int secrets_get(const struct secrets *sx, struct store *st, const char *org_id, const char *name,
                char **ret_value, size_t *ret_len);
/* Wipe and free a value from secrets_get. NULL is fine. */
void secrets_value_free(char *value, size_t len);
/* Whether name is a valid secret name. */
bool secrets_name_valid(const char *name);

/* Add the secrets chosen for sandbox sandbox_id (of organisation org_id) to env, a JSON
 * object NAME -> string value, decrypting them now. Names already in env are left alone
 * (whatever the caller put there wins: defaults, the sandbox's env, the request's env), so
 * call it after filling env. A sandbox without a recorded choice gets nothing; a chosen
 * secret deleted since is skipped. Returns 0, or -EKEYREJECTED when a secret cannot be
 * decrypted (logged with the cause, never the value; the command must not run without it),
 * or another negative errno. On failure env may hold some of the secrets: the caller drops
 * it. */
int secrets_add_env(struct app *app, const char *org_id, const char *sandbox_id, json_t *env);
/* Answer a failure of secrets_add_env (or any errno) for the command being started: a clear
 * 500 secret_unavailable for -EKEYREJECTED, else reply_errno(c, err, what). */
void secrets_reply_error(struct reqctx *c, int err, const char *what);

/* POST /api/v1/sandbox/create "secrets": check that v is an array of at most
 * SECRETS_MAX_PER_ORG distinct names of the caller's organisation's secrets. Answers 400
 * itself and returns -EINVAL. */
int secrets_check_selection(struct reqctx *c, json_t *v);
/* Record which secrets a new sandbox (or one handed out by the warm pool) gets: names is a
 * JSON array (checked with secrets_check_selection), or NULL for all of its organisation's. */
int secrets_bind_sandbox(struct app *app, const char *sandbox_id, json_t *names);

/* Log (once, at start) how many stored secrets were sealed under another master key. */
void secrets_check_key(struct app *app);

/* Every /api/v1/secrets route; rest is what follows "/api/v1/secrets" ("" or "/NAME"). */
void secrets_route(struct reqctx *c, const char *rest);

#endif
