/*
 * Outbound HTTP (the only libcurl HTTP user): a GET or a form POST to an
 * identity provider, with connect and total timeouts, TLS verification
 * always on (CA file configurable), a cap on the response size, no
 * redirects, and plain http refused except to loopback hosts.
 */
#ifndef PA_OUTBOUND_H
#define PA_OUTBOUND_H

#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "pa.h"

typedef struct {
	const char *url;
	const char *form;	/* NULL: GET; else the application/x-www-form-urlencoded body */
	const char *ca_file;	/* NULL: the system's CA store */
	long connect_timeout;	/* seconds */
	long timeout;		/* seconds, the whole transfer */
	size_t max_size;	/* bytes of response body; more is an error */
	const char *what;	/* for log lines: "token endpoint"; never a secret */
} pa_outbound_req_t;

typedef struct {
	long status;		/* HTTP status */
	char *body;		/* NUL-terminated, arena memory */
	size_t len;
} pa_outbound_res_t;

/*
 * Performs the request.  PA_OK with *res filled (any HTTP status);
 * PA_EINPUT for a URL that is not https (or http to loopback);
 * PA_EUPSTREAM when the transfer failed (unreachable, timeout, TLS,
 * oversized body; logged without the body or the form); PA_ENOMEM.
 */
enum pa_err pa_outbound_fetch(pa_arena_t *a, const pa_outbound_req_t *req,
    pa_outbound_res_t *res) PA_MUSTCHECK;

/*
 * Appends name=value with both percent-encoded (all but RFC 3986 unreserved
 * characters), preceded by '&' unless b is empty: for form bodies, query
 * strings and URL fragments alike.
 */
void pa_outbound_param(pa_buf_t *b, const char *name, const char *value);

/* Releases the process's reused handle (at exit; optional). */
void pa_outbound_cleanup(void);

#endif
