/*
 * JSON helpers (the only user of json-c): bounded parsing of request bodies,
 * typed field access for handlers, and the error bodies of API.md.  Response
 * bodies are written with pa_buf_* directly (buf.h).
 */
#ifndef PA_JSON_H
#define PA_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "pa.h"

#define PA_JSON_MAX_DEPTH 16

typedef struct pa_json pa_json_t;	/* a parsed JSON value */

/*
 * Parses s[0..n) as one JSON object (released with the arena).  Returns
 * PA_OK, PA_EINPUT (malformed, too deep, trailing data, not an object,
 * invalid UTF-8; *why says which) or PA_ENOMEM.
 */
enum pa_err pa_json_parse_object(pa_arena_t *a, const char *s, size_t n, pa_json_t **out,
    const char **why) PA_MUSTCHECK;

enum pa_json_get {
	PA_JSON_ABSENT,		/* no such member */
	PA_JSON_WRONG_TYPE,	/* present with another type, JSON null included */
	PA_JSON_FOUND
};
/* A string member (NUL bytes inside make it PA_JSON_WRONG_TYPE). */
enum pa_json_get pa_json_get_string(const pa_json_t *obj, const char *key, const char **s,
    size_t *len);
enum pa_json_get pa_json_get_bool(const pa_json_t *obj, const char *key, bool *v);
/* An integer member (a JSON number without fraction or exponent). */
enum pa_json_get pa_json_get_int(const pa_json_t *obj, const char *key, long long *v);
/*
 * An array member: *arr and its length *n.  The elements (pa_json_at) are
 * borrowed from obj and live as long as it does.
 */
enum pa_json_get pa_json_get_array(const pa_json_t *obj, const char *key, const pa_json_t **arr,
    size_t *n);
/* The i-th element of an array when it is an object, else NULL. */
const pa_json_t *pa_json_at(const pa_json_t *arr, size_t i);
/* The i-th element of an array when it is a string without NUL, else NULL. */
const char *pa_json_string_at(const pa_json_t *arr, size_t i);

/* Appends {"code":…,"message":…,"detail":…}; detail_json is raw JSON or NULL. */
void pa_json_error_item(pa_buf_t *b, const char *code, const char *message,
    const char *detail_json);
/* Appends a whole error body with one item: {"errors":[…]}. */
void pa_json_error_body(pa_buf_t *b, const char *code, const char *message,
    const char *detail_json);

/*
 * Validation problems of one request, each {"field","rule"}, answered as one
 * 400 body listing all of them.
 */
typedef struct {
	pa_buf_t items;		/* comma-separated error items */
	size_t n;
} pa_json_problems_t;

void pa_json_problem(pa_json_problems_t *p, const char *field, const char *rule);
/* Writes {"errors":[…]} of all problems to b, and frees p's memory. */
void pa_json_problems_body(pa_json_problems_t *p, pa_buf_t *b);

#endif
