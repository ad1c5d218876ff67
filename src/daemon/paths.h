/* paths.h - checks and splitting of sandbox paths given by clients. These are string checks
 * only: the kernel resolves every path inside the sandbox's root (openat2 RESOLVE_IN_ROOT),
 * so nothing here is a security boundary; it gives clear 400s and the (parent, name) pairs
 * that the *at() calls need. */
#ifndef WARREN_PATHS_H
#define WARREN_PATHS_H

#include <stddef.h>

#define PATHS_MAX 4096
#define PATHS_NAME_MAX 255

/* Whether p is acceptable as a sandbox path: absolute, at most PATHS_MAX bytes. */
int paths_check(const char *p);

/* Split an absolute path into its parent directory and last component, ignoring trailing
 * slashes. The last component may not be empty, "." or ".." (-EINVAL): "/" has none.
 * parent gets at least "/". -ENAMETOOLONG if a buffer is too small or the name is longer
 * than PATHS_NAME_MAX. */
int paths_split(const char *path, char *parent, size_t plen, char *base, size_t blen);

/* Whether the path names the root ("/", "//", ...). */
int paths_is_root(const char *p);

#endif
