/*
 * proctcae: patient-reported symptoms as vigil carries them -- the items
 * of the NCI's PRO-CTCAE (the patient-reported version of CTCAE) as a code
 * system of vigil's own, so a symptom report travels as ordinary
 * observations (vigil.Observation, no schema change) and is stored,
 * cleaned and judged beside the labs.
 *
 * Interface routines:
 *   proctcae_is_code        the code belongs to this code system
 *   proctcae_find           an item by code
 *   proctcae_item / _count  the item table
 *   proctcae_attribute_name / _parse
 *   proctcae_score_label    "almost constantly" for frequency 4
 *   proctcae_score_parse    the score of a response label
 *
 * The code system (FHIR system PROCTCAE_SYSTEM): one code per item,
 * "PRO-<TERM>-<ATTRIBUTE>", TERM a short name of the symptom (at most 8
 * capitals) and ATTRIBUTE one of FRQ (frequency), SEV (severity), INT
 * (interference with usual or daily activities) or PRS (presence):
 * PRO-NAUSEA-FRQ is "How often did you have nausea?". The item is carried
 * in the observation's code field (called loinc: a code that starts with
 * "PRO-" is never a LOINC code), its score in value, unit "{score}" (a UCUM
 * annotation: a count with no unit), no reference range, and the time the
 * patient answered as effective time.
 *
 * Scores are PRO-CTCAE's: 0-4 in the order of the response choices
 *   frequency     never, rarely, occasionally, frequently, almost constantly
 *   severity      none, mild, moderate, severe, very severe
 *   interference  not at all, a little bit, somewhat, quite a bit, very much
 *   presence      no (0), yes (1)
 *
 * The table holds the terms below with the attributes the PRO-CTCAE item
 * library asks for each; a code of the right shape for a term or attribute
 * not in it is unknown (a data-quality finding, like an unknown LOINC).
 * Amount (hair loss) is not carried.
 *
 * Pure functions over static tables: thread-safe, allocate nothing.
 */
#ifndef VIGIL_PROCTCAE_H
#define VIGIL_PROCTCAE_H

#include <stdbool.h>

#define PROCTCAE_SYSTEM    "https://vigil.example/fhir/CodeSystem/pro-ctcae"
#define PROCTCAE_PREFIX    "PRO-"
#define PROCTCAE_UNIT      "{score}"
#define PROCTCAE_SCORE_MAX 4

enum proctcae_attribute {
    PROCTCAE_FREQUENCY = 0,
    PROCTCAE_SEVERITY,
    PROCTCAE_INTERFERENCE,
    PROCTCAE_PRESENCE,
    PROCTCAE_ATTRIBUTES /* count */
};

struct proctcae_item {
    const char *code; /* "PRO-NAUSEA-FRQ" */
    const char *term; /* "NAUSEA" (the code's middle part) */
    const char *name; /* "Nausea" */
    enum proctcae_attribute attribute;
    int max_score; /* 4, or 1 for presence */
};

/* True if CODE has this code system's prefix ("PRO-"): it is judged by
 * the item table, never as a LOINC code. Cannot fail. */
bool proctcae_is_code(const char *code);

/* Returns the item with CODE, or NULL if there is none. Cannot fail. */
const struct proctcae_item *proctcae_find(const char *code);

/* Returns the number of items in the table. */
int proctcae_item_count(void);

/* Returns item I (0 <= I < proctcae_item_count()). */
const struct proctcae_item *proctcae_item(int i);

/* True if TERM ("NAUSEA") is a term of the table. */
bool proctcae_term_known(const char *term);

/* Returns "frequency", "severity", "interference" or "presence". */
const char *proctcae_attribute_name(enum proctcae_attribute a);

/* Parses an attribute name; returns -1 if unknown. */
int proctcae_attribute_parse(const char *s);

/* Returns the response label of SCORE for attribute A ("almost
 * constantly"), or "?" when SCORE is out of range. Cannot fail. */
const char *proctcae_score_label(enum proctcae_attribute a, int score);

/* Returns the score of the response label LABEL for attribute A (case
 * ignored: "Very severe", "very severe"), or -1 if it is not one. */
int proctcae_score_parse(enum proctcae_attribute a, const char *label);

#endif
