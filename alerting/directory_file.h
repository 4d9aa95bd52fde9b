/*
 * directory_file: a study directory file (`vigil directory import FILE`)
 * read into records, each with the line it came from -- no database.
 * directory_import.h writes the records.
 *
 *   directory_file_new()/_destroy()   an empty set of records
 *   directory_file_add()              one record (the CSV reader in cmd/)
 *   directory_file_parse_yaml()       a YAML file's records (fuzzed:
 *                                     tests/fuzz/fuzz_directory_file.c)
 *   directory_file_count()/_record()  what was read
 *
 * The YAML form, every section optional, in any order:
 *
 *   studies:       [{id: S1, name: Trial one}]
 *   sites:         [{id: SITE-1, study: S1, name: Site one}]
 *   researchers:   [{id: R-1, name: Ann, email: ann@example.org, phone: "+44...",
 *                    quiet_hours: {start: "22:00", end: "07:00",
 *                                  time_zone: Europe/London}}]     # optional
 *   subscriptions: [{researcher: R-1, study: S1, site: SITE-1,   # site: optional
 *                    min_severity: critical, channels: [email, sms]}]
 *   policies:      [ escalation policies exactly as policy.h reads them ]
 *
 * A researcher's quiet_hours (migration 0064: non-critical pages wait
 * while it lasts) is set when given, removed when given as null, and left
 * as it is when the key is absent: researchers set their own in the
 * console, and an import of the directory does not undo that unasked.
 *
 * Unknown sections and keys are errors (a typo is not silently ignored);
 * policies are parsed and validated by policy.c, not here. Every problem
 * names the line of the node at fault.
 *
 * Thread-safety: none needed; a set of records belongs to one thread.
 */
#ifndef VIGIL_DIRECTORY_FILE_H
#define VIGIL_DIRECTORY_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

/* In the order they are written: what a record refers to comes first. */
enum directory_kind {
    DIRECTORY_STUDY,
    DIRECTORY_SITE,
    DIRECTORY_RESEARCHER,
    DIRECTORY_SUBSCRIPTION,
    DIRECTORY_POLICY,
    DIRECTORY_KINDS
};

#define DIRECTORY_FILE_MAX_RECORDS 100000
#define DIRECTORY_FILE_MAX_POLICIES 256
#define DIRECTORY_FILE_MAX_BYTES (16 << 20)

/* What an import does to a researcher's quiet hours. */
enum directory_quiet { DIRECTORY_QUIET_KEEP = 0, DIRECTORY_QUIET_SET, DIRECTORY_QUIET_REMOVE };

/* One record. Absent values are NULL. For a subscription ID is the
 * researcher and CHANNELS a PostgreSQL array literal ("{email,sms}");
 * for a policy only POLICY is set. A researcher's QUIET_START/_END
 * ("HH:MM[:SS]", checked) and QUIET_ZONE (checked by PostgreSQL) are set
 * with QUIET == DIRECTORY_QUIET_SET. */
struct directory_record {
    enum directory_kind kind;
    long line;
    const char *id, *name, *email, *phone, *study, *site, *min_severity, *channels;
    const struct policy *policy;
    enum directory_quiet quiet;
    const char *quiet_start, *quiet_end, *quiet_zone;
};

/* Whether S is a local time of day "HH:MM" or "HH:MM:SS" (00:00 ..
 * 23:59:59). */
bool directory_local_time_valid(const char *s);

/* Reads the CSV form of quiet hours, "HH:MM-HH:MM ZONE" (seconds allowed)
 * or "none", into REC. Returns 0, or -1 with errstr (no line). */
int directory_quiet_parse(const char *text, struct directory_record *rec, char *buf,
                          size_t bufsz, char *errstr, size_t errstr_size);

struct directory_file;

/* An empty set; NULL when out of memory. */
struct directory_file *directory_file_new(void);
void directory_file_destroy(struct directory_file *f);

/* Copies REC (its strings and policy) into F. Returns 0, or -1 with errstr
 * (out of memory, or more than DIRECTORY_FILE_MAX_RECORDS). */
int directory_file_add(struct directory_file *f, const struct directory_record *rec,
                       char *errstr, size_t errstr_size);

/* The records of TEXT (LEN bytes of YAML) appended to F. Returns 0, or -1
 * with errstr holding every problem found, one per line, as "line N:
 * problem" (F then holds some records: throw it away). */
int directory_file_parse_yaml(struct directory_file *f, const char *text, size_t len,
                              char *errstr, size_t errstr_size);

int directory_file_count(const struct directory_file *f);
/* Record I (0 <= I < count), valid until F is destroyed. */
const struct directory_record *directory_file_record(const struct directory_file *f, int i);

#endif
