/*
 * fhir: FHIR R4 Observation and QuestionnaireResponse resources (JSON) ->
 * struct observation, for `vigil produce --format fhir`. Accepts a single
 * resource, a Bundle of them (any Bundle type; entry[i].resource), or
 * NDJSON of either.
 *
 * Mapping (FHIR element -> vigil field):
 *   id                                        observation_id (else the
 *                                             entry's fullUrl "urn:uuid:X" -> X)
 *   code.coding[system=http://loinc.org].code loinc
 *   valueQuantity.value                       value
 *   valueQuantity.code if system is UCUM
 *     (http://unitsofmeasure.org) or absent,
 *     else valueQuantity.unit                 unit
 *   referenceRange[0].low.value / high.value  ref_low / ref_high
 *   effectiveDateTime (or effectiveInstant,
 *     or effectivePeriod.start)               effective_time
 *   issued                                    issued_time (absent: 0)
 *   status                                    status (final, amended,
 *                                             corrected, cancelled,
 *                                             entered-in-error; others refused)
 *   subject.reference "Patient/<pseudonym>"   subject_id
 *   study and site                            see below
 *   extension[url=FHIR_VISIT_EXTENSION]       visit (optional)
 *
 * FHIR Observation has no element for the trial or the site, so each comes
 * from, in this order: an extension whose url is the configured URI (its
 * valueString, valueCode, valueId or valueIdentifier.value), or an
 * identifier whose system is the configured URI (its value). The URIs
 * default to FHIR_STUDY_URI_DEFAULT and FHIR_SITE_URI_DEFAULT and are set
 * with `vigil produce --fhir-study-system URI --fhir-site-system URI`.
 *
 * A value is required unless the status is cancelled or entered-in-error
 * or the resource gives a dataAbsentReason; value[x] other than
 * valueQuantity is refused with a reason naming it.
 *
 * QuestionnaireResponse (patient-reported symptoms, PRO-CTCAE): one
 * observation per answered item whose linkId is a PRO-CTCAE item code of
 * vigil's code system (common/proctcae.h, e.g. PRO-NAUSEA-FRQ); other items
 * (other questions, free text) are not carried, nested groups are walked.
 *   id + "/" + item.linkId                    observation_id
 *   item.linkId                               loinc (the item code)
 *   item.answer[0]: valueInteger, valueBoolean
 *     (presence), or valueCoding with an
 *     ordinalValue extension, code "0".."4"
 *     or the response label as display        value (the 0-4 score)
 *                                             unit "{score}", no range
 *   authored                                  effective_time
 *   meta.lastUpdated                          issued_time (absent: 0)
 *   status completed / amended /
 *     entered-in-error                        final / amended /
 *                                             entered-in-error (others refused)
 *   subject, study, site, visit               as for Observation (identifier
 *                                             is one Identifier here)
 *
 * Thread-safety: pure functions over caller-owned memory.
 */
#ifndef VIGIL_FHIR_H
#define VIGIL_FHIR_H

#include <stddef.h>

#include "observation.h"

#define FHIR_STUDY_URI_DEFAULT "https://vigil.example/fhir/StructureDefinition/study"
#define FHIR_SITE_URI_DEFAULT "https://vigil.example/fhir/StructureDefinition/site"
#define FHIR_VISIT_EXTENSION "https://vigil.example/fhir/StructureDefinition/visit"
#define FHIR_LOINC_SYSTEM "http://loinc.org"
#define FHIR_UCUM_SYSTEM "http://unitsofmeasure.org"

struct fhir_options {
    const char *study_uri; /* NULL: FHIR_STUDY_URI_DEFAULT */
    const char *site_uri;  /* NULL: FHIR_SITE_URI_DEFAULT */
};

/* Called once per observation found (an Observation, or one answered item
 * of a QuestionnaireResponse): ENTRY is the Bundle entry index
 * (0-based, as in Bundle.entry[3]) or -1 for a resource not in a Bundle.
 * On success OBS is set and ERR is NULL; on failure OBS is NULL and ERR the
 * reason. Returns 0 to go on, non-zero to stop the walk. */
typedef int (*fhir_sink)(void *arg, long entry, const struct observation *obs,
                         const char *err);

/* Parses the JSON document TEXT (LEN bytes) as one Observation or
 * QuestionnaireResponse or a Bundle and calls SINK for each observation
 * (a Bundle entry that is neither is reported through SINK as an error, as
 * is a QuestionnaireResponse with no answered symptom item). Returns the
 * number of SINK calls, or -1 with errstr filled when the document itself
 * cannot be used (not JSON, not an object, resourceType none of those);
 * SINK is then not called. OPT may be NULL for the defaults. */
long fhir_parse(const char *text, size_t len, const struct fhir_options *opt, fhir_sink sink,
                void *arg, char *errstr, size_t errstr_size);

/* Maps one Observation resource (TEXT, LEN bytes of JSON) to *OUT. Returns
 * 0, or -1 with the reason in errstr. A convenience for tests and callers
 * that know they hold a single resource. */
int fhir_map_observation(const char *text, size_t len, const struct fhir_options *opt,
                         struct observation *out, char *errstr, size_t errstr_size);

#endif
