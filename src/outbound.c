/*
 * Outbound HTTP with libcurl: one easy handle per process, reset and reused
 * for every request (connections to the identity provider are kept), with
 * the same safety settings each time.  Nothing here logs a request or
 * response body: the form carries the client secret or assertion.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "metrics.h"
#include "outbound.h"
#include "valid.h"

static CURL *handle;
static bool global_done;

struct sink {
	pa_buf_t buf;
	size_t max;
	bool too_big;
};

static size_t
on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (n > s->max - s->buf.len) {
		s->too_big = true;
		return 0;	/* aborts the transfer: CURLE_WRITE_ERROR */
	}
	pa_buf_append(&s->buf, p, n);
	return pa_buf_failed(&s->buf) ? 0 : n;
}

/* The URL up to its query or fragment, for log lines. */
static void
url_for_log(const char *url, char *out, size_t outlen)
{
	size_t n = strcspn(url, "?#");

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, url, n);
	out[n] = '\0';
}

static CURL *
get_handle(void)
{
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			pa_log_error("curl_global_init failed");
			return NULL;
		}
		global_done = true;
	}
	if (handle == NULL && (handle = curl_easy_init()) == NULL)
		pa_log_error("curl_easy_init failed");
	else if (handle != NULL)
		curl_easy_reset(handle);
	return handle;
}

void
pa_outbound_cleanup(void)
{
	if (handle != NULL)
		curl_easy_cleanup(handle);
	handle = NULL;
	if (global_done)
		curl_global_cleanup();
	global_done = false;
}

enum pa_err
pa_outbound_fetch(pa_arena_t *a, const pa_outbound_req_t *req, pa_outbound_res_t *res)
{
	struct sink s = { PA_BUF_INIT, req->max_size, false };
	char errbuf[CURL_ERROR_SIZE] = "", where[256];
	struct curl_slist *hdrs = NULL;
	const char *host, *rest, *what = req->what ? req->what : "request";
	size_t hn;
	bool https;
	CURL *c;
	CURLcode cc;
	enum pa_err rv = PA_EUPSTREAM;

	memset(res, 0, sizeof(*res));
	url_for_log(req->url, where, sizeof(where));
	if (pa_url_split(req->url, &https, &host, &hn, &rest) != NULL ||
	    (!https && !pa_valid_loopback_host(host, hn))) {
		pa_log_warn("%s %s: not an https URL (plain http is for loopback only)", what,
		    where);
		return PA_EINPUT;
	}
	if ((c = get_handle()) == NULL)
		return PA_ENOMEM;
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (hdrs == NULL) {
		rv = PA_ENOMEM;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req->connect_timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (req->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_size);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "pbx-auth");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	if (req->form != NULL) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->form);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->form));
	}
	cc = curl_easy_perform(c);
	if (s.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		pa_metrics_inc(PA_M_OUTBOUND_ERROR + PA_M_OUT_INVALID);
		pa_log_warn("%s %s: response larger than %zu bytes", what, where, req->max_size);
		goto out;
	}
	if (pa_buf_failed(&s.buf)) {
		rv = PA_ENOMEM;
		goto out;
	}
	if (cc != CURLE_OK) {
		pa_metrics_inc(PA_M_OUTBOUND_ERROR + (cc == CURLE_OPERATION_TIMEDOUT ?
		    PA_M_OUT_TIMEOUT : cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ?
		    PA_M_OUT_CONNECT : PA_M_OUT_OTHER));
		pa_log_warn("%s %s failed: %s", what, where,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
	res->len = s.buf.len;
	if ((res->body = pa_strndup(a, s.buf.p != NULL ? s.buf.p : "", s.buf.len)) == NULL) {
		rv = PA_ENOMEM;
		goto out;
	}
	pa_log_debug("%s %s: status %ld, %zu bytes", what, where, res->status, res->len);
	rv = PA_OK;
out:
	if (c != NULL) {
		/* Forget the form (it may hold the secret) and the pointers to our stack. */
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	}
	curl_slist_free_all(hdrs);
	if (s.buf.p != NULL)
		explicit_bzero(s.buf.p, s.buf.cap);
	pa_buf_free(&s.buf);
	return rv;
}

void
pa_outbound_param(pa_buf_t *b, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *parts[2] = { name, value };

	if (b->len > 0 && b->p[b->len - 1] != '?' && b->p[b->len - 1] != '#')
		pa_buf_putc(b, '&');
	for (int k = 0; k < 2; k++) {
		for (const unsigned char *p = (const unsigned char *)parts[k]; *p; p++) {
			if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL) {
				pa_buf_putc(b, (char)*p);
			} else {
				pa_buf_putc(b, '%');
				pa_buf_putc(b, hex[*p >> 4]);
				pa_buf_putc(b, hex[*p & 15]);
			}
		}
		if (k == 0)
			pa_buf_putc(b, '=');
	}
}
