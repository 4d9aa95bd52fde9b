/*
 * proctcae: the PRO-CTCAE item table and response scales (contract in
 * proctcae.h).
 *
 * DESIGN: the table is written out item by item rather than built from
 * terms x attributes, so each row can be checked against the PRO-CTCAE
 * item library by eye; it is small enough (under 50 rows) that a linear
 * scan with strcmp is cheaper than anything cleverer.
 */
#include "proctcae.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#define ITEM(term, name, attr, code, max)                                                          \
    {                                                                                              \
        "PRO-" term "-" code, term, name, attr, max                                                \
    }
#define F(term, name) ITEM(term, name, PROCTCAE_FREQUENCY, "FRQ", 4)
#define S(term, name) ITEM(term, name, PROCTCAE_SEVERITY, "SEV", 4)
#define I(term, name) ITEM(term, name, PROCTCAE_INTERFERENCE, "INT", 4)
#define P(term, name) ITEM(term, name, PROCTCAE_PRESENCE, "PRS", 1)

/* Terms and the attributes the PRO-CTCAE item library asks for each. */
static const struct proctcae_item items[] = {
    F("NAUSEA", "Nausea"),
    S("NAUSEA", "Nausea"),
    F("VOMIT", "Vomiting"),
    S("VOMIT", "Vomiting"),
    F("DIARRHEA", "Diarrhea"),
    S("CONSTIP", "Constipation"),
    S("MOUTHSOR", "Mouth/throat sores"),
    I("MOUTHSOR", "Mouth/throat sores"),
    S("APPETITE", "Decreased appetite"),
    I("APPETITE", "Decreased appetite"),
    S("TASTE", "Taste changes"),
    S("FATIGUE", "Fatigue"),
    I("FATIGUE", "Fatigue"),
    F("PAIN", "General pain"),
    S("PAIN", "General pain"),
    I("PAIN", "General pain"),
    F("HEADACHE", "Headache"),
    S("HEADACHE", "Headache"),
    I("HEADACHE", "Headache"),
    S("NUMBNESS", "Numbness and tingling"),
    I("NUMBNESS", "Numbness and tingling"),
    S("SOB", "Shortness of breath"),
    I("SOB", "Shortness of breath"),
    S("COUGH", "Cough"),
    I("COUGH", "Cough"),
    S("INSOMNIA", "Insomnia"),
    I("INSOMNIA", "Insomnia"),
    F("ANXIOUS", "Anxious"),
    S("ANXIOUS", "Anxious"),
    I("ANXIOUS", "Anxious"),
    F("SAD", "Sad or unhappy feelings"),
    S("SAD", "Sad or unhappy feelings"),
    I("SAD", "Sad or unhappy feelings"),
    S("HANDFOOT", "Hand-foot syndrome"),
    P("RASH", "Rash"),
};

#define N_ITEMS ((int)(sizeof items / sizeof items[0]))

static const char *const attribute_names[PROCTCAE_ATTRIBUTES] = {"frequency", "severity",
                                                                 "interference", "presence"};

static const char *const labels[PROCTCAE_ATTRIBUTES][PROCTCAE_SCORE_MAX + 1] = {
    {"never", "rarely", "occasionally", "frequently", "almost constantly"},
    {"none", "mild", "moderate", "severe", "very severe"},
    {"not at all", "a little bit", "somewhat", "quite a bit", "very much"},
    {"no", "yes", NULL, NULL, NULL},
};

bool proctcae_is_code(const char *code)
{
    return code != NULL && strncmp(code, PROCTCAE_PREFIX, strlen(PROCTCAE_PREFIX)) == 0;
}

const struct proctcae_item *proctcae_find(const char *code)
{
    if (!proctcae_is_code(code))
        return NULL;
    for (int i = 0; i < N_ITEMS; i++)
        if (strcmp(items[i].code, code) == 0)
            return &items[i];
    return NULL;
}

int proctcae_item_count(void)
{
    return N_ITEMS;
}

const struct proctcae_item *proctcae_item(int i)
{
    return &items[i];
}

bool proctcae_term_known(const char *term)
{
    for (int i = 0; i < N_ITEMS; i++)
        if (strcmp(items[i].term, term) == 0)
            return true;
    return false;
}

const char *proctcae_attribute_name(enum proctcae_attribute a)
{
    return a < PROCTCAE_ATTRIBUTES ? attribute_names[a] : "?";
}

int proctcae_attribute_parse(const char *s)
{
    for (int i = 0; i < PROCTCAE_ATTRIBUTES; i++)
        if (strcmp(attribute_names[i], s) == 0)
            return i;
    return -1;
}

const char *proctcae_score_label(enum proctcae_attribute a, int score)
{
    if (a >= PROCTCAE_ATTRIBUTES || score < 0 || score > PROCTCAE_SCORE_MAX ||
        labels[a][score] == NULL)
        return "?";
    return labels[a][score];
}

int proctcae_score_parse(enum proctcae_attribute a, const char *label)
{
    if (a >= PROCTCAE_ATTRIBUTES || label == NULL)
        return -1;
    for (int s = 0; s <= PROCTCAE_SCORE_MAX; s++)
        if (labels[a][s] != NULL && strcasecmp(labels[a][s], label) == 0)
            return s;
    return -1;
}
