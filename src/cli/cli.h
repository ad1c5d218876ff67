/* cli.h - shared state of the `warren` command-line client (internal to src/cli/).
 *
 * The CLI is a thin client of the REST API (docs/api.md): main.c parses the global options
 * and dispatches to one function per verb; http.c owns libcurl; the verbs live in
 * sandbox.c (lifecycle), exec.c (commands), files.c (files), jobs.c (background jobs) and
 * attach.c (WebSocket attach and interactive terminals, over ws_client.c).
 *
 * Verb functions return a process exit status, not -errno: 0 success, 1 a failed request
 * (already reported on stderr), 2 a usage error. Helpers below them follow the project
 * convention (0 or negative errno, ret_* written only on success).
 */
#ifndef WARREN_CLI_H
#define WARREN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

#ifndef WARREN_VERSION
#define WARREN_VERSION "0.1.0"
#endif

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
/* Returned by cli_common_option() when the option was consumed and parsing goes on. */
#define CLI_CONTINUE (-1)

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"
#define CLI_ADMIN_KEY_FILE "/var/lib/warren/admin.key"
/* Largest answer kept in memory (JSON answers); binary downloads are streamed instead.
 * Overridable at build time so a test can reach the bound cheaply. */
#ifndef CLI_MAX_ANSWER
#define CLI_MAX_ANSWER ((size_t)256 << 20)
#endif
/* Largest error body kept from a failed streaming request. */
#define CLI_MAX_ERROR_BODY ((size_t)64 << 10)
#define CLI_CONNECT_TIMEOUT_S 10L

/* Option values of the global options, shared by every verb's getopt table. Long-only
 * options use values above 255 so they never collide with a short option letter. */
enum {
        OPT_URL = 256,
        OPT_API_KEY,
        OPT_JSON,
        OPT_MAX_TIME,
        OPT_VERSION,
        OPT_VERB_FIRST = 300, /* verbs number their own long-only options from here */
};

/* The global options, to be placed at the end of each verb's struct option table. */
#define CLI_GLOBAL_OPTIONS                                                                         \
        { "url", required_argument, NULL, OPT_URL },                                               \
        { "api-key", required_argument, NULL, OPT_API_KEY },                                       \
        { "json", no_argument, NULL, OPT_JSON },                                                   \
        { "max-time", required_argument, NULL, OPT_MAX_TIME },                                     \
        { "help", no_argument, NULL, 'h' }

/* The last failed request, reported once by cli_fail(). */
struct cli_error {
        long status;       /* HTTP status, 0 when no answer arrived (transport failure) */
        char code[64];     /* API error code ("not_found"), or a local one ("transport") */
        char message[512]; /* human-readable, already free of control characters */
};

/* Global state: options, the one curl handle (reused so connections are kept alive across
 * requests of one invocation, e.g. `ls --all` pages or `rm A B C`) and the last error. */
struct cli {
        const char *verb;     /* name of the running verb, for messages ("create") */
        const char *url_opt;  /* --url as given, NULL if absent */
        const char *key_opt;  /* --api-key as given, NULL if absent */
        bool json;            /* --json: print the server's answers as they came */
        long max_time_ms;     /* --max-time in milliseconds, 0 = no overall limit */
        bool stall_guard;     /* abort a transfer that moves < 1 byte/s for a long time */

        /* Resolved by cli_ready() on first use. */
        char *base_url;       /* "http://host:port", no trailing slash */
        char *unix_path;      /* unix socket path, NULL for TCP */
        char *api_key;        /* NULL if none was found; never printed */
        CURL *curl;

        struct cli_error err;
};

/* An answer kept in memory. */
struct cli_answer {
        long status;  /* HTTP status */
        char *body;   /* raw bytes, NUL-terminated for convenience (not counted in len) */
        size_t len;
        json_t *json; /* parsed body, NULL if it was not JSON */
};

/* ---- main.c ---- */

/* Handle an option every verb accepts (global options, -h, getopt errors). Returns
 * CLI_CONTINUE if parsing goes on, otherwise the exit status to return right away (after
 * printing the verb's help for -h, or a usage hint for an unknown option). */
int cli_common_option(struct cli *c, int opt, const char *arg);

/* Parse a verb's argv that has no options of its own (only the common ones). CLI_CONTINUE
 * with optind at the first positional argument, or an exit status. */
int cli_parse_plain(struct cli *c, int argc, char **argv);

/* Print "warren: MESSAGE" and a hint to the verb's help on stderr; returns CLI_EXIT_USAGE. */
int cli_usage(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* asprintf() into a returned string: NULL on failure (asprintf leaves its pointer undefined
 * then, which a scope guard must never free). */
char *cli_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* exec.c: the end of `exec` and `start` parsing, from optind: the sandbox ID, then the
 * command (argv after --, or --sh STRING) into body's "command"; an empty env object is
 * dropped from body. CLI_CONTINUE, or an exit status after a usage message. */
int cli_command_args(struct cli *c, int argc, char **argv, json_t *body, json_t *env,
                     const char *sh, const char **ret_id);
/* Parse a decimal integer in [min, max]. 0 or -EINVAL. */
int cli_parse_long(const char *s, long min, long max, long *ret);

/* Parse K=V into a JSON object (the value may contain '='; K must not be empty). 0 or
 * -EINVAL. */
int cli_env_add(json_t *env, const char *kv);

/* Copy s to out, replacing control characters (and DEL) with '?', so text from the server
 * cannot drive the terminal. Always NUL-terminates (truncating to outlen). */
void cli_sanitize(const char *s, char *out, size_t outlen);

/* Print s to f with control characters replaced (see cli_sanitize), no length limit. */
void cli_print_safe(FILE *f, const char *s);

/* Print a JSON answer's raw body to stdout, adding a final newline if it has none. */
void cli_print_raw(const struct cli_answer *a);

/* Print every member of a JSON object as "key: value" lines (nested values compact JSON). */
void cli_print_object(const json_t *obj);

/* Print a table: ncols headers, then rows (a NULL-separated array of ncols strings per
 * row), columns padded to their widest cell; the last column is not padded. */
void cli_print_table(const char *const *headers, size_t ncols, char **cells, size_t nrows);

/* The string value of member key of obj (numbers formatted), "" if missing or null.
 * Returns a malloc'ed string (never NULL unless out of memory). */
char *cli_field(const json_t *obj, const char *key);

/* ---- http.c ---- */

/* Resolve the URL, socket and key and create the curl handle (idempotent). need_key: an
 * API key must be found. Returns 0, or the exit status after printing why not (a bad --url
 * or no key is a usage error: CLI_EXIT_USAGE). */
int cli_ready(struct cli *c, bool need_key);

/* Release the curl handle and the resolved strings. */
void cli_http_done(struct cli *c);

/* Report c->err on stderr as "warren: MESSAGE (CODE, HTTP STATUS)" and return
 * CLI_EXIT_FAIL. */
int cli_fail(struct cli *c);

/* curl_easy_escape() into a malloc'ed string (free with free()), NULL if out of memory. */
char *cli_escape(struct cli *c, const char *s);

/* Build "/api/v1/sandbox/ID SUFFIX" with ID escaped; suffix may be "" or start with '/'.
 * Returns a malloc'ed string or NULL. */
char *cli_sandbox_path(struct cli *c, const char *id, const char *suffix);

/* Like cli_sandbox_path(), then "?path=PATH" escaped. */
char *cli_sandbox_file_path(struct cli *c, const char *id, const char *suffix, const char *path);

/* Perform METHOD path (relative to the base URL) with an optional JSON body and keep the
 * answer (at most CLI_MAX_ANSWER bytes). 0 on a 2xx answer with *ret filled (release with
 * cli_answer_done()); -EPROTO on an HTTP error or a transport failure, with c->err filled.
 * On failure *ret is untouched. */
int cli_call(struct cli *c, const char *method, const char *path, const json_t *body,
             struct cli_answer *ret);

/* POST a JSON body to path and hand each line of a 2xx answer (newline-delimited JSON) to
 * on_line as it arrives; a negative return from on_line aborts. An error answer is kept in
 * memory and reported in c->err. 0 or -EPROTO. */
int cli_call_lines(struct cli *c, const char *path, const json_t *body,
                   int (*on_line)(void *ud, const char *line, size_t len), void *ud);

/* Fill c->err from an HTTP error answer (status and body, e.g. a refused WebSocket
 * upgrade): the API's {"error":{"code","message"}} when it is one, else the body's first
 * line. */
void cli_set_http_error(struct cli *c, long status, const char *body, size_t len);

/* Release what an answer holds (accepts a zeroed answer). */
void cli_answer_done(struct cli_answer *a);

/* GET path and stream a 2xx body to fd. An error answer is kept in memory (bounded), never
 * written to fd. 0 or -EPROTO with c->err filled (also for local write errors). */
int cli_download(struct cli *c, const char *path, int fd);

/* PUT size bytes read from fd (at its current offset) to path with a Content-Length, then
 * keep the JSON answer in *ret. 0 or -EPROTO with c->err filled. */
int cli_upload(struct cli *c, const char *path, int fd, uint64_t size, struct cli_answer *ret);

/* ---- jobs.c ---- */

/* The exit status a job's end maps to, from a job object or an "exit" message ("state",
 * "exit_code"): the exit code when it is 0-255, 124 for timed_out, 255 otherwise (a status
 * outside 0..255, or none). */
int cli_job_exit_status(const json_t *job);

/* ---- network.c ---- */

/* The --allow and --deny rules of one command line, as the API's lists (see network.c for
 * the rule syntax). A list is NULL until its option is given; "none" makes it empty. */
struct cli_netpol {
        json_t *lists[2]; /* [0] allow, [1] deny */
        bool none[2];     /* "none" was given for that list */
};

/* Add the rule text to the deny (or allow) list. CLI_CONTINUE, or an exit status after a
 * usage message (a malformed rule, "none" mixed with rules). */
int cli_netpol_add(struct cli *c, struct cli_netpol *np, bool deny, const char *text);

/* Whether any --allow or --deny was given. */
bool cli_netpol_given(const struct cli_netpol *np);

/* Set "allow" and/or "deny" (those given) on the policy object. 0 or -ENOMEM. */
int cli_netpol_set(const struct cli_netpol *np, json_t *policy);

/* Release the lists (accepts a zeroed one). */
void cli_netpol_done(struct cli_netpol *np);

/* ---- verbs (sandbox.c, exec.c, files.c, jobs.c, attach.c, network.c, main.c) ---- */

int verb_create(struct cli *c, int argc, char **argv);
int verb_ls(struct cli *c, int argc, char **argv);
int verb_get(struct cli *c, int argc, char **argv);
int verb_status(struct cli *c, int argc, char **argv);
int verb_stop(struct cli *c, int argc, char **argv);
int verb_rm(struct cli *c, int argc, char **argv);
int verb_template(struct cli *c, int argc, char **argv);
int verb_health(struct cli *c, int argc, char **argv);
int verb_exec(struct cli *c, int argc, char **argv);
int verb_cp(struct cli *c, int argc, char **argv);
int verb_cat(struct cli *c, int argc, char **argv);
int verb_write(struct cli *c, int argc, char **argv);
int verb_ls_files(struct cli *c, int argc, char **argv);
int verb_mkdir(struct cli *c, int argc, char **argv);
int verb_rm_file(struct cli *c, int argc, char **argv);
int verb_mv(struct cli *c, int argc, char **argv);
int verb_stat(struct cli *c, int argc, char **argv);
int verb_ps(struct cli *c, int argc, char **argv);
int verb_start(struct cli *c, int argc, char **argv);
int verb_logs(struct cli *c, int argc, char **argv);
int verb_kill(struct cli *c, int argc, char **argv);
int verb_attach(struct cli *c, int argc, char **argv);
int verb_shell(struct cli *c, int argc, char **argv);
int verb_network(struct cli *c, int argc, char **argv);

/* Help texts, printed by `warren VERB --help` and `warren help VERB`. */
extern const char help_create[], help_ls[], help_get[], help_status[], help_stop[], help_rm[],
        help_template[], help_health[], help_exec[], help_cp[], help_cat[], help_write[],
        help_ls_files[], help_mkdir[], help_rm_file[], help_mv[], help_stat[], help_ps[],
        help_start[], help_logs[], help_kill[], help_attach[], help_shell[], help_network[];

#endif
