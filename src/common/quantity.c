/* quantity.c - resource quantity parsing ("500m", "2Gi"); see quantity.h. */
#include "quantity.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Parse "123" or "123.456" (at most 3 fractional digits) into thousandths.
 * *end gets the first character after the number. */
static int parse_milli(const char *s, uint64_t *ret, const char **end)
{
        uint64_t whole = 0, frac = 0;
        int ndigits = 0, nfrac = 0;
        const char *p = s;

        while (isdigit((unsigned char)*p)) {
                if (whole > (UINT64_MAX / 1000 - 9) / 10)
                        return -ERANGE;
                whole = whole * 10 + (uint64_t)(*p - '0');
                p++;
                ndigits++;
        }
        if (*p == '.') {
                p++;
                while (isdigit((unsigned char)*p)) {
                        if (nfrac == 3)
                                return -EINVAL;
                        frac = frac * 10 + (uint64_t)(*p - '0');
                        p++;
                        nfrac++;
                }
                if (nfrac == 0)
                        return -EINVAL;
        }
        if (ndigits == 0)
                return -EINVAL;
        while (nfrac < 3) {
                frac *= 10;
                nfrac++;
        }
        *ret = whole * 1000 + frac;
        *end = p;
        return 0;
}

int qty_parse_cpus(const char *s, uint64_t *ret_millis)
{
        const char *end;
        uint64_t milli;
        int r;

        if (!s || !*s)
                return -EINVAL;
        r = parse_milli(s, &milli, &end);
        if (r < 0)
                return r;
        if (*end == 'm' && end[1] == '\0') {
                /* "500m" is already in millicpus: undo the x1000 of parse_milli. */
                if (milli % 1000 != 0)
                        return -EINVAL;
                *ret_millis = milli / 1000;
                return 0;
        }
        if (*end != '\0')
                return -EINVAL;
        *ret_millis = milli;
        return 0;
}

int qty_parse_bytes(const char *s, uint64_t *ret_bytes)
{
        static const struct {
                const char *suffix;
                uint64_t mult;
        } units[] = {
                { "Ki", 1ULL << 10 }, { "Mi", 1ULL << 20 }, { "Gi", 1ULL << 30 },
                { "Ti", 1ULL << 40 }, { "Pi", 1ULL << 50 }, { "Ei", 1ULL << 60 },
                { "k", 1000ULL },     { "K", 1000ULL },     { "M", 1000000ULL },
                { "G", 1000000000ULL }, { "T", 1000000000000ULL },
                { "P", 1000000000000000ULL }, { "E", 1000000000000000000ULL },
                { "", 1 },
        };
        const char *end;
        uint64_t milli;
        int r;

        if (!s || !*s)
                return -EINVAL;
        r = parse_milli(s, &milli, &end);
        if (r < 0)
                return r;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (strcmp(end, units[i].suffix) != 0)
                        continue;
                /* bytes = milli * mult / 1000, computed without overflow. */
                unsigned __int128 v = (unsigned __int128)milli * units[i].mult / 1000;
                if (v > UINT64_MAX)
                        return -ERANGE;
                if (((unsigned __int128)milli * units[i].mult) % 1000 != 0)
                        return -EINVAL; /* fractional bytes */
                *ret_bytes = (uint64_t)v;
                return 0;
        }
        return -EINVAL;
}

void qty_format_cpus(uint64_t millis, char *buf, size_t len)
{
        if (millis % 1000 == 0)
                snprintf(buf, len, "%llu", (unsigned long long)(millis / 1000));
        else
                snprintf(buf, len, "%llum", (unsigned long long)millis);
}

void qty_format_bytes(uint64_t bytes, char *buf, size_t len)
{
        static const char *suffix[] = { "Ei", "Pi", "Ti", "Gi", "Mi", "Ki" };
        static const int shift[] = { 60, 50, 40, 30, 20, 10 };

        for (size_t i = 0; i < 6; i++) {
                uint64_t unit = 1ULL << shift[i];
                if (bytes >= unit && bytes % unit == 0) {
                        snprintf(buf, len, "%llu%s", (unsigned long long)(bytes / unit), suffix[i]);
                        return;
                }
        }
        snprintf(buf, len, "%llu", (unsigned long long)bytes);
}
