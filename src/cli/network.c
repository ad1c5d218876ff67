/* network.c - egress policies on the command line: the rule syntax shared by `create
 * --allow/--deny` and the `network` verb (GET or PATCH /api/v1/sandbox/ID/network).
 *
 * A rule is CIDR[:PORTS][/tcp|/udp|/any], mapped one to one onto the API's rule object
 * (docs/api.md, Network): "203.0.113.0/24:443,8000-8080/tcp" is {"cidr": "203.0.113.0/24",
 * "ports": [443, "8000-8080"], "protocol": "tcp"}. The CIDR may be empty (every address:
 * ":53/udp"), an IPv6 network goes in brackets ("[2001:db8::/32]:443"), and "none" alone
 * stands for an empty list. The CLI checks the shape only; the server checks the values
 * and its message names the field.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

/* Longest rule text accepted (the longest valid one is about 150 characters). */
#define RULE_MAX 256

const char help_network[] =
        "Usage: warren network ID [--allow RULE]... [--deny RULE]... [--reset]\n"
        "\n"
        "Show a sandbox's network (egress policy and address), or change the policy of a\n"
        "running `--network egress` sandbox. Each list given replaces the current one; a\n"
        "list not given is kept. The new policy is in force when the command returns, for\n"
        "open connections too.\n"
        "\n"
        "  --allow RULE   allow this destination (repeatable); `--allow none`: nothing\n"
        "  --deny RULE    deny this destination, before any allow rule (repeatable);\n"
        "                 `--deny none`: no deny rules\n"
        "  --reset        back to the defaults (allow TCP 443 and DNS 53, deny nothing)\n"
        "  --json         print the answer\n"
        "\n"
        "RULE is CIDR[:PORTS][/tcp|/udp]: CIDR a network (203.0.113.0/24) or address,\n"
        "empty for every address; IPv6 in brackets ([2001:db8::/32], deny only); PORTS a\n"
        "comma-separated list of ports and ranges (443,8000-8080), every port if absent;\n"
        "the protocol TCP and UDP if absent. Private, link-local and loopback ranges and\n"
        "the host stay blocked whatever the policy (docs/security.md).\n"
        "\n"
        "Examples:\n"
        "  warren network $ID\n"
        "  warren network $ID --allow 140.82.112.0/20:443,22/tcp --allow :53\n"
        "  warren network $ID --deny 203.0.113.0/24\n"
        "  warren network $ID --allow none\n";

void cli_netpol_done(struct cli_netpol *np)
{
        json_decref(np->lists[0]);
        json_decref(np->lists[1]);
        np->lists[0] = np->lists[1] = NULL;
}

/* Whether s is 1-5 decimal digits. */
static bool is_port_text(const char *s, size_t n)
{
        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* PORTS ("443,8000-8080") into a JSON array: single ports as numbers, ranges as "LO-HI"
 * strings (the server checks the values). 0 or -EINVAL. */
static int parse_ports(const char *s, json_t *ret)
{
        while (*s) {
                size_t n = strcspn(s, ",");
                const char *dash = memchr(s, '-', n);
                char one[8];
                long v;

                if (!dash) {
                        if (!is_port_text(s, n))
                                return -EINVAL;
                        memcpy(one, s, n);
                        one[n] = '\0';
                        if (cli_parse_long(one, 0, 99999, &v) < 0 ||
                            json_array_append_new(ret, json_integer(v)) < 0)
                                return -EINVAL;
                } else {
                        if (!is_port_text(s, (size_t)(dash - s)) ||
                            !is_port_text(dash + 1, n - (size_t)(dash - s) - 1) ||
                            json_array_append_new(ret, json_stringn(s, n)) < 0)
                                return -EINVAL;
                }
                s += n;
                if (*s == ',' && *++s == '\0')
                        return -EINVAL; /* a trailing comma */
        }
        return json_array_size(ret) > 0 ? 0 : -EINVAL;
}

/* One rule text into a new JSON rule object; NULL if it is malformed. */
static json_t *parse_rule(const char *text)
{
        static const char *const protos[] = { "tcp", "udp", "any" };
        char buf[RULE_MAX + 1], *cidr, *ports = NULL;
        const char *proto = NULL;
        size_t n = strnlen(text, RULE_MAX + 1);

        if (n == 0 || n > RULE_MAX)
                return NULL;
        memcpy(buf, text, n + 1);
        for (size_t i = 0; i < ARRAY_SIZE(protos); i++) {
                if (n >= 4 && buf[n - 4] == '/' && strcmp(buf + n - 3, protos[i]) == 0) {
                        proto = protos[i];
                        buf[n -= 4] = '\0';
                        break;
                }
        }
        cidr = buf;
        if (buf[0] == '[') {
                char *close = strchr(buf, ']');
                if (!close || (close[1] != '\0' && close[1] != ':'))
                        return NULL;
                *close = '\0';
                cidr = buf + 1;
                if (close[1] == ':')
                        ports = close + 2;
                if (!strchr(cidr, ':'))
                        return NULL; /* brackets are for IPv6 */
        } else {
                char *colon = strchr(buf, ':');
                if (colon) {
                        *colon = '\0';
                        ports = colon + 1;
                        if (strchr(ports, ':'))
                                return NULL; /* an IPv6 network without brackets */
                }
        }
        if (!cidr[0] && !ports && !proto)
                return NULL; /* nothing at all */
        json_t *rule = json_object(), *pj = NULL;
        if (!rule)
                return NULL;
        if (cidr[0] && json_object_set_new(rule, "cidr", json_string(cidr)) < 0)
                goto fail;
        if (ports) {
                pj = json_array();
                if (!pj || parse_ports(ports, pj) < 0) {
                        json_decref(pj);
                        goto fail;
                }
                if (json_object_set_new(rule, "ports", pj) < 0) /* takes pj even then */
                        goto fail;
        }
        if (proto && json_object_set_new(rule, "protocol", json_string(proto)) < 0)
                goto fail;
        return rule;
fail:
        json_decref(rule);
        return NULL;
}

int cli_netpol_add(struct cli *c, struct cli_netpol *np, bool deny, const char *text)
{
        const char *opt = deny ? "--deny" : "--allow";
        json_t **list = &np->lists[deny];
        bool *none = &np->none[deny];

        if (!*list && !(*list = json_array())) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (strcmp(text, "none") == 0) {
                if (json_array_size(*list) > 0)
                        return cli_usage(c, "%s none cannot be combined with %s rules", opt,
                                         opt);
                *none = true;
                return CLI_CONTINUE;
        }
        if (*none)
                return cli_usage(c, "%s none cannot be combined with %s rules", opt, opt);
        json_t *rule = parse_rule(text);
        if (!rule)
                return cli_usage(c,
                                 "%s: expected CIDR[:PORTS][/tcp|/udp] (like "
                                 "203.0.113.0/24:443,8000-8080/tcp, :53, [2001:db8::/32]), "
                                 "got '%.300s'",
                                 opt, text);
        if (json_array_append_new(*list, rule) < 0) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        return CLI_CONTINUE;
}

bool cli_netpol_given(const struct cli_netpol *np)
{
        return np->lists[0] || np->lists[1];
}

int cli_netpol_set(const struct cli_netpol *np, json_t *policy)
{
        static const char *const names[] = { "allow", "deny" };

        for (int i = 0; i < 2; i++)
                if (np->lists[i] && json_object_set(policy, names[i], np->lists[i]) < 0)
                        return -ENOMEM;
        return 0;
}

/* Print one API rule in the CLI's syntax (so that it can be given back to --allow). */
static void print_rule(const char *name, const json_t *rule)
{
        const char *cidr = json_string_value(json_object_get(rule, "cidr"));
        const char *proto = json_string_value(json_object_get(rule, "protocol"));
        const json_t *ports = json_object_get(rule, "ports");
        const json_t *p;
        size_t i;

        printf("%s: ", name);
        if (cidr && strchr(cidr, ':')) {
                fputc('[', stdout);
                cli_print_safe(stdout, cidr);
                fputc(']', stdout);
        } else {
                cli_print_safe(stdout, cidr ? cidr : "0.0.0.0/0");
        }
        json_array_foreach(ports, i, p) {
                fputc(i ? ',' : ':', stdout);
                if (json_is_integer(p))
                        printf("%lld", (long long)json_integer_value(p));
                else
                        cli_print_safe(stdout, json_is_string(p) ? json_string_value(p) : "?");
        }
        if (proto && strcmp(proto, "any") != 0) {
                fputc('/', stdout);
                cli_print_safe(stdout, proto);
        }
        fputc('\n', stdout);
}

/* Print GET .../network's answer: sandbox, network, address, then one line per rule. */
static void print_network(const json_t *o)
{
        static const char *const names[] = { "allow", "deny" };
        const char *v;

        if ((v = json_string_value(json_object_get(o, "sandbox_id")))) {
                fputs("sandbox_id: ", stdout);
                cli_print_safe(stdout, v);
                fputc('\n', stdout);
        }
        v = json_string_value(json_object_get(o, "network"));
        fputs("network: ", stdout);
        cli_print_safe(stdout, v ? v : "none");
        fputc('\n', stdout);
        if ((v = json_string_value(json_object_get(o, "network_address")))) {
                fputs("address: ", stdout);
                cli_print_safe(stdout, v);
                fputc('\n', stdout);
        }
        const json_t *policy = json_object_get(o, "network_policy");
        if (!policy)
                return;
        for (int k = 0; k < 2; k++) {
                const json_t *list = json_object_get(policy, names[k]), *rule;
                size_t i;
                if (json_array_size(list) == 0)
                        printf("%s: none\n", names[k]);
                json_array_foreach(list, i, rule)
                        print_rule(names[k], rule);
        }
}

int verb_network(struct cli *c, int argc, char **argv)
{
        enum { OPT_ALLOW = OPT_VERB_FIRST, OPT_DENY, OPT_RESET };
        static const struct option opts[] = {
                { "allow", required_argument, NULL, OPT_ALLOW },
                { "deny", required_argument, NULL, OPT_DENY },
                { "reset", no_argument, NULL, OPT_RESET },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        struct cli_netpol np = {};
        struct cli_answer a = {};
        cleanup_free char *path = NULL;
        json_t *body = NULL;
        bool reset = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (opt) {
                case OPT_ALLOW:
                case OPT_DENY:
                        r = cli_netpol_add(c, &np, opt == OPT_DENY, optarg);
                        break;
                case OPT_RESET:
                        reset = true;
                        r = CLI_CONTINUE;
                        break;
                default:
                        r = cli_common_option(c, opt, optarg);
                }
                if (r != CLI_CONTINUE)
                        goto out;
        }
        if (argc - optind != 1) {
                r = cli_usage(c, "expected one sandbox ID");
                goto out;
        }
        if (reset && cli_netpol_given(&np)) {
                r = cli_usage(c, "--reset cannot be combined with --allow or --deny");
                goto out;
        }
        if (reset)
                body = json_pack("{s:n, s:n}", "allow", "deny");
        else if (cli_netpol_given(&np))
                body = json_object();
        if ((reset || cli_netpol_given(&np)) && (!body || cli_netpol_set(&np, body) < 0)) {
                fputs("warren: out of memory\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        r = cli_ready(c, true);
        if (r)
                goto out;
        path = cli_sandbox_path(c, argv[optind], "/network");
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        if (cli_call(c, body ? "PATCH" : "GET", path, body, &a) < 0) {
                r = cli_fail(c);
                goto out;
        }
        if (c->json)
                cli_print_raw(&a);
        else
                print_network(a.json);
        r = CLI_EXIT_OK;
out:
        cli_answer_done(&a);
        json_decref(body);
        cli_netpol_done(&np);
        return r;
}
