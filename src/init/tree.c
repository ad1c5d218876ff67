/* tree.c - kill a process and everything below it, found through /proc.
 *
 * Used on a job's reaper at its deadline: the reaper is a child subreaper, so every
 * descendant of the job is below it, whatever it did (double fork, setsid).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

/* Rounds of the kill-the-subtree scan before giving up on stragglers. */
#define KILL_ROUNDS 50

/* One process from /proc: its parent and whether it is still running (not a zombie). */
struct pinfo {
        pid_t pid, ppid;
        pid_t pgrp;
        bool live;
        int state; /* kill_descendants(): not yet known, in the subtree, or not */
};

/* Read pid, ppid and state of every process in our pid namespace into a malloc'd array. */
static int scan_procs(struct pinfo **ret, size_t *ret_n)
{
        DIR *d = opendir("/proc");
        struct pinfo *v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        if (!d)
                return neg_errno();
        while ((de = readdir(d))) {
                char path[64], buf[512];
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 1)
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t len = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (len <= 0)
                        continue;
                buf[len] = '\0';
                /* "pid (comm) S ppid ...": comm may hold spaces and ')'; take the last ')'. */
                char *rp = strrchr(buf, ')');
                char state;
                int ppid, pgrp;
                if (!rp || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
                        continue;
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        struct pinfo *nv = realloc(v, nc * sizeof(*v));
                        if (!nv) {
                                free(v);
                                closedir(d);
                                return -ENOMEM;
                        }
                        v = nv;
                        cap = nc;
                }
                v[n++] = (struct pinfo){ .pid = (pid_t)pid, .ppid = ppid, .pgrp = pgrp,
                                         .live = state != 'Z' && state != 'X' };
        }
        closedir(d);
        *ret = v;
        *ret_n = n;
        return 0;
}

static int cmp_pid(const void *a, const void *b)
{
        const struct pinfo *x = a, *y = b;

        return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Index of pid in v (sorted by pid), or -1. */
static long find_pid(const struct pinfo *v, size_t n, pid_t pid)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v[mid].pid == pid)
                        return (long)mid;
                if (v[mid].pid < pid)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

/* SIGKILL every live descendant of root (not root itself); return how many were found.
 * root is a subreaper, so orphans of killed descendants stay under it for the next round.
 * Each process's ancestry is walked once (the answer is remembered for every process on
 * the walk), so a deep chain of forks costs O(n log n), not O(n^2). */
static int kill_descendants(pid_t root)
{
        enum { UNKNOWN = 0, INSIDE, OUTSIDE };
        struct pinfo *v = NULL;
        size_t n = 0, *path;
        int killed = 0;

        if (scan_procs(&v, &n) < 0 || n == 0) {
                free(v);
                return 0;
        }
        path = malloc((n + 1) * sizeof(*path));
        if (!path) {
                free(v);
                return 0;
        }
        qsort(v, n, sizeof(*v), cmp_pid);
        for (size_t i = 0; i < n; i++) {
                size_t depth = 0, k = i;
                int verdict;

                for (;;) {
                        if (v[k].state != UNKNOWN) {
                                verdict = v[k].state;
                                break;
                        }
                        path[depth++] = k;
                        if (v[k].ppid == root) {
                                verdict = INSIDE;
                                break;
                        }
                        long p = find_pid(v, n, v[k].ppid);
                        if (p < 0 || depth > n) {
                                verdict = OUTSIDE;
                                break;
                        }
                        k = (size_t)p;
                }
                while (depth > 0)
                        v[path[--depth]].state = verdict;
        }
        /* Process groups first: kill(-pgrp) signals every member at once, and the kernel
         * orders it against fork (a child forked meanwhile is either in the group and
         * killed, or never created), so a fork bomb in one group dies in one call instead
         * of outrunning a /proc scan that shares the sandbox's CPU quota with it. A group
         * seen on a process of the subtree was made inside it (each job has its own
         * session), so only the subtree is hit; init's and the reaper's groups never are. */
        pid_t own = getpgrp(), root_pgrp = getpgid(root);
        for (size_t i = 0; i < n; i++) {
                pid_t g = v[i].pgrp;
                if (v[i].state != INSIDE || !v[i].live || g <= 1 || g == own || g == root_pgrp)
                        continue;
                bool done = false;
                for (size_t j = 0; j < i && !done; j++)
                        done = v[j].state == INSIDE && v[j].live && v[j].pgrp == g;
                if (!done)
                        kill(-g, SIGKILL);
        }
        for (size_t i = 0; i < n; i++)
                if (v[i].state == INSIDE && v[i].live) {
                        kill(v[i].pid, SIGKILL);
                        killed++;
                }
        free(path);
        free(v);
        return killed;
}

void tree_kill(pid_t root)
{
        /* Descendants first: once root is dead its orphans would move to init and out of
         * reach. A killed process cannot fork any more (a pending SIGKILL stops fork), so
         * each round only finds children forked before the previous one. */
        for (int round = 0; round < KILL_ROUNDS; round++) {
                if (kill_descendants(root) == 0)
                        break;
                /* Let the killed ones die, or the next scan sees them running again. */
                struct timespec ts = { 0, 200000 };
                nanosleep(&ts, NULL);
        }
        kill(root, SIGKILL);
}
