/* config.h - warrend configuration: flags, then environment variables, then defaults. */
#ifndef WARREN_CONFIG_H
#define WARREN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config {
        char listen[128];       /* ADDR:PORT; --listen, WARREN_LISTEN */
        char data_dir[4096];    /* --data-dir, WARREN_DATA_DIR */
        char run_dir[4096];     /* --run-dir, WARREN_RUN_DIR; default DATA_DIR/run */
        char init_path[4096];   /* --init, WARREN_INIT; default: warren-init next to warrend */
        char port_file[4096];   /* --port-file: write the bound TCP port there (tests) */
        char cgroup[8];         /* --cgroup auto|v1|v2, WARREN_CGROUP */
        uint64_t default_cpu_millis;   /* DEFAULT_CPUS ("2") */
        uint64_t default_memory;       /* DEFAULT_MEMORY ("2Gi") */
        uint64_t default_disk;         /* DEFAULT_DISK ("10Gi") */
        int64_t default_timeout_s;     /* DEFAULT_TIMEOUT (600) */
        int64_t min_timeout_s;         /* WARREN_MIN_TIMEOUT (60; tests lower it) */
        int64_t max_timeout_s;         /* MAX_TIMEOUT (86400) */
        int64_t max_sandboxes_per_org; /* MAX_SANDBOXES_PER_ORG (5) */
        uint64_t max_org_cpu_millis;   /* MAX_ORG_CPUS ("16"; 0 = no limit) */
        uint64_t max_org_memory;       /* MAX_ORG_MEMORY ("32Gi"; 0 = no limit) */
        int64_t rate_limit_rps;        /* RATE_LIMIT_RPS (50; 0 = off) */
        int64_t rate_limit_burst;      /* RATE_LIMIT_BURST (100) */
        uint64_t max_cpu_millis;       /* MAX_CPUS ("64") */
        uint64_t max_memory;           /* MAX_MEMORY ("256Gi") */
        uint64_t max_disk;             /* MAX_DISK ("1Ti") */
        uint64_t pids_limit;           /* PIDS_LIMIT (1024) */
        uint64_t nofile_limit;         /* NOFILE_LIMIT (4096) */
        int64_t default_exec_timeout_ms; /* DEFAULT_EXEC_TIMEOUT (300000) */
        uint64_t max_exec_output;      /* MAX_EXEC_OUTPUT (1Mi) per stream */
        uint64_t max_body;             /* MAX_BODY (64Mi): largest JSON request body */
        uint64_t max_read_bytes;       /* MAX_READ_BYTES (64Mi): largest file for GET files */
        uint64_t max_upload;           /* MAX_UPLOAD (16Gi): largest streamed upload */
        int64_t retention_s;           /* RETENTION_SECONDS (86400): stopped -> removed */
        size_t max_connections;        /* MAX_CONNECTIONS (10000) */
        int64_t warm_pool_enabled;     /* WARM_POOL_ENABLED (false) */
        int64_t warm_pool_size;        /* WARM_POOL_SIZE (5): ready sandboxes per size class */
        uint64_t warm_pool_max_idle_memory; /* WARM_POOL_MAX_IDLE_MEMORY (1Gi) */
        int64_t teardown_concurrency;  /* TEARDOWN_CONCURRENCY (2) */
        int64_t disk_pool_size;        /* DISK_POOL_SIZE (4): blank disks kept per size */
        uint64_t job_ring_bytes;       /* JOB_RING_BYTES (1Mi): in-memory output per job */
        uint64_t job_log_max;          /* JOB_LOG_MAX (16Mi): on-disk output per job */
        int64_t max_jobs_per_sandbox;  /* MAX_JOBS_PER_SANDBOX (64) running */
        int64_t max_ptys_per_sandbox;  /* MAX_PTYS_PER_SANDBOX (16) running */
        int64_t max_attach_per_job;    /* MAX_ATTACH_PER_JOB (8) */
        int64_t job_history;           /* JOB_HISTORY (500) records per sandbox */
        char admin_key[128];           /* WARREN_ADMIN_KEY: bootstrap key instead of a random one */
        char registration[16];         /* REGISTRATION: open, admin-only (default) or closed */
        char jwt_secret[257];          /* JWT_SECRET (32-256 bytes); "" = DATA_DIR/jwt.key */
        int64_t jwt_ttl_s;             /* JWT_TTL (3600): longest JWT lifetime, seconds */
        int64_t network_egress;        /* NETWORK_EGRESS (true): `network: egress` is offered */
        char network_subnet[32];       /* NETWORK_SUBNET (10.88.0.0/16): sandbox addresses */
        char network_bridge[16];       /* NETWORK_BRIDGE (warren0): the host bridge */
        char network_dns[128];         /* NETWORK_DNS (host): host, none or IPv4 list */
        int64_t network_max_conns;     /* NETWORK_MAX_CONNS (512): open connections per
                                        * egress sandbox (0 = no limit) */
        int64_t network_conn_rate;     /* NETWORK_CONN_RATE (100): new connections a second
                                        * per egress sandbox (0 = no limit) */
};

/* Fill cfg from argv and the environment. Returns 0, 1 if --help/--version was printed (exit
 * 0), or -EINVAL after printing the problem to stderr. *ret_argi gets the index of the
 * first non-option argument (a subcommand such as "org-create"), or argc. */
int config_load(struct config *cfg, int argc, char **argv, int *ret_argi);

/* Print --help. */
void config_usage(FILE *f);

#endif
