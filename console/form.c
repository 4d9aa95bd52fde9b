#include "form.h"

#include <string.h>

#include "reqparse.h"

/* Decodes [S, S+N) into OUT (control characters kept: an SMS body may
 * hold a line break). Returns the length or -2. */
static long decode(const char *s, size_t n, char *out, size_t outsz)
{
    long r = reqparse_urldecode(s, n, out, outsz, true);
    return r < 0 ? -2 : r;
}

long form_field(const char *body, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    size_t pos = 0;
    if (outsz == 0)
        return -2;
    while (pos <= len) {
        size_t end = pos;
        while (end < len && body[end] != '&')
            end++;
        size_t eq = pos;
        while (eq < end && body[eq] != '=')
            eq++;
        if (eq - pos == nl && memcmp(body + pos, name, nl) == 0) {
            if (eq == end) {
                out[0] = '\0';
                return 0;
            }
            return decode(body + eq + 1, end - eq - 1, out, outsz);
        }
        pos = end + 1;
    }
    return -1;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool form_sms_ack(const char *text, char *code, size_t codesz)
{
    const char *p = text;
    while (blank(*p))
        p++;
    if (!((p[0] == 'A' || p[0] == 'a') && (p[1] == 'C' || p[1] == 'c') &&
          (p[2] == 'K' || p[2] == 'k')))
        return false;
    p += 3;
    if (!blank(*p))
        return false;
    while (blank(*p))
        p++;
    size_t n = 0;
    while (p[n] >= '0' && p[n] <= '9')
        n++;
    if (n < 4 || n > 8 || n + 1 > codesz)
        return false;
    const char *q = p + n;
    while (blank(*q))
        q++;
    if (*q != '\0')
        return false;
    memcpy(code, p, n);
    code[n] = '\0';
    return true;
}

bool form_e164(const char *s)
{
    if (s[0] != '+' || s[1] < '1' || s[1] > '9')
        return false;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++, n++)
        if (*p < '0' || *p > '9')
            return false;
    return n >= 2 && n <= 15;
}
