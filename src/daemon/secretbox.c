/* secretbox.c - AES-256-GCM sealing and opening of small values; see secretbox.h. */
#include "secretbox.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#include "b64.h"
#include "util.h"

/* The HMAC label for key identifiers: versioned so a later scheme gets other ids. */
static const char key_id_label[] = "warren secretbox key id v1";

static inline void cipher_ctx_freep(EVP_CIPHER_CTX **p)
{
        EVP_CIPHER_CTX_free(*p); /* accepts NULL */
}
#define cleanup_cipher_ctx __attribute__((cleanup(cipher_ctx_freep)))

int secretbox_seal(const uint8_t key[SECRETBOX_KEY_LEN], const void *ad, size_t ad_len,
                   const void *pt, size_t pt_len, uint8_t ret_nonce[SECRETBOX_NONCE_LEN],
                   uint8_t *out)
{
        cleanup_cipher_ctx EVP_CIPHER_CTX *ctx = NULL;
        uint8_t nonce[SECRETBOX_NONCE_LEN];
        int n = 0, fin = 0;

        if (!key || !out || (pt_len && !pt) || (ad_len && !ad))
                return -EINVAL;
        if (pt_len > SECRETBOX_MAX_LEN || ad_len > SECRETBOX_MAX_LEN)
                return -EMSGSIZE;
        if (RAND_bytes(nonce, sizeof(nonce)) != 1)
                return -EIO;
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SECRETBOX_NONCE_LEN, NULL) != 1 ||
            EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
                return -EIO;
        if (ad_len && EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)ad_len) != 1)
                return -EIO;
        n = 0;
        if (pt_len && EVP_EncryptUpdate(ctx, out, &n, pt, (int)pt_len) != 1)
                return -EIO;
        if (EVP_EncryptFinal_ex(ctx, out + n, &fin) != 1 || (size_t)(n + fin) != pt_len ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SECRETBOX_TAG_LEN, out + pt_len) != 1)
                return -EIO;
        memcpy(ret_nonce, nonce, sizeof(nonce));
        return 0;
}

int secretbox_open(const uint8_t key[SECRETBOX_KEY_LEN],
                   const uint8_t nonce[SECRETBOX_NONCE_LEN], const void *ad, size_t ad_len,
                   const uint8_t *ct, size_t ct_len, uint8_t *out)
{
        cleanup_cipher_ctx EVP_CIPHER_CTX *ctx = NULL;
        uint8_t tag[SECRETBOX_TAG_LEN];
        int n = 0, fin = 0;

        if (!key || !nonce || !ct || (ad_len && !ad))
                return -EINVAL;
        if (ct_len < SECRETBOX_TAG_LEN)
                return -EBADMSG;
        size_t pt_len = ct_len - SECRETBOX_TAG_LEN;
        if (pt_len > SECRETBOX_MAX_LEN || ad_len > SECRETBOX_MAX_LEN)
                return -EMSGSIZE;
        if (pt_len && !out)
                return -EINVAL;
        memcpy(tag, ct + pt_len, sizeof(tag));
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SECRETBOX_NONCE_LEN, NULL) != 1 ||
            EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
                return -EIO;
        if (ad_len && EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)ad_len) != 1)
                return -EIO;
        n = 0;
        if (pt_len && EVP_DecryptUpdate(ctx, out, &n, ct, (int)pt_len) != 1) {
                OPENSSL_cleanse(out, pt_len);
                return -EIO;
        }
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SECRETBOX_TAG_LEN, tag) != 1) {
                if (pt_len)
                        OPENSSL_cleanse(out, pt_len);
                return -EIO;
        }
        /* The tag is checked here, after the bytes were written: on failure they are
         * unauthenticated and must not be used, so they are wiped. */
        if (EVP_DecryptFinal_ex(ctx, pt_len ? out + n : tag, &fin) != 1 ||
            (size_t)(n + fin) != pt_len) {
                if (pt_len)
                        OPENSSL_cleanse(out, pt_len);
                return -EBADMSG;
        }
        return 0;
}

int secretbox_key_id(const uint8_t key[SECRETBOX_KEY_LEN], uint8_t ret_id[SECRETBOX_KEY_ID_LEN])
{
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;

        if (!HMAC(EVP_sha256(), key, SECRETBOX_KEY_LEN, (const unsigned char *)key_id_label,
                  sizeof(key_id_label) - 1, mac, &mac_len) ||
            mac_len < SECRETBOX_KEY_ID_LEN)
                return -EIO;
        memcpy(ret_id, mac, SECRETBOX_KEY_ID_LEN);
        return 0;
}

/* Value of a hex digit, or -1. */
static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int secretbox_key_parse(const char *text, size_t len, uint8_t ret_key[SECRETBOX_KEY_LEN])
{
        uint8_t key[SECRETBOX_KEY_LEN];
        /* base64 of 32 bytes is 44 characters: room for that, decoded, plus b64's slack. */
        uint8_t dec[64];
        size_t dec_len = 0;
        int r = -EINVAL;

        if (!text)
                return -EINVAL;
        while (len && is_space(*text))
                text++, len--;
        while (len && is_space(text[len - 1]))
                len--;
        if (len == 2 * SECRETBOX_KEY_LEN) {
                size_t i;
                for (i = 0; i < SECRETBOX_KEY_LEN; i++) {
                        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
                        if (hi < 0 || lo < 0)
                                break;
                        key[i] = (uint8_t)(hi << 4 | lo);
                }
                if (i == SECRETBOX_KEY_LEN)
                        r = 0;
        } else if ((len == 43 || len == 44) && !memchr(text, ' ', len) &&
                   !memchr(text, '\n', len) && !memchr(text, '\t', len) &&
                   !memchr(text, '\r', len)) {
                if (b64_decode(text, len, dec, &dec_len) == 0 && dec_len == SECRETBOX_KEY_LEN) {
                        memcpy(key, dec, SECRETBOX_KEY_LEN);
                        r = 0;
                }
        }
        if (r == 0)
                memcpy(ret_key, key, SECRETBOX_KEY_LEN);
        OPENSSL_cleanse(key, sizeof(key));
        OPENSSL_cleanse(dec, sizeof(dec));
        return r;
}

int secretbox_key_generate(uint8_t ret_key[SECRETBOX_KEY_LEN])
{
        uint8_t key[SECRETBOX_KEY_LEN];

        if (RAND_priv_bytes(key, sizeof(key)) != 1)
                return -EIO;
        memcpy(ret_key, key, sizeof(key));
        OPENSSL_cleanse(key, sizeof(key));
        return 0;
}

int secretbox_memcmp(const void *a, const void *b, size_t n)
{
        return CRYPTO_memcmp(a, b, n);
}

void secretbox_wipe(void *p, size_t n)
{
        if (p && n)
                OPENSSL_cleanse(p, n);
}
