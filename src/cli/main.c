/* main.c - `warren`, the command-line client of warrend: global options, verb dispatch,
 * help, and the small parsing and printing helpers the verbs share.
 *
 *   warren [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]
 *
 * Global options may also follow the verb. Exit status: 0 success, 1 a failed request (the
 * server's error on stderr), 2 a usage error; `exec` exits with the command's status, `logs`,
 * `attach` and `shell` with the job's.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

struct verb {
        const char *name;
        int (*run)(struct cli *c, int argc, char **argv);
        const char *help;
        const char *summary;
};

static const struct verb verbs[] = {
        { "create", verb_create, help_create, "create a sandbox and print its id" },
        { "ls", verb_ls, help_ls, "list sandboxes" },
        { "get", verb_get, help_get, "show a sandbox" },
        { "status", verb_status, help_status, "print a sandbox's status" },
        { "exec", verb_exec, help_exec, "run a command in a sandbox" },
        { "cp", verb_cp, help_cp, "copy a file into or out of a sandbox" },
        { "cat", verb_cat, help_cat, "print a file of a sandbox" },
        { "write", verb_write, help_write, "write stdin to a file of a sandbox" },
        { "ls-files", verb_ls_files, help_ls_files, "list a directory of a sandbox" },
        { "mkdir", verb_mkdir, help_mkdir, "create a directory (and its parents)" },
        { "rm-file", verb_rm_file, help_rm_file, "remove a file or directory" },
        { "mv", verb_mv, help_mv, "move or rename a file" },
        { "stat", verb_stat, help_stat, "show a file's metadata" },
        { "start", verb_start, help_start, "start a background job and print its id" },
        { "ps", verb_ps, help_ps, "list a sandbox's background jobs" },
        { "logs", verb_logs, help_logs, "print (or follow) a job's output" },
        { "attach", verb_attach, help_attach, "attach to a job (output, stdin, terminal)" },
        { "kill", verb_kill, help_kill, "kill a job or send it a signal" },
        { "shell", verb_shell, help_shell, "open an interactive shell in a sandbox" },
        { "network", verb_network, help_network, "show or change a sandbox's egress policy" },
        { "stop", verb_stop, help_stop, "stop sandboxes (their files stay)" },
        { "rm", verb_rm, help_rm, "delete sandboxes" },
        { "template", verb_template, help_template, "list templates (template ls)" },
        { "health", verb_health, help_health, "check that the server answers" },
};

static const char help_main[] =
        "Usage: warren [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]\n"
        "\n"
        "Command-line client of warrend, the Warren sandbox server.\n"
        "\n"
        "Global options (also accepted after the verb):\n"
        "  --url URL        server: http[s]://HOST:PORT or unix:/path/to/warren.sock\n"
        "                   (default: $WARREN_URL, else " CLI_DEFAULT_URL ")\n"
        "  --api-key KEY    API key (default: $WARREN_API_KEY, else the contents of\n"
        "                   " CLI_ADMIN_KEY_FILE " when readable)\n"
        "  --json           print the server's JSON answers as they come\n"
        "  --max-time S     give up on a request after S seconds (default: no limit)\n"
        "  -h, --help       this help; `warren VERB --help` for a verb\n"
        "  --version        print the version\n"
        "\n"
        "Verbs:\n";

static const char help_trailer[] =
        "\n"
        "Exit status: 0 success, 1 the request failed (the server's error is printed on\n"
        "stderr as `warren: MESSAGE (CODE, HTTP STATUS)`), 2 usage error; `exec` exits\n"
        "with the command's own status, `logs`, `attach` and `shell` with the job's.\n";

/* Print the overall help (verbs and their one-line summaries) to f. */
static void print_main_help(FILE *f)
{
        fputs(help_main, f);
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
        fputs(help_trailer, f);
}

/* The verb named name, NULL if none. */
static const struct verb *find_verb(const char *name)
{
        if (strcmp(name, "templates") == 0)
                name = "template";
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

/* Parse --max-time: seconds, decimals allowed, (0, 1e6]. */
static int parse_max_time(const char *s, long *ret_ms)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        /* Written so that NaN fails too. */
        if (errno || end == s || *end || !(v > 0 && v <= 1e6))
                return -EINVAL;
        *ret_ms = (long)(v * 1000.0 + 0.999);
        return 0;
}

/* Handle a global option (shared by the top level and every verb). CLI_CONTINUE, or an
 * exit status for a bad value. */
static int global_option(struct cli *c, int opt, const char *arg)
{
        switch (opt) {
        case OPT_URL:
                c->url_opt = arg;
                return CLI_CONTINUE;
        case OPT_API_KEY:
                c->key_opt = arg;
                return CLI_CONTINUE;
        case OPT_JSON:
                c->json = true;
                return CLI_CONTINUE;
        case OPT_MAX_TIME:
                if (parse_max_time(arg, &c->max_time_ms) < 0)
                        return cli_usage(c, "--max-time: expected a number of seconds, got '%s'",
                                         arg);
                return CLI_CONTINUE;
        default:
                return CLI_EXIT_USAGE;
        }
}

int cli_common_option(struct cli *c, int opt, const char *arg)
{
        const struct verb *v;

        switch (opt) {
        case 'h':
                v = c->verb ? find_verb(c->verb) : NULL;
                if (v)
                        fputs(v->help, stdout);
                else
                        print_main_help(stdout);
                return CLI_EXIT_OK;
        case '?':
        case ':':
                /* getopt already printed what was wrong. */
                if (c->verb)
                        fprintf(stderr, "Try 'warren %s --help'.\n", c->verb);
                else
                        fputs("Try 'warren --help'.\n", stderr);
                return CLI_EXIT_USAGE;
        default:
                return global_option(c, opt, arg);
        }
}

int cli_parse_plain(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { CLI_GLOBAL_OPTIONS, {} };
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        return CLI_CONTINUE;
}

int cli_usage(struct cli *c, const char *fmt, ...)
{
        va_list ap;

        fputs("warren: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (c->verb)
                fprintf(stderr, "\nTry 'warren %s --help'.\n", c->verb);
        else
                fputs("\nTry 'warren --help'.\n", stderr);
        return CLI_EXIT_USAGE;
}

char *cli_strf(const char *fmt, ...)
{
        va_list ap;
        char *out;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&out, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : out;
}

int cli_parse_long(const char *s, long min, long max, long *ret)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int cli_env_add(json_t *env, const char *kv)
{
        const char *eq = strchr(kv, '=');
        cleanup_free char *key = NULL;

        if (!eq || eq == kv)
                return -EINVAL;
        key = strndup(kv, (size_t)(eq - kv));
        if (!key)
                return -ENOMEM;
        if (json_object_set_new(env, key, json_string(eq + 1)) < 0)
                return -EINVAL; /* not UTF-8 */
        return 0;
}

void cli_sanitize(const char *s, char *out, size_t outlen)
{
        size_t i = 0;

        if (outlen == 0)
                return;
        for (; *s && i + 1 < outlen; s++, i++) {
                unsigned char ch = (unsigned char)*s;
                out[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
        }
        out[i] = '\0';
}

void cli_print_safe(FILE *f, const char *s)
{
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                fputc((ch < 0x20 || ch == 0x7f) ? '?' : ch, f);
        }
}

void cli_print_raw(const struct cli_answer *a)
{
        fwrite(a->body, 1, a->len, stdout);
        if (a->len == 0 || a->body[a->len - 1] != '\n')
                fputc('\n', stdout);
}

char *cli_field(const json_t *obj, const char *key)
{
        const json_t *v = json_object_get(obj, key);

        if (json_is_string(v))
                return strdup(json_string_value(v));
        if (json_is_integer(v))
                return cli_strf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        if (json_is_real(v))
                return cli_strf("%g", json_real_value(v));
        if (json_is_boolean(v))
                return strdup(json_is_true(v) ? "true" : "false");
        if (json_is_object(v) || json_is_array(v))
                return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        return strdup("");
}

void cli_print_object(const json_t *obj)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)obj, key, v) {
                cleanup_free char *val = cli_field(obj, key);

                cli_print_safe(stdout, key);
                fputs(": ", stdout);
                cli_print_safe(stdout, val ? val : "");
                fputc('\n', stdout);
        }
}

void cli_print_table(const char *const *headers, size_t ncols, char **cells, size_t nrows)
{
        size_t width[16] = { 0 };

        if (ncols > ARRAY_SIZE(width))
                ncols = ARRAY_SIZE(width);
        for (size_t j = 0; j < ncols; j++)
                width[j] = strlen(headers[j]);
        for (size_t i = 0; i < nrows; i++)
                for (size_t j = 0; j < ncols; j++) {
                        const char *cell = cells[i * ncols + j];
                        size_t n = cell ? strlen(cell) : 0;
                        if (n > width[j])
                                width[j] = n;
                }
        for (size_t i = 0; i <= nrows; i++) {
                for (size_t j = 0; j < ncols; j++) {
                        const char *cell = i == 0 ? headers[j] : cells[(i - 1) * ncols + j];
                        size_t n;

                        if (!cell)
                                cell = "";
                        n = strlen(cell);
                        cli_print_safe(stdout, cell);
                        if (j + 1 < ncols)
                                for (size_t k = n; k < width[j] + 2; k++)
                                        fputc(' ', stdout);
                }
                fputc('\n', stdout);
        }
}

/* `warren help [VERB]`. */
static int verb_help(int argc, char **argv)
{
        const struct verb *v;

        if (argc < 2) {
                print_main_help(stdout);
                return CLI_EXIT_OK;
        }
        v = find_verb(argv[1]);
        if (!v) {
                fprintf(stderr, "warren: unknown verb '%s'\nTry 'warren --help'.\n", argv[1]);
                return CLI_EXIT_USAGE;
        }
        fputs(v->help, stdout);
        return CLI_EXIT_OK;
}

/* Parse the global options before the verb, then run the verb with its own argv (argv[0]
 * set to "warren VERB", so getopt's messages name it). */
static int run(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                CLI_GLOBAL_OPTIONS,
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        const struct verb *v;
        char prog[64];
        int opt, r;

        /* '+': stop at the verb, its options are its own. */
        while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                if (opt == OPT_VERSION) {
                        printf("warren %s\n", WARREN_VERSION);
                        return CLI_EXIT_OK;
                }
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        if (optind >= argc) {
                print_main_help(stderr);
                return CLI_EXIT_USAGE;
        }
        argc -= optind;
        argv += optind;
        if (strcmp(argv[0], "help") == 0)
                return verb_help(argc, argv);
        v = find_verb(argv[0]);
        if (!v) {
                fputs("warren: unknown verb '", stderr);
                cli_print_safe(stderr, argv[0]);
                fputs("'\nTry 'warren --help'.\n", stderr);
                return CLI_EXIT_USAGE;
        }
        c->verb = v->name;
        snprintf(prog, sizeof(prog), "warren %s", v->name);
        argv[0] = prog;
        optind = 0; /* glibc: full re-initialisation of getopt for the verb's argv */
        return v->run(c, argc, argv);
}

int main(int argc, char **argv)
{
        struct cli c = {};
        int r;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fputs("warren: cannot initialise libcurl\n", stderr);
                return CLI_EXIT_FAIL;
        }
        r = run(&c, argc, argv);
        cli_http_done(&c);
        curl_global_cleanup();
        /* Output that could not be written is a failure even if the request worked. */
        if ((fflush(stdout) != 0 || ferror(stdout)) && r == CLI_EXIT_OK) {
                fprintf(stderr, "warren: writing to stdout: %s\n", strerror(errno));
                r = CLI_EXIT_FAIL;
        }
        return r;
}
