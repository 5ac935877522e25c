/*
 * Per-request memory: one arena per FastCGI request, reset once the response
 * is sent.  Foreign resources (json-c objects, libpq results) are registered
 * as cleanups and released by the reset.
 */
#ifndef PA_ARENA_H
#define PA_ARENA_H

#include <stddef.h>

typedef struct pa_arena pa_arena_t;
typedef void (*pa_cleanup_fn)(void *);

/* Returns a new arena (free with pa_arena_free), or NULL when out of memory. */
pa_arena_t *pa_arena_new(void);
void pa_arena_free(pa_arena_t *a);
/* Runs the cleanups in reverse order and releases all but the first chunk. */
void pa_arena_reset(pa_arena_t *a);

/* Allocations live until the next reset; NULL when out of memory (logged). */
void *pa_alloc(pa_arena_t *a, size_t n);
void *pa_calloc(pa_arena_t *a, size_t nmemb, size_t size);
char *pa_strndup(pa_arena_t *a, const char *s, size_t n);
char *pa_strdup(pa_arena_t *a, const char *s);
/* A copy with ASCII letters in lower case (domains and usernames are ASCII). */
char *pa_strdup_lower(pa_arena_t *a, const char *s);
/* Registers fn(p) to run at the next reset; returns 0, or -1 (and runs fn(p) now). */
int pa_arena_cleanup(pa_arena_t *a, pa_cleanup_fn fn, void *p);

#endif
