/* Fuzz client path splitting: never overflow, and a split path's pieces recombine to a path
 * that splits the same way. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        char parent[PATHS_MAX + 1], base[PATHS_NAME_MAX + 1];
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (paths_split(s, parent, sizeof(parent), base, sizeof(base)) == 0) {
                if (parent[0] != '/' || !base[0] || strchr(base, '/'))
                        abort();
                char again[PATHS_MAX + PATHS_NAME_MAX + 2], p2[PATHS_MAX + 1],
                        b2[PATHS_NAME_MAX + 1];
                snprintf(again, sizeof(again), "%s/%s", strcmp(parent, "/") ? parent : "", base);
                if (paths_split(again, p2, sizeof(p2), b2, sizeof(b2)) != 0 ||
                    strcmp(p2, parent) || strcmp(b2, base))
                        abort();
        }
        (void)paths_is_root(s);
        free(s);
        return 0;
}
