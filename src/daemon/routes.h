/* routes.h - helpers shared by the route handlers (routes.c, files.c). */
#ifndef WARREN_ROUTES_H
#define WARREN_ROUTES_H

#include <jansson.h>
#include <stdbool.h>

#include "app.h"
#include "store.h"

/* RFC 3339 string for an epoch time. */
json_t *json_time(int64_t epoch_s);
/* The public JSON view of a sandbox record. */
json_t *sandbox_to_json(const struct store_sandbox *rec);
/* A record of the caller's organisation; another organisation's sandbox is -ENOENT. */
int lookup_sandbox(struct reqctx *c, const char *id, struct store_sandbox *ret);
/* 404 {"error":{"code":"not_found","message":"sandbox not found"}}. */
void reply_not_found(struct reqctx *c);
/* The request body as a JSON object; answers 400 itself and returns NULL when invalid. */
json_t *parse_body(struct reqctx *c, bool required);
/* Validate an env object (answers 400 itself). */
int validate_env(struct reqctx *c, json_t *env, const char *field);

/* An optional string field of a JSON object (answers 400 itself when it is not a string). */
int field_str(struct reqctx *c, json_t *body, const char *name, const char **ret);

struct sandbox;

/* exec.c: build argv from "command": a string runs through /bin/sh -c, an array is the
 * argv (strings point into cmd; *ret_argv is malloc'd). Answers 400 itself (-EINVAL). */
int exec_argv(struct reqctx *c, json_t *cmd, const char ***ret_argv, uint32_t *ret_argc);
/* exec.c: the environment of a command: defaults, then the sandbox's env, then req_env,
 * then the organisation's secrets chosen for the sandbox under names not taken yet
 * (secrets.h). *ret_storage holds the NAME=value strings (secrets in plaintext): keep it in
 * a cleanup_env_storage struct env_storage, which wipes it. Secret failures: -EKEYREJECTED
 * etc., answered with secrets_reply_error(). */
int exec_env(struct app *app, struct sandbox *sb, json_t *req_env, bool root,
             const char ***ret_env, uint32_t *ret_envc, char **ret_storage,
             size_t *ret_storage_len);

/* The NAME=value strings of exec_env: wiped (they may hold secrets) and freed at scope end,
 * once agent_spawn has copied them into its frame. */
struct env_storage {
        char *p;
        size_t len;
};
void env_storage_wipe(struct env_storage *es);
#define cleanup_env_storage __attribute__((cleanup(env_storage_wipe)))
/* exec.c: what a command needs besides its argv, read from the request body ("working_dir"
 * or "cwd", "timeout" in ms, "user", "env"); answers 400 itself. */
struct exec_params {
        const char *cwd;
        int64_t timeout_ms;
        uint32_t uid;
        json_t *env; /* borrowed from the body, or NULL */
};
int exec_params(struct reqctx *c, json_t *body, struct exec_params *p);
/* exec.c: the running sandbox for an exec route with a ready agent; answers 404/409/503. */
struct sandbox *exec_sandbox(struct reqctx *c, const char *id);

/* processes.c: every /api/v1/sandbox/:id/processes... and /terminals route. */
void processes_route(struct reqctx *c, const char *id, const char *rest);

struct store_job;
/* attach.c: GET /api/v1/sandbox/:id/processes/:ref/attach, a WebSocket onto a job. */
void attach_start(struct reqctx *c, const char *id, const struct store_job *rec);
/* wsapi.c: GET /ws, the StateSet WebSocket endpoint (several executions on one socket). */
void wsapi_start(struct reqctx *c);

/* exec.c: POST /api/v1/sandbox/:id/execute (JSON answer, or NDJSON events with "stream"). */
void exec_handle(struct reqctx *c, const char *id);
/* exec.c: POST /api/v1/sandbox/:id/run-code. */
void exec_run_code(struct reqctx *c, const char *id);
/* exec.c: "python" or "node" (or a shebang's language) for run-code without a language. */
const char *exec_detect_language(const char *code);

/* files.c: every /api/v1/sandbox/:id/files... route; rest is "" or "/list" etc. */
void files_route(struct reqctx *c, const char *id, const char *rest);
/* files.c: on_headers for PUT files/upload (streamed body). */
enum http_body_mode files_upload_headers(struct reqctx *c, const char *id);
/* files.c: the whole upload body has arrived (on_request of PUT files/upload). */
void files_upload_complete(struct reqctx *c);

#endif
