/* files.c - file verbs: cp, cat, write (streamed through files/upload and files/download)
 * and ls-files, mkdir, rm-file, mv, stat (small JSON calls).
 *
 * Streaming: uploads read the local file in chunks with a Content-Length taken from
 * fstat() (stdin and other non-regular inputs are first spooled to an unlinked temporary
 * file, so the length is known without holding the data in memory); downloads are written
 * to a temporary file next to the destination and renamed over it only when the whole body
 * arrived with a 2xx status, so a failure never leaves a partial or error-filled file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

const char help_cp[] =
        "Usage: warren cp [--mode MODE] SRC DST\n"
        "\n"
        "Copy one file into or out of a sandbox. Exactly one side is ID:/path (a sandbox\n"
        "path); the other is a local path, or - for stdin / stdout.\n"
        "\n"
        "  warren cp ./data.csv $ID:/workspace/data.csv     upload\n"
        "  warren cp ./data.csv $ID:/workspace/             upload into a directory\n"
        "  warren cp $ID:/workspace/out.bin ./out.bin       download\n"
        "  warren cp $ID:/workspace/log.txt -               download to stdout\n"
        "  tar cz src | warren cp - $ID:/workspace/src.tgz  upload stdin\n"
        "\n"
        "Uploads create parent directories and replace the file only when all of it has\n"
        "arrived; the local file's permission bits are kept unless --mode (octal) is\n"
        "given.\n"
        "A download lands in a temporary file beside DST that is renamed over DST on\n"
        "success; on failure nothing is left behind. If DST is an existing directory, the\n"
        "file keeps its name inside it.\n"
        "\n"
        "Directories are not supported: copy a tar archive and unpack it with exec, e.g.\n"
        "  tar -C dir -cf - . | warren cp - $ID:/workspace/dir.tar\n"
        "  warren exec $ID -- tar -C /workspace -xf /workspace/dir.tar\n"
        "\n"
        "A local path that contains ':' before any '/' must be written ./name.\n";

const char help_cat[] =
        "Usage: warren cat ID PATH\n"
        "\n"
        "Write the raw bytes of a sandbox file to stdout (streamed, any size).\n"
        "\n"
        "Example:\n"
        "  warren cat $ID /workspace/result.json | jq .\n";

const char help_write[] =
        "Usage: warren write [--mode MODE] ID PATH\n"
        "\n"
        "Write stdin to a sandbox file (created with its parent directories, replaced\n"
        "when all of stdin has arrived). --mode sets the permission bits (octal, default\n"
        "0644).\n"
        "\n"
        "Example:\n"
        "  echo 'print(42)' | warren write $ID /workspace/main.py\n";

const char help_ls_files[] =
        "Usage: warren ls-files ID [PATH]\n"
        "\n"
        "List a sandbox directory (default /workspace): TYPE MODE SIZE MODIFIED NAME.\n"
        "Symlinks are listed, not followed.\n"
        "\n"
        "Example:\n"
        "  warren ls-files $ID /workspace\n";

const char help_mkdir[] =
        "Usage: warren mkdir ID PATH [PATH...]\n"
        "\n"
        "Create directories in a sandbox, with their parents; existing ones are fine.\n"
        "\n"
        "Example:\n"
        "  warren mkdir $ID /workspace/a/b\n";

const char help_rm_file[] =
        "Usage: warren rm-file [-r] ID PATH\n"
        "\n"
        "Remove a file or an empty directory in a sandbox; -r (--recursive) removes a\n"
        "directory and everything in it.\n"
        "\n"
        "Example:\n"
        "  warren rm-file -r $ID /workspace/build\n";

const char help_mv[] =
        "Usage: warren mv ID FROM TO\n"
        "\n"
        "Move or rename a file or directory inside a sandbox (an existing file at TO is\n"
        "replaced).\n"
        "\n"
        "Example:\n"
        "  warren mv $ID /workspace/a.txt /workspace/b.txt\n";

const char help_stat[] =
        "Usage: warren stat ID PATH\n"
        "\n"
        "Show a sandbox file's metadata as `key: value` lines (path, name, type, size,\n"
        "mode, modified, uid, gid). --json prints the answer.\n"
        "\n"
        "Example:\n"
        "  warren stat $ID /workspace/main.py\n";

/* The temporary download file, removed by the signal handler if we are interrupted. */
static char *volatile tmp_download;

/* SIGINT/SIGTERM/SIGHUP during a download: remove the temporary file, then die of the
 * signal as if no handler were installed. */
static void on_signal(int sig)
{
        char *p = tmp_download;

        if (p)
                unlink(p);
        signal(sig, SIG_DFL);
        raise(sig);
}

/* Install or remove on_signal for the signals that end an interactive download. */
static void guard_signals(bool on)
{
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
        struct sigaction sa = { .sa_handler = on ? on_signal : SIG_DFL };

        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                sigaction(sigs[i], &sa, NULL);
}

/* Split "ID:/path" into its parts. A spec names a sandbox when it has a ':' with a
 * non-empty, '/'-free part before it (so ./a:b and /x/a:b are local paths). 0, -EINVAL if
 * spec is local, -ENOMEM. */
static int parse_remote(const char *spec, char **ret_id, const char **ret_path)
{
        const char *colon = strchr(spec, ':');
        char *id;

        if (!colon || colon == spec || memchr(spec, '/', (size_t)(colon - spec)))
                return -EINVAL;
        id = strndup(spec, (size_t)(colon - spec));
        if (!id)
                return -ENOMEM;
        *ret_id = id;
        *ret_path = colon + 1;
        return 0;
}

/* The last component of path (after the last '/'), "" if path ends with '/'. */
static const char *last_component(const char *path)
{
        const char *slash = strrchr(path, '/');

        return slash ? slash + 1 : path;
}

/* Parse an octal mode (0 to 07777). 0 or -EINVAL. */
static int parse_mode(const char *s, long *ret)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 8);
        if (errno || end == s || *end || v < 0 || v > 07777)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Copy all of in into an unlinked temporary file and return it rewound, with its size.
 * Used for stdin and other inputs whose length is not known in advance. 0 or -errno. */
static int spool(int in, int *ret_fd, uint64_t *ret_size)
{
        const char *dir = getenv("TMPDIR");
        cleanup_close int fd = -1;
        char buf[65536];
        uint64_t size = 0;
        int r;

        if (!dir || !*dir)
                dir = "/tmp";
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
                /* File systems without O_TMPFILE: a named file, unlinked at once. */
                cleanup_free char *tmpl = NULL;

                tmpl = cli_strf("%s/warren-spool-XXXXXX", dir);
                if (!tmpl)
                        return -ENOMEM;
                fd = mkostemp(tmpl, O_CLOEXEC);
                if (fd < 0)
                        return neg_errno();
                unlink(tmpl);
        }
        for (;;) {
                ssize_t n = read(in, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return neg_errno();
                if (n == 0)
                        break;
                r = util_write_all(fd, buf, (size_t)n);
                if (r < 0)
                        return r;
                size += (uint64_t)n;
        }
        if (lseek(fd, 0, SEEK_SET) < 0)
                return neg_errno();
        *ret_fd = TAKE_FD(fd);
        *ret_size = size;
        return 0;
}

/* Upload what fd holds from its current offset to the sandbox file path (mode < 0: the
 * server's default). Non-regular inputs are spooled first. Returns an exit status. */
static int upload(struct cli *c, const char *id, const char *path, int fd, long mode)
{
        cleanup_free char *url = NULL;
        cleanup_close int spooled = -1;
        struct cli_answer a = {};
        struct stat st;
        uint64_t size;
        const json_t *got;
        int r;

        if (fstat(fd, &st) < 0) {
                fprintf(stderr, "warren: cannot read the input: %s\n", strerror(errno));
                return CLI_EXIT_FAIL;
        }
        if (S_ISREG(st.st_mode)) {
                off_t at = lseek(fd, 0, SEEK_CUR);

                size = (uint64_t)(st.st_size - (at > 0 && at <= st.st_size ? at : 0));
        } else {
                r = spool(fd, &spooled, &size);
                if (r < 0) {
                        fprintf(stderr, "warren: cannot buffer the input in $TMPDIR: %s\n",
                                strerror(-r));
                        return CLI_EXIT_FAIL;
                }
                fd = spooled;
        }
        url = cli_sandbox_file_path(c, id, "/files/upload", path);
        if (url && mode >= 0) {
                char *with_mode = cli_strf("%s&mode=%04lo", url, (unsigned long)mode);

                free(url);
                url = with_mode;
        }
        if (!url) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (cli_upload(c, url, fd, size, &a) < 0)
                return cli_fail(c);
        got = json_object_get(a.json, "size");
        r = CLI_EXIT_OK;
        if (json_is_integer(got) && (uint64_t)json_integer_value(got) != size) {
                fprintf(stderr,
                        "warren: sent %llu bytes but the server stored %" JSON_INTEGER_FORMAT "\n",
                        (unsigned long long)size, json_integer_value(got));
                r = CLI_EXIT_FAIL;
        } else if (c->json) {
                cli_print_raw(&a);
        }
        cli_answer_done(&a);
        return r;
}

/* Download the sandbox file path to dest ("-" for stdout) through a temporary file beside
 * dest that replaces it only on success. Returns an exit status. */
static int download(struct cli *c, const char *id, const char *path, const char *dest)
{
        cleanup_free char *url = cli_sandbox_file_path(c, id, "/files/download", path);
        cleanup_free char *target = NULL;
        cleanup_free char *dircopy = NULL;
        cleanup_free char *tmp = NULL;
        cleanup_close int fd = -1;
        struct stat st;
        mode_t mode, mask;
        int r;

        if (!url) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (strcmp(dest, "-") == 0) {
                fflush(stdout);
                return cli_download(c, url, STDOUT_FILENO) < 0 ? cli_fail(c) : CLI_EXIT_OK;
        }

        /* Into an existing directory: keep the remote file's name. */
        if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
                const char *name = last_component(path);

                if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
                        fprintf(stderr, "warren: cannot tell a file name from '%s'\n", path);
                        return CLI_EXIT_USAGE;
                }
                target = cli_strf("%s/%s", dest, name);
        } else {
                target = strdup(dest);
        }
        dircopy = target ? strdup(target) : NULL;
        if (dircopy)
                tmp = cli_strf("%s/.%s.warren-XXXXXX", dirname(dircopy), last_component(target));
        if (!tmp) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }

        /* An existing destination keeps its permission bits, a new one gets 0666 & ~umask,
         * as cp(1) does. */
        mask = umask(0);
        umask(mask);
        mode = 0666 & ~mask;
        if (stat(target, &st) == 0 && S_ISREG(st.st_mode))
                mode = st.st_mode & 07777;

        tmp_download = tmp;
        guard_signals(true);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = errno;
                guard_signals(false);
                tmp_download = NULL;
                fprintf(stderr, "warren: cannot create a file beside %s: %s\n", target,
                        strerror(r));
                return CLI_EXIT_FAIL;
        }
        r = cli_download(c, url, fd) < 0 ? cli_fail(c) : CLI_EXIT_OK;
        if (r == CLI_EXIT_OK && (fchmod(fd, mode) < 0 || close(TAKE_FD(fd)) < 0 ||
                                 rename(tmp, target) < 0)) {
                fprintf(stderr, "warren: cannot write %s: %s\n", target, strerror(errno));
                r = CLI_EXIT_FAIL;
        }
        if (r != CLI_EXIT_OK)
                unlink(tmp);
        guard_signals(false);
        tmp_download = NULL;
        return r;
}

int verb_cp(struct cli *c, int argc, char **argv)
{
        enum { OPT_MODE = OPT_VERB_FIRST };
        static const struct option opts[] = {
                { "mode", required_argument, NULL, OPT_MODE },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        cleanup_free char *src_id = NULL;
        cleanup_free char *dst_id = NULL;
        cleanup_free char *full = NULL;
        cleanup_close int owned = -1;
        int fd = STDIN_FILENO;
        const char *src_path = NULL, *dst_path = NULL, *src, *dst;
        long mode = -1;
        struct stat st;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (opt == OPT_MODE) {
                        if (parse_mode(optarg, &mode) < 0)
                                return cli_usage(c, "--mode: expected an octal mode, got '%s'",
                                                 optarg);
                        continue;
                }
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        if (argc - optind != 2)
                return cli_usage(c, "expected SRC and DST");
        src = argv[optind];
        dst = argv[optind + 1];
        if (parse_remote(src, &src_id, &src_path) == -ENOMEM ||
            parse_remote(dst, &dst_id, &dst_path) == -ENOMEM) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (src_id && dst_id)
                return cli_usage(c, "copying between two sandbox paths is not supported");
        if (!src_id && !dst_id)
                return cli_usage(c, "one of SRC and DST must be a sandbox path ID:/path");
        r = cli_ready(c, true);
        if (r)
                return r;
        c->stall_guard = true;

        if (src_id) {
                if (mode >= 0)
                        return cli_usage(c, "--mode only applies to uploads");
                return download(c, src_id, src_path, dst);
        }

        /* Upload. */
        if (strcmp(src, "-") != 0) {
                fd = owned = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        fprintf(stderr, "warren: cannot open %s: %s\n", src, strerror(errno));
                        return CLI_EXIT_FAIL;
                }
                if (fstat(fd, &st) < 0) {
                        fprintf(stderr, "warren: cannot stat %s: %s\n", src, strerror(errno));
                        return CLI_EXIT_FAIL;
                }
                if (S_ISDIR(st.st_mode))
                        return cli_usage(c, "%s is a directory: copying directories is not "
                                            "supported (see --help for the tar recipe)",
                                         src);
                if (mode < 0 && S_ISREG(st.st_mode))
                        mode = st.st_mode & 0777;
        }

        /* Into a sandbox directory (a trailing '/', or an existing directory): keep the
         * local file's name. */
        if (dst_path[0] && dst_path[strlen(dst_path) - 1] != '/') {
                cleanup_free char *stat_url = cli_sandbox_file_path(c, dst_id, "/files/stat",
                                                                    dst_path);
                struct cli_answer a = {};
                const char *type;
                bool is_dir;

                if (!stat_url) {
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
                if (cli_call(c, "GET", stat_url, NULL, &a) < 0) {
                        /* A missing destination is the ordinary case. */
                        if (c->err.status != 404)
                                return cli_fail(c);
                } else {
                        type = json_string_value(json_object_get(a.json, "type"));
                        is_dir = type && strcmp(type, "directory") == 0;
                        cli_answer_done(&a);
                        if (is_dir)
                                full = cli_strf("%s/", dst_path);
                        if (is_dir) {
                                if (!full) {
                                        fputs("warren: out of memory\n", stderr);
                                        return CLI_EXIT_FAIL;
                                }
                                dst_path = full;
                        }
                }
        }
        if (dst_path[0] && dst_path[strlen(dst_path) - 1] == '/') {
                const char *name = last_component(src);
                char *joined;

                if (strcmp(src, "-") == 0 || !*name)
                        return cli_usage(c, "%s is a directory: name the file to write",
                                         dst_path);
                joined = cli_strf("%s%s", dst_path, name);
                if (!joined) {
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
                free(full);
                full = joined;
                dst_path = full;
        }
        return upload(c, dst_id, dst_path, fd, mode);
}

int verb_cat(struct cli *c, int argc, char **argv)
{
        int r = cli_parse_plain(c, argc, argv);

        if (r != CLI_CONTINUE)
                return r;
        if (argc - optind != 2)
                return cli_usage(c, "expected ID and PATH");
        r = cli_ready(c, true);
        if (r)
                return r;
        c->stall_guard = true;
        return download(c, argv[optind], argv[optind + 1], "-");
}

int verb_write(struct cli *c, int argc, char **argv)
{
        enum { OPT_MODE = OPT_VERB_FIRST };
        static const struct option opts[] = {
                { "mode", required_argument, NULL, OPT_MODE },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        long mode = -1;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (opt == OPT_MODE) {
                        if (parse_mode(optarg, &mode) < 0)
                                return cli_usage(c, "--mode: expected an octal mode, got '%s'",
                                                 optarg);
                        continue;
                }
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        if (argc - optind != 2)
                return cli_usage(c, "expected ID and PATH");
        r = cli_ready(c, true);
        if (r)
                return r;
        c->stall_guard = true;
        return upload(c, argv[optind], argv[optind + 1], STDIN_FILENO, mode);
}

/* POST a small JSON body to /api/v1/sandbox/ID/files/ACTION; prints the answer with --json.
 * Returns an exit status. */
static int file_post(struct cli *c, const char *id, const char *action, json_t *body)
{
        cleanup_free char *path = cli_sandbox_path(c, id, action);
        struct cli_answer a = {};

        if (!path || !body) {
                json_decref(body);
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (cli_call(c, "POST", path, body, &a) < 0) {
                json_decref(body);
                return cli_fail(c);
        }
        json_decref(body);
        if (c->json)
                cli_print_raw(&a);
        cli_answer_done(&a);
        return CLI_EXIT_OK;
}

/* json_pack() that reports invalid UTF-8 arguments as a usage error. */
static int pack_or_usage(struct cli *c, json_t **ret, json_t *packed)
{
        if (!packed)
                return cli_usage(c, "paths must be valid UTF-8");
        *ret = packed;
        return CLI_CONTINUE;
}

int verb_mkdir(struct cli *c, int argc, char **argv)
{
        int r = cli_parse_plain(c, argc, argv);

        if (r != CLI_CONTINUE)
                return r;
        if (argc - optind < 2)
                return cli_usage(c, "expected ID and PATH");
        r = cli_ready(c, true);
        if (r)
                return r;
        for (int i = optind + 1; i < argc; i++) {
                json_t *body = NULL;

                r = pack_or_usage(c, &body, json_pack("{s:s}", "path", argv[i]));
                if (r != CLI_CONTINUE)
                        return r;
                r = file_post(c, argv[optind], "/files/mkdir", body);
                if (r != CLI_EXIT_OK)
                        return r;
        }
        return CLI_EXIT_OK;
}

int verb_rm_file(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "recursive", no_argument, NULL, 'r' },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        json_t *body = NULL;
        bool recursive = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "hrR", opts, NULL)) != -1) {
                if (opt == 'r' || opt == 'R') {
                        recursive = true;
                        continue;
                }
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        if (argc - optind != 2)
                return cli_usage(c, "expected ID and PATH");
        r = cli_ready(c, true);
        if (r)
                return r;
        r = pack_or_usage(c, &body, json_pack("{s:s,s:b}", "path", argv[optind + 1],
                                              "recursive", recursive));
        if (r != CLI_CONTINUE)
                return r;
        return file_post(c, argv[optind], "/files/remove", body);
}

int verb_mv(struct cli *c, int argc, char **argv)
{
        json_t *body = NULL;
        int r = cli_parse_plain(c, argc, argv);

        if (r != CLI_CONTINUE)
                return r;
        if (argc - optind != 3)
                return cli_usage(c, "expected ID, FROM and TO");
        r = cli_ready(c, true);
        if (r)
                return r;
        r = pack_or_usage(c, &body, json_pack("{s:s,s:s}", "from", argv[optind + 1], "to",
                                              argv[optind + 2]));
        if (r != CLI_CONTINUE)
                return r;
        return file_post(c, argv[optind], "/files/move", body);
}

/* GET /api/v1/sandbox/ID/files/ACTION?path=PATH for the verbs taking ID and PATH (PATH
 * optional when def_path is set). CLI_CONTINUE with *a filled, or an exit status. */
static int file_get(struct cli *c, int argc, char **argv, const char *action,
                    const char *def_path, struct cli_answer *a)
{
        cleanup_free char *url = NULL;
        const char *path;
        int r = cli_parse_plain(c, argc, argv);

        if (r != CLI_CONTINUE)
                return r;
        if (argc - optind == 1 && def_path)
                path = def_path;
        else if (argc - optind == 2)
                path = argv[optind + 1];
        else
                return cli_usage(c, "expected ID and PATH");
        r = cli_ready(c, true);
        if (r)
                return r;
        url = cli_sandbox_file_path(c, argv[optind], action, path);
        if (!url) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (cli_call(c, "GET", url, NULL, a) < 0)
                return cli_fail(c);
        return CLI_CONTINUE;
}

int verb_ls_files(struct cli *c, int argc, char **argv)
{
        static const char *const headers[] = { "TYPE", "MODE", "SIZE", "MODIFIED", "NAME" };
        static const char *const keys[] = { "type", "mode", "size", "modified", "name" };
        struct cli_answer a = {};
        const json_t *list;
        char **cells;
        size_t n;
        int r = file_get(c, argc, argv, "/files/list", "/workspace", &a);

        if (r != CLI_CONTINUE)
                return r;
        if (c->json) {
                cli_print_raw(&a);
                cli_answer_done(&a);
                return CLI_EXIT_OK;
        }
        list = json_object_get(a.json, "entries");
        n = json_array_size(list);
        cells = calloc(n * 5 + 1, sizeof(char *));
        if (!cells) {
                cli_answer_done(&a);
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < 5; k++)
                        cells[i * 5 + k] = cli_field(json_array_get(list, i), keys[k]);
        cli_print_table(headers, 5, cells, n);
        for (size_t i = 0; i < n * 5; i++)
                free(cells[i]);
        free(cells);
        cli_answer_done(&a);
        return CLI_EXIT_OK;
}

int verb_stat(struct cli *c, int argc, char **argv)
{
        struct cli_answer a = {};
        int r = file_get(c, argc, argv, "/files/stat", NULL, &a);

        if (r != CLI_CONTINUE)
                return r;
        if (c->json)
                cli_print_raw(&a);
        else
                cli_print_object(a.json);
        cli_answer_done(&a);
        return CLI_EXIT_OK;
}
