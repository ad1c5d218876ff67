/* Fuzz the secretbox parsers of untrusted bytes: master-key text (from the environment or a
 * file) and sealed rows (from a database file someone may have edited). Key parsing never
 * overflows and a parsed key round-trips through hex; opening arbitrary bytes under a fixed
 * key never succeeds (forging a GCM tag is out of a fuzzer's reach) and never leaves
 * plaintext in the output buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretbox.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t key[SECRETBOX_KEY_LEN], again[SECRETBOX_KEY_LEN];
        char hex[2 * SECRETBOX_KEY_LEN + 1];

        if (secretbox_key_parse((const char *)data, size, key) == 0) {
                util_hex(key, sizeof(key), hex);
                if (secretbox_key_parse(hex, strlen(hex), again) != 0 ||
                    memcmp(key, again, sizeof(key)) != 0)
                        abort();
        }
        /* The input as nonce + associated data length + associated data + ciphertext. */
        if (size < SECRETBOX_NONCE_LEN + 1)
                return 0;
        memset(key, 0x42, sizeof(key));
        const uint8_t *nonce = data;
        size_t ad_len = data[SECRETBOX_NONCE_LEN];
        const uint8_t *rest = data + SECRETBOX_NONCE_LEN + 1;
        size_t rest_len = size - SECRETBOX_NONCE_LEN - 1;
        if (ad_len > rest_len)
                ad_len = rest_len;
        const uint8_t *ct = rest + ad_len;
        size_t ct_len = rest_len - ad_len;
        uint8_t *out = malloc(ct_len + 1);
        if (!out)
                return 0;
        memset(out, 0, ct_len + 1);
        int r = secretbox_open(key, nonce, rest, ad_len, ct, ct_len, out);
        if (r == 0)
                abort();
        for (size_t i = 0; i < ct_len; i++)
                if (out[i])
                        abort();
        free(out);
        return 0;
}
