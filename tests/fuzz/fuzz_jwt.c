/* Fuzz the JWT verifier and the credential parsers (Authorization header, bare tokens,
 * cookies), with properties: a token that verifies has an integer exp in the future and
 * re-verifies after re-signing its claims; strict base64url decodes only canonical text
 * (decode then encode gives the input back); parsed credentials lie inside the input and
 * contain no blanks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jwt.h"

/* The token seeds in corpus/jwt are signed with this key (or, on purpose, another). */
static const uint8_t key[] = "fuzz-jwt-secret-fuzz-jwt-secret-fuzz";
#define KEY_LEN 36
static const int64_t now = 1800000000;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        /* The verifier over the raw bytes (not NUL-terminated: the heap copy below is). */
        json_t *claims = NULL;
        if (jwt_verify((const char *)data, size, key, KEY_LEN, now, &claims) == 0) {
                json_t *exp = json_object_get(claims, "exp");
                if (!json_is_integer(exp) || json_integer_value(exp) <= now)
                        abort();
                char *again = NULL;
                json_t *c2 = NULL;
                if (jwt_sign(key, KEY_LEN, claims, &again) != 0 ||
                    jwt_verify(again, strlen(again), key, KEY_LEN, now, &c2) != 0 ||
                    !json_equal(claims, c2))
                        abort();
                json_decref(c2);
                free(again);
                json_decref(claims);
        }

        /* Canonical base64url: what decodes re-encodes to exactly the input. */
        uint8_t *dec = malloc(size / 4 * 3 + 3);
        size_t n;
        if (dec && jwt_b64url_decode(s, size, dec, size / 4 * 3 + 3, &n) == 0) {
                char *enc = malloc(size + 2);
                if (enc) {
                        if (jwt_b64url_encode(dec, n, enc, size + 2) != (int)size ||
                            memcmp(enc, s, size) != 0)
                                abort();
                        free(enc);
                }
        }
        free(dec);

        /* The Authorization header parser. */
        struct auth_cred c;
        if (auth_parse_header(s, &c) == 0) {
                if (c.text < s || c.text + c.len > s + size || c.len == 0 ||
                    c.len > AUTH_CRED_MAX || c.kind != auth_classify(c.text, c.len))
                        abort();
                for (size_t i = 0; i < c.len; i++)
                        if ((unsigned char)c.text[i] <= ' ' || (unsigned char)c.text[i] > '~')
                                abort();
                if (c.kind == CRED_JWT &&
                    jwt_verify(c.text, c.len, key, KEY_LEN, now, &claims) == 0)
                        json_decref(claims);
        }
        if (auth_parse_token(s, size, &c) == 0 && (c.text != s || c.len != size))
                abort();

        /* The cookie parser. */
        const char *v;
        size_t vl;
        if (auth_cookie_find(s, AUTH_COOKIE_NAME, &v, &vl) == 0 &&
            (v < s || v + vl > s + size))
                abort();
        free(s);
        return 0;
}
