/* jsonw: what it writes is JSON that jansson reads back to the same
 * string (valid UTF-8 in), ASCII only, with no <, > or & left; bytes that
 * are not UTF-8 come back as U+FFFD and never break the document. Fixed
 * cases, then 20,000 random strings (seeded: a failure repeats). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "testlib.h"

/* S written as the value of {"v": ...}, read back by jansson: the string,
 * or NULL when the document did not parse. Checks the text's shape. */
static char *round_trip(const char *s)
{
    struct jsonw w = {0};
    jsonw_lit(&w, "{\"v\":");
    jsonw_str(&w, s);
    jsonw_raw(&w, "}", 1);
    char *text = jsonw_finish(&w);
    CHECK(text != NULL);
    if (text == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p >= 0x7f || *p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
            CHECK(!"written text is ASCII, printable, inert");
            break;
        }
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    free(text);
    if (j == NULL)
        return NULL;
    const char *v = json_string_value(json_object_get(j, "v"));
    char *out = v ? strdup(v) : NULL;
    json_decref(j);
    return out;
}

static void same(const char *s)
{
    char *back = round_trip(s);
    CHECK(back != NULL && strcmp(back, s) == 0);
    free(back);
}

/* Random bytes: from a small alphabet of the characters that matter,
 * UTF-8 sequences of every length, and arbitrary bytes. */
static size_t random_string(unsigned char *buf, size_t max, unsigned *seed)
{
    static const char *const pieces[] = {"\"", "\\", "<", ">", "&", "\n", "\t", "\r", "\b",
                                         "\x01", "\x1f", "\x7f", "a", "/", "é", "€", "😀",
                                         "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
                                         "\xe2\x82", "\xff", "\x80"};
    size_t n = 0, np = sizeof pieces / sizeof pieces[0];
    size_t want = (size_t)rand_r(seed) % 24;
    for (size_t k = 0; k < want; k++) {
        const char *p = pieces[(size_t)rand_r(seed) % np];
        unsigned char raw[2] = {(unsigned char)(1 + rand_r(seed) % 255), 0};
        if (rand_r(seed) % 4 == 0)
            p = (const char *)raw;
        size_t l = strlen(p);
        if (n + l >= max)
            break;
        memcpy(buf + n, p, l);
        n += l;
    }
    buf[n] = '\0';
    return n;
}

static int utf8_valid(const unsigned char *s)
{
    json_t *j = json_string((const char *)s); /* jansson checks UTF-8 */
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

int main(void)
{
    same("");
    same("plain text 123");
    same("<script>alert(1)</script> & co");
    same("quote \" backslash \\ slash / tab \t newline \n cr \r bell \a nul-free \x1f");
    same("accents é, euro €, emoji 😀, CJK 漢字");

    /* not UTF-8: replaced, the document intact */
    char *b = round_trip("a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d");
    CHECK(b != NULL && strcmp(b, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d") == 0);
    free(b);
    b = round_trip("truncated \xe2\x82");
    CHECK(b != NULL && strncmp(b, "truncated \xef\xbf\xbd", 13) == 0);
    free(b);

    /* null, and what jsonw_finish returns for nothing written */
    struct jsonw w = {0};
    jsonw_str(&w, NULL);
    char *t = jsonw_finish(&w);
    CHECK(t != NULL && strcmp(t, "null") == 0);
    free(t);
    t = jsonw_finish(&w);
    CHECK(t != NULL && t[0] == '\0');
    free(t);

    unsigned seed = 20261203;
    int valid = 0, invalid = 0;
    for (int i = 0; i < 20000; i++) {
        unsigned char s[256];
        random_string(s, sizeof s, &seed);
        char *back = round_trip((const char *)s);
        CHECK(back != NULL);
        if (back == NULL)
            break;
        if (utf8_valid(s)) {
            valid++;
            if (strcmp(back, (const char *)s) != 0) {
                CHECK(!"a valid UTF-8 string comes back unchanged");
                break;
            }
        } else {
            invalid++;
            CHECK(utf8_valid((const unsigned char *)back));
        }
        free(back);
    }
    printf("random strings: %d valid UTF-8 came back the same, %d invalid came back valid\n",
           valid, invalid);
    CHECK(valid > 1000 && invalid > 1000);
    return testlib_done();
}
