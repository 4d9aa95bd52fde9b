#include "audit.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_ROWS "5000"

/* The canonical text, as vigil_audit_canon (0010) builds it: kept here too
 * on purpose (see audit.h). */
#define CANON_SQL                                                                              \
    "jsonb_build_array(event_id, alert_id, kind, actor, "                                      \
    "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "           \
    "detail)::text"

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

/* sha256(prev || canon) as hex into out[65]. */
static int row_hash(const unsigned char *prev, size_t prevn, const char *canon, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdn = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, prev, prevn) == 1 &&
             EVP_DigestUpdate(ctx, canon, strlen(canon)) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdn) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    hex(md, mdn, out);
    return 0;
}

/* hex string to bytes; returns length or -1. */
static int unhex(const char *h, unsigned char *out, size_t cap)
{
    size_t n = strlen(h);
    if (n % 2 != 0 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return (int)(n / 2);
}

static void bad(struct audit_result *out, int64_t id, const char *fmt, const char *a,
                const char *b)
{
    out->bad_event = id;
    snprintf(out->problem, sizeof out->problem, fmt, a, b);
}

int audit_verify(PGconn *conn, struct audit_result *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof *out);
    if (pg_command(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, errstr,
                   errstr_size) != 0)
        return -1;
    char prev_hex[65];
    memset(prev_hex, '0', 64); /* the chain starts from 32 zero bytes */
    prev_hex[64] = '\0';
    int64_t expect = 1;
    char after[32] = "0";
    int rc = -1;
    for (;;) {
        const char *p[] = {after};
        PGresult *r = pg_query(conn,
                               "SELECT event_id, encode(prev_hash, 'hex'), "
                               "encode(row_hash, 'hex'), " CANON_SQL
                               " FROM alert_events WHERE event_id > $1::bigint "
                               "ORDER BY event_id LIMIT " PAGE_ROWS,
                               1, p, errstr, errstr_size);
        if (r == NULL)
            goto out;
        int n = PQntuples(r);
        for (int i = 0; i < n && out->bad_event == 0; i++) {
            int64_t id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            const char *prev = PQgetvalue(r, i, 1), *stored = PQgetvalue(r, i, 2);
            char idtxt[32], exptxt[32];
            snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
            snprintf(exptxt, sizeof exptxt, "%" PRId64, expect);
            if (id > expect) {
                bad(out, expect, "event %s is missing (deleted); the next is event %s", exptxt,
                    idtxt);
                break;
            }
            if (strcmp(prev, prev_hex) != 0) {
                bad(out, id,
                    "event %s: prev_hash does not match the hash of the event before it "
                    "(an event before it was deleted, inserted or edited%s)",
                    idtxt, "");
                break;
            }
            unsigned char pb[64];
            int pn = unhex(prev, pb, sizeof pb);
            char want[65];
            if (pn < 0 || row_hash(pb, (size_t)pn, PQgetvalue(r, i, 3), want) != 0) {
                bad(out, id, "event %s: unreadable hash%s", idtxt, "");
                break;
            }
            if (strcmp(want, stored) != 0) {
                bad(out, id, "event %s: row_hash does not match the row's content (edited)%s",
                    idtxt, "");
                break;
            }
            snprintf(prev_hex, sizeof prev_hex, "%s", stored);
            expect = id + 1;
            out->events++;
        }
        if (n > 0)
            snprintf(after, sizeof after, "%s", PQgetvalue(r, n - 1, 0));
        PQclear(r);
        if (out->bad_event != 0 || n == 0)
            break;
    }
    if (out->bad_event == 0) {
        PGresult *r = pg_query(conn,
                               "SELECT last_event_id, encode(last_hash, 'hex') "
                               "FROM alert_events_head",
                               0, NULL, errstr, errstr_size);
        if (r == NULL)
            goto out;
        if (PQntuples(r) != 1) {
            bad(out, expect, "the chain head row is missing%s%s", "", "");
        } else {
            int64_t last = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            snprintf(out->head_hex, sizeof out->head_hex, "%s", PQgetvalue(r, 0, 1));
            char lt[32], et[32];
            snprintf(lt, sizeof lt, "%" PRId64, last);
            snprintf(et, sizeof et, "%" PRId64, expect - 1);
            if (last != expect - 1)
                bad(out, last > expect - 1 ? expect : last,
                    "the chain head names event %s but the last event is %s (events "
                    "deleted from the end, or rows added without the head)",
                    lt, et);
            else if (strcmp(out->head_hex, prev_hex) != 0)
                bad(out, last, "event %s: its hash is not the chain head's%s", lt, "");
        }
        PQclear(r);
    }
    rc = 0;
out:;
    char ignore[256];
    pg_command(conn, "ROLLBACK", 0, NULL, ignore, sizeof ignore);
    return rc;
}
