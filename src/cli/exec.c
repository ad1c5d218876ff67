/* exec.c - `warren exec`: run one command in a sandbox and behave like it (its stdout on
 * stdout, its stderr on stderr, its exit status as ours).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cli.h"
#include "util.h"

/* Exit status of a command that ran past its deadline (as timeout(1)). */
#define EXEC_TIMED_OUT 124

const char help_exec[] =
        "Usage: warren exec [OPTIONS] ID -- CMD [ARGS...]\n"
        "       warren exec [OPTIONS] ID --sh 'SHELL COMMAND'\n"
        "\n"
        "Run a command in a sandbox. Its stdout goes to stdout and its stderr to stderr\n"
        "as it is written (streamed, byte for byte), and warren exits with the command's\n"
        "exit status (values above 255 become 255; a command killed at its timeout exits\n"
        "124). Interrupting warren (Ctrl-C) kills the command.\n"
        "\n"
        "CMD and ARGS are sent as an argv array, never through a shell: a single argument\n"
        "with spaces stays one argument. For pipes, redirections or variables use\n"
        "`-- sh -c 'CMD'` or `--sh 'CMD'` (the server runs it with /bin/sh -c).\n"
        "\n"
        "  -e, --env K=V      environment variable for this command; repeatable\n"
        "  -w, --workdir DIR  working directory (server default /workspace)\n"
        "  --timeout MS       kill the command after MS milliseconds\n"
        "                     (server default 300000)\n"
        "  --user USER        \"user\" (uid 1001, default) or \"root\" (root in the sandbox's\n"
        "                     user namespace only)\n"
        "  --sh CMD           send CMD as a shell command string instead of an argv\n"
        "  --max-time S       give up waiting after S seconds (default: no limit)\n"
        "  --json             do not stream: print the server's one JSON answer when the\n"
        "                     command ends (it keeps MAX_EXEC_OUTPUT bytes of each\n"
        "                     stream, default 1 MiB); the exit status is still the command's\n"
        "\n"
        "When warren reads slower than the command writes, the server drops output beyond\n"
        "4 MiB in flight; warren then warns on stderr how many bytes were dropped.\n"
        "\n"
        "Examples:\n"
        "  warren exec $ID -- python3 -c 'print(1+1)'\n"
        "  warren exec $ID --sh 'ls /workspace | wc -l'\n"
        "  warren exec --env DEBUG=1 -w /tmp $ID -- env\n";

/* Write a JSON string's bytes (which may contain NUL) to fd. 0 or -errno. */
static int write_stream(int fd, const json_t *s)
{
        if (!json_is_string(s))
                return 0;
        return util_write_all(fd, json_string_value(s), json_string_length(s));
}

/* Map the answer to our exit status. -EINVAL if the answer has no exit code. */
static int exit_status(const json_t *answer, int *ret)
{
        const json_t *code = json_object_get(answer, "exit_code");
        json_int_t v;

        if (json_is_true(json_object_get(answer, "timed_out"))) {
                *ret = EXEC_TIMED_OUT;
                return 0;
        }
        if (!json_is_integer(code))
                return -EINVAL;
        v = json_integer_value(code);
        /* A status cannot be outside 0..255; anything else still has to read as failure. */
        *ret = v >= 0 && v <= 255 ? (int)v : 255;
        return 0;
}

/* Build the request body from the options and positional arguments. CLI_CONTINUE with
 * *ret_id set, or an exit status. */
static int exec_parse(struct cli *c, int argc, char **argv, json_t *body, const char **ret_id)
{
        enum { OPT_TIMEOUT = OPT_VERB_FIRST, OPT_USER, OPT_SH };
        static const struct option opts[] = {
                { "env", required_argument, NULL, 'e' },
                { "workdir", required_argument, NULL, 'w' },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "user", required_argument, NULL, OPT_USER },
                { "sh", required_argument, NULL, OPT_SH },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        json_t *env = json_object();
        const char *sh = NULL;
        long timeout;
        int opt, r = CLI_CONTINUE;

        if (!env)
                return CLI_EXIT_FAIL;
        json_object_set_new(body, "env", env); /* body owns env from here */
        while ((opt = getopt_long(argc, argv, "he:w:", opts, NULL)) != -1) {
                switch (opt) {
                case 'e':
                        if (cli_env_add(env, optarg) < 0)
                                return cli_usage(c, "--env: expected KEY=VALUE, got '%s'",
                                                 optarg);
                        break;
                case 'w':
                        if (json_object_set_new(body, "working_dir", json_string(optarg)) < 0)
                                return cli_usage(c, "--workdir: not valid UTF-8");
                        break;
                case OPT_TIMEOUT:
                        if (cli_parse_long(optarg, 1, 86400L * 1000, &timeout) < 0)
                                return cli_usage(c, "--timeout: expected milliseconds, got "
                                                    "'%s'",
                                                 optarg);
                        json_object_set_new(body, "timeout", json_integer(timeout));
                        break;
                case OPT_USER:
                        if (strcmp(optarg, "user") != 0 && strcmp(optarg, "root") != 0)
                                return cli_usage(c, "--user: expected user or root, got '%s'",
                                                 optarg);
                        json_object_set_new(body, "user", json_string(optarg));
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

int cli_command_args(struct cli *c, int argc, char **argv, json_t *body, json_t *env,
                     const char *sh, const char **ret_id)
{
        json_t *cmd;

        if (json_object_size(env) == 0)
                json_object_del(body, "env");
        if (optind >= argc)
                return cli_usage(c, "expected a sandbox ID");
        *ret_id = argv[optind++];
        if (sh && optind < argc)
                return cli_usage(c, "--sh and a command after -- cannot be combined");
        if (!sh && optind >= argc)
                return cli_usage(c, "expected a command: warren %s ID -- CMD [ARGS...]", c->verb);
        if (sh) {
                cmd = json_string(sh);
                if (!cmd)
                        return cli_usage(c, "--sh: not valid UTF-8");
        } else {
                cmd = json_array();
                if (!cmd)
                        return CLI_EXIT_FAIL;
                for (int i = optind; i < argc; i++) {
                        if (json_array_append_new(cmd, json_string(argv[i])) < 0) {
                                json_decref(cmd);
                                return cli_usage(c, "argument %d of the command is not valid "
                                                    "UTF-8",
                                                 i - optind + 1);
                        }
                }
        }
        json_object_set_new(body, "command", cmd);
        return CLI_CONTINUE;
}

/* State of a streamed exec. */
struct stream {
        bool got_exit;
        int status;
        bool timed_out;
        int err; /* negative errno of a failed local write */
};

/* One event line of the stream (see docs/api.md). */
static int on_event(void *ud, const char *line, size_t len)
{
        struct stream *st = ud;
        json_t *ev = json_loadb(line, len, 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        int r = 0;

        if (!ev || !type) {
                json_decref(ev);
                return 0; /* not an event we understand: skip it */
        }
        if (!strcmp(type, "stdout") || !strcmp(type, "stderr")) {
                json_t *d = json_object_get(ev, "data");
                int fd = type[3] == 'o' ? STDOUT_FILENO : STDERR_FILENO;
                const char *enc = json_string_value(json_object_get(ev, "encoding"));
                if (enc && !strcmp(enc, "base64") && json_is_string(d)) {
                        size_t n, dl = json_string_length(d);
                        uint8_t *buf = malloc(dl / 4 * 3 + 4);
                        if (buf && b64_decode(json_string_value(d), dl, buf, &n) == 0)
                                r = util_write_all(fd, buf, n);
                        free(buf);
                } else {
                        r = write_stream(fd, d);
                }
        } else if (!strcmp(type, "dropped")) {
                fprintf(stderr, "warren: warning: %lld bytes of %s were dropped (warren read "
                                "slower than the command wrote)\n",
                        (long long)json_integer_value(json_object_get(ev, "bytes")),
                        json_string_value(json_object_get(ev, "stream")) ?: "output");
        } else if (!strcmp(type, "exit")) {
                json_int_t code = json_integer_value(json_object_get(ev, "code"));
                st->timed_out = json_is_true(json_object_get(ev, "timed_out"));
                st->status = st->timed_out ? EXEC_TIMED_OUT
                                           : (code >= 0 && code <= 255 ? (int)code : 255);
                st->got_exit = true;
        } else if (!strcmp(type, "error")) {
                char msg[512];
                cli_sanitize(json_string_value(json_object_get(ev, "message")) ?: "error", msg,
                             sizeof(msg));
                fprintf(stderr, "warren: %s\n", msg);
        }
        json_decref(ev);
        if (r < 0)
                st->err = r;
        return r;
}

/* Stream the command's output as it comes; the exit status from the "exit" event. */
static int exec_streamed(struct cli *c, const char *path, json_t *body)
{
        struct stream st = {};
        json_object_set_new(body, "stream", json_true());
        fflush(stdout);
        if (cli_call_lines(c, path, body, on_event, &st) < 0) {
                if (st.err) {
                        fprintf(stderr, "warren: writing the output: %s\n", strerror(-st.err));
                        return CLI_EXIT_FAIL;
                }
                return cli_fail(c);
        }
        if (!st.got_exit) {
                fputs("warren: the stream ended without the command's exit status\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (st.timed_out)
                fputs("warren: the command was killed at its timeout\n", stderr);
        return st.status;
}

int verb_exec(struct cli *c, int argc, char **argv)
{
        json_t *body = json_object();
        struct cli_answer a = {};
        cleanup_free char *path = NULL;
        const char *id = NULL;
        int r, status = 0;

        if (!body) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        r = exec_parse(c, argc, argv, body, &id);
        if (r != CLI_CONTINUE)
                goto out;
        r = cli_ready(c, true);
        if (r)
                goto out;
        path = cli_sandbox_path(c, id, "/execute");
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        /* No stall guard and no default time limit: a command may run (and stay silent) as
         * long as its own timeout allows. */
        if (!c->json) {
                r = exec_streamed(c, path, body);
                goto out;
        }
        if (cli_call(c, "POST", path, body, &a) < 0) {
                r = cli_fail(c);
                goto out;
        }
        if (exit_status(a.json, &status) < 0) {
                fputs("warren: the answer has no exit_code\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        cli_print_raw(&a);
        r = status;
out:
        cli_answer_done(&a);
        json_decref(body);
        return r;
}
