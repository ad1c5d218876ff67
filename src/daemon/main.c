/* main.c - warrend: read the config, open the store, prepare the runtime and the base
 * template, re-adopt running sandboxes, then serve HTTP on TCP and a unix socket.
 *
 * Startup blocks (template build, cgroup setup) before the loop runs; after that the loop
 * thread never blocks on sandbox work. SIGTERM/SIGINT stop serving and leave sandboxes
 * running: a restarted daemon adopts them again.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "auth.h"
#include "jobs.h"
#include "identity.h"
#include "manager.h"
#include "quota.h"
#include "netpolicy.h"
#include "netwatch.h"
#include "runtime.h"
#include "secrets.h"
#include "util.h"

static struct app app;
static uv_signal_t sig_term, sig_int;

static void on_signal(uv_signal_t *h, int signum)
{
        app_log("warrend: signal %d, shutting down (sandboxes keep running)", signum);
        uv_signal_stop(&sig_term);
        uv_signal_stop(&sig_int);
        http_server_close(app.http);
        mgr_shutdown(app.mgr);
        netwatch_stop();
        jobs_shutdown(&app);
        uv_stop(app.loop);
}

/* Create the admin organisation and key on first start and write the key to
 * DATA_DIR/admin.key (0600). The key is printed once, on stderr. */
static int bootstrap(struct app *a)
{
        int64_t orgs;
        char org_id[STORE_ID_MAX], key[160], path[4200];
        int r = store_org_count(a->store, &orgs);
        if (r < 0)
                return r;
        if (orgs > 0)
                return 0;
        r = auth_org_create_system(a->store, "admin",
                                   a->cfg.admin_key[0] ? a->cfg.admin_key : NULL, org_id,
                                   sizeof(org_id), key, sizeof(key));
        if (r < 0) {
                fprintf(stderr, "warrend: cannot create the admin organisation: %s%s\n",
                        strerror(-r),
                        r == -EINVAL ? " (WARREN_ADMIN_KEY must be 16-128 printable characters, "
                                       "not starting with \"wst_\" or shaped like a JWT)"
                                     : "");
                return r;
        }
        snprintf(path, sizeof(path), "%s/admin.key", a->cfg.data_dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || util_write_all(fd, key, strlen(key)) < 0 || util_write_all(fd, "\n", 1) < 0) {
                r = neg_errno();
                if (fd >= 0)
                        close(fd);
                fprintf(stderr, "warrend: cannot write %s: %s\n", path, strerror(-r));
                return r;
        }
        fchmod(fd, 0600);
        close(fd);
        fprintf(stderr,
                "warrend: created the admin organisation %s\n"
                "warrend: admin API key (shown once; also in %s, mode 0600):\n\n    %s\n\n",
                org_id, path, key);
        return 0;
}

/* `warrend org-create NAME`: a new organisation with an admin key, printed as JSON. */
static int cmd_org_create(struct app *a, const char *name)
{
        char org_id[STORE_ID_MAX], key[160];
        int r = auth_org_create(a->store, name, NULL, org_id, sizeof(org_id), key, sizeof(key));
        if (r < 0) {
                fprintf(stderr, "warrend: org-create: %s\n", strerror(-r));
                return 1;
        }
        printf("{\"org_id\":\"%s\",\"api_key\":\"%s\"}\n", org_id, key);
        return 0;
}

int main(int argc, char **argv)
{
        char err[RT_ERR_LEN] = "";
        char path[4200];
        int argi, r;

        signal(SIGPIPE, SIG_IGN);
        r = config_load(&app.cfg, argc, argv, &argi);
        if (r != 0)
                return r > 0 ? 0 : 2;
        if (geteuid() != 0) {
                fprintf(stderr, "warrend: must run as root (it creates namespaces, cgroups and "
                                "mounts for sandboxes)\n");
                return 1;
        }
        umask(022);
        r = util_mkdir_p(app.cfg.data_dir, 0711);
        if (r < 0) {
                fprintf(stderr, "warrend: cannot create %s: %s\n", app.cfg.data_dir, strerror(-r));
                return 1;
        }
        chmod(app.cfg.data_dir, 0711);
        snprintf(path, sizeof(path), "%s/warren.db", app.cfg.data_dir);
        r = store_open(path, &app.store);
        if (r < 0) {
                fprintf(stderr, "warrend: cannot open the store %s: %s\n", path, strerror(-r));
                return 1;
        }
        if (argi < argc) {
                if (strcmp(argv[argi], "org-create") == 0 && argi + 1 < argc) {
                        r = cmd_org_create(&app, argv[argi + 1]);
                        store_close(app.store);
                        return r;
                }
                fprintf(stderr, "warrend: unknown command \"%s\" (see --help)\n", argv[argi]);
                store_close(app.store);
                return 2;
        }
        if (bootstrap(&app) < 0)
                return 1;
        r = identity_init(&app, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "warrend: JWT secret: %s\n", err);
                return 1;
        }
        /* The warm pool's sandboxes belong to an organisation without keys until handed out. */
        r = store_org_create(app.store, MGR_POOL_ORG, "warm pool");
        if (r < 0 && r != -EEXIST) {
                fprintf(stderr, "warrend: cannot create the pool organisation: %s\n",
                        strerror(-r));
                return 1;
        }
        /* Before any thread exists: loading the key may unset WARREN_MASTER_KEY. */
        r = secrets_open(app.cfg.data_dir, &app.secrets, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "warrend: master key: %s\n", err);
                return 1;
        }
        secrets_check_key(&app);
        r = quota_init(&app);
        if (r < 0) {
                fprintf(stderr, "warrend: rate limiter: %s\n", strerror(-r));
                return 1;
        }
        /* Runtime work (creates, pool refills, teardowns) and file I/O share the libuv
         * threadpool: give it room so background work does not starve requests. */
        if (!getenv("UV_THREADPOOL_SIZE"))
                setenv("UV_THREADPOOL_SIZE", "16", 1);

        struct rt_config rtc = {
                .data_dir = app.cfg.data_dir,
                .run_dir = app.cfg.run_dir,
                .init_path = app.cfg.init_path,
                .cgroup_mode = !strcmp(app.cfg.cgroup, "v1")   ? RT_CGROUP_V1
                               : !strcmp(app.cfg.cgroup, "v2") ? RT_CGROUP_V2
                                                               : RT_CGROUP_AUTO,
        };
        if (access(app.cfg.init_path, X_OK) < 0) {
                fprintf(stderr, "warrend: warren-init not found at %s (use --init)\n",
                        app.cfg.init_path);
                return 1;
        }
        r = rt_init(&rtc, err);
        if (r < 0) {
                fprintf(stderr, "warrend: runtime setup failed: %s (%s)\n", err, strerror(-r));
                return 1;
        }
        /* The uplink settings are checked now; nothing is made on the host until a sandbox
         * asks for egress. They are set even with NETWORK_EGRESS=false, so that sandboxes
         * made before keep their rules until they stop. */
        struct rt_net_config ncfg;
        char nerr[NETPOLICY_ERR_LEN];
        if (netpolicy_config(&app.cfg, "/etc/resolv.conf", &ncfg, nerr, sizeof(nerr)) < 0 ||
            rt_net_configure(&ncfg) < 0) {
                fprintf(stderr, "warrend: %s\n", nerr);
                return 1;
        }
        uint64_t t0 = util_now_ns();
        r = rt_template_ensure_base(err);
        if (r < 0) {
                fprintf(stderr, "warrend: building the base template failed: %s (%s)\n", err,
                        strerror(-r));
                return 1;
        }
        app_log("warrend: cgroup %s, base template ready (%.1f ms)", rt_cgroup_mode_name(),
                util_ms_since(t0));

        app.loop = uv_default_loop();
        struct http_limits lim = {
                .max_body = app.cfg.max_body,
                .max_connections = app.cfg.max_connections,
        };
        r = http_server_new(app.loop, &lim, routes_on_headers, routes_on_request, &app, &app.http);
        if (r < 0) {
                fprintf(stderr, "warrend: http: %s\n", strerror(-r));
                return 1;
        }
        r = jobs_init(&app);
        if (r < 0)
                return 1;
        r = mgr_new(&app, &app.mgr);
        if (r < 0)
                return 1;
        r = mgr_adopt(app.mgr);
        if (r < 0)
                fprintf(stderr, "warrend: adopting sandboxes: %s\n", strerror(-r));
        (void)netwatch_start(&app); /* logs why not */

        r = http_server_listen_tcp(app.http, app.cfg.listen, &app.port);
        if (r < 0) {
                fprintf(stderr, "warrend: cannot listen on %s: %s\n", app.cfg.listen,
                        strerror(-r));
                return 1;
        }
        snprintf(path, sizeof(path), "%s/warren.sock", app.cfg.data_dir);
        r = http_server_listen_unix(app.http, path);
        if (r < 0)
                fprintf(stderr, "warrend: cannot listen on %s: %s\n", path, strerror(-r));
        if (app.cfg.port_file[0]) {
                char buf[32];
                snprintf(buf, sizeof(buf), "%d\n", app.port);
                int fd = open(app.cfg.port_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0 || util_write_all(fd, buf, strlen(buf)) < 0)
                        fprintf(stderr, "warrend: cannot write %s\n", app.cfg.port_file);
                if (fd >= 0)
                        close(fd);
        }
        char host[128];
        snprintf(host, sizeof(host), "%s", app.cfg.listen);
        char *colon = strrchr(host, ':');
        if (colon)
                *colon = '\0';
        fprintf(stderr, "warrend: listening on http://%s:%d and %s\n", host, app.port, path);

        uv_signal_init(app.loop, &sig_term);
        uv_signal_init(app.loop, &sig_int);
        uv_signal_start(&sig_term, on_signal, SIGTERM);
        uv_signal_start(&sig_int, on_signal, SIGINT);
        uv_run(app.loop, UV_RUN_DEFAULT);
        store_close(app.store);
        return 0;
}
