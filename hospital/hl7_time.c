/*
 * hl7_time: HL7 DTM parsing and facility time zones (contract in
 * hl7_time.h). The calendar arithmetic is Howard Hinnant's days_from_civil
 * (public domain), exact for the proleptic Gregorian calendar.
 */
#include "hl7_time.h"

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hl7_tz {
    GTimeZone *tz;
    char name[64];
};

struct hl7_tz *hl7_tz_new(const char *name, char *errstr, size_t errstr_size)
{
    if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof((struct hl7_tz *)0)->name) {
        snprintf(errstr, errstr_size, "time zone name is empty or too long");
        return NULL;
    }
    GTimeZone *g = g_time_zone_new_identifier(name);
    if (g == NULL) {
        snprintf(errstr, errstr_size, "unknown time zone '%s' (an IANA name such as Europe/Berlin)",
                 name);
        return NULL;
    }
    struct hl7_tz *tz = calloc(1, sizeof *tz);
    if (tz == NULL) {
        g_time_zone_unref(g);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    tz->tz = g;
    snprintf(tz->name, sizeof tz->name, "%s", name);
    return tz;
}

void hl7_tz_destroy(struct hl7_tz *tz)
{
    if (tz == NULL)
        return;
    g_time_zone_unref(tz->tz);
    free(tz);
}

const char *hl7_tz_name(const struct hl7_tz *tz)
{
    return tz->name;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads N digits at *P into *OUT; false if they are not all digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int hl7_time_parse(const char *s, const struct hl7_tz *tz, int64_t *out_ms, char *errstr,
                   size_t errstr_size)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0;
    /* Count the leading digits: they fix the precision. */
    size_t nd = 0;
    while (p[nd] >= '0' && p[nd] <= '9')
        nd++;
    if (nd != 4 && nd != 6 && nd != 8 && nd != 10 && nd != 12 && nd != 14) {
        snprintf(errstr, errstr_size,
                 "date/time '%.40s' is not YYYY[MM[DD[HH[MM[SS]]]]] (HL7 DTM)", s);
        return -1;
    }
    digits(&p, 4, &y);
    if (nd >= 6)
        digits(&p, 2, &mo);
    if (nd >= 8)
        digits(&p, 2, &d);
    if (nd >= 10)
        digits(&p, 2, &h);
    if (nd >= 12)
        digits(&p, 2, &mi);
    if (nd >= 14)
        digits(&p, 2, &sec);
    if (*p == '.') {
        if (nd != 14) {
            snprintf(errstr, errstr_size, "date/time '%.40s': fractional seconds without seconds",
                     s);
            return -1;
        }
        p++;
        int n = 0, scale = 1000;
        while (*p >= '0' && *p <= '9' && n < 4) {
            scale /= 10;
            ms += (*p - '0') * scale;
            p++;
            n++;
        }
        if (n == 0) {
            snprintf(errstr, errstr_size, "date/time '%.40s': nothing after the decimal point", s);
            return -1;
        }
    }
    bool has_off = false;
    int off_s = 0;
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (!digits(&p, 2, &oh) || !digits(&p, 2, &om) || oh > 14 || om > 59) {
            snprintf(errstr, errstr_size, "date/time '%.40s': offset is not +/-HHMM", s);
            return -1;
        }
        has_off = true;
        off_s = sign * (oh * 3600 + om * 60);
    }
    if (*p != '\0') {
        snprintf(errstr, errstr_size, "date/time '%.40s': unexpected characters after the time", s);
        return -1;
    }
    if (y < 1800 || mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] + (mo == 2 && leap(y) ? 1 : 0) || h > 23 || mi > 59 || sec > 59) {
        snprintf(errstr, errstr_size, "date/time '%.40s' is not a valid date and time", s);
        return -1;
    }
    int64_t local = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
    int64_t utc;
    if (has_off) {
        utc = local - off_s;
    } else if (tz == NULL) {
        utc = local;
    } else {
        gint64 t = local;
        gint iv = g_time_zone_adjust_time(tz->tz, G_TIME_TYPE_DAYLIGHT, &t);
        utc = t - g_time_zone_get_offset(tz->tz, iv);
    }
    *out_ms = utc * 1000 + ms;
    return 0;
}
