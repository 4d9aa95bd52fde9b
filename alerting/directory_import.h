/*
 * directory_import: directory records (directory_file.h) written to the
 * tables of migrations 0003 and 0010 -- `vigil directory import`.
 *
 * Idempotent: every record is an upsert keyed as its table is, and a
 * policy the tables already hold exactly is left alone, so a second import
 * of the same file changes nothing (and the counts say so); nothing is
 * deleted but a researcher's quiet hours given as null (a researcher's
 * changed rows count their quiet hours' too). All or nothing: one transaction; the first record the database
 * refuses rolls it back and is named by its line.
 */
#ifndef VIGIL_DIRECTORY_IMPORT_H
#define VIGIL_DIRECTORY_IMPORT_H

#include <libpq-fe.h>
#include <stddef.h>

#include "directory_file.h"

/* Writes F's records on C in one transaction, by kind (studies, sites,
 * researchers, subscriptions, then policies, checked against the directory
 * as `vigil policy set` checks them and audited as 'policy_set' by ACTOR).
 * CHANGED[kind] gets the rows each kind changed. Returns 0 (committed), or
 * -1 with errstr "line N: problem" (rolled back: nothing changed). */
int directory_import_apply(PGconn *c, const struct directory_file *f, const char *actor,
                           long changed[DIRECTORY_KINDS], char *errstr, size_t errstr_size);

#endif
