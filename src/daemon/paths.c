/* paths.c - string checks on client-given sandbox paths; see paths.h. */
#include "paths.h"

#include <errno.h>
#include <string.h>

int paths_check(const char *p)
{
        if (!p || p[0] != '/')
                return -EINVAL;
        if (strlen(p) > PATHS_MAX)
                return -ENAMETOOLONG;
        return 0;
}

int paths_is_root(const char *p)
{
        return p && p[0] == '/' && strspn(p, "/") == strlen(p);
}

int paths_split(const char *path, char *parent, size_t plen, char *base, size_t blen)
{
        if (paths_check(path) < 0)
                return -EINVAL;
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
                n--;
        if (n <= 1)
                return -EINVAL;
        const char *s = path + n;
        while (s > path && s[-1] != '/')
                s--;
        size_t bl = (size_t)(path + n - s);
        if (bl == 0)
                return -EINVAL;
        if (bl >= blen || bl > PATHS_NAME_MAX)
                return -ENAMETOOLONG;
        memcpy(base, s, bl);
        base[bl] = '\0';
        if (!strcmp(base, ".") || !strcmp(base, ".."))
                return -EINVAL;
        /* The parent without its trailing slashes ("/a//b" -> "/a"), at least "/". */
        size_t pl = (size_t)(s - path);
        while (pl > 1 && path[pl - 1] == '/')
                pl--;
        if (pl + 1 > plen)
                return -ENAMETOOLONG;
        memcpy(parent, path, pl);
        parent[pl] = '\0';
        return 0;
}
