/*
 * schema_registry: fetches writer schemas by id from a Confluent-compatible
 * Schema Registry over HTTP(S) with libcurl:
 *
 *   GET {url}/schemas/ids/{id}  ->  200 {"schema": "<schema JSON as a string>"}
 *                                   404 when the registry has no such id
 *
 * No caching here: the codec caches resolved schemas by id (codec.c).
 * Every request has a deadline; the response body is bounded.
 *
 * Thread-safety: registry_fetch_schema() may be called from any number of
 * threads at once (each call uses its own curl handle).
 */
#ifndef VIGIL_SCHEMA_REGISTRY_H
#define VIGIL_SCHEMA_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

enum registry_status {
    REGISTRY_OK = 0,
    REGISTRY_NOT_FOUND, /* the registry answered 404: the id is not known */
    REGISTRY_NOT_AVRO,  /* the id names a PROTOBUF or JSON schema */
    REGISTRY_TRANSIENT, /* unreachable, timeout, 5xx, auth, bad answer: retry later */
};

/* Largest response body accepted. */
#define REGISTRY_MAX_RESPONSE (4 * 1024 * 1024)

struct registry;

/* Creates a client for the registry at url ("http://host:8081", userinfo
 * allowed for basic auth; a trailing '/' is ignored). timeout_ms bounds
 * each whole request. Calls curl_global_init(), so the first call should
 * happen before other threads use libcurl. Returns NULL with errstr filled
 * on failure. */
struct registry *registry_new(const char *url, long timeout_ms, char *errstr,
                              size_t errstr_size);

/* Frees the client. NULL is a no-op. No call may be in progress. */
void registry_destroy(struct registry *reg);

/* Fetches the schema with the given id. On REGISTRY_OK *schema_json is a
 * malloc'd NUL-terminated schema text the caller frees; on any other
 * status it is NULL and errstr says why ("could not fetch schema id 7 from
 * http://...: Connection refused"). Blocks up to the timeout. Thread-safe. */
enum registry_status registry_fetch_schema(struct registry *reg, uint32_t id, char **schema_json,
                                           char *errstr, size_t errstr_size);

#endif
