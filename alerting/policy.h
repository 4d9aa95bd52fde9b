/*
 * policy: escalation policies as files (YAML or JSON) -- parsing and
 * validation, no database. `vigil policy check` is exactly this;
 * `vigil policy set` adds the directory checks and writes the tables of
 * migration 0010 (escalation_policies, escalation_tiers).
 *
 * A file holds one policy, or {"policies": [ ... ]}:
 *
 *   study: S1
 *   site: X                 # optional: the study's every site when absent
 *   severity: critical      # critical or warning
 *   repeat_last: 15m        # the last tier is paged again this often
 *   tiers:
 *     - targets: [subscribers]
 *       channels: [subscribed]
 *       ack_deadline: 15m
 *     - targets: [role:safety_physician, researcher:r-42]
 *       channels: [email, sms]
 *       ack_deadline: 15m
 *   # warning: no tiers; digest: true (daily email of unacknowledged warnings)
 *
 * Durations: seconds, or a number with s, m or h. Valid when: critical has
 * 1..16 tiers and warning none; every tier has targets and channels of the
 * known kinds; no target appears in two tiers (paging an earlier tier again
 * from a later one would be a cycle -- repeating the last tier is the
 * policy's own repeat_last); deadlines and repeat_last between 60 s and
 * 24 h (tests compress time with the notifier's escalation_scale instead
 * of short deadlines).
 */
#ifndef VIGIL_POLICY_H
#define VIGIL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#define POLICY_TIERS_MAX 16
#define POLICY_TARGETS_MAX 16
#define POLICY_ID_MAX 64
#define POLICY_TARGET_MAX 96
#define POLICY_DEADLINE_MIN_S 60
#define POLICY_DEADLINE_MAX_S 86400

struct policy_tier {
    int ntargets;
    char targets[POLICY_TARGETS_MAX][POLICY_TARGET_MAX + 1];
    bool email, sms, subscribed;
    int ack_deadline_s;
};

struct policy {
    char study[POLICY_ID_MAX + 1];
    char site[POLICY_ID_MAX + 1]; /* "" : every site */
    char severity[16];
    int repeat_last_s;
    bool digest;
    int ntiers;
    struct policy_tier tiers[POLICY_TIERS_MAX];
};

/* Reads FILE (YAML or JSON) into *OUT (up to MAX policies), validating
 * each. Returns the number read, or -1 with every problem found in errstr
 * as "FILE: policy N: problem" lines. */
int policy_load_file(const char *file, struct policy *out, int max, char *errstr,
                     size_t errstr_size);

/* The same from TEXT (LEN bytes); NAME names it in messages. */
int policy_load_text(const char *name, const char *text, size_t len, struct policy *out, int max,
                     char *errstr, size_t errstr_size);

/* One policy from NODE of DOC, a YAML document the caller loaded (a
 * policy inside a larger file: `vigil directory import`). Validated as
 * policy_load_text validates. Returns 0, or -1 with every problem found
 * in errstr as "line N: policy: problem" lines, N the line of the tier or
 * policy at fault. DOC and NODE stay the caller's. */
int policy_from_yaml(yaml_document_t *doc, yaml_node_t *node, struct policy *out, char *errstr,
                     size_t errstr_size);

/* Whether A and B are for the same study, site and severity (two such in
 * one file make it ambiguous). Cannot fail. */
bool policy_same_scope(const struct policy *a, const struct policy *b);

#endif
