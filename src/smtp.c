/*
 * SMTP with libcurl: one easy handle per mailer and one SMTP session per
 * message, the envelope, the upload of the message, and the server's last
 * reply read through the debug callback.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "smtp.h"
#include "valid.h"

struct pa_smtp {
	CURL *curl;
	char *url, *user, *password, *ca_file;
	enum pa_smtp_tls tls;
	long connect_timeout, timeout;
	char last[256];		/* the server's last reply line before QUIT */
	bool quitting;		/* QUIT was sent: its reply says nothing */
	char verb[8];		/* the last command sent: MAIL, RCPT, DATA, ... */
	bool server_failed;	/* the last send failed before RCPT */
	char errbuf[CURL_ERROR_SIZE];
};

/* The message being uploaded. */
struct upload {
	const char *p;
	size_t left;
};

bool
pa_smtp_global_init(void)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK) {
		pa_log_error("curl_global_init: %s", curl_easy_strerror(rc));
		return false;
	}
	return true;
}

static char *
dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*failed = true;
	return d;
}

pa_smtp_t *
pa_smtp_new(const pa_config_t *cfg, const char *password)
{
	pa_smtp_t *s = calloc(1, sizeof(*s));
	bool failed = false;

	if (s == NULL) {
		pa_log_error("out of memory");
		return NULL;
	}
	s->url = dup_or_null(cfg->smtp_url, &failed);
	s->user = dup_or_null(cfg->smtp_user, &failed);
	s->password = dup_or_null(password, &failed);
	s->ca_file = dup_or_null(cfg->smtp_ca_file, &failed);
	s->tls = cfg->smtp_starttls;
	s->connect_timeout = cfg->smtp_connect_timeout;
	s->timeout = cfg->smtp_timeout;
	if (failed || s->url == NULL || (s->curl = curl_easy_init()) == NULL) {
		pa_log_error("out of memory");
		pa_smtp_free(s);
		return NULL;
	}
	return s;
}

void
pa_smtp_free(pa_smtp_t *s)
{
	if (s == NULL)
		return;
	if (s->curl != NULL)
		curl_easy_cleanup(s->curl);
	if (s->password != NULL) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->url);
	free(s->user);
	free(s->ca_file);
	free(s);
}

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload *u = arg;
	size_t n = size * nitems;

	if (n > u->left)
		n = u->left;
	memcpy(buf, u->p, n);
	u->p += n;
	u->left -= n;
	return n;
}

/* Copies text as one printable-ASCII line (other bytes become '?'). */
static void
copy_line(char *out, size_t outlen, const char *p, size_t n)
{
	size_t j = 0;

	if (outlen == 0)
		return;
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
		n--;
	for (size_t i = 0; i < n && j + 1 < outlen; i++) {
		unsigned char c = (unsigned char)p[i];

		out[j++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : c == '"' ? '\'' : '?';
	}
	out[j] = '\0';
}

static void
set_reply(char *reply, size_t replylen, const char *s)
{
	copy_line(reply, replylen, s, strlen(s));
}

/*
 * libcurl hands each reply line of the server to the debug callback as
 * CURLINFO_HEADER_IN; the last one before QUIT is what the message's fate is
 * about.  Of what we send (CURLINFO_HEADER_OUT; AUTH carries the password)
 * only the command's verb is kept.
 */
static int
debug_cb(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
	pa_smtp_t *s = arg;
	const char *line = data, *end = data + size;

	(void)c;
	if (type == CURLINFO_HEADER_OUT && !s->quitting) {
		char verb[sizeof(s->verb)];
		size_t n = 0;

		while (n < size && n + 1 < sizeof(verb) && data[n] >= 'A' && data[n] <= 'Z')
			n++;
		memcpy(verb, data, n);
		verb[n] = '\0';
		if (strcmp(verb, "QUIT") == 0)
			s->quitting = true;
		else
			memcpy(s->verb, verb, n + 1);
	}
	if (type != CURLINFO_HEADER_IN || s->quitting)
		return 0;
	/* The last non-empty line of what arrived. */
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);

		if (n > 0 && !(n == 1 && line[0] == '\r'))
			copy_line(s->last, sizeof(s->last), line, n);
		line += n + (nl != NULL);
	}
	return 0;
}

/* An address for MAIL FROM or RCPT TO: valid, and so free of CR, LF and NUL. */
static bool
envelope_ok(const char *addr)
{
	return addr != NULL && pa_valid_email(addr);
}

bool
pa_smtp_server_failed(const pa_smtp_t *s)
{
	return s->server_failed;
}

enum pa_err
pa_smtp_send(pa_smtp_t *s, const char *from, const char *rcpt, const char *msg, size_t len,
    char *reply, size_t replylen)
{
	static const long use_ssl[PA_SMTP_TLS__MAX] = {
		[PA_SMTP_TLS_REQUIRED] = CURLUSESSL_ALL,
		[PA_SMTP_TLS_OPTIONAL] = CURLUSESSL_TRY,
		[PA_SMTP_TLS_OFF] = CURLUSESSL_NONE,
	};
	struct curl_slist *rcpts = NULL;
	struct upload up = { msg, len };
	char from_br[300], rcpt_br[300];
	long code = 0;
	CURLcode rc;
	CURL *c = s->curl;
	enum pa_err rv = PA_ENOMEM;

	reply[0] = '\0';
	if (!envelope_ok(from) || !envelope_ok(rcpt)) {
		set_reply(reply, replylen, "invalid address, not sent");
		return PA_EINPUT;
	}
	snprintf(from_br, sizeof(from_br), "<%s>", from);
	snprintf(rcpt_br, sizeof(rcpt_br), "<%s>", rcpt);
	if ((rcpts = curl_slist_append(NULL, rcpt_br)) == NULL) {
		pa_log_error("out of memory");
		goto out;
	}
	s->last[0] = '\0';
	s->quitting = false;
	s->server_failed = false;
	s->verb[0] = '\0';
	s->errbuf[0] = '\0';
	curl_easy_reset(c);
	if (curl_easy_setopt(c, CURLOPT_URL, s->url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USE_SSL, use_ssl[s->tls]) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    (s->ca_file != NULL && curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file) != CURLE_OK) ||
	    (s->user != NULL && (curl_easy_setopt(c, CURLOPT_USERNAME, s->user) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PASSWORD, s->password ? s->password : "") != CURLE_OK)) ||
	    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from_br) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_READDATA, &up) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, s->connect_timeout) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT, s->timeout) != CURLE_OK ||
	    /*
	     * One SMTP session per message: nothing (TLS, AUTH, a server's
	     * per-session limits) carries over, and an idle connection the
	     * server dropped is never reused.
	     */
	    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_VERBOSE, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, debug_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_DEBUGDATA, s) != CURLE_OK) {
		pa_log_error("cannot set up libcurl for SMTP");
		set_reply(reply, replylen, "libcurl set-up failed");
		rv = PA_EUPSTREAM;
		goto out;
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	s->server_failed = rc != CURLE_OK && strcmp(s->verb, "RCPT") != 0 &&
	    strcmp(s->verb, "DATA") != 0;
	if (rc == CURLE_OK) {
		set_reply(reply, replylen, s->last);
		rv = PA_OK;
	} else if (code >= 400 && s->last[0] != '\0') {
		set_reply(reply, replylen, s->last);
		/*
		 * A 5xx to the recipient or the message is final.  Refusals
		 * before that (TLS or AUTH required, a refused login, the
		 * sender) are the operator's to fix: the message waits.
		 */
		rv = code >= 500 && (strcmp(s->verb, "RCPT") == 0 || strcmp(s->verb, "DATA") == 0)
		    ? PA_EINPUT : PA_EUPSTREAM;
	} else {
		const char *e = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);

		set_reply(reply, replylen, e);
		rv = PA_EUPSTREAM;
	}
out:
	/* The list must outlive the transfer; the handle keeps no pointer to it after a reset. */
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, NULL);
	curl_slist_free_all(rcpts);
	return rv;
}
