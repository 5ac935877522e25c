/*
 * json-c parsing with a depth limit and explicit length; error bodies.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "http.h"
#include "json.h"
#include "log.h"

#define OBJ(j) ((struct json_object *)(j))
#define COBJ(j) ((struct json_object *)(uintptr_t)(const void *)(j))

static void
put_cleanup(void *p)
{
	json_object_put(p);
}

/*
 * A strict RFC 8259 syntax check, run before json-c builds the tree: json-c
 * 0.16 accepts NaN, Infinity, "1.", single quotes and raw control characters
 * in strings even in strict mode.  Each function returns the position after
 * what it read, or NULL.
 */
struct syn {
	const char *end;
	bool too_deep;
};

static const char *syn_value(struct syn *y, const char *p, int depth);

static const char *
syn_ws(const struct syn *y, const char *p)
{
	while (p < y->end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

static const char *
syn_digits(const struct syn *y, const char *p)
{
	const char *start = p;

	while (p < y->end && *p >= '0' && *p <= '9')
		p++;
	return p > start ? p : NULL;
}

static const char *
syn_number(const struct syn *y, const char *p)
{
	if (p < y->end && *p == '-')
		p++;
	if (p < y->end && *p == '0')
		p++;
	else if ((p = syn_digits(y, p)) == NULL)
		return NULL;
	if (p < y->end && *p == '.' && (p = syn_digits(y, p + 1)) == NULL)
		return NULL;
	if (p < y->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < y->end && (*p == '+' || *p == '-'))
			p++;
		if ((p = syn_digits(y, p)) == NULL)
			return NULL;
	}
	return p;
}

static const char *
syn_string(const struct syn *y, const char *p)
{
	for (p++; p < y->end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (++p == y->end)
			return NULL;
		if (*p == 'u') {
			for (int i = 0; i < 4; i++)
				if (++p == y->end || !isxdigit((unsigned char)*p))
					return NULL;
		} else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
			return NULL;
		}
	}
	return NULL;
}

/* An object or array: open..close holding values (with keys for objects). */
static const char *
syn_container(struct syn *y, const char *p, int depth, bool object)
{
	char close = object ? '}' : ']';

	if (depth > PA_JSON_MAX_DEPTH) {
		y->too_deep = true;
		return NULL;
	}
	p = syn_ws(y, p + 1);
	if (p < y->end && *p == close)
		return p + 1;
	for (;;) {
		if (object) {
			if (p == y->end || *p != '"' || (p = syn_string(y, p)) == NULL)
				return NULL;
			p = syn_ws(y, p);
			if (p == y->end || *p != ':')
				return NULL;
			p = syn_ws(y, p + 1);
		}
		if ((p = syn_value(y, p, depth)) == NULL)
			return NULL;
		p = syn_ws(y, p);
		if (p == y->end)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = syn_ws(y, p + 1);
	}
}

static const char *
syn_literal(const struct syn *y, const char *p, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(y->end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *
syn_value(struct syn *y, const char *p, int depth)
{
	if (p == y->end)
		return NULL;
	switch (*p) {
	case '{': return syn_container(y, p, depth + 1, true);
	case '[': return syn_container(y, p, depth + 1, false);
	case '"': return syn_string(y, p);
	case 't': return syn_literal(y, p, "true");
	case 'f': return syn_literal(y, p, "false");
	case 'n': return syn_literal(y, p, "null");
	default: return syn_number(y, p);
	}
}

enum pa_err
pa_json_parse_object(pa_arena_t *a, const char *s, size_t n, pa_json_t **out, const char **why)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error jerr;

	*out = NULL;
	*why = NULL;
	if (n > PA_HTTP_MAX_BODY) {
		*why = "body too large";
		return PA_EINPUT;
	}
	if (!pa_utf8_valid(s, n)) {
		*why = "body is not valid UTF-8";
		return PA_EINPUT;
	}
	{
		struct syn y = { s + n, false };
		const char *p = syn_ws(&y, s);

		bool object = p < y.end && *p == '{';

		if ((p = syn_value(&y, p, 0)) != NULL && !object) {
			*why = "the body must be a JSON object";
			return PA_EINPUT;
		}
		if (p == NULL) {
			*why = y.too_deep ? "JSON nested too deeply" : "malformed JSON";
			return PA_EINPUT;
		}
		if (syn_ws(&y, p) != y.end) {
			*why = "trailing data after the JSON value";
			return PA_EINPUT;
		}
	}
	if ((tok = json_tokener_new_ex(PA_JSON_MAX_DEPTH + 1)) == NULL) {
		pa_log_error("out of memory creating a JSON tokener");
		return PA_ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)n);
	jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (o == NULL || jerr != json_tokener_success) {
		json_object_put(o);
		*why = jerr == json_tokener_error_depth ? "JSON nested too deeply" : "malformed JSON";
		return PA_EINPUT;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*why = "the body must be a JSON object";
		return PA_EINPUT;
	}
	if (pa_arena_cleanup(a, put_cleanup, o) != 0)
		return PA_ENOMEM;
	*out = (pa_json_t *)o;
	return PA_OK;
}

/*
 * Member key of obj: PA_JSON_ABSENT when there is none, PA_JSON_WRONG_TYPE
 * when it is not of type want (JSON null included: a member that is present
 * is never taken as absent), else PA_JSON_FOUND with *v set.
 */
static enum pa_json_get
member(const pa_json_t *obj, const char *key, enum json_type want, struct json_object **v)
{
	*v = NULL;
	if (!json_object_object_get_ex(COBJ(obj), key, v))
		return PA_JSON_ABSENT;
	return json_object_is_type(*v, want) ? PA_JSON_FOUND : PA_JSON_WRONG_TYPE;
}

enum pa_json_get
pa_json_get_string(const pa_json_t *obj, const char *key, const char **s, size_t *len)
{
	struct json_object *v;
	enum pa_json_get g = member(obj, key, json_type_string, &v);
	int n;

	if (g != PA_JSON_FOUND)
		return g;
	*s = json_object_get_string(v);
	n = json_object_get_string_len(v);
	if (n < 0 || memchr(*s, '\0', (size_t)n) != NULL)
		return PA_JSON_WRONG_TYPE;
	*len = (size_t)n;
	return PA_JSON_FOUND;
}

enum pa_json_get
pa_json_get_bool(const pa_json_t *obj, const char *key, bool *b)
{
	struct json_object *v;
	enum pa_json_get g = member(obj, key, json_type_boolean, &v);

	if (g != PA_JSON_FOUND)
		return g;
	*b = json_object_get_boolean(v);
	return PA_JSON_FOUND;
}

enum pa_json_get
pa_json_get_int(const pa_json_t *obj, const char *key, long long *v)
{
	struct json_object *m;
	enum pa_json_get g = member(obj, key, json_type_int, &m);

	if (g != PA_JSON_FOUND)
		return g;
	errno = 0;
	*v = (long long)json_object_get_int64(m);
	/* json-c clamps values beyond int64 and sets errno. */
	return errno == 0 ? PA_JSON_FOUND : PA_JSON_WRONG_TYPE;
}

enum pa_json_get
pa_json_get_array(const pa_json_t *obj, const char *key, const pa_json_t **arr, size_t *n)
{
	struct json_object *m;
	enum pa_json_get g = member(obj, key, json_type_array, &m);

	if (g != PA_JSON_FOUND)
		return g;
	*arr = (const pa_json_t *)m;
	*n = json_object_array_length(m);
	return PA_JSON_FOUND;
}

const pa_json_t *
pa_json_at(const pa_json_t *arr, size_t i)
{
	struct json_object *e = json_object_array_get_idx(COBJ(arr), i);

	return e != NULL && json_object_is_type(e, json_type_object) ? (const pa_json_t *)e : NULL;
}

const char *
pa_json_string_at(const pa_json_t *arr, size_t i)
{
	struct json_object *e = json_object_array_get_idx(COBJ(arr), i);
	const char *s;

	if (e == NULL || !json_object_is_type(e, json_type_string))
		return NULL;
	s = json_object_get_string(e);
	return strlen(s) == (size_t)json_object_get_string_len(e) ? s : NULL;
}

void
pa_json_error_item(pa_buf_t *b, const char *code, const char *message, const char *detail_json)
{
	pa_buf_puts(b, "{\"code\":");
	pa_buf_json_nstr(b, code);
	pa_buf_puts(b, ",\"message\":");
	pa_buf_json_nstr(b, message);
	pa_buf_puts(b, ",\"detail\":");
	pa_buf_puts(b, detail_json != NULL ? detail_json : "null");
	pa_buf_putc(b, '}');
}

void
pa_json_error_body(pa_buf_t *b, const char *code, const char *message, const char *detail_json)
{
	pa_buf_puts(b, "{\"errors\":[");
	pa_json_error_item(b, code, message, detail_json);
	pa_buf_puts(b, "]}");
}

void
pa_json_problem(pa_json_problems_t *p, const char *field, const char *rule)
{
	pa_buf_t detail = PA_BUF_INIT;

	pa_buf_puts(&detail, "{\"field\":");
	pa_buf_json_nstr(&detail, field);
	pa_buf_puts(&detail, ",\"rule\":");
	pa_buf_json_nstr(&detail, rule);
	pa_buf_putc(&detail, '}');
	if (p->n++ > 0)
		pa_buf_putc(&p->items, ',');
	pa_json_error_item(&p->items, "VALIDATE_FAILED", "Validation failed",
	    pa_buf_failed(&detail) ? NULL : detail.p);
	if (pa_buf_failed(&detail))
		p->items.failed = true;
	pa_buf_free(&detail);
}

void
pa_json_problems_body(pa_json_problems_t *p, pa_buf_t *b)
{
	pa_buf_puts(b, "{\"errors\":[");
	if (p->items.p != NULL)
		pa_buf_append(b, p->items.p, p->items.len);
	pa_buf_puts(b, "]}");
	if (pa_buf_failed(&p->items))
		b->failed = true;
	pa_buf_free(&p->items);
	p->n = 0;
}
