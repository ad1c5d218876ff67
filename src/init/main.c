/* main.c - warren-init: PID 1 of one sandbox.
 *
 * Started by the runtime (src/runtime/launch.c) as host root, PID 1 of fresh namespaces,
 * with the handshake socket on fd LAUNCH_FD and /dev/null on 0, 1 and 2. It reads the
 * launch spec, builds the sandbox around itself (setup.c), reports READY and then serves
 * the agent protocol on its control socket until it is killed (serve.c). Any setup failure
 * goes back to the runtime as errno + message, and the process exits, which takes the
 * namespaces with it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

/* The SPEC message; the decoded launch_cfg points into it until setup is over. */
static uint8_t spec_buf[LAUNCH_SPEC_MAX];

/* Report a setup failure to the runtime and exit. */
static void __attribute__((noreturn)) die(int r, const char *msg)
{
        struct launch_status m = { .magic = LAUNCH_MAGIC, .type = LAUNCH_ERROR, .err = -r };

        snprintf(m.msg, sizeof(m.msg), "%s", msg);
        (void)send(LAUNCH_FD, &m, sizeof(m), MSG_NOSIGNAL);
        _exit(1);
}

int main(int argc, char **argv)
{
        struct init_state st = { 0 };
        struct launch_cfg cfg;
        char err[LAUNCH_MSG_LEN];
        sigset_t none;
        ssize_t n;
        int r;

        /* Only ever PID 1 of a sandbox, started by the runtime with the handshake socket. */
        if (getpid() != 1 || argc != 1) {
                fprintf(stderr, "%s: started by warrend only\n",
                        argc > 0 ? argv[0] : "warren-init");
                return 2;
        }
        /* Dispositions the daemon ignored survive execve: start from a clean slate. */
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        do
                n = recv(LAUNCH_FD, spec_buf, sizeof(spec_buf), 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                _exit(1); /* the runtime went away: nobody to serve */
        r = setup_parse_spec(spec_buf, (size_t)n, &cfg, err, sizeof(err));
        if (r < 0)
                die(r, err);
        r = setup_sandbox(&cfg, LAUNCH_FD, &st.ctx, err, sizeof(err));
        if (r < 0)
                die(r, err);

        struct launch_status ready = { .magic = LAUNCH_MAGIC, .type = LAUNCH_READY };
        if (send(LAUNCH_FD, &ready, sizeof(ready), MSG_NOSIGNAL) != (ssize_t)sizeof(ready))
                _exit(1);
        close(LAUNCH_FD);

        r = serve_run(&st);
        return r < 0 ? 1 : 0;
}
