/*
 * loinc: the shape of a LOINC code and its check digit, so that a code a
 * site mistyped is told apart from a real code vigil merely does not know.
 *
 * Interface routines:
 *   loinc_check         well formed, wrong check digit, or not a LOINC code
 *   loinc_check_digit   the check digit of a LOINC number
 *
 * A LOINC code is 1 to 7 digits, '-', and one check digit: the mod 10
 * (Luhn) digit of the number, computed as the LOINC Users' Guide describes
 * (double every other digit from the rightmost, add the digits, the check
 * digit brings the sum to a multiple of 10): 2823-3, 1742-6, 99999-5.
 *
 * Pure functions: thread-safe, allocate nothing.
 */
#ifndef VIGIL_LOINC_H
#define VIGIL_LOINC_H

enum loinc_shape {
    LOINC_WELL_FORMED = 0, /* digits, '-', the right check digit */
    LOINC_BAD_CHECK_DIGIT, /* the shape of a LOINC code, the wrong check digit */
    LOINC_NOT_A_CODE,      /* not the shape of a LOINC code at all */
};

/* Returns the shape of CODE (NUL-terminated; NULL reads as not a code).
 * Cannot fail. */
enum loinc_shape loinc_check(const char *code);

/* Returns the check digit (0-9) of the LOINC number DIGITS (N decimal
 * digits, not NUL-terminated), or -1 if N is 0 or a byte is not a digit. */
int loinc_check_digit(const char *digits, int n);

#endif
