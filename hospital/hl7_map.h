/*
 * hl7_map: one HL7 v2 ORU^R01 message -> the observations vigil forwards,
 * and the acknowledgement it deserves (hl7_ack.h writes it).
 *
 * Header checks (a failure rejects the whole message, AR):
 *   MSH-9    ORU^R01 (HL7 table 0357 code 200/201 otherwise)
 *   MSH-12   2.3, 2.3.1, 2.4, 2.5 or 2.5.1 (203)
 *   MSH-11   one of the accepted processing ids, P by default (202)
 *   MSH-4, MSH-10   present (101)
 *
 * Patients. Each PID starts a patient; its OBX follow. The patient is the
 * first PID-3 repetition whose CX-1 (and CX-4, when the enrolment names an
 * authority) is enrolled for the facility MSH-4 (hl7_enrol.h). A message
 * with no enrolled patient is accepted (AA) and nothing of it is read
 * further or forwarded: the hospital's feed carries every patient and only
 * trial subjects are vigil's business.
 *
 * Each OBX of an enrolled patient (OBX inside a SPM specimen group describe
 * the specimen and are skipped):
 *   OBX-3   LOINC when the coding system (component 3, or 6 for the
 *           alternate code) is LN; otherwise the facility's local code
 *           table (hl7_facility.h). A code in neither is skipped and
 *           counted ("unmapped_code"): a hospital's panels hold many tests a
 *           study does not follow. A malformed LN code is an error.
 *   OBX-11  F -> final, C -> corrected, A -> amended, U -> final,
 *           X -> cancelled, D and W -> entered-in-error; P, R, S, I, O, N
 *           (not final) are skipped and counted ("not_final"): the
 *           observation schema has no preliminary status and a preliminary
 *           result must not reach the rules. Anything else is an error.
 *   OBX-2/5 NM: a decimal number. SN: comparator^number, or a range
 *           ^low^-^high (forwarded as its midpoint); ratios (^1^:^128) and
 *           categories (^2^+) carry no number. ST/TX/FT: a number or a
 *           censored number ("<0.5", ">= 60") is read as NM/SN would; other
 *           text carries no number. Coded (CE, CWE, CNE, ...) and every other
 *           type carry no number. A result without a number is forwarded
 *           with value null: stored, shown, never analysed (text and codes
 *           never travel: they may hold anything, patient names included).
 *           Censored values ("<0.5", SN "<^0.5"): vigil.Observation has no
 *           comparator field, so the value forwarded is the bound moved by
 *           one unit in the last place to the censored side (<0.5 becomes
 *           the largest double below 0.5; >2000 the smallest above 2000).
 *           Every threshold comparison the result decides then comes out
 *           right: "<0.5" is below 0.5 and below 1.0, so a neutrophil
 *           rule "< 0.5" fires; one it cannot decide ("<0.5" against 0.3)
 *           is answered as if the value sat at its bound.
 *   OBX-6   component 1 (else 2), through the facility's unit spellings;
 *           the entry's default unit when empty. At most OBS_UNIT_MAX bytes.
 *   OBX-7   "3.5-5.1", "3.5 - 5.1", "-2-3", ">60", ">=60", "<5", "<=5";
 *           anything else gives no range (counted, not an error).
 *   OBX-14  the effective time, else OBR-7; in the facility's time zone
 *           when it has no offset (hl7_time.h). Required.
 *   issued  OBR-22, else OBX-19, else MSH-7 (0 when none parses).
 *   id      "h7-" + 40 hex digits of SHA-256 over MSH-4, the order (OBR-3,
 *           else ORC-3, else OBR-2, else ORC-2, else the patient, OBR-4 and
 *           OBR-7), OBX-3 code and system as sent and OBX-4: a resend, and a
 *           correction of the same result, give the same id. Two OBX of one
 *           order with the same code and no sub-id are told apart by their
 *           rank among those OBX.
 *
 * The outcome: AR for a header failure; AE when any OBX of an enrolled
 * patient had an error, or when no OBX was usable (every one unmapped or in
 * error); AA otherwise. Observations that did map are forwarded also with AE
 * (a resend after the facility mapping is fixed gives the same ids, so
 * nothing doubles), so one bad OBX never holds back a critical potassium.
 * Error texts name segments, fields and codes, never values.
 *
 * Thread-safety: a struct hl7_mapped is one thread's; hl7_map_message reads
 * the message, facilities and enrolment, all of which may be shared.
 */
#ifndef VIGIL_HL7_MAP_H
#define VIGIL_HL7_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl7.h"
#include "hl7_enrol.h"
#include "hl7_facility.h"
#include "observation.h"

#define HL7_MAX_ERRORS 16
#define HL7_MAX_OBX 2000
#define HL7_FACILITY_MAX 64

enum hl7_ack_code { HL7_AA = 0, HL7_AE, HL7_AR };

/* Returns "AA", "AE" or "AR". */
const char *hl7_ack_code_name(enum hl7_ack_code c);

/* One ERR segment. */
struct hl7_error {
    char segment[4]; /* ERR-2.1: "OBX" ("" when the message as a whole) */
    int seq;         /* ERR-2.2: which of those segments, from 1 */
    int field;       /* ERR-2.3 (0: the whole segment) */
    int comp;        /* ERR-2.5 (0: the whole field) */
    int code;        /* ERR-3: HL7 table 0357 (101 required field missing,
                      * 102 data type error, 103 table value not found,
                      * 200-203 unsupported type/event/processing id/version,
                      * 207 application internal error) */
    char cls[32];    /* stable class for metrics and dead-letter headers */
    char text[200];  /* ERR-8: what is wrong, no patient data */
};

struct hl7_map_options {
    const char *processing_ids; /* accepted MSH-11 values, e.g. "P" or "PT" */
};

struct hl7_mapped {
    enum hl7_ack_code ack;
    bool enrolled;            /* at least one PID was an enrolled patient */
    char facility[HL7_FACILITY_MAX + 1]; /* MSH-4.1 ("" if absent) */
    char study_id[OBS_ID_MAX + 1];       /* of the first enrolled patient */
    char subject_id[OBS_ID_MAX + 1];     /* pseudonym; mask before logging */
    struct observation *obs;  /* n_obs forwarded observations */
    size_t n_obs, cap_obs;
    struct hl7_error err[HL7_MAX_ERRORS];
    int n_err;
    int errors_dropped;       /* errors beyond HL7_MAX_ERRORS */
    unsigned obx_total;       /* OBX of enrolled patients */
    unsigned skipped_unmapped, skipped_not_final, skipped_specimen;
    unsigned no_value, ref_unparsed;
    /* private to hl7_map.c: per-order counts of OBX-3 codes */
    struct hl7_rank {
        uint64_t h;
        int n;
    } *ranks;
    size_t n_ranks, cap_ranks;
};

/* Returns an empty result, or NULL when out of memory. */
struct hl7_mapped *hl7_mapped_new(void);

/* Frees R. NULL is a no-op. */
void hl7_mapped_destroy(struct hl7_mapped *r);

/* Maps parsed message M into R (reset first) under facility mapping FAC
 * and enrolment EN. Returns R->ack. Fails only when out of memory, which
 * reads as AE with code 207. */
enum hl7_ack_code hl7_map_message(const struct hl7_msg *m, const struct hl7_facilities *fac,
                                  const struct hl7_enrol *en, const struct hl7_map_options *opt,
                                  struct hl7_mapped *r);

/* Parses an HL7 number ("4.5", "-0.25", "+3", ".5"; blanks around allowed;
 * no exponent). Returns 0 with *OUT, or -1. */
int hl7_number(const char *s, double *out);

#endif
