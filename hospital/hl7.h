/*
 * hl7: an HL7 v2 ER7 ("pipe and hat") message parser, for `vigil mllp` and
 * `vigil produce --format hl7`.
 *
 *   hl7_msg_new() / hl7_msg_destroy()     one per connection, reused per message
 *   hl7_parse(m, buf, len)                splits BUF into segments and fields
 *   hl7_segment_count / _name / _find     walk the segments
 *   hl7_get(m, seg, field, rep, comp, sub) one value, unescaped
 *   hl7_raw(m, seg, field)                a field's bytes as sent (still escaped)
 *   hl7_repetitions(m, seg, field)        how many repetitions a field has
 *   hl7_escape()                          escape text for writing (ACK, ERR)
 *
 * What it accepts. The delimiters are the ones the message declares: MSH-1
 * (field separator) and MSH-2 (component, repetition, escape, subcomponent,
 * and the v2.7 truncation character, which is accepted and otherwise
 * ignored). They must be distinct, printable and neither a letter nor a
 * digit. Segments end with \r (the standard), \n or \r\n (files and some
 * engines); empty lines are skipped. A segment id is three upper-case
 * letters or digits. The escape sequences \F\ \S\ \T\ \R\ \E\ become their
 * delimiter, \Xhh..\ the bytes it spells; formatting (\H\ \N\ \.br\ ...),
 * character-set (\C..\ \M..\) and locally defined (\Z..\) sequences are
 * dropped; a lone or unterminated escape character is kept as it is. A field
 * holding only "" (HL7's explicit null) reads as empty.
 *
 * Numbering follows the standard: fields from 1 (MSH-1 is the field
 * separator itself, MSH-2 the encoding characters), repetitions, components
 * and subcomponents from 1. Asking for anything beyond what is present reads
 * as empty, as HL7 wants (trailing empty fields may be left out).
 *
 * The message is not copied: M points into BUF, which must outlive every
 * call on M until the next hl7_parse. Bounded: HL7_MAX_SEGMENTS segments and
 * HL7_MAX_FIELDS fields in all; a message beyond them is refused.
 *
 * Thread-safety: a struct hl7_msg is used by one thread at a time;
 * hl7_escape is pure.
 */
#ifndef VIGIL_HL7_H
#define VIGIL_HL7_H

#include <stdbool.h>
#include <stddef.h>

#define HL7_MAX_SEGMENTS 10000
#define HL7_MAX_FIELDS 200000

struct hl7_delims {
    char field; /* | */
    char comp;  /* ^ */
    char rep;   /* ~ */
    char esc;   /* \ */
    char sub;   /* & */
};

/* The standard delimiters |^~\& */
extern const struct hl7_delims hl7_default_delims;

struct hl7_msg;

/* Returns an empty message, or NULL when out of memory. */
struct hl7_msg *hl7_msg_new(void);

/* Frees M. NULL is a no-op. */
void hl7_msg_destroy(struct hl7_msg *m);

/* Parses the LEN bytes of BUF (borrowed; see above) into M, replacing what
 * M held. Returns 0, or -1 with errstr ("segment 3: ...") when BUF is not an
 * ER7 message that starts with MSH (leading blank lines are skipped); M then
 * holds no segments. */
int hl7_parse(struct hl7_msg *m, const char *buf, size_t len, char *errstr, size_t errstr_size);

/* The delimiters of the message last parsed. */
const struct hl7_delims *hl7_delims(const struct hl7_msg *m);

/* Number of segments (0 before a successful parse). */
size_t hl7_segment_count(const struct hl7_msg *m);

/* The three-character id of segment SEG ("MSH"); SEG < hl7_segment_count. */
const char *hl7_segment_name(const struct hl7_msg *m, size_t seg);

/* Returns the index of the first segment named NAME at or after FROM, or
 * -1 if there is none. */
long hl7_segment_find(const struct hl7_msg *m, const char *name, size_t from);

/* Number of fields segment SEG holds (the last field's number; trailing
 * fields that were left out are not counted). */
int hl7_field_count(const struct hl7_msg *m, size_t seg);

/* The bytes of field FIELD of segment SEG as sent (escapes not decoded,
 * repetitions and components not split); *LEN gets their count. Returns
 * NULL with *LEN 0 for a field that is absent. The pointer is into the
 * message buffer. */
const char *hl7_raw(const struct hl7_msg *m, size_t seg, int field, size_t *len);

/* Number of repetitions of field FIELD of segment SEG: 0 when empty or
 * absent, else 1 + the repetition separators in it. MSH-1 and MSH-2 have
 * one. */
int hl7_repetitions(const struct hl7_msg *m, size_t seg, int field);

/* Copies the value at FIELD, repetition REP, component COMP, subcomponent
 * SUB (all from 1) of segment SEG into OUT, unescaped and NUL-terminated.
 * Returns its length (0 when absent or empty); -1 when it does not fit in
 * OUTSZ bytes or decodes to a NUL byte -- OUT then holds "". MSH-1 and
 * MSH-2 are returned whole, as sent, whatever REP, COMP and SUB say. */
long hl7_get(const struct hl7_msg *m, size_t seg, int field, int rep, int comp, int sub,
             char *out, size_t outsz);

/* Writes IN escaped for delimiters D (each delimiter as \F\ \S\ \T\ \R\
 * \E\, a CR or LF as \X0D\ / \X0A\) into OUT, NUL-terminated. Returns the
 * length, or -1 (OUT then "") if it does not fit in OUTSZ. */
long hl7_escape(const char *in, const struct hl7_delims *d, char *out, size_t outsz);

#endif
