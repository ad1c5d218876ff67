/* sandbox.c - sandbox lifecycle verbs: create, ls, get, status, stop, rm; and the
 * server-level verbs template and health.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

/* Page size of `ls --all` when no --limit is given (the API's maximum). */
#define LS_PAGE_MAX 1000L
/* `ls --all` stops after this many pages even if the server keeps answering full ones. */
#define LS_MAX_PAGES 10000

const char help_create[] =
        "Usage: warren create [--cpus C] [--memory M] [--disk D] [--timeout SECONDS]\n"
        "                     [--template T] [--env K=V]...\n"
        "                     [--network egress [--allow RULE]... [--deny RULE]...]\n"
        "\n"
        "Create a sandbox and print its id (only the id, so `ID=$(warren create)` works).\n"
        "\n"
        "  --cpus C           CPU limit: \"1\", \"2\", \"500m\", \"0.5\" (server default \"2\")\n"
        "  --memory M         memory limit: \"512Mi\", \"2Gi\", \"1G\" (server default \"2Gi\")\n"
        "  --disk D           disk size: \"10Gi\" (server default)\n"
        "  --timeout SECONDS  lifetime, 60 to 86400 (server default 600)\n"
        "  --template T       root filesystem template (default \"base\";\n"
        "                     see `warren template ls`)\n"
        "  -e, --env K=V      environment variable for every command; repeatable\n"
        "  --network N        none (default: loopback only) or egress (an uplink whose\n"
        "                     egress policy is the --allow and --deny rules)\n"
        "  --allow RULE       with egress: allow this destination; repeatable (default:\n"
        "                     TCP 443 and DNS 53 anywhere; `--allow none`: nothing)\n"
        "  --deny RULE        with egress: deny this destination first; repeatable\n"
        "  --json             print the whole answer instead of the id\n"
        "\n"
        "RULE is CIDR[:PORTS][/tcp|/udp], as for `warren network` (see its --help).\n"
        "\n"
        "Examples:\n"
        "  ID=$(warren create --cpus 1 --memory 1Gi --timeout 300)\n"
        "  ID=$(warren create --network egress --allow :443/tcp --allow :53/udp \\\n"
        "       --deny 203.0.113.0/24)\n";

const char help_ls[] =
        "Usage: warren ls [--status S] [--limit N] [--all]\n"
        "\n"
        "List your organisation's sandboxes, newest first, as a table:\n"
        "ID, STATUS, CPUS, MEMORY, CREATED, EXPIRES.\n"
        "\n"
        "  --status S   only sandboxes in status S (creating, running, stopped, error)\n"
        "  --limit N    at most N sandboxes (1 to 1000, server default 100)\n"
        "  --all        every sandbox, fetched page by page (N per page with --limit)\n"
        "  --json       print the answer (with --all: {\"sandboxes\": [...], \"total\": N})\n"
        "\n"
        "Example:\n"
        "  warren ls --status running\n";

const char help_get[] =
        "Usage: warren get ID\n"
        "\n"
        "Show a sandbox as `key: value` lines (nested values as compact JSON).\n"
        "--json prints the answer.\n"
        "\n"
        "Example:\n"
        "  warren get sandbox-3f9c2a1b7d4e\n";

const char help_status[] =
        "Usage: warren status ID\n"
        "\n"
        "Print the sandbox's status alone (creating, running, stopped or error).\n"
        "--json prints the answer (with expires_at).\n"
        "\n"
        "Example:\n"
        "  [ \"$(warren status $ID)\" = running ] && echo up\n";

const char help_stop[] =
        "Usage: warren stop ID [ID...]\n"
        "\n"
        "Stop sandboxes: every process is killed, the record and the files stay until\n"
        "`warren rm`. Prints each id stopped; exits 1 if any failed.\n"
        "\n"
        "Example:\n"
        "  warren stop $ID\n";

const char help_rm[] =
        "Usage: warren rm ID [ID...]\n"
        "\n"
        "Delete sandboxes (stopping them first): processes, disk and record. Prints each\n"
        "id deleted; exits 1 if any failed (the others are still deleted).\n"
        "\n"
        "Example:\n"
        "  warren rm $ID\n";

const char help_template[] =
        "Usage: warren template ls\n"
        "\n"
        "List the templates a sandbox can be created from: NAME, DESCRIPTION, CREATED.\n"
        "\n"
        "Example:\n"
        "  warren template ls\n";

const char help_health[] =
        "Usage: warren health\n"
        "\n"
        "Ask the server whether it is up (needs no API key). Prints `status: ok` and the\n"
        "server's version; exits 1 if it cannot be reached or is not ok.\n"
        "\n"
        "Example:\n"
        "  warren --url unix:/var/lib/warren/warren.sock health\n";

/* Parse create's options into body (and env). CLI_CONTINUE or an exit status. */
static int create_parse(struct cli *c, int argc, char **argv, json_t *body, json_t *env,
                        struct cli_netpol *np)
{
        enum {
                OPT_CPUS = OPT_VERB_FIRST,
                OPT_MEMORY,
                OPT_DISK,
                OPT_TIMEOUT,
                OPT_TEMPLATE,
                OPT_NETWORK,
                OPT_ALLOW,
                OPT_DENY,
        };
        static const struct option opts[] = {
                { "cpus", required_argument, NULL, OPT_CPUS },
                { "memory", required_argument, NULL, OPT_MEMORY },
                { "disk", required_argument, NULL, OPT_DISK },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "template", required_argument, NULL, OPT_TEMPLATE },
                { "env", required_argument, NULL, 'e' },
                { "network", required_argument, NULL, OPT_NETWORK },
                { "allow", required_argument, NULL, OPT_ALLOW },
                { "deny", required_argument, NULL, OPT_DENY },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        const char *field, *network = NULL;
        long timeout;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "he:", opts, NULL)) != -1) {
                field = NULL;
                switch (opt) {
                case OPT_CPUS:
                        field = "cpus";
                        break;
                case OPT_MEMORY:
                        field = "memory";
                        break;
                case OPT_DISK:
                        field = "disk";
                        break;
                case OPT_TEMPLATE:
                        field = "template";
                        break;
                case OPT_NETWORK:
                        field = "network";
                        network = optarg;
                        break;
                case OPT_ALLOW:
                case OPT_DENY:
                        r = cli_netpol_add(c, np, opt == OPT_DENY, optarg);
                        if (r != CLI_CONTINUE)
                                return r;
                        break;
                case OPT_TIMEOUT:
                        /* The server enforces its own range; this only catches typos. */
                        if (cli_parse_long(optarg, 1, 86400L * 366, &timeout) < 0)
                                return cli_usage(c, "--timeout: expected seconds, got '%s'",
                                                 optarg);
                        json_object_set_new(body, "timeout_seconds", json_integer(timeout));
                        break;
                case 'e':
                        if (cli_env_add(env, optarg) < 0)
                                return cli_usage(c, "--env: expected KEY=VALUE, got '%s'",
                                                 optarg);
                        break;
                default:
                        r = cli_common_option(c, opt, optarg);
                        if (r != CLI_CONTINUE)
                                return r;
                }
                if (field && json_object_set_new(body, field, json_string(optarg)) < 0)
                        return cli_usage(c, "--%s: not valid UTF-8", field);
        }
        if (optind < argc)
                return cli_usage(c, "create takes no arguments ('%s')", argv[optind]);
        if (json_object_size(env) > 0)
                json_object_set(body, "env", env);
        /* The rules are the policy of an egress sandbox: never sent for another network
         * (the server would refuse them), and egress is not implied by them. */
        if (cli_netpol_given(np)) {
                json_t *policy = json_object();
                if (!network || strcmp(network, "egress") != 0) {
                        json_decref(policy);
                        return cli_usage(c, "--allow and --deny need --network egress");
                }
                if (!policy || cli_netpol_set(np, policy) < 0) {
                        json_decref(policy);
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
                if (json_object_set_new(body, "network_policy", policy) < 0) {
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
        }
        return CLI_CONTINUE;
}

int verb_create(struct cli *c, int argc, char **argv)
{
        json_t *body = json_object(), *env = json_object();
        struct cli_netpol np = {};
        struct cli_answer a = {};
        const char *id;
        int r;

        if (!body || !env) {
                json_decref(body);
                json_decref(env);
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        r = create_parse(c, argc, argv, body, env, &np);
        if (r != CLI_CONTINUE)
                goto out;
        r = cli_ready(c, true);
        if (r)
                goto out;
        if (cli_call(c, "POST", "/api/v1/sandbox/create", body, &a) < 0) {
                r = cli_fail(c);
                goto out;
        }
        r = CLI_EXIT_OK;
        id = json_string_value(json_object_get(a.json, "sandbox_id"));
        if (c->json) {
                cli_print_raw(&a);
        } else if (id) {
                cli_print_safe(stdout, id);
                fputc('\n', stdout);
        } else {
                fputs("warren: the answer has no sandbox_id\n", stderr);
                r = CLI_EXIT_FAIL;
        }
out:
        cli_answer_done(&a);
        cli_netpol_done(&np);
        json_decref(env);
        json_decref(body);
        return r;
}

/* The rows of ls: 6 cells per sandbox. */
struct rows {
        char **cells;
        size_t n, cap;
};

static void rows_free(struct rows *rows)
{
        for (size_t i = 0; i < rows->n * 6; i++)
                free(rows->cells[i]);
        free(rows->cells);
}

/* Append one row per element of the sandboxes array. 0 or -ENOMEM. */
static int rows_add(struct rows *rows, const json_t *list)
{
        static const char *const keys[] = { "sandbox_id", "status",     "cpus",
                                            "memory",     "created_at", "expires_at" };
        size_t i;
        json_t *sb;

        json_array_foreach(list, i, sb) {
                if (rows->n == rows->cap) {
                        size_t cap = rows->cap ? rows->cap * 2 : 64;
                        char **p = reallocarray(rows->cells, cap * 6, sizeof(char *));
                        if (!p)
                                return -ENOMEM;
                        rows->cells = p;
                        rows->cap = cap;
                }
                for (size_t k = 0; k < 6; k++) {
                        rows->cells[rows->n * 6 + k] = cli_field(sb, keys[k]);
                        if (!rows->cells[rows->n * 6 + k]) {
                                /* keep rows->n whole rows only: free this partial one */
                                while (k-- > 0)
                                        free(rows->cells[rows->n * 6 + k]);
                                return -ENOMEM;
                        }
                }
                rows->n++;
        }
        return 0;
}

int verb_ls(struct cli *c, int argc, char **argv)
{
        enum { OPT_STATUS = OPT_VERB_FIRST, OPT_LIMIT, OPT_ALL };
        static const struct option opts[] = {
                { "status", required_argument, NULL, OPT_STATUS },
                { "limit", required_argument, NULL, OPT_LIMIT },
                { "all", no_argument, NULL, OPT_ALL },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        static const char *const headers[] = { "ID", "STATUS", "CPUS", "MEMORY", "CREATED",
                                               "EXPIRES" };
        const char *status = NULL;
        cleanup_free char *estatus = NULL;
        struct rows rows = {};
        json_t *all = NULL;
        long limit = 0, offset = 0;
        bool every = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (opt) {
                case OPT_STATUS:
                        status = optarg;
                        break;
                case OPT_LIMIT:
                        if (cli_parse_long(optarg, 1, LS_PAGE_MAX, &limit) < 0)
                                return cli_usage(c, "--limit: expected 1 to 1000, got '%s'",
                                                 optarg);
                        break;
                case OPT_ALL:
                        every = true;
                        break;
                default:
                        r = cli_common_option(c, opt, optarg);
                        if (r != CLI_CONTINUE)
                                return r;
                }
        }
        if (optind < argc)
                return cli_usage(c, "ls takes no arguments ('%s'); for files use ls-files",
                                 argv[optind]);
        r = cli_ready(c, true);
        if (r)
                return r;
        if (status && !(estatus = cli_escape(c, status))) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (every && limit == 0)
                limit = LS_PAGE_MAX;
        if (every && c->json && !(all = json_array())) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }

        r = CLI_EXIT_OK;
        for (int page = 0; page < LS_MAX_PAGES; page++) {
                struct cli_answer a = {};
                cleanup_free char *path = NULL;
                json_t *list;
                json_int_t total;
                size_t got;

                char limit_arg[32] = "";

                if (limit)
                        snprintf(limit_arg, sizeof(limit_arg), "&limit=%ld", limit);
                path = cli_strf("/api/v1/sandboxes?offset=%ld%s%s%s", offset,
                                estatus ? "&status=" : "", estatus ? estatus : "", limit_arg);
                if (!path) {
                        fputs("warren: out of memory\n", stderr);
                        r = CLI_EXIT_FAIL;
                        break;
                }
                if (cli_call(c, "GET", path, NULL, &a) < 0) {
                        r = cli_fail(c);
                        break;
                }
                list = json_object_get(a.json, "sandboxes");
                if (!json_is_array(list)) {
                        fputs("warren: the answer has no sandboxes array\n", stderr);
                        cli_answer_done(&a);
                        r = CLI_EXIT_FAIL;
                        break;
                }
                if (c->json && !every) {
                        cli_print_raw(&a);
                        cli_answer_done(&a);
                        goto out;
                }
                if (all)
                        json_array_extend(all, list);
                else if (rows_add(&rows, list) < 0) {
                        fputs("warren: out of memory\n", stderr);
                        cli_answer_done(&a);
                        r = CLI_EXIT_FAIL;
                        break;
                }
                got = json_array_size(list);
                total = json_integer_value(json_object_get(a.json, "total"));
                cli_answer_done(&a);
                offset += (long)got;
                if (!every || got == 0 || offset >= total)
                        break;
        }
        if (r == CLI_EXIT_OK) {
                if (all) {
                        json_t *o = json_pack("{s:O,s:I}", "sandboxes", all, "total",
                                              (json_int_t)json_array_size(all));
                        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
                        if (s)
                                puts(s);
                        else
                                r = CLI_EXIT_FAIL;
                        free(s);
                        json_decref(o);
                } else {
                        cli_print_table(headers, 6, rows.cells, rows.n);
                }
        }
out:
        json_decref(all);
        rows_free(&rows);
        return r;
}

/* GET the sandbox named by the one positional argument (with suffix) into *a. Returns
 * CLI_CONTINUE with *a filled, or an exit status. */
static int get_one(struct cli *c, int argc, char **argv, const char *suffix,
                   struct cli_answer *a)
{
        cleanup_free char *path = NULL;
        int r = cli_parse_plain(c, argc, argv);

        if (r != CLI_CONTINUE)
                return r;
        if (argc - optind != 1)
                return cli_usage(c, "expected one sandbox ID");
        r = cli_ready(c, true);
        if (r)
                return r;
        path = cli_sandbox_path(c, argv[optind], suffix);
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (cli_call(c, "GET", path, NULL, a) < 0)
                return cli_fail(c);
        return CLI_CONTINUE;
}

int verb_get(struct cli *c, int argc, char **argv)
{
        struct cli_answer a = {};
        int r = get_one(c, argc, argv, "", &a);

        if (r != CLI_CONTINUE)
                return r;
        if (c->json)
                cli_print_raw(&a);
        else
                cli_print_object(a.json);
        cli_answer_done(&a);
        return CLI_EXIT_OK;
}

int verb_status(struct cli *c, int argc, char **argv)
{
        struct cli_answer a = {};
        int r = get_one(c, argc, argv, "/status", &a);
        const char *status;

        if (r != CLI_CONTINUE)
                return r;
        status = json_string_value(json_object_get(a.json, "status"));
        r = CLI_EXIT_OK;
        if (c->json) {
                cli_print_raw(&a);
        } else if (status) {
                cli_print_safe(stdout, status);
                fputc('\n', stdout);
        } else {
                fputs("warren: the answer has no status\n", stderr);
                r = CLI_EXIT_FAIL;
        }
        cli_answer_done(&a);
        return r;
}

/* Send METHOD /api/v1/sandbox/ID SUFFIX for every ID argument, printing each id that
 * succeeded (or the answer with --json). Failures are reported and the rest still run. */
static int each_sandbox(struct cli *c, int argc, char **argv, const char *method,
                        const char *suffix)
{
        int r = cli_parse_plain(c, argc, argv);
        bool failed = false;

        if (r != CLI_CONTINUE)
                return r;
        if (optind >= argc)
                return cli_usage(c, "expected at least one sandbox ID");
        r = cli_ready(c, true);
        if (r)
                return r;
        for (int i = optind; i < argc; i++) {
                cleanup_free char *path = cli_sandbox_path(c, argv[i], suffix);
                struct cli_answer a = {};

                if (!path) {
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
                if (cli_call(c, method, path, NULL, &a) < 0) {
                        cli_fail(c);
                        failed = true;
                        continue;
                }
                if (c->json) {
                        cli_print_raw(&a);
                } else {
                        cli_print_safe(stdout, argv[i]);
                        fputc('\n', stdout);
                }
                cli_answer_done(&a);
        }
        return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int verb_stop(struct cli *c, int argc, char **argv)
{
        return each_sandbox(c, argc, argv, "POST", "/stop");
}

int verb_rm(struct cli *c, int argc, char **argv)
{
        return each_sandbox(c, argc, argv, "DELETE", "");
}

int verb_template(struct cli *c, int argc, char **argv)
{
        static const char *const headers[] = { "NAME", "DESCRIPTION", "CREATED" };
        static const char *const keys[] = { "name", "description", "created_at" };
        struct cli_answer a = {};
        const json_t *list;
        char **cells;
        size_t n;
        int r = cli_parse_plain(c, argc, argv);

        if (r != CLI_CONTINUE)
                return r;
        if (argc - optind > 1 || (argc - optind == 1 && strcmp(argv[optind], "ls") != 0))
                return cli_usage(c, "expected `warren template ls`");
        r = cli_ready(c, true);
        if (r)
                return r;
        if (cli_call(c, "GET", "/api/v1/templates", NULL, &a) < 0)
                return cli_fail(c);
        if (c->json) {
                cli_print_raw(&a);
                cli_answer_done(&a);
                return CLI_EXIT_OK;
        }
        list = json_object_get(a.json, "templates");
        n = json_array_size(list);
        cells = calloc(n * 3 + 1, sizeof(char *));
        if (!cells) {
                cli_answer_done(&a);
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < 3; k++)
                        cells[i * 3 + k] = cli_field(json_array_get(list, i), keys[k]);
        cli_print_table(headers, 3, cells, n);
        for (size_t i = 0; i < n * 3; i++)
                free(cells[i]);
        free(cells);
        cli_answer_done(&a);
        return CLI_EXIT_OK;
}

int verb_health(struct cli *c, int argc, char **argv)
{
        struct cli_answer a = {};
        const char *status;
        int r = cli_parse_plain(c, argc, argv);

        if (r != CLI_CONTINUE)
                return r;
        if (optind < argc)
                return cli_usage(c, "health takes no arguments");
        r = cli_ready(c, false);
        if (r)
                return r;
        if (cli_call(c, "GET", "/health", NULL, &a) < 0)
                return cli_fail(c);
        if (c->json)
                cli_print_raw(&a);
        else
                cli_print_object(a.json);
        status = json_string_value(json_object_get(a.json, "status"));
        r = status && strcmp(status, "ok") == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        cli_answer_done(&a);
        return r;
}
