/*
 * Bump allocator in chunks, with a cleanup list, for request-scoped memory.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "log.h"

#define CHUNK_SIZE (16 * 1024)
#define ALIGN 16

struct chunk {
	struct chunk *next;
	size_t size, used;
	_Alignas(ALIGN) unsigned char data[];
};

struct cleanup {
	struct cleanup *next;
	pa_cleanup_fn fn;
	void *p;
};

struct pa_arena {
	struct chunk *head;	/* current chunk; the last one in the list is kept on reset */
	struct cleanup *cleanups;
};

static struct chunk *
chunk_new(size_t size)
{
	struct chunk *c = malloc(sizeof(*c) + size);

	if (c == NULL) {
		pa_log_error("out of memory allocating %zu bytes", size);
		return NULL;
	}
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

pa_arena_t *
pa_arena_new(void)
{
	pa_arena_t *a = malloc(sizeof(*a));

	if (a == NULL)
		return NULL;
	a->cleanups = NULL;
	if ((a->head = chunk_new(CHUNK_SIZE)) == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

void
pa_arena_reset(pa_arena_t *a)
{
	struct chunk *c;

	while (a->cleanups != NULL) {
		struct cleanup *cl = a->cleanups;

		a->cleanups = cl->next;
		cl->fn(cl->p);
	}
	while (a->head->next != NULL) {
		c = a->head;
		a->head = c->next;
		free(c);
	}
	a->head->used = 0;
}

void
pa_arena_free(pa_arena_t *a)
{
	if (a == NULL)
		return;
	pa_arena_reset(a);
	free(a->head);
	free(a);
}

void *
pa_alloc(pa_arena_t *a, size_t n)
{
	struct chunk *c = a->head;
	size_t off = (c->used + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	size_t want;

	if (n == 0)
		n = 1;
	if (off <= c->size && n <= c->size - off) {
		c->used = off + n;
		return c->data + off;
	}
	if (__builtin_add_overflow(n, (size_t)ALIGN, &want)) {
		pa_log_error("allocation size overflow");
		return NULL;
	}
	if ((c = chunk_new(want > CHUNK_SIZE ? want : CHUNK_SIZE)) == NULL)
		return NULL;
	c->next = a->head;
	a->head = c;
	c->used = n;
	return c->data;
}

void *
pa_calloc(pa_arena_t *a, size_t nmemb, size_t size)
{
	size_t n;
	void *p;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		pa_log_error("allocation size overflow");
		return NULL;
	}
	if ((p = pa_alloc(a, n)) != NULL)
		memset(p, 0, n);
	return p;
}

char *
pa_strndup(pa_arena_t *a, const char *s, size_t n)
{
	char *p;

	if (n == SIZE_MAX || (p = pa_alloc(a, n + 1)) == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
pa_strdup(pa_arena_t *a, const char *s)
{
	return pa_strndup(a, s, strlen(s));
}

char *
pa_strdup_lower(pa_arena_t *a, const char *s)
{
	char *p = pa_strdup(a, s);

	for (char *q = p; q != NULL && *q != '\0'; q++)
		*q = (char)tolower((unsigned char)*q);
	return p;
}

int
pa_arena_cleanup(pa_arena_t *a, pa_cleanup_fn fn, void *p)
{
	struct cleanup *cl = pa_alloc(a, sizeof(*cl));

	if (cl == NULL) {
		fn(p);
		return -1;
	}
	cl->fn = fn;
	cl->p = p;
	cl->next = a->cleanups;
	a->cleanups = cl;
	return 0;
}
