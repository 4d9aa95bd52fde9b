/*
 * escalate: the notifier's escalation timer -- one thread that fires the
 * durable escalation timers kept in PostgreSQL (migrations 0010, 0011) and
 * hands each step's pages to the sender.
 *
 * DESIGN. A timer is a row of `escalations` (one per critical alert, made
 * by a trigger when the worker stores the alert). Every tick the thread
 * calls vigil_escalation_fire(batch, scale, actor): one statement, one
 * transaction, which locks the due rows FOR UPDATE SKIP LOCKED, records
 * each step's pages (escalation_pages) and its audit event, and advances
 * the row. Any number of notifier replicas may run this at once: a row
 * locked by one is skipped by the others, and once committed it is no
 * longer due, so each step happens exactly once. Nothing lives in a
 * process's memory: a deadline that passes while every notifier is down is
 * simply due when one comes back, and fires then (once: the next due time
 * counts from the firing, not from the missed time).
 *
 * The pages then go through the sender like any alert (send.h,
 * sender_job_new_page), keyed by (alert, researcher, channel, step) in the
 * notification log. If the process dies between the step's commit and
 * the send, vigil_escalation_recover hands the page out again after
 * lease_s: delivery is at-least-once in the same sense as the Kafka path
 * (a page that was 'sending' when the process died may be sent twice).
 *
 * Metrics: steps fired, deadline breaches (every step after the first is
 * a tier that did not acknowledge in time), lag between a step's due time
 * and its firing; from the tables every few seconds: open unacknowledged
 * critical alerts, escalations past their last tier, and the
 * time-to-acknowledge histogram per severity (acks made anywhere -- CLI,
 * console, links -- since the last look; each replica observes them all,
 * so aggregate with max, not sum, across replicas).
 *
 * Quiet hours (migration 0064) ride on the same loop: the sender records a
 * warning or info notification to a researcher inside their quiet window
 * as a 'deferred' row due at the window's end (the Kafka offset commits at
 * once; nothing waits in memory), and every tick this thread calls
 * vigil_deferred_fire: due rows locked FOR UPDATE SKIP LOCKED, suppressed
 * if the alert was acknowledged, resolved or retracted meanwhile, else
 * moved to pending under this notifier's lease and handed to the sender
 * (sender_job_new_fired) without a second claim. One fired by a notifier
 * that died before finishing it is taken back after lease_s.
 *
 * The same thread sends the daily warning digest (digest.h) about once a
 * minute (times scale), and a step pages the tier of the policy in force
 * when it fires (a policy changed mid-escalation applies from the next step).
 *
 * Rejected: timers in memory with a Kafka delay topic (lost or duplicated
 * on rebalance; the issue asks for PostgreSQL); leases with an expiry
 * column for the step itself (a row lock held for one short transaction is
 * the lease, and PostgreSQL releases it when the holder dies).
 *
 * Thread-safety: escalate_new and escalate_close from the owner only.
 */
#ifndef VIGIL_ESCALATE_H
#define VIGIL_ESCALATE_H

#include <stddef.h>

#include "email.h"
#include "metrics.h"
#include "send.h"

struct escalate_config {
    const char *conninfo; /* borrowed */
    const char *actor;    /* recorded in the audit trail: "notifier:<host>:<pid>" */
    int tick_ms;          /* how often due timers are looked for */
    double scale;         /* deadline multiplier: 1 in production, e.g. 0.01 in tests */
    int batch;            /* steps per transaction */
    int lease_s;          /* an unsettled page is handed out again after this */
    /* the daily warning digest (digest.h), sent from this thread */
    const struct email_config *email; /* borrowed; NULL or no url: no digests */
    const struct ackmsg_config *ack;  /* borrowed: the digest's acknowledgement links */
    int digest_hour;      /* UTC hour from which the day's digests go; -1: off */
    int digest_min_age_s; /* warnings younger than this wait for the next day */
};

struct escalator;

/* Starts the timer thread. CFG is copied (strings borrowed); SENDER and M
 * are borrowed and must outlive escalate_close. NULL with errstr set on
 * failure. */
struct escalator *escalate_new(const struct escalate_config *cfg, struct sender *sender,
                               struct metrics *m, char *errstr, size_t errstr_size);

/* Stops the thread (a step in progress commits or rolls back whole) and
 * frees everything. NULL is a no-op. */
void escalate_close(struct escalator *e);

#endif
