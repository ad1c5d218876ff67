/* config.c - flags, then environment, then defaults. Every knob is listed in --help. */
#include <stdio.h>

#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quantity.h"

#define WARREN_VERSION "0.1.0"

enum kind { K_BYTES, K_CPUS, K_INT, K_BOOL };

/* Environment variables holding numbers or quantities, with their defaults. */
static const struct knob {
        const char *env;
        enum kind kind;
        const char *def;
        size_t offset;
        const char *help;
} knobs[] = {
        { "DEFAULT_CPUS", K_CPUS, "2", offsetof(struct config, default_cpu_millis),
          "CPU limit of a sandbox when the request names none" },
        { "DEFAULT_MEMORY", K_BYTES, "2Gi", offsetof(struct config, default_memory),
          "memory limit when the request names none" },
        { "DEFAULT_DISK", K_BYTES, "10Gi", offsetof(struct config, default_disk),
          "disk size (upper layer + /workspace) when the request names none" },
        { "DEFAULT_TIMEOUT", K_INT, "600", offsetof(struct config, default_timeout_s),
          "sandbox lifetime in seconds when the request names none" },
        { "WARREN_MIN_TIMEOUT", K_INT, "60", offsetof(struct config, min_timeout_s),
          "smallest timeout_seconds accepted (tests lower it)" },
        { "MAX_TIMEOUT", K_INT, "86400", offsetof(struct config, max_timeout_s),
          "largest timeout_seconds accepted" },
        { "MAX_SANDBOXES_PER_ORG", K_INT, "5", offsetof(struct config, max_sandboxes_per_org),
          "sandboxes an organisation may have that are not stopped" },
        { "MAX_ORG_CPUS", K_CPUS, "16", offsetof(struct config, max_org_cpu_millis),
          "total cpus of an organisation's sandboxes that are not stopped (0: no limit)" },
        { "MAX_ORG_MEMORY", K_BYTES, "32Gi", offsetof(struct config, max_org_memory),
          "total memory of an organisation's sandboxes that are not stopped (0: no limit)" },
        { "RATE_LIMIT_RPS", K_INT, "50", offsetof(struct config, rate_limit_rps),
          "API requests per second per organisation, sustained (0: no rate limit)" },
        { "RATE_LIMIT_BURST", K_INT, "100", offsetof(struct config, rate_limit_burst),
          "API requests an organisation may make at once (its token bucket's size)" },
        { "MAX_CPUS", K_CPUS, "64", offsetof(struct config, max_cpu_millis),
          "largest cpus a request may ask for" },
        { "MAX_MEMORY", K_BYTES, "256Gi", offsetof(struct config, max_memory),
          "largest memory a request may ask for" },
        { "MAX_DISK", K_BYTES, "1Ti", offsetof(struct config, max_disk),
          "largest disk a request may ask for" },
        { "PIDS_LIMIT", K_INT, "1024", offsetof(struct config, pids_limit),
          "tasks per sandbox (pids cgroup)" },
        { "NOFILE_LIMIT", K_INT, "4096", offsetof(struct config, nofile_limit),
          "open files per process in a sandbox (RLIMIT_NOFILE)" },
        { "DEFAULT_EXEC_TIMEOUT", K_INT, "300000", offsetof(struct config, default_exec_timeout_ms),
          "command timeout in ms when the request names none" },
        { "MAX_EXEC_OUTPUT", K_BYTES, "1Mi", offsetof(struct config, max_exec_output),
          "stdout and stderr kept per command (each); the rest is dropped, truncated=true" },
        { "MAX_BODY", K_BYTES, "64Mi", offsetof(struct config, max_body),
          "largest JSON request body" },
        { "MAX_READ_BYTES", K_BYTES, "64Mi", offsetof(struct config, max_read_bytes),
          "largest file returned base64 by GET files (use files/download beyond)" },
        { "MAX_UPLOAD", K_BYTES, "16Gi", offsetof(struct config, max_upload),
          "largest streamed upload" },
        { "RETENTION_SECONDS", K_INT, "86400", offsetof(struct config, retention_s),
          "how long a stopped sandbox's files are kept before removal" },
        { "MAX_CONNECTIONS", K_INT, "10000", offsetof(struct config, max_connections),
          "open client connections" },
        { "WARM_POOL_ENABLED", K_BOOL, "false", offsetof(struct config, warm_pool_enabled),
          "keep ready sandboxes to hand out on create (true/false)" },
        { "WARM_POOL_SIZE", K_INT, "5", offsetof(struct config, warm_pool_size),
          "ready sandboxes per size class (template, cpus, memory, disk, network)" },
        { "WARM_POOL_MAX_IDLE_MEMORY", K_BYTES, "1Gi",
          offsetof(struct config, warm_pool_max_idle_memory),
          "memory the idle pool may use (its cgroups' usage); refills stop above it" },
        { "TEARDOWN_CONCURRENCY", K_INT, "2", offsetof(struct config, teardown_concurrency),
          "sandbox teardowns (stop, delete) run in the background at once" },
        { "DISK_POOL_SIZE", K_INT, "4", offsetof(struct config, disk_pool_size),
          "blank disk images made ahead per disk size in use (0: make each on create)" },
        { "JOB_RING_BYTES", K_BYTES, "1Mi", offsetof(struct config, job_ring_bytes),
          "latest output of each running background job kept in memory" },
        { "JOB_LOG_MAX", K_BYTES, "16Mi", offsetof(struct config, job_log_max),
          "latest output of each background job kept on disk (replayable)" },
        { "MAX_JOBS_PER_SANDBOX", K_INT, "64", offsetof(struct config, max_jobs_per_sandbox),
          "background jobs (incl. terminals) running at once in one sandbox" },
        { "MAX_PTYS_PER_SANDBOX", K_INT, "16", offsetof(struct config, max_ptys_per_sandbox),
          "terminals (PTY jobs) running at once in one sandbox" },
        { "MAX_ATTACH_PER_JOB", K_INT, "8", offsetof(struct config, max_attach_per_job),
          "WebSocket attachments to one job at once" },
        { "JOB_HISTORY", K_INT, "500", offsetof(struct config, job_history),
          "job records (with their logs) kept per sandbox; the oldest ended go first" },
        { "JWT_TTL", K_INT, "3600", offsetof(struct config, jwt_ttl_s),
          "longest lifetime in seconds of a JWT from POST /api/v1/auth/token (60-86400)" },
        { "NETWORK_EGRESS", K_BOOL, "true", offsetof(struct config, network_egress),
          "offer network: egress (a NATed uplink; see docs/security.md)" },
        { "NETWORK_MAX_CONNS", K_INT, "512", offsetof(struct config, network_max_conns),
          "open connections an egress sandbox may have in the host's conntrack table;\n"
          "                       more are refused (0: no limit)" },
        { "NETWORK_CONN_RATE", K_INT, "100", offsetof(struct config, network_conn_rate),
          "new connections per second an egress sandbox may open, in bursts of up to\n"
          "                       twice as many; more are refused (0: no limit)" },
};

void config_usage(FILE *f)
{
        fprintf(f,
                "Usage: warrend [OPTIONS] [COMMAND]\n"
                "\n"
                "Warren sandbox server: REST API and WebSockets on one port, state in SQLite.\n"
                "\n"
                "Options (each also read from the environment variable in brackets):\n"
                "  --listen ADDR:PORT   TCP address to serve [WARREN_LISTEN] (127.0.0.1:8080)\n"
                "  --data-dir DIR       state, templates, sandbox disks [WARREN_DATA_DIR]\n"
                "                       (/var/lib/warren); also serves DIR/warren.sock\n"
                "  --run-dir DIR        control sockets [WARREN_RUN_DIR] (DATA_DIR/run)\n"
                "  --init PATH          warren-init binary [WARREN_INIT] (next to warrend)\n"
                "  --cgroup MODE        auto, v1 or v2 [WARREN_CGROUP] (auto)\n"
                "  --port-file FILE     write the bound TCP port to FILE (with port 0)\n"
                "  -h, --help           this text\n"
                "  --version            print the version\n"
                "\n"
                "Commands:\n"
                "  (none)               run the server\n"
                "  org-create NAME      create an organisation and an admin key for it, print\n"
                "                       {\"org_id\",\"api_key\"} as JSON and exit\n"
                "\n"
                "Environment:\n"
                "  WARREN_ADMIN_KEY     on first start, use this admin key instead of a random\n"
                "                       one (it is still written to DATA_DIR/admin.key)\n"
                "  WARREN_MASTER_KEY    key sealing secrets: 64 hex digits or base64 of 32\n"
                "                       bytes (wiped from the environment once read)\n"
                "  WARREN_MASTER_KEY_FILE  else this file (DATA_DIR/master.key, mode 0600,\n"
                "                       made with a random key when missing)\n"
                "  REGISTRATION         POST /api/v1/register: open, admin-only (needs an admin\n"
                "                       key of the operator's organisation) or closed\n"
                "                       (admin-only)\n"
                "  JWT_SECRET           HS256 secret for JWTs, 32-256 bytes (default: a random\n"
                "                       one kept in DATA_DIR/jwt.key, mode 0600)\n"
                "  NETWORK_SUBNET       IPv4 subnet of egress sandboxes (10.88.0.0/16)\n"
                "  NETWORK_BRIDGE       host bridge of egress sandboxes (warren0)\n"
                "  NETWORK_DNS          their resolvers: host (the host's resolv.conf), none,\n"
                "                       or up to 3 IPv4 addresses, comma-separated (host)\n");
        for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
                fprintf(f, "  %-21s%s (%s)\n", knobs[i].env, knobs[i].help, knobs[i].def);
}

/* Parse one knob's text into its field. */
static int knob_set(struct config *cfg, const struct knob *k, const char *text)
{
        void *field = (char *)cfg + k->offset;
        uint64_t u;
        int r;

        switch (k->kind) {
        case K_BYTES:
                r = qty_parse_bytes(text, &u);
                if (r < 0)
                        return r;
                *(uint64_t *)field = u;
                return 0;
        case K_CPUS:
                r = qty_parse_cpus(text, &u);
                if (r < 0)
                        return r;
                *(uint64_t *)field = u;
                return 0;
        case K_BOOL:
                if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes"))
                        *(int64_t *)field = 1;
                else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no"))
                        *(int64_t *)field = 0;
                else
                        return -EINVAL;
                return 0;
        case K_INT: {
                char *end;
                errno = 0;
                long long v = strtoll(text, &end, 10);
                if (errno || end == text || *end || v < 0)
                        return -EINVAL;
                /* int64_t, uint64_t and size_t fields are all 8 bytes here. */
                *(int64_t *)field = v;
                return 0;
        }
        }
        return -EINVAL;
}

/* Copy src into a fixed buffer, failing if it does not fit. */
static int set_str(char *dst, size_t len, const char *src, const char *what)
{
        if (strlen(src) >= len) {
                fprintf(stderr, "warrend: %s is too long\n", what);
                return -EINVAL;
        }
        strcpy(dst, src);
        return 0;
}

int config_load(struct config *cfg, int argc, char **argv, int *ret_argi)
{
        static const struct option opts[] = {
                { "listen", required_argument, NULL, 'l' },
                { "data-dir", required_argument, NULL, 'd' },
                { "run-dir", required_argument, NULL, 'r' },
                { "init", required_argument, NULL, 'i' },
                { "cgroup", required_argument, NULL, 'c' },
                { "port-file", required_argument, NULL, 'p' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        const char *v;
        int c, r;

        memset(cfg, 0, sizeof(*cfg));
        for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
                v = getenv(knobs[i].env);
                r = knob_set(cfg, &knobs[i], knobs[i].def);
                if (r == 0 && v && *v)
                        r = knob_set(cfg, &knobs[i], v);
                if (r < 0) {
                        fprintf(stderr, "warrend: invalid value for %s: \"%s\"\n", knobs[i].env,
                                v ? v : knobs[i].def);
                        return -EINVAL;
                }
        }
        strcpy(cfg->listen, (v = getenv("WARREN_LISTEN")) && *v ? v : "127.0.0.1:8080");
        if (set_str(cfg->data_dir, sizeof(cfg->data_dir),
                    (v = getenv("WARREN_DATA_DIR")) && *v ? v : "/var/lib/warren", "data dir") < 0)
                return -EINVAL;
        if ((v = getenv("WARREN_RUN_DIR")) && *v &&
            set_str(cfg->run_dir, sizeof(cfg->run_dir), v, "run dir") < 0)
                return -EINVAL;
        if ((v = getenv("WARREN_INIT")) && *v &&
            set_str(cfg->init_path, sizeof(cfg->init_path), v, "init path") < 0)
                return -EINVAL;
        strcpy(cfg->cgroup, (v = getenv("WARREN_CGROUP")) && *v && strlen(v) < 8 ? v : "auto");
        if ((v = getenv("WARREN_ADMIN_KEY")) && *v &&
            set_str(cfg->admin_key, sizeof(cfg->admin_key), v, "WARREN_ADMIN_KEY") < 0)
                return -EINVAL;
        v = getenv("REGISTRATION");
        if (!v || !*v)
                v = "admin-only";
        if (strcmp(v, "open") && strcmp(v, "admin-only") && strcmp(v, "closed")) {
                fprintf(stderr, "warrend: REGISTRATION must be open, admin-only or closed\n");
                return -EINVAL;
        }
        strcpy(cfg->registration, v);
        if ((v = getenv("JWT_SECRET")) && *v &&
            (strlen(v) < 32 || set_str(cfg->jwt_secret, sizeof(cfg->jwt_secret), v,
                                       "JWT_SECRET") < 0)) {
                fprintf(stderr, "warrend: JWT_SECRET must be 32-256 bytes\n");
                return -EINVAL;
        }
        if (cfg->jwt_ttl_s < 60 || cfg->jwt_ttl_s > 86400) {
                fprintf(stderr, "warrend: JWT_TTL must be 60-86400 seconds\n");
                return -EINVAL;
        }
        if (set_str(cfg->network_subnet, sizeof(cfg->network_subnet),
                    (v = getenv("NETWORK_SUBNET")) && *v ? v : "10.88.0.0/16",
                    "NETWORK_SUBNET") < 0 ||
            set_str(cfg->network_bridge, sizeof(cfg->network_bridge),
                    (v = getenv("NETWORK_BRIDGE")) && *v ? v : "warren0", "NETWORK_BRIDGE") < 0 ||
            set_str(cfg->network_dns, sizeof(cfg->network_dns),
                    (v = getenv("NETWORK_DNS")) && *v ? v : "host", "NETWORK_DNS") < 0)
                return -EINVAL;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (c) {
                case 'l':
                        r = set_str(cfg->listen, sizeof(cfg->listen), optarg, "--listen");
                        break;
                case 'd':
                        r = set_str(cfg->data_dir, sizeof(cfg->data_dir), optarg, "--data-dir");
                        break;
                case 'r':
                        r = set_str(cfg->run_dir, sizeof(cfg->run_dir), optarg, "--run-dir");
                        break;
                case 'i':
                        r = set_str(cfg->init_path, sizeof(cfg->init_path), optarg, "--init");
                        break;
                case 'c':
                        r = set_str(cfg->cgroup, sizeof(cfg->cgroup), optarg, "--cgroup");
                        break;
                case 'p':
                        r = set_str(cfg->port_file, sizeof(cfg->port_file), optarg,
                                    "--port-file");
                        break;
                case 'h':
                        config_usage(stdout);
                        return 1;
                case 'V':
                        printf("warrend %s\n", WARREN_VERSION);
                        return 1;
                default:
                        config_usage(stderr);
                        return -EINVAL;
                }
                if (r < 0)
                        return r;
        }
        if (strcmp(cfg->cgroup, "auto") && strcmp(cfg->cgroup, "v1") && strcmp(cfg->cgroup, "v2")) {
                fprintf(stderr, "warrend: --cgroup must be auto, v1 or v2\n");
                return -EINVAL;
        }

        /* Paths must be absolute: the runtime hands them to processes with other cwds. */
        char abs[PATH_MAX];
        if (!realpath(cfg->data_dir, abs)) {
                if (cfg->data_dir[0] != '/') {
                        fprintf(stderr, "warrend: --data-dir must exist or be absolute\n");
                        return -EINVAL;
                }
        } else {
                strcpy(cfg->data_dir, abs);
        }
        if (!cfg->run_dir[0] &&
            snprintf(cfg->run_dir, sizeof(cfg->run_dir), "%s/run", cfg->data_dir) >=
                    (int)sizeof(cfg->run_dir))
                return -EINVAL;
        if (cfg->run_dir[0] != '/') {
                fprintf(stderr, "warrend: --run-dir must be absolute\n");
                return -EINVAL;
        }
        if (!cfg->init_path[0]) {
                /* Default: warren-init in the same directory as this binary. */
                ssize_t n = readlink("/proc/self/exe", abs, sizeof(abs) - 1);
                if (n <= 0)
                        return -EINVAL;
                abs[n] = '\0';
                char *slash = strrchr(abs, '/');
                *slash = '\0';
                if (strlen(abs) + sizeof("/warren-init") > sizeof(cfg->init_path))
                        return -ENAMETOOLONG;
                strcpy(cfg->init_path, abs);
                strcat(cfg->init_path, "/warren-init");
        }
        if (cfg->teardown_concurrency < 1 || cfg->teardown_concurrency > 64 ||
            cfg->warm_pool_size > 1000 || cfg->disk_pool_size > 1000) {
                fprintf(stderr, "warrend: TEARDOWN_CONCURRENCY must be 1-64, WARM_POOL_SIZE and "
                                "DISK_POOL_SIZE at most 1000\n");
                return -EINVAL;
        }
        if (cfg->job_ring_bytes < 4096 || cfg->job_ring_bytes > (1ull << 30) ||
            cfg->job_log_max < 4096 || cfg->job_log_max > (1ull << 40) ||
            cfg->max_jobs_per_sandbox < 1 || cfg->max_jobs_per_sandbox > 4000 ||
            cfg->max_ptys_per_sandbox < 0 || cfg->max_attach_per_job < 1 ||
            cfg->max_attach_per_job > 1000 || cfg->job_history < cfg->max_jobs_per_sandbox) {
                fprintf(stderr, "warrend: JOB_RING_BYTES must be 4Ki-1Gi, JOB_LOG_MAX 4Ki-1Ti, "
                                "MAX_JOBS_PER_SANDBOX 1-4000, MAX_ATTACH_PER_JOB 1-1000, "
                                "JOB_HISTORY at least MAX_JOBS_PER_SANDBOX\n");
                return -EINVAL;
        }
        if (cfg->rate_limit_rps > 1000000 || cfg->rate_limit_burst > 1000000 ||
            (cfg->rate_limit_rps > 0 && cfg->rate_limit_burst < 1)) {
                fprintf(stderr, "warrend: RATE_LIMIT_RPS must be 0-1000000 and RATE_LIMIT_BURST "
                                "1-1000000\n");
                return -EINVAL;
        }
        if (cfg->network_max_conns > 1000000 || cfg->network_conn_rate > 1000000) {
                fprintf(stderr, "warrend: NETWORK_MAX_CONNS and NETWORK_CONN_RATE must be "
                                "0-1000000\n");
                return -EINVAL;
        }
        if (cfg->min_timeout_s < 1 || cfg->min_timeout_s > cfg->max_timeout_s ||
            cfg->default_timeout_s < cfg->min_timeout_s ||
            cfg->default_timeout_s > cfg->max_timeout_s) {
                fprintf(stderr, "warrend: DEFAULT_TIMEOUT must lie within "
                                "[WARREN_MIN_TIMEOUT, MAX_TIMEOUT]\n");
                return -EINVAL;
        }
        *ret_argi = optind;
        return 0;
}
