/*
 * HTTP requests and responses over FastCGI (the only user of libfcgi): the
 * listening socket, the accept loop's primitives, request parsing (query
 * string, cookies, bounded body) and responses with the headers every
 * response carries.  The parsers are pure functions, tested on their own.
 */
#ifndef PA_HTTP_H
#define PA_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "pa.h"

#define PA_HTTP_MAX_BODY (64 * 1024)
/*
 * Bytes of one response header line: a Location with a 2048-byte
 * callback_url and its tokens fits with room to spare.  nginx must buffer the
 * whole header block (fastcgi_buffer_size, 8k in the shipped configuration).
 */
#define PA_HTTP_MAX_HEADER 8192

/* A decoded name/value pair of a query string, form body or Cookie header. */
typedef struct {
	const char *name, *value;
} pa_param_t;

typedef struct pa_http_conn pa_http_conn_t;
struct pa_json;
struct pa_ctx;

typedef struct {
	pa_arena_t *arena;
	pa_http_conn_t *conn;
	const char *method;		/* "GET", … */
	const char *path;		/* decoded, without the query string */
	pa_param_t *query;		/* decoded query parameters, in order */
	size_t nquery;
	const char *content_type;	/* NULL when absent */
	char *body;			/* NUL-terminated; body_len bytes */
	size_t body_len;
	const char *remote_addr;
	/*
	 * nginx's $request_id (the REQUEST_ID parameter) when it is a sane
	 * token, else one made here; echoed as X-Request-Id and logged.
	 */
	char request_id[65];
	const char *user_id;		/* set by handlers once a user is known; logged */
	int route;			/* index of the matched route; -1: none (metrics) */
	pa_param_t *path_params;	/* {name} segments of the matched route */
	size_t npath_params;
	struct pa_json *json;		/* the parsed body of a JSON route */
	pa_param_t *form;		/* the parsed body of a form route */
	size_t nform;
	/* Set while parsing: a status (400/413) the request must be answered with. */
	int parse_status;
	const char *parse_error;
	/* Response state. */
	int status;			/* 0 until a response is sent */
	pa_buf_t headers;		/* extra header lines, each ending in \r\n */
	/*
	 * Work a handler leaves for after the answer has left, so that the
	 * answer's time cannot depend on it (worker.c runs it, with the
	 * request's id still on the log lines).  Its argument must live in the
	 * arena: the CGI parameters, remote_addr among them, are gone by then.
	 */
	void (*after)(struct pa_ctx *ctx, pa_arena_t *a, void *arg);
	void *after_arg;
} pa_req_t;

/*
 * Opens the listening socket: "/abs/path" (created with the given mode) or
 * "host:port".  Returns the fd, or -1 (logged).
 */
int pa_http_listen(const char *spec, int backlog, int mode);

/* Per-worker FastCGI state for accepting on fd.  NULL on failure (logged). */
pa_http_conn_t *pa_http_conn_new(int fd);
void pa_http_conn_free(pa_http_conn_t *c);
/*
 * Waits for the next request (returns at once on a draining socket) under
 * the signal mask wait, and reads it under the caller's, which keeps the
 * stop signals blocked; returns at once when *stop is set and the socket is
 * not draining.
 * PA_ACCEPT_OK: a request to serve; PA_ACCEPT_INTERRUPTED: a signal came, or
 * a connection broke off before its request; PA_ACCEPT_EMPTY: a draining
 * socket has nothing queued; PA_ACCEPT_FAILED.
 */
enum pa_accept { PA_ACCEPT_OK, PA_ACCEPT_INTERRUPTED, PA_ACCEPT_EMPTY, PA_ACCEPT_FAILED };
enum pa_accept pa_http_accept(pa_http_conn_t *c, const sigset_t *wait,
    volatile sig_atomic_t *stop);

/*
 * The master's part of a graceful stop (see http.c for the order): no new
 * connection reaches the socket any more, the workers are told to drain the
 * queue, and the master's copy of fd is closed.
 */
void pa_http_stop_listening(int fd);
/* True once pa_http_stop_listening ran on the socket fd shares. */
bool pa_http_draining(int fd);
/* Drains the rest of the request body and ends the request. */
void pa_http_finish(pa_http_conn_t *c);

/*
 * Fills req from the accepted request: method, path, query, body (read to
 * its end, at most PA_HTTP_MAX_BODY bytes).  Input errors are not failures:
 * they set req->parse_status and parse_error for the dispatcher to answer.
 * Returns PA_OK or PA_ENOMEM.
 */
enum pa_err pa_http_request_init(pa_req_t *req, pa_http_conn_t *c, pa_arena_t *a) PA_MUSTCHECK;
/* A CGI parameter such as "HTTP_ORIGIN" or "REMOTE_ADDR"; NULL when absent. */
const char *pa_http_env(const pa_req_t *req, const char *name);

/* First value of name, or NULL; and how many times name occurs. */
const char *pa_http_param(const pa_param_t *p, size_t n, const char *name);
size_t pa_http_param_count(const pa_param_t *p, size_t n, const char *name);

/*
 * Percent-decodes s[0..n) into the arena ('+' is a space when form is true).
 * PA_EINPUT on a bad escape, a NUL byte or invalid UTF-8 in the result.
 */
enum pa_err pa_http_decode(pa_arena_t *a, const char *s, size_t n, bool form, char **out)
	PA_MUSTCHECK;
/* Parses a query string or form body (a=1&b=2).  PA_EINPUT on bad escapes. */
enum pa_err pa_http_parse_query(pa_arena_t *a, const char *qs, size_t n, pa_param_t **out,
    size_t *nout) PA_MUSTCHECK;
/* Parses a Cookie header (a=1; b=2); malformed pairs are skipped, as browsers do. */
enum pa_err pa_http_parse_cookies(pa_arena_t *a, const char *header, pa_param_t **out,
    size_t *nout) PA_MUSTCHECK;
bool pa_utf8_valid(const char *s, size_t n);
/* True when the Content-Type's media type (parameters ignored) equals type. */
bool pa_http_media_type_is(const char *content_type, const char *type);

/*
 * Adds a response header line ("Allow: GET").  One longer than
 * PA_HTTP_MAX_HEADER or holding CR or LF is refused (logged), and the
 * response then becomes a 500: never a 302 without its Location.
 */
void pa_http_add_header(pa_req_t *req, const char *fmt, ...) PA_PRINTF(2, 3);
/* Sends a response; body may be NULL (no Content-Type then).  Once per request. */
void pa_http_reply(pa_req_t *req, int status, const char *body, size_t len);
/* The same with a Content-Type other than JSON. */
void pa_http_reply_typed(pa_req_t *req, int status, const char *type, const char *body,
    size_t len);
/*
 * Sends {"errors":[{"code","message","detail"}]}.  code NULL picks the
 * contract's code for the status; detail_json is raw JSON or NULL (null).
 */
void pa_http_reply_error(pa_req_t *req, int status, const char *code, const char *message,
    const char *detail_json);
/* The upper-snake-case error code of API.md for a status ("NOT_FOUND"). */
const char *pa_http_error_code(int status);

#endif
