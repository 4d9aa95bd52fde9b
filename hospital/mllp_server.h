/*
 * mllp_server: `vigil mllp`, the HL7 v2 listener. Hospitals' interface
 * engines connect over TCP (optionally TLS) and send ORU^R01 results in
 * MLLP frames; each message is parsed (hl7.h), mapped (hl7_map.h) and its
 * observations published to the observations topic with the idempotent
 * producer (obs_producer.h). The original-mode ACK (hl7_ack.h) goes back
 * only after that:
 *
 *   AA  every observation of the message is acknowledged by Kafka
 *       (acks=all), or the patient is not enrolled (dropped, counted), or
 *       every OBX was deliberately skipped (preliminary results)
 *   AE  an OBX could not be mapped, no OBX was usable, or Kafka did not
 *       acknowledge in time (then the engine's resend is the retry)
 *   AR  not an ORU^R01 v2.3-2.5.1 message, not parseable, or too large
 *
 * An AE or AR for the message's own content sends a copy with every
 * patient-identifying field removed (hl7_redact.h) to the dead-letter topic,
 * with headers vigil.error.class / .message, vigil.hl7.facility,
 * vigil.hl7.control_id and vigil.hl7.ack, before the ACK goes back. A
 * Kafka failure is not dead-lettered: the engine still holds the message
 * and resends it.
 *
 * Threads: the accept loop (the caller's), one thread per connection (at
 * most max_connections; more are accepted and closed at once, counted),
 * one Kafka thread that owns the producer, the dead-letter publisher's,
 * the enrolment loader (LISTEN/NOTIFY on hl7_enrolments, and a periodic
 * reload), and the HTTP endpoint. Each connection handles one message at a
 * time, in the order received, and answers before reading the next, so
 * order is kept per connection.
 *
 * The facility mapping file is reloaded on SIGHUP (RELOAD) and when it
 * changes; one that does not validate is refused and the old one stays.
 */
#ifndef VIGIL_MLLP_SERVER_H
#define VIGIL_MLLP_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "config.h"
#include "ctx.h"

struct mllp_server_options {
    const struct config *cfg;    /* kafka.* properties pass through */
    const char *bootstrap;
    const char *topic;           /* vigil.observations */
    const char *dlq_topic;       /* vigil.hl7.dlq */
    const char *listen;          /* HOST:PORT (port 0: any; logged) */
    const char *http_addr;       /* /metrics /healthz /readyz; "" or NULL: off */
    const char *conninfo;        /* PostgreSQL, for hl7_enrolments */
    const char *facilities;      /* facility mapping YAML; "" or NULL: none */
    const char *processing_ids;  /* accepted MSH-11 values ("P") */
    const char *tls_cert, *tls_key, *tls_client_ca; /* cert+key: TLS on */
    int max_connections;
    int idle_timeout_s;          /* a connection silent this long is closed */
    int ack_timeout_ms;          /* longest wait for Kafka before AE */
    int grace_s;                 /* shutdown: finish messages in progress */
    int enrol_refresh_s;         /* reload hl7_enrolments at least this often */
    size_t max_message_bytes;
    size_t max_in_flight;        /* observations unacknowledged by Kafka */
};

/* Runs the listener until STOP is cancelled, then stops accepting, lets
 * each connection finish the message it is handling (up to grace_s),
 * flushes Kafka and returns 0. RELOAD (set by SIGHUP) is polled and
 * cleared. Returns -1 with errstr when it cannot start (address in use,
 * bad TLS files, facility file invalid, Kafka configuration refused).
 * Call from the main thread after signals are blocked (sigwatch). */
int mllp_server_run(const struct mllp_server_options *opt, struct ctx *stop, atomic_bool *reload,
                    char *errstr, size_t errstr_size);

#endif
