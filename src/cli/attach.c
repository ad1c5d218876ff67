/* attach.c - `warren attach` (a WebSocket onto a background job) and `warren shell` (an
 * interactive terminal in a sandbox), over the WebSocket client ws_client.c.
 *
 * Both run one poll() loop over the socket, stdin and a self-pipe fed by signal handlers:
 * binary frames from the server are the job's output and go to stdout byte for byte (the
 * terminal stream is raw on purpose); text frames are JSON control messages, reported on
 * stderr with control characters replaced. Stdin goes to the job as binary frames.
 *
 * When stdin is a terminal and the job runs on a PTY, the local terminal is put in raw mode
 * (keystrokes, ^C included, go to the remote terminal) and restored on every way out: the
 * normal end, errors, and SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGPIPE (the handler restores it
 * at once; a second signal kills us the default way). SIGWINCH sends the new size. As in
 * ssh, Enter followed by "~." detaches (the job keeps running), and "~~" sends one "~".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"
#include "ws_client.h"

/* Stop reading stdin while this much is queued for the socket. */
#define STDIN_QUEUE_MAX (1u << 20)
#define STDIN_CHUNK (64u * 1024)
/* How long to wait for the server's close after the job's exit message or our close. */
#define CLOSE_WAIT_MS 3000
/* Largest message accepted from the server (output comes in 64 KiB frames). */
#define ATTACH_MAX_MESSAGE ((size_t)16 << 20)
/* Terminal sizes the server accepts. */
#define TERM_DIM_MAX 1000

const char help_attach[] =
        "Usage: warren attach [--since N] ID JOB\n"
        "\n"
        "Attach to a background job over a WebSocket: its output log is replayed from\n"
        "offset N (default 0) and then followed live, byte for byte, on stdout; stdin goes\n"
        "to the job (when it has stdin or a terminal). warren exits with the job's exit code\n"
        "when it ends (124 if it was killed at its timeout). JOB is a job id or a pid.\n"
        "\n"
        "When stdin is a terminal and the job runs on a PTY, the local terminal is put in\n"
        "raw mode (every key goes to the job, Ctrl-C included) and window size changes\n"
        "are passed on; Enter then ~. detaches (the job keeps running), ~~ sends a ~.\n"
        "When stdin is not a terminal, its bytes are sent as they are and its end closes\n"
        "the job's stdin. Interrupting warren detaches; it never stops the job.\n"
        "\n"
        "  --since N   replay from log offset N (to resume without repeats: the offset you\n"
        "              had plus the bytes you received)\n"
        "\n"
        "Examples:\n"
        "  warren attach $ID job_3\n"
        "  JOB=$(warren start --stdin $ID -- cat); echo hi | warren attach $ID $JOB\n";

const char help_shell[] =
        "Usage: warren shell [OPTIONS] ID\n"
        "\n"
        "Open an interactive terminal in a sandbox (a login bash on a PTY of the local\n"
        "terminal's size, with its TERM) and attach to it: raw mode, window size changes\n"
        "passed on, exit with the shell's exit code. Enter then ~. detaches and leaves the\n"
        "shell running (`warren attach ID JOB` returns to it; `warren ps ID` lists it).\n"
        "Without a terminal on stdin, stdin is sent as typed input and its end as ^D.\n"
        "If warren is killed (SIGTERM, SIGHUP, SIGINT), the shell gets SIGHUP.\n"
        "\n"
        "  --shell CMD       run CMD (a shell command string) instead of `bash -l`\n"
        "  -w, --cwd DIR     working directory (server default /workspace)\n"
        "  -e, --env K=V     environment variable; repeatable\n"
        "  --user USER       \"user\" (uid 1001, default) or \"root\"\n"
        "\n"
        "Examples:\n"
        "  warren shell $ID\n"
        "  warren shell --shell 'python3' $ID\n";

/* ---- the local terminal and signals ---- */

/* Saved terminal state, restored by term_restore() and by the signal handler. */
static struct termios term_saved;
static volatile sig_atomic_t term_is_raw;
static int term_fd = -1;
/* Self-pipe: the handler writes each signal number here for the loop to act on. */
static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t term_signals;

static const int handled_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGWINCH };
static struct sigaction old_actions[ARRAY_SIZE(handled_signals)];

/* Put back the terminal as it was (idempotent). */
static void term_restore(void)
{
        if (term_is_raw) {
                tcsetattr(term_fd, TCSADRAIN, &term_saved);
                term_is_raw = 0;
        }
}

/* Put fd (a terminal) in raw mode, saving its state first. 0 or -errno. */
static int term_make_raw(int fd)
{
        struct termios raw;

        if (tcgetattr(fd, &term_saved) < 0)
                return -errno;
        raw = term_saved;
        cfmakeraw(&raw);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        term_fd = fd;
        term_is_raw = 1;
        if (tcsetattr(fd, TCSADRAIN, &raw) < 0) {
                term_is_raw = 0;
                return -errno;
        }
        return 0;
}

/* Signal handler: give the terminal back at once (the loop may be slow to notice), then
 * tell the loop. A second terminating signal ends us the default way. Async-signal-safe
 * calls only. */
static void on_signal(int sig)
{
        int saved = errno;
        unsigned char b = (unsigned char)sig;

        if (sig != SIGWINCH) {
                if (term_is_raw) {
                        tcsetattr(term_fd, TCSANOW, &term_saved);
                        term_is_raw = 0;
                }
                if (term_signals++ > 0) {
                        signal(sig, SIG_DFL);
                        raise(sig);
                }
        }
        if (write(sig_pipe[1], &b, 1) < 0) {
                /* a full pipe already holds enough wake-ups */
        }
        errno = saved;
}

/* Install the handlers (and the self-pipe). 0 or -errno. */
static int signals_install(void)
{
        struct sigaction sa = { .sa_handler = on_signal };

        if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ARRAY_SIZE(handled_signals); i++)
                sigaction(handled_signals[i], &sa, &old_actions[i]);
        return 0;
}

/* Put the old handlers back and close the self-pipe. */
static void signals_remove(void)
{
        if (sig_pipe[0] < 0)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(handled_signals); i++)
                sigaction(handled_signals[i], &old_actions[i], NULL);
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
}

/* The size of the local terminal (stdin's, else stdout's). 0 or -ENOTTY. */
static int term_size(unsigned *ret_cols, unsigned *ret_rows)
{
        struct winsize ws;

        for (int fd = 0; fd <= 1; fd++) {
                if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
                        *ret_cols = ws.ws_col > TERM_DIM_MAX ? TERM_DIM_MAX : ws.ws_col;
                        *ret_rows = ws.ws_row > TERM_DIM_MAX ? TERM_DIM_MAX : ws.ws_row;
                        return 0;
                }
        }
        return -ENOTTY;
}

/* ---- the session ---- */

struct session {
        struct cli *c;
        struct wsc *ws;
        const char *id, *job;
        bool connected;  /* the WebSocket was opened */
        bool raw;        /* the local terminal is in raw mode: lines end in \r\n */
        bool got_exit;
        int status;      /* the job's exit status, once got_exit */
        uint64_t offset; /* log offset of the next output byte */
        int out_err;     /* negative errno of a failed write to stdout */
        /* the ~. escape */
        bool line_start, tilde;
        unsigned cols, rows; /* last size sent */
};

/* Print "warren: MESSAGE" on stderr, ending the line as the terminal mode needs. */
static void notice(const struct session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void notice(const struct session *s, const char *fmt, ...)
{
        char raw[600], safe[600];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(raw, sizeof(raw), fmt, ap);
        va_end(ap);
        cli_sanitize(raw, safe, sizeof(safe));
        fprintf(stderr, "warren: %s%s", safe, s->raw ? "\r\n" : "\n");
        fflush(stderr);
}

/* A JSON control message from the server. */
static void on_control(struct session *s, const uint8_t *data, size_t len)
{
        json_t *m = json_loadb((const char *)data, len, 0, NULL);
        const char *type = json_string_value(json_object_get(m, "type"));
        json_int_t from, to;

        if (!type) {
                json_decref(m);
                return; /* not a message we understand: skip it */
        }
        if (strcmp(type, "attached") == 0) {
                to = json_integer_value(json_object_get(m, "offset"));
                if (to > 0 && (uint64_t)to > s->offset)
                        notice(s, "bytes %llu to %lld of the log are no longer held; "
                                  "output starts at %lld",
                               (unsigned long long)s->offset, (long long)to, (long long)to);
                if (to >= 0)
                        s->offset = (uint64_t)to;
        } else if (strcmp(type, "dropped") == 0) {
                from = json_integer_value(json_object_get(m, "from"));
                to = json_integer_value(json_object_get(m, "to"));
                /* The server may repeat a gap the "attached" offset already told of. */
                if (to < 0 || (uint64_t)to <= s->offset)
                        goto out;
                if (from < 0 || (uint64_t)from < s->offset)
                        from = (json_int_t)s->offset;
                notice(s, "bytes %lld to %lld of the output were dropped (warren read slower "
                          "than the job wrote)",
                       (long long)from, (long long)to);
                s->offset = (uint64_t)to;
        } else if (strcmp(type, "exit") == 0) {
                s->status = cli_job_exit_status(m);
                s->got_exit = true;
        } else if (strcmp(type, "error") == 0) {
                notice(s, "%s", json_string_value(json_object_get(m, "message")) ?: "error");
        }
out:
        json_decref(m);
}

/* wsc_message_cb: output to stdout, control messages to on_control(). */
static void on_message(struct wsc *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
        struct session *s = ud;

        if (!binary) {
                on_control(s, data, len);
                return;
        }
        if (s->out_err)
                return;
        int r = util_write_all(STDOUT_FILENO, data, len);
        if (r < 0) {
                s->out_err = r;
                (void)wsc_close(ws, 1000, "stdout closed");
                return;
        }
        s->offset += len;
}

/* Send a control message built from a JSON object (stolen). 0 or -errno. */
static int send_control(struct session *s, json_t *msg)
{
        cleanup_free char *t = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

        json_decref(msg);
        return t ? wsc_send(s->ws, false, t, strlen(t)) : -ENOMEM;
}

/* Send the local terminal's size if it changed. */
static void send_size(struct session *s)
{
        unsigned cols, rows;

        if (term_size(&cols, &rows) < 0 || (cols == s->cols && rows == s->rows))
                return;
        s->cols = cols;
        s->rows = rows;
        (void)send_control(s, json_pack("{s:s, s:i, s:i}", "type", "resize", "cols", (int)cols,
                                        "rows", (int)rows));
}

/* Apply the ~. escape to keystrokes (raw mode): copy buf to out (room for n + 1 bytes) less
 * the escape; *ret_detach when "~." was typed at the start of a line. Returns out's
 * length. */
static size_t escape_filter(struct session *s, const uint8_t *buf, size_t n, uint8_t *out,
                            bool *ret_detach)
{
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                uint8_t b = buf[i];

                if (s->tilde) {
                        s->tilde = false;
                        if (b == '.') {
                                *ret_detach = true;
                                return o;
                        }
                        out[o++] = '~';
                        if (b == '~') {
                                s->line_start = false;
                                continue;
                        }
                } else if (s->line_start && b == '~') {
                        s->tilde = true;
                        continue;
                }
                out[o++] = b;
                s->line_start = b == '\r' || b == '\n';
        }
        return o;
}

/* How the loop ended. */
enum outcome { OUT_EXIT, OUT_CLOSED, OUT_DETACHED, OUT_SIGNAL, OUT_STDOUT, OUT_TIMEOUT };

/* Drive the attachment until the job ends, the connection closes, the user detaches or a
 * signal arrives. forward_stdin: read stdin and send it; send_eof: its end closes the job's
 * stdin. *ret_sig gets the terminating signal for OUT_SIGNAL. */
static enum outcome run_loop(struct session *s, bool forward_stdin, bool send_eof,
                             int *ret_sig)
{
        cleanup_free uint8_t *buf = malloc(STDIN_CHUNK);
        cleanup_free uint8_t *out = malloc(STDIN_CHUNK + 1);
        uint64_t deadline = s->c->max_time_ms > 0
                                    ? util_now_ns() + (uint64_t)s->c->max_time_ms * 1000000
                                    : 0;
        uint64_t exit_deadline = 0;
        bool stdin_open = forward_stdin;

        if (!buf || !out) {
                notice(s, "out of memory");
                return OUT_CLOSED;
        }
        for (;;) {
                struct pollfd p[3] = {
                        { .fd = wsc_fd(s->ws), .events = wsc_events(s->ws) },
                        { .fd = sig_pipe[0], .events = POLLIN },
                        { .fd = STDIN_FILENO, .events = 0 },
                };
                int timeout = -1;
                uint64_t now = util_now_ns(), until = 0;

                if (s->out_err)
                        return OUT_STDOUT;
                if (wsc_closed(s->ws))
                        return s->got_exit ? OUT_EXIT : OUT_CLOSED;
                /* After the exit message the server closes; do not wait for it forever. */
                if (s->got_exit && !exit_deadline)
                        exit_deadline = now + (uint64_t)CLOSE_WAIT_MS * 1000000;
                if (s->got_exit)
                        stdin_open = false;
                until = exit_deadline ? exit_deadline : deadline;
                if (deadline && deadline < until)
                        until = deadline;
                if (until) {
                        if (now >= until)
                                return s->got_exit ? OUT_EXIT : OUT_TIMEOUT;
                        timeout = (int)((until - now) / 1000000) + 1;
                }
                if (stdin_open && wsc_queued(s->ws) < STDIN_QUEUE_MAX)
                        p[2].events = POLLIN;
                if (poll(p, stdin_open ? 3 : 2, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        notice(s, "poll: %s", strerror(errno));
                        return OUT_CLOSED;
                }
                if (p[1].revents & POLLIN) {
                        unsigned char sigs[16];
                        ssize_t n = read(sig_pipe[0], sigs, sizeof(sigs));
                        for (ssize_t i = 0; i < n; i++) {
                                if (sigs[i] == SIGWINCH) {
                                        if (s->raw)
                                                send_size(s);
                                        continue;
                                }
                                *ret_sig = sigs[i];
                                return sigs[i] == SIGPIPE ? OUT_STDOUT : OUT_SIGNAL;
                        }
                }
                if (p[0].revents & POLLOUT && wsc_on_writable(s->ws) < 0)
                        return OUT_CLOSED;
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        int r = wsc_on_readable(s->ws);
                        if (r != 0)
                                continue; /* closed: the checks at the top decide */
                }
                if (stdin_open && (p[2].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
                        ssize_t n = read(STDIN_FILENO, buf, STDIN_CHUNK);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) {
                                /* End of input (or a terminal that went away). */
                                stdin_open = false;
                                if (send_eof)
                                        (void)send_control(s, json_pack("{s:s}", "type",
                                                                        "eof"));
                                continue;
                        }
                        bool detach = false;
                        size_t len = (size_t)n;
                        const uint8_t *data = buf;
                        if (s->raw) {
                                len = escape_filter(s, buf, (size_t)n, out, &detach);
                                data = out;
                        }
                        if (len > 0 && wsc_send(s->ws, true, data, len) < 0)
                                continue; /* closing: the checks at the top decide */
                        if (detach)
                                return OUT_DETACHED;
                }
        }
}

/* Connect the WebSocket to JOB's attach route from offset since. 0, or an exit status
 * after reporting why not. */
static int session_connect(struct session *s, uint64_t since)
{
        struct cli *c = s->c;
        struct wsc_refusal refusal = {};
        cleanup_free char *path = NULL;
        cleanup_free char *url = NULL;
        cleanup_free char *ejob = cli_escape(c, s->job);
        cleanup_free char *suffix = NULL;
        char *auth = NULL;
        int r;

        suffix = ejob ? cli_strf("/processes/%s/attach?since=%llu", ejob,
                                 (unsigned long long)since)
                      : NULL;
        path = suffix ? cli_sandbox_path(c, s->id, suffix) : NULL;
        url = path ? cli_strf("%s%s", c->base_url, path) : NULL;
        if (c->api_key)
                auth = cli_strf("Authorization: ApiKey %s", c->api_key);
        if (!url || (c->api_key && !auth)) {
                free(auth);
                notice(s, "out of memory");
                return CLI_EXIT_FAIL;
        }
        const char *headers[] = { auth, NULL };
        struct wsc_options o = {
                .url = url,
                .unix_path = c->unix_path,
                .headers = headers,
                .timeout_ms = (int)(CLI_CONNECT_TIMEOUT_S * 1000),
                .max_message = ATTACH_MAX_MESSAGE,
                .on_message = on_message,
                .ud = s,
        };
        s->offset = since;
        r = wsc_connect(&o, &s->ws, &refusal);
        if (auth) {
                explicit_bzero(auth, strlen(auth));
                free(auth);
        }
        if (r == -EPROTO && refusal.status > 0) {
                cli_set_http_error(c, refusal.status, refusal.body, refusal.len);
                free(refusal.body);
                return cli_fail(c);
        }
        free(refusal.body);
        if (r == -EPROTONOSUPPORT) {
                notice(s, "attach needs an http:// or unix: URL (no TLS WebSocket support)");
                return CLI_EXIT_FAIL;
        }
        if (r < 0) {
                notice(s, "cannot attach to %s: %s", c->unix_path ? c->unix_path : c->base_url,
                       r == -EPROTO ? "the server's answer is not a WebSocket handshake"
                                    : strerror(-r));
                return CLI_EXIT_FAIL;
        }
        s->connected = true;
        return 0;
}

/* Attach to JOB and run the session: raw mode when asked (stdin is a terminal and the job
 * a PTY), stdin forwarded when forward_stdin, SIGHUP to the job if a signal ends us and
 * hangup_on_signal. Returns the exit status. */
static int session_run(struct session *s, uint64_t since, bool raw, bool forward_stdin,
                       bool send_eof, bool hangup_on_signal)
{
        int sig = 0, r;
        uint16_t code;
        enum outcome how;

        r = signals_install();
        if (r < 0) {
                fprintf(stderr, "warren: %s\n", strerror(-r));
                return CLI_EXIT_FAIL;
        }
        r = session_connect(s, since);
        if (r) {
                signals_remove();
                return r;
        }
        fflush(stdout);
        if (raw && term_make_raw(STDIN_FILENO) == 0) {
                s->raw = true;
                s->line_start = true;
                send_size(s); /* the size may have changed since the job started */
        }
        how = run_loop(s, forward_stdin, send_eof, &sig);
        if (how == OUT_SIGNAL && hangup_on_signal && !wsc_closed(s->ws))
                (void)send_control(s, json_pack("{s:s, s:s}", "type", "signal", "signal",
                                                "HUP"));
        if (!wsc_closed(s->ws))
                (void)wsc_close_wait(s->ws, 1000, "detached", CLOSE_WAIT_MS);
        term_restore();
        s->raw = false;
        signals_remove();
        code = wsc_close_code(s->ws);
        wsc_free(s->ws);
        s->ws = NULL;

        switch (how) {
        case OUT_EXIT:
                return s->status;
        case OUT_DETACHED:
                fputs("\nwarren: detached; the job keeps running: warren attach ", stderr);
                cli_print_safe(stderr, s->id);
                fputc(' ', stderr);
                cli_print_safe(stderr, s->job);
                fputc('\n', stderr);
                return CLI_EXIT_OK;
        case OUT_SIGNAL:
                return 128 + sig;
        case OUT_STDOUT:
                /* A reader that went away (EPIPE) ends us quietly, as SIGPIPE would. */
                if (s->out_err && s->out_err != -EPIPE)
                        fprintf(stderr, "warren: writing the output: %s\n",
                                strerror(-s->out_err));
                return 128 + SIGPIPE;
        case OUT_TIMEOUT:
                fputs("warren: --max-time reached; the job keeps running\n", stderr);
                return CLI_EXIT_FAIL;
        case OUT_CLOSED:
        default:
                fprintf(stderr, "warren: the connection closed before the job ended (close "
                                "code %u); the job keeps running\n",
                        (unsigned)code);
                return CLI_EXIT_FAIL;
        }
}

/* ---- attach ---- */

int verb_attach(struct cli *c, int argc, char **argv)
{
        enum { OPT_SINCE = OPT_VERB_FIRST };
        static const struct option opts[] = {
                { "since", required_argument, NULL, OPT_SINCE },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        struct session s = { .c = c };
        struct cli_answer a = {};
        cleanup_free char *ejob = NULL;
        cleanup_free char *suffix = NULL;
        cleanup_free char *path = NULL;
        bool pty, has_stdin, running, tty;
        long since = 0;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (opt == OPT_SINCE) {
                        if (cli_parse_long(optarg, 0, LONG_MAX, &since) < 0)
                                return cli_usage(c, "--since: expected a byte offset, got '%s'",
                                                 optarg);
                        continue;
                }
                r = cli_common_option(c, opt, optarg);
                if (r != CLI_CONTINUE)
                        return r;
        }
        if (argc - optind != 2)
                return cli_usage(c, "expected a sandbox ID and a job (job_N or a pid)");
        s.id = argv[optind];
        s.job = argv[optind + 1];
        r = cli_ready(c, true);
        if (r)
                return r;
        /* The job first: a clear error if there is none, and whether it takes input. */
        ejob = cli_escape(c, s.job);
        suffix = ejob ? cli_strf("/processes/%s", ejob) : NULL;
        path = suffix ? cli_sandbox_path(c, s.id, suffix) : NULL;
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        if (cli_call(c, "GET", path, NULL, &a) < 0)
                return cli_fail(c);
        pty = json_is_true(json_object_get(a.json, "pty"));
        has_stdin = json_is_true(json_object_get(a.json, "stdin")) || pty;
        running = !strcmp(json_string_value(json_object_get(a.json, "state")) ?: "", "running");
        cli_answer_done(&a);
        tty = isatty(STDIN_FILENO);
        r = session_run(&s, (uint64_t)since, tty && pty && running, has_stdin && running,
                        true, false);
        return r;
}

/* ---- shell ---- */

int verb_shell(struct cli *c, int argc, char **argv)
{
        enum { OPT_SHELL = OPT_VERB_FIRST, OPT_USER };
        static const struct option opts[] = {
                { "shell", required_argument, NULL, OPT_SHELL },
                { "cwd", required_argument, NULL, 'w' },
                { "workdir", required_argument, NULL, 'w' },
                { "env", required_argument, NULL, 'e' },
                { "user", required_argument, NULL, OPT_USER },
                CLI_GLOBAL_OPTIONS,
                {},
        };
        struct session s = { .c = c };
        struct cli_answer a = {};
        json_t *body = json_object(), *env = json_object();
        cleanup_free char *path = NULL;
        cleanup_free char *job = NULL;
        const char *term = getenv("TERM");
        unsigned cols, rows;
        bool tty = isatty(STDIN_FILENO);
        int opt, r;

        if (!body || !env) {
                json_decref(body);
                json_decref(env);
                fputs("warren: out of memory\n", stderr);
                return CLI_EXIT_FAIL;
        }
        json_object_set_new(body, "env", env); /* body owns env from here */
        while ((opt = getopt_long(argc, argv, "hw:e:", opts, NULL)) != -1) {
                switch (opt) {
                case OPT_SHELL:
                        if (json_object_set_new(body, "shell", json_string(optarg)) < 0) {
                                r = cli_usage(c, "--shell: not valid UTF-8");
                                goto out;
                        }
                        break;
                case 'w':
                        if (json_object_set_new(body, "cwd", json_string(optarg)) < 0) {
                                r = cli_usage(c, "--cwd: not valid UTF-8");
                                goto out;
                        }
                        break;
                case 'e':
                        if (cli_env_add(env, optarg) < 0) {
                                r = cli_usage(c, "--env: expected KEY=VALUE, got '%s'", optarg);
                                goto out;
                        }
                        break;
                case OPT_USER:
                        if (strcmp(optarg, "user") != 0 && strcmp(optarg, "root") != 0) {
                                r = cli_usage(c, "--user: expected user or root, got '%s'",
                                              optarg);
                                goto out;
                        }
                        json_object_set_new(body, "user", json_string(optarg));
                        break;
                default:
                        r = cli_common_option(c, opt, optarg);
                        if (r != CLI_CONTINUE)
                                goto out;
                }
        }
        if (argc - optind != 1) {
                r = cli_usage(c, "expected one sandbox ID");
                goto out;
        }
        s.id = argv[optind];
        /* The local terminal's type, unless --env set one (the server's default is
         * xterm-256color). Only a plain name is passed on. */
        if (term && *term && strlen(term) < 64 && !json_object_get(env, "TERM") &&
            strspn(term, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-_") ==
                    strlen(term))
                json_object_set_new(env, "TERM", json_string(term));
        if (json_object_size(env) == 0)
                json_object_del(body, "env");
        if (term_size(&cols, &rows) == 0) {
                json_object_set_new(body, "cols", json_integer(cols));
                json_object_set_new(body, "rows", json_integer(rows));
        }
        r = cli_ready(c, true);
        if (r)
                goto out;
        path = cli_sandbox_path(c, s.id, "/terminals");
        if (!path) {
                fputs("warren: out of memory\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        if (cli_call(c, "POST", path, body, &a) < 0) {
                r = cli_fail(c);
                goto out;
        }
        job = json_string_value(json_object_get(a.json, "id"))
                      ? strdup(json_string_value(json_object_get(a.json, "id")))
                      : NULL;
        cli_answer_done(&a);
        if (!job) {
                fputs("warren: the answer has no job id\n", stderr);
                r = CLI_EXIT_FAIL;
                goto out;
        }
        s.job = job;
        r = session_run(&s, 0, tty, true, true, true);
        if (!s.connected) {
                /* Never attached: do not leave a shell nobody can see behind. */
                cleanup_free char *ejob = cli_escape(c, job);
                cleanup_free char *suffix = ejob ? cli_strf("/processes/%s", ejob) : NULL;
                cleanup_free char *kpath = suffix ? cli_sandbox_path(c, s.id, suffix) : NULL;
                if (kpath && cli_call(c, "DELETE", kpath, NULL, &a) == 0)
                        cli_answer_done(&a);
        }
out:
        json_decref(body);
        return r;
}
