/* jobs.c - background jobs (docs/api.md "Background processes and terminals"):
 * `warren ps`, `warren start`, `warren logs` and `warren kill`. `attach` and `shell`, which
 * need a WebSocket, are attach.c.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b64.h"
#include "cli.h"
#include "util.h"

/* Exit status of a job that ran past its deadline (as timeout(1) and `warren exec`). */
#define JOB_TIMED_OUT 124
/* `ps --limit`: the server's bound. */
#define PS_LIMIT_MAX 1000
/* Widest COMMAND cell printed by `ps` (the rest is cut and marked with "..."). */
#define PS_COMMAND_MAX 120
/* Bytes asked for per output request (the server's default and at most 4 MiB). */
#define LOGS_CHUNK (1u << 20)
/* Seconds one long poll of `logs --follow` waits at most (the server allows 120). */
#define LOGS_WAIT_S 30
/* Without --follow, `logs` stops after this many bytes even if a busy job still writes: the
 * log holds at most JOB_LOG_MAX (16 MiB), so everything held when it started is read. */
#define LOGS_SNAPSHOT_MAX ((uint64_t)32 << 20)

const char help_ps[] =
        "Usage: warren ps [--limit N] [--json] ID\n"
        "\n"
        "List a sandbox's background jobs (running and ended), newest first, as a table:\n"
        "ID, PID, STATE (running, exited, killed, timed_out, failed), EXIT (the exit code,\n"
        "- while running), PTY, STARTED and COMMAND. --json prints the server's answer.\n"
        "\n"
        "  --limit N   at most N jobs (1-1000, server default 100)\n"
        "\n"
        "Example:\n"
        "  warren ps $ID\n";

const char help_start[] =
        "Usage: warren start [OPTIONS] ID -- CMD [ARGS...]\n"
        "       warren start [OPTIONS] ID --sh 'SHELL COMMAND'\n"
        "\n"
        "Start a command as a background job and print its id (job_N). The job runs on\n"
        "after warren exits; follow it with `warren logs`, `warren attach`, `warren ps`,\n"
        "stop it with `warren kill`. A command that cannot start still gets a job (state\n"
        "failed, its reason in `warren logs`); warren then exits 127.\n"
        "\n"
        "  --pty              run on a pseudo-terminal (80x24; stdin is open)\n"
        "  --stdin            keep a stdin pipe open (write to it with `warren attach`)\n"
        "  -e, --env K=V      environment variable; repeatable\n"
        "  -w, --cwd DIR      working directory (server default /workspace)\n"
        "  --user USER        \"user\" (uid 1001, default) or \"root\"\n"
        "  --timeout MS       kill the job after MS milliseconds (default: no limit)\n"
        "  --max-run-after-disconnect S\n"
        "                     kill the job once nobody has read or attached to it for S\n"
        "                     seconds (default 0: it runs until it exits)\n"
        "  --sh CMD           send CMD as a shell command string instead of an argv\n"
        "  --json             print the server's answer (the job) instead of its id\n"
        "\n"
        "Examples:\n"
        "  JOB=$(warren start $ID -- python3 -m http.server 8000)\n"
        "  warren start --pty $ID -- top\n";

const char help_logs[] =
        "Usage: warren logs [--since N] [-f|--follow] ID JOB\n"
        "\n"
        "Print a job's output log (stdout and stderr interleaved, or its terminal stream)\n"
        "byte for byte, from offset N (default 0). JOB is a job id (job_12) or a pid.\n"
        "Without --follow, warren prints what the log holds now and exits 0 while the job\n"
        "runs; once the job has ended and everything was printed, warren exits with the\n"
        "job's exit code (as `warren exec`; 124 for a job killed at its timeout).\n"
        "\n"
        "  --since N      start at log offset N (bytes already read: resume without repeats)\n"
        "  -f, --follow   keep printing new output until the job ends\n"
        "\n"
        "Bytes no longer held (the daemon keeps the latest 16 MiB) are skipped with a\n"
        "notice on stderr.\n"
        "\n"
        "Examples:\n"
        "  warren logs $ID job_3\n"
        "  warren logs -f $ID job_3\n";

const char help_kill[] =
        "Usage: warren kill [--signal SIG] ID JOB\n"
        "\n"
        "Stop a running job: SIGKILL to its process group (it ends as killed, exit code\n"
        "137); the job's record and log stay. With --signal, send that signal instead (a\n"
        "name such as TERM, INT, HUP, with or without SIG, or a number 1-64). Prints\n"
        "nothing; --json prints the job as the server answered.\n"
        "\n"
        "  -s, --signal SIG   the signal to send (default: kill)\n"
        "\n"
        "Examples:\n"
        "  warren kill $ID job_3\n"
        "  warren kill --signal INT $ID job_3\n";

int cli_job_exit_status(const json_t *job)
{
        const char *state = json_string_value(json_object_get(job, "state"));
        const json_t *code = json_object_get(job, "exit_code");

        if (state && strcmp(state, "timed_out") == 0)
                return JOB_TIMED_OUT;
        if (json_is_integer(code) && json_integer_value(code) >= 0 &&
            json_integer_value(code) <= 255)
                return (int)json_integer_value(code);
        /* A status cannot be outside 0..255; anything else still has to read as failure. */
        return 255;
}

/* "/api/v1/sandbox/ID/processes/JOB" with both escaped, plus suffix ("" or "/..."). A
 * malloc'ed string or NULL. */
static char *job_path(struct cli *c, const char *id, const char *job, const char *suffix)
{
        cleanup_free char *ejob = cli_escape(c, job);
        cleanup_free char *tail = ejob ? cli_strf("/processes/%s%s", ejob, suffix) : NULL;

        return tail ? cli_sandbox_path(c, id, tail) : NULL;
}

/* Parse the common options of a verb taking "ID JOB" and nothing else. CLI_CONTINUE with
 * *ret_id and *ret_job set, or an exit status. */
static int parse_id_job(struct cli *c, int argc, char **argv, const char **ret_id,
                        const char **ret_job)
{
        if (argc - optind != 2)
                return cli_usage(c, "expected a sandbox ID and a job (job_N or a pid)");
        *ret_id = argv[optind];
        *ret_job = argv[optind + 1];
        return CLI_CONTINUE;
}

/* ---- ps ---- */

/* A job's command for the table: an argv joined with spaces (arguments that need it in
 * single quotes), a shell string as it is; cut at PS_COMMAND_MAX. malloc'ed or NULL. */
static char *command_cell(const json_t *cmd)
{
        char buf[PS_COMMAND_MAX + 4];
        size_t n = 0;

        buf[0] = '\0';
        if (json_is_string(cmd)) {
                n = (size_t)snprintf(buf, sizeof(buf), "%s", json_string_value(cmd));
        } else if (json_is_array(cmd)) {
                size_t i;
                const json_t *arg;

                json_array_foreach(cmd, i, arg) {
                        const char *s = json_string_value(arg) ?: "";
                        bool quote = !*s || strpbrk(s, " \t'\"\\$`*?[]{}()<>|&;#~!") != NULL;

                        if (n >= sizeof(buf))
                                break;
                        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s%s%s",
                                              i ? " " : "", quote ? "'" : "", s,
                                              quote ? "'" : "");
                }
        }
        if (n > PS_COMMAND_MAX)
                strcpy(buf + PS_COMMAND_MAX - 3, "...");
        return strdup(buf);
}

int verb_ps(struct cli *c, int argc, char **argv)
{
        enum { OPT_LIMIT = OPT_VERB_FIRST };
        static const struct option opts[] = {
                { "limit", required_argument, NULL, OPT_LIMIT },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        static const char *const headers[] = { "ID", "PID", "STATE", "EXIT", "PTY", "STARTED",
                                               "COMMAND" };
        enum { NCOLS = 7 };
        struct cli_answer a = {};
        cleanup_free char *path = NULL;
        cleanup_free char *suffix = NULL;
        char **cells = NULL;
        const json_t *list, *job;
        size_t nrows = 0, i;
        long limit = 0;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (opt == OPT_LIMIT) {
                        if (cli_parse_long(optarg, 1, PS_LIMIT_MAX, &limit) < 0)
                                return cli_usage(c, "--limit: expected 1 to %d, got '%s'",
                                                 PS_LIMIT_MAX, optarg);
                        continue;
                }
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        if (argc - optind != 1)
                return cli_usage(c, "expected one sandbox ID");
        r = cli_ready(c, true);
        if (r)
                return r;
        suffix = limit ? cli_strf("/processes?limit=%ld", limit) : strdup("/processes");
        path = suffix ? cli_sandbox_path(c, argv[optind], suffix) : NULL;
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (cli_call(c, "GET", path, NULL, &a) < 0)
                return cli_fail(c);
        if (c->json) {
                cli_print_raw(&a);
                r = CLI_EXIT_OK;
                goto out;
        }
        list = json_object_get(a.json, "processes");
        if (!json_is_array(list)) {
                fputs("warren: the answer has no processes array\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        /* The server caps the list at 1000; an answer larger than that is not trusted. */
        if (json_array_size(list) > PS_LIMIT_MAX) {
                fputs("warren: the answer lists more jobs than asked for\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        cells = calloc(json_array_size(list) * NCOLS + 1, sizeof(char *));
        if (!cells) {
                fputs("warren: out of memory\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        json_array_foreach(list, i, job) {
                char **row = cells + nrows * NCOLS;
                const json_t *code = json_object_get(job, "exit_code");

                row[0] = cli_field(job, "id");
                row[1] = cli_field(job, "pid");
                row[2] = cli_field(job, "state");
                row[3] = json_is_integer(code) ? cli_field(job, "exit_code") : strdup("-");
                row[4] = strdup(json_is_true(json_object_get(job, "pty")) ? "yes" : "no");
                row[5] = cli_field(job, "started_at");
                row[6] = command_cell(json_object_get(job, "command"));
                nrows++;
                for (size_t k = 0; k < NCOLS; k++)
                        if (!row[k]) {
                                fputs("warren: out of memory\n", stderr);
                                r = CLI_EXIT_FAIL;
                                goto out;
                        }
        }
        cli_print_table(headers, NCOLS, cells, nrows);
        r = CLI_EXIT_OK;
out:
        for (size_t k = 0; cells && k < nrows * NCOLS; k++)
                free(cells[k]);
        free(cells);
        cli_answer_done(&a);
        return r;
}

/* ---- start ---- */

/* Build the request body of `start` from its options. CLI_CONTINUE with *ret_id set, or an
 * exit status. */
static int start_parse(struct cli *c, int argc, char **argv, json_t *body, const char **ret_id)
{
        enum { OPT_PTY = OPT_VERB_FIRST, OPT_STDIN, OPT_USER, OPT_TIMEOUT, OPT_MRAD, OPT_SH };
        static const struct option opts[] = {
                { "pty", no_argument, NULL, OPT_PTY },
                { "stdin", no_argument, NULL, OPT_STDIN },
                { "env", required_argument, NULL, 'e' },
                { "cwd", required_argument, NULL, 'w' },
                { "workdir", required_argument, NULL, 'w' },
                { "user", required_argument, NULL, OPT_USER },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "max-run-after-disconnect", required_argument, NULL, OPT_MRAD },
                { "sh", required_argument, NULL, OPT_SH },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        json_t *env = json_object();
        const char *sh = NULL;
        long v;
        int opt, r;

        if (!env)
                return CLI_EXIT_FAIL;
        json_object_set_new(body, "env", env); /* body owns env from here */
        while ((opt = getopt_long(argc, argv, "he:w:", opts, NULL)) != -1) {
                switch (opt) {
                case OPT_PTY:
                        json_object_set_new(body, "pty", json_true());
                        break;
                case OPT_STDIN:
                        json_object_set_new(body, "stdin", json_true());
                        break;
                case 'e':
                        if (cli_env_add(env, optarg) < 0)
                                return cli_usage(c, "--env: expected KEY=VALUE, got '%s'",
                                                 optarg);
                        break;
                case 'w':
                        if (json_object_set_new(body, "cwd", json_string(optarg)) < 0)
                                return cli_usage(c, "--cwd: not valid UTF-8");
                        break;
                case OPT_USER:
                        if (strcmp(optarg, "user") != 0 && strcmp(optarg, "root") != 0)
                                return cli_usage(c, "--user: expected user or root, got '%s'",
                                                 optarg);
                        json_object_set_new(body, "user", json_string(optarg));
                        break;
                case OPT_TIMEOUT:
                        if (cli_parse_long(optarg, 1, 86400L * 1000, &v) < 0)
                                return cli_usage(c, "--timeout: expected milliseconds, got "
                                                    "'%s'",
                                                 optarg);
                        json_object_set_new(body, "timeout", json_integer(v));
                        break;
                case OPT_MRAD:
                        if (cli_parse_long(optarg, 0, 86400L * 365, &v) < 0)
                                return cli_usage(c, "--max-run-after-disconnect: expected "
                                                    "seconds, got '%s'",
                                                 optarg);
                        json_object_set_new(body, "max_run_after_disconnect", json_integer(v));
                        break;
                case OPT_SH:
                        sh = optarg;
                        break;
                default:
                        r = cli_common_option(c, opt, optarg);
                        if (r != CLI_CONTINUE)
                                return r;
                }
        }
        return cli_command_args(c, argc, argv, body, env, sh, ret_id);
}

int verb_start(struct cli *c, int argc, char **argv)
{
        json_t *body = json_object();
        struct cli_answer a = {};
        cleanup_free char *path = NULL;
        const char *id = NULL, *job, *state;
        int r;

        if (!body) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        r = start_parse(c, argc, argv, body, &id);
        if (r != CLI_CONTINUE)
                goto out;
        r = cli_ready(c, true);
        if (r)
                goto out;
        path = cli_sandbox_path(c, id, "/processes");
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        if (cli_call(c, "POST", path, body, &a) < 0) {
                r = cli_fail(c);
                goto out;
        }
        job = json_string_value(json_object_get(a.json, "id"));
        state = json_string_value(json_object_get(a.json, "state"));
        if (!job) {
                fputs("warren: the answer has no job id\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        if (c->json) {
                cli_print_raw(&a);
        } else {
                cli_print_safe(stdout, job);
                fputc('\n', stdout);
        }
        r = CLI_EXIT_OK;
        if (state && strcmp(state, "failed") == 0) {
                fputs("warren: the command could not start; see `warren logs ", stderr);
                cli_print_safe(stderr, id);
                fputc(' ', stderr);
                cli_print_safe(stderr, job);
                fputs("`\n", stderr);
                r = cli_job_exit_status(a.json);
        }
out:
        cli_answer_done(&a);
        json_decref(body);
        return r;
}

/* ---- logs ---- */

/* Write one output answer's data to stdout (decoding base64). 0 or -errno (-EPROTO: the
 * answer is malformed). */
static int write_chunk(const json_t *ans)
{
        const json_t *d = json_object_get(ans, "data");
        const char *enc = json_string_value(json_object_get(ans, "encoding"));
        size_t n, dl;

        if (!json_is_string(d))
                return -EPROTO;
        dl = json_string_length(d);
        if (dl == 0)
                return 0;
        if (enc && strcmp(enc, "base64") == 0) {
                cleanup_free uint8_t *buf = malloc(dl / 4 * 3 + 4);
                if (!buf)
                        return -ENOMEM;
                if (b64_decode(json_string_value(d), dl, buf, &n) < 0)
                        return -EPROTO;
                return util_write_all(STDOUT_FILENO, buf, n);
        }
        return util_write_all(STDOUT_FILENO, json_string_value(d), dl);
}

int verb_logs(struct cli *c, int argc, char **argv)
{
        enum { OPT_SINCE = OPT_VERB_FIRST };
        static const struct option opts[] = {
                { "since", required_argument, NULL, OPT_SINCE },
                { "follow", no_argument, NULL, 'f' },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        cleanup_free char *base = NULL;
        const char *id, *job;
        uint64_t read_total = 0;
        long since = 0;
        bool follow = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "hf", opts, NULL)) != -1) {
                switch (opt) {
                case OPT_SINCE:
                        if (cli_parse_long(optarg, 0, LONG_MAX, &since) < 0)
                                return cli_usage(c, "--since: expected a byte offset, got '%s'",
                                                 optarg);
                        break;
                case 'f':
                        follow = true;
                        break;
                default:
                        r = cli_common_option(c, opt, optarg);
                        if (r != CLI_CONTINUE)
                                return r;
                }
        }
        r = parse_id_job(c, argc, argv, &id, &job);
        if (r != CLI_CONTINUE)
                return r;
        r = cli_ready(c, true);
        if (r)
                return r;
        base = job_path(c, id, job, "/output");
        if (!base) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        /* Each round moves `since` forward or ends: the loop is bounded by the log's growth
         * (with --follow, by the job's life, as `exec` is). */
        for (;;) {
                struct cli_answer a = {};
                cleanup_free char *path = NULL;
                json_int_t offset, next, dropped;
                size_t got;

                if (follow)
                        path = cli_strf("%s?since=%ld&limit=%u&wait=true&timeout=%d", base,
                                        since, LOGS_CHUNK, LOGS_WAIT_S);
                else
                        path = cli_strf("%s?since=%ld&limit=%u", base, since, LOGS_CHUNK);
                if (!path) {
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
                if (cli_call(c, "GET", path, NULL, &a) < 0)
                        return cli_fail(c);
                offset = json_integer_value(json_object_get(a.json, "offset"));
                next = json_integer_value(json_object_get(a.json, "next"));
                dropped = json_integer_value(json_object_get(a.json, "dropped"));
                /* offset < since only when since is past the log's end (nothing to read) */
                if (!json_is_integer(json_object_get(a.json, "next")) || next < offset ||
                    (offset < since && next != offset)) {
                        fputs("warren: the server's answer has no valid offsets\n", stderr);
                        cli_answer_done(&a);
                        return CLI_EXIT_FAIL;
                }
                if (dropped > 0)
                        fprintf(stderr, "warren: %lld bytes of the log (offsets %ld to %lld) "
                                        "are no longer held; continuing at %lld\n",
                                (long long)dropped, since, (long long)offset,
                                (long long)offset);
                r = write_chunk(a.json);
                if (r < 0) {
                        if (r == -EPROTO)
                                fputs("warren: the server's answer has invalid data\n", stderr);
                        else
                                fprintf(stderr, "warren: writing the output: %s\n",
                                        strerror(-r));
                        cli_answer_done(&a);
                        return CLI_EXIT_FAIL;
                }
                got = (size_t)(next - offset);
                read_total += got;
                if (next > since)
                        since = (long)next;
                if (json_is_true(json_object_get(a.json, "eof"))) {
                        r = cli_job_exit_status(a.json);
                        cli_answer_done(&a);
                        return r;
                }
                cli_answer_done(&a);
                /* Without --follow: done once the log has nothing more right now (or a busy
                 * job has written more than the log can hold since we started). */
                if (!follow && (got == 0 || read_total >= LOGS_SNAPSHOT_MAX))
                        return CLI_EXIT_OK;
        }
}

/* ---- kill ---- */

int verb_kill(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "signal", required_argument, NULL, 's' },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        struct cli_answer a = {};
        cleanup_free char *path = NULL;
        json_t *body = NULL;
        const char *id, *job, *sig = NULL;
        long num;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "hs:", opts, NULL)) != -1) {
                if (opt == 's') {
                        sig = optarg;
                        continue;
                }
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        r = parse_id_job(c, argc, argv, &id, &job);
        if (r != CLI_CONTINUE)
                return r;
        if (sig) {
                if (cli_parse_long(sig, 1, 64, &num) == 0)
                        body = json_pack("{s:I}", "signal", (json_int_t)num);
                else if (sig[0] && strspn(sig, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                               "abcdefghijklmnopqrstuvwxyz0123456789+-") ==
                                           strlen(sig) && strlen(sig) <= 16)
                        body = json_pack("{s:s}", "signal", sig);
                else
                        return cli_usage(c, "--signal: expected a name such as TERM or a "
                                            "number 1-64, got '%s'",
                                         sig);
                if (!body) {
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
        }
        r = cli_ready(c, true);
        if (r)
                goto out;
        path = job_path(c, id, job, sig ? "/signal" : "");
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        if (cli_call(c, sig ? "POST" : "DELETE", path, body, &a) < 0) {
                r = cli_fail(c);
                goto out;
        }
        if (c->json)
                cli_print_raw(&a);
        r = CLI_EXIT_OK;
out:
        cli_answer_done(&a);
        json_decref(body);
        return r;
}
