/* b64.c - strict base64 encoding and decoding; see b64.h. */
#include "b64.h"

#include <errno.h>
#include <stdbool.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64_encoded_size(size_t len)
{
        return (len + 2) / 3 * 4 + 1;
}

/* Encode with an alphabet; pad with '=' to a multiple of 4 or not at all. */
static size_t encode(const uint8_t *in, size_t len, char *out, const char *abc, bool pad)
{
        size_t o = 0, i = 0;

        for (; i + 2 < len; i += 3) {
                uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
                out[o++] = abc[(v >> 18) & 63];
                out[o++] = abc[(v >> 12) & 63];
                out[o++] = abc[(v >> 6) & 63];
                out[o++] = abc[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t)in[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)in[i + 1] << 8;
                out[o++] = abc[(v >> 18) & 63];
                out[o++] = abc[(v >> 12) & 63];
                if (i + 1 < len)
                        out[o++] = abc[(v >> 6) & 63];
                else if (pad)
                        out[o++] = '=';
                if (pad)
                        out[o++] = '=';
        }
        out[o] = '\0';
        return o;
}

size_t b64_encode(const uint8_t *in, size_t len, char *out)
{
        return encode(in, len, out, alphabet, true);
}

size_t b64url_encode(const uint8_t *in, size_t len, char *out)
{
        return encode(in, len, out, url_alphabet, false);
}

/* Value of a base64 character, -1 for others. */
static int b64_value(unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int b64_decode(const char *in, size_t len, uint8_t *out, size_t *ret_len)
{
        uint32_t acc = 0;
        int nbits = 0, npad = 0;
        size_t o = 0, nchars = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)in[i];
                if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
                        continue;
                if (c == '=') {
                        npad++;
                        nchars++;
                        continue;
                }
                if (npad > 0)
                        return -EINVAL; /* data after padding */
                int v = b64_value(c);
                if (v < 0)
                        return -EINVAL;
                nchars++;
                acc = (acc << 6) | (uint32_t)v;
                nbits += 6;
                if (nbits >= 8) {
                        nbits -= 8;
                        out[o++] = (uint8_t)(acc >> nbits);
                        acc &= (1u << nbits) - 1;
                }
        }
        if (npad > 2)
                return -EINVAL;
        if (npad > 0 && nchars % 4 != 0)
                return -EINVAL;
        /* 1 leftover character (6 bits) can never be valid; leftover bits must be zero. */
        if (nbits >= 6 || acc != 0)
                return -EINVAL;
        *ret_len = o;
        return 0;
}
