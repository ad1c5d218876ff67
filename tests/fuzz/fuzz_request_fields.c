/* Fuzz the parsers that read client-controlled request fields: quantities (cpus, memory,
 * disk), base64 file contents, and the UTF-8 sanitiser applied to command output. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "b64.h"
#include "quantity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        uint64_t v;
        char buf[64];
        if (qty_parse_cpus(s, &v) == 0)
                qty_format_cpus(v, buf, sizeof(buf));
        if (qty_parse_bytes(s, &v) == 0)
                qty_format_bytes(v, buf, sizeof(buf));
        uint8_t *dec = malloc(size / 4 * 3 + 4);
        size_t n;
        if (dec && b64_decode(s, size, dec, &n) == 0) {
                /* Round trip: what decodes re-encodes to something that decodes the same. */
                char *enc = malloc(b64_encoded_size(n));
                uint8_t *dec2 = malloc(n + 4);
                size_t n2;
                if (enc && dec2) {
                        b64_encode(dec, n, enc);
                        if (b64_decode(enc, strlen(enc), dec2, &n2) != 0 || n2 != n ||
                            memcmp(dec, dec2, n) != 0)
                                abort();
                }
                free(enc);
                free(dec2);
        }
        free(dec);
        char *u = utf8_sanitize(data, size, &n);
        if (u && strlen(u) > n)
                abort();
        /* What the validator accepts whole, the sanitiser must leave unchanged. */
        bool tail;
        size_t ok = utf8_valid_prefix(data, size, &tail);
        if (ok > size || (tail && ok == size))
                abort();
        if (u && ok == size && (n != size || memcmp(u, data, size) != 0))
                abort();
        free(u);
        free(s);
        return 0;
}
