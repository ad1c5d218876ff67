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
