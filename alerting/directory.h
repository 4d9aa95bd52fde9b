/*
 * directory: an immutable in-memory copy of the directory tables
 * (researchers, studies, subscriptions; schemas/migrations/0003) and the
 * routing rule that turns an alert into recipients.
 *
 *   directory_new()                 an empty, unsealed directory
 *   directory_add_researcher/study/subscription()   fill it (the loader)
 *   directory_seal()                sort for lookup; no adds afterwards
 *   directory_route()               alert -> recipients (pure, no I/O)
 *   directory_escalation()          who gets the email when a critical SMS fails
 *   directory_address()             a researcher's current email or phone
 *
 * Routing rule (issue #4):
 *   1. every active researcher with a subscription to the alert's study,
 *      for all sites (site NULL) or the alert's site, whose min_severity is
 *      at or below the alert's severity, on each subscribed channel for
 *      which the researcher has an address; (researcher, channel) pairs are
 *      unique even when several subscriptions match;
 *   2. if that yields nobody: the study's safety contact (when active), by
 *      email, and also by SMS when the alert is critical;
 *   3. if nobody either: unroutable (the caller records and counts it).
 *
 * Addresses are checked at load (directory_add_researcher): an email must be
 * printable ASCII without spaces, angle brackets, quotes or backslashes (it
 * goes into SMTP commands and a header), a phone E.164. A bad one is
 * dropped with the researcher kept (they can still be reached on the other
 * channel).
 *
 * Thread-safety: building is single-threaded; once sealed the directory is
 * immutable and any number of threads may route with it concurrently.
 */
#ifndef VIGIL_DIRECTORY_H
#define VIGIL_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "alert.h"

enum channel { CHANNEL_EMAIL = 0, CHANNEL_SMS = 1 };
#define CHANNEL_COUNT 2
#define CHANNEL_BIT(c) (1u << (unsigned)(c))

#define RESEARCHER_ID_MAX 64
#define ADDRESS_MAX 254 /* RFC 5321 path limit; phones are far shorter */

/* Upper bound on the recipients of one alert: a study with more
 * subscribers than this is a configuration error, logged by the caller. */
#define ROUTE_MAX_RECIPIENTS 256

struct recipient {
    char researcher_id[RESEARCHER_ID_MAX + 1];
    enum channel channel;
    char address[ADDRESS_MAX + 1];
};

enum route_how {
    ROUTE_SUBSCRIBERS = 0,
    ROUTE_SAFETY_CONTACT = 1,
    ROUTE_UNROUTABLE = 2,
};

struct route_result {
    enum route_how how;
    int n;
    int dropped; /* recipients beyond ROUTE_MAX_RECIPIENTS (should be 0) */
    struct recipient r[ROUTE_MAX_RECIPIENTS];
};

struct directory;

/* Returns "email" or "sms". Cannot fail. */
const char *channel_name(enum channel c);

/* Parses "email" or "sms"; returns -1 otherwise. */
int channel_parse(const char *s);

/* Returns a new empty directory, or NULL on allocation failure. */
struct directory *directory_new(void);

/* Frees D. NULL is a no-op. */
void directory_destroy(struct directory *d);

/* Adds a researcher. EMAIL and PHONE may be NULL or "". Returns 0, or -1
 * with errstr filled (id empty or longer than RESEARCHER_ID_MAX, out of
 * memory, or sealed): the directory is unchanged. A malformed address is
 * dropped with a warning in errstr and 1 returned (the researcher is kept).
 * Strings are copied. */
int directory_add_researcher(struct directory *d, const char *id, const char *email,
                             const char *phone, bool active, char *errstr, size_t errstr_size);

/* Adds a study; SAFETY_CONTACT may be NULL. Same returns as above. */
int directory_add_study(struct directory *d, const char *id, const char *safety_contact,
                        char *errstr, size_t errstr_size);

/* Adds a subscription. SITE NULL means every site. CHANNELS is a bit set
 * of CHANNEL_BIT(). Returns 0 or -1 with errstr (unchanged directory). */
int directory_add_subscription(struct directory *d, const char *researcher, const char *study,
                               const char *site, enum alert_severity min_severity,
                               unsigned channels, char *errstr, size_t errstr_size);

/* Sorts the tables for lookup. Call once, after the last add. Returns 0,
 * or -1 on allocation failure. */
int directory_seal(struct directory *d);

/* Counts, for logs and metrics. */
size_t directory_researchers(const struct directory *d);
size_t directory_subscriptions(const struct directory *d);

/* Routes A (a signal; retractions are routed by the caller from the
 * notification log) into *OUT following the rule above. Cannot fail. D must
 * be sealed. Thread-safe on a sealed directory. */
void directory_route(const struct directory *d, const struct alert *a, struct route_result *out);

/* The email escalation of a critical alert whose SMS to RESEARCHER failed:
 * RESEARCHER's own email and the study's safety contact's email (each only
 * if known, active and not already listed). Appends to *OUT (which may hold
 * other recipients); returns the number added. */
int directory_escalation(const struct directory *d, const char *study, const char *researcher,
                         struct route_result *out);

/* Writes researcher ID's current address for channel C into out. Returns
 * true if the researcher is active and has one. */
bool directory_address(const struct directory *d, const char *id, enum channel c, char *out,
                       size_t outsz);

/* Writes a mask of an email or phone fit for logs ("jo…@example.org",
 * "+44…89") into out, always NUL-terminated. Returns out. */
char *contact_mask(const char *address, char *out, size_t outsz);

#endif
