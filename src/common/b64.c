/* b64.c - strict base64 encoding and decoding; see b64.h. */
#include "b64.h"

#include <errno.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encoded_size(size_t len)
{
        return (len + 2) / 3 * 4 + 1;
}

size_t b64_encode(const uint8_t *in, size_t len, char *out)
{
        size_t o = 0, i = 0;

        for (; i + 2 < len; i += 3) {
                uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
                out[o++] = alphabet[(v >> 18) & 63];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = alphabet[(v >> 6) & 63];
                out[o++] = alphabet[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t)in[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)in[i + 1] << 8;
                out[o++] = alphabet[(v >> 18) & 63];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
                out[o++] = '=';
        }
        out[o] = '\0';
        return o;
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
