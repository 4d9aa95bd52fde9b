/*
 * loinc: LOINC code shape and mod 10 check digit (contract in loinc.h).
 *
 * Written by hand: no Debian library validates LOINC codes, and the rule
 * is the ten lines below.
 */
#include "loinc.h"

#include <stddef.h>

#define LOINC_DIGITS_MAX 7 /* LOINC numbers have passed 100000; 7 leaves room */

int loinc_check_digit(const char *digits, int n)
{
    if (n <= 0)
        return -1;
    int sum = 0;
    /* From the rightmost digit: the 1st, 3rd, ... are doubled and their
     * digits added (Luhn). */
    for (int i = 0; i < n; i++) {
        char ch = digits[n - 1 - i];
        if (ch < '0' || ch > '9')
            return -1;
        int d = ch - '0';
        if (i % 2 == 0) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return (10 - sum % 10) % 10;
}

enum loinc_shape loinc_check(const char *code)
{
    if (code == NULL)
        return LOINC_NOT_A_CODE;
    int n = 0;
    while (code[n] >= '0' && code[n] <= '9')
        n++;
    if (n == 0 || n > LOINC_DIGITS_MAX || code[n] != '-')
        return LOINC_NOT_A_CODE;
    char check = code[n + 1];
    if (check < '0' || check > '9' || code[n + 2] != '\0')
        return LOINC_NOT_A_CODE;
    return loinc_check_digit(code, n) == check - '0' ? LOINC_WELL_FORMED : LOINC_BAD_CHECK_DIGIT;
}
