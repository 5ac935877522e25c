/*
 * Requests and responses over libfcgi: socket, accept, bounded body reading,
 * query/cookie parsing, and responses with the contract's common headers.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/filter.h>

#include <fcgiapp.h>

#include "http.h"
#include "json.h"
#include "log.h"

/* Bytes of an oversized or lying body read (and discarded) before giving up on the connection. */
#define MAX_DRAIN (16 * 1024 * 1024)

/* An address of FCGI_WEB_SERVER_ADDRS. */
struct peer_addr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char a[16];
};

struct pa_http_conn {
	FCGX_Request rq;
	int listen_fd;
	bool tcp;		/* the listener is TCP: no Nagle on its connections */
	bool active;		/* between a successful accept and finish */
	bool filter;		/* FCGI_WEB_SERVER_ADDRS is set: only those peers (TCP) */
	size_t npeers;
	struct peer_addr *peers;
};

static bool fcgx_ready;

/*
 * The unix sockets this process created (one per worker class), so that a
 * stop unlinks only its own.
 */
#define MADE_MAX 4
static struct made {
	int fd;			/* -1: free */
	char *path;
	dev_t dev;
	ino_t ino;
} made[MADE_MAX] = { { -1, NULL, 0, 0 }, { -1, NULL, 0, 0 }, { -1, NULL, 0, 0 },
	{ -1, NULL, 0, 0 } };

/* The entry of fd, or else a free one (NULL when there is neither). */
static struct made *
made_slot(int fd)
{
	struct made *free_slot = NULL;

	for (int i = 0; i < MADE_MAX; i++) {
		if (made[i].fd == fd)
			return &made[i];
		if (made[i].fd < 0 && free_slot == NULL)
			free_slot = &made[i];
	}
	return free_slot;
}

static bool
init_fcgx(void)
{
	if (!fcgx_ready && FCGX_Init() != 0) {
		pa_log_error("FCGX_Init failed");
		return false;
	}
	fcgx_ready = true;
	return true;
}

int
pa_http_listen(const char *spec, int backlog, int mode)
{
	int fd;

	if (!init_fcgx())
		return -1;
	if (spec[0] == '/')
		(void)unlink(spec);	/* a stale socket of an earlier run */
	/* libfcgi takes ":port" or "host:port" for TCP and a path otherwise. */
	if ((fd = FCGX_OpenSocket(spec, backlog)) < 0) {
		pa_log_syserr("cannot listen on %s", spec);
		return -1;
	}
	/* The socket is created with the umask; nginx needs the configured mode. */
	if (spec[0] == '/') {
		struct stat st;
		struct made *m;

		if (chmod(spec, (mode_t)mode) != 0 || stat(spec, &st) != 0) {
			pa_log_syserr("cannot chmod %s", spec);
			close(fd);
			return -1;
		}
		if ((m = made_slot(fd)) == NULL) {
			pa_log_error("more than %d unix sockets", MADE_MAX);
			close(fd);
			return -1;
		}
		free(m->path);
		if ((m->path = strdup(spec)) == NULL) {
			pa_log_error("out of memory");
			m->fd = -1;
			close(fd);
			return -1;
		}
		m->fd = fd;
		m->dev = st.st_dev;
		m->ino = st.st_ino;
	}
	return fd;
}

/*
 * Stops new connections without losing queued ones.  The order matters:
 * 1. no new connection can reach the socket: the unix socket's name goes
 *    (only if it is still the one we created: a new instance may have
 *    taken the path), so a connect(2) fails with ENOENT; a TCP listener
 *    gets a filter that drops every incoming segment, so new SYNs go
 *    unanswered (Linux runs a listener's socket filter before the SYN
 *    handling) and, once the last copy is closed, are refused;
 * 2. the socket becomes non-blocking: the flag belongs to the open file
 *    description every worker shares, so each worker's next accept
 *    returns at once, and pa_http_draining() tells them to serve what the
 *    kernel already queued until accept says EAGAIN (the queue cannot grow
 *    any more), then exit;
 * 3. this process's copy is closed.  The listener goes away when the last
 *    worker exits, with an empty queue: nothing is reset.
 */
void
pa_http_stop_listening(int fd)
{
	static struct sock_filter drop[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog prog = { 1, drop };
	struct sockaddr_storage sa = { 0 };
	socklen_t salen = sizeof(sa);
	struct stat st;
	struct made *m = made_slot(fd);
	int fl;

	if (m != NULL && m->fd == fd) {
		if (stat(m->path, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino &&
		    unlink(m->path) != 0)
			pa_log_syserr("cannot unlink %s", m->path);
		free(m->path);
		m->path = NULL;
		m->fd = -1;
	} else if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 &&
	    (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) &&
	    setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0) {
		pa_log_syserr("cannot stop new connections on the listener");
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		pa_log_syserr("cannot make the listener non-blocking");
	close(fd);
}

bool
pa_http_draining(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK) != 0;
}

/*
 * FCGI_WEB_SERVER_ADDRS (libfcgi's convention): a comma-separated list of
 * the addresses a TCP listener takes connections from, IPv4 or IPv6 (an
 * IPv4-mapped IPv6 peer matches its IPv4 address).  Unset: any.  Set, with
 * no address that parses: none.  False when out of memory (logged).
 */
static bool
read_peers(pa_http_conn_t *c)
{
	const char *env = getenv("FCGI_WEB_SERVER_ADDRS");
	char item[INET6_ADDRSTRLEN + 1];

	if (env == NULL)
		return true;
	c->filter = true;
	for (const char *p = env; *p != '\0';) {
		size_t n = strcspn(p, ","), b = 0, e = n;
		struct peer_addr a = { 0 };

		while (b < e && isspace((unsigned char)p[b]))
			b++;
		while (e > b && isspace((unsigned char)p[e - 1]))
			e--;
		if (e > b) {
			if (e - b < sizeof(item)) {
				memcpy(item, p + b, e - b);
				item[e - b] = '\0';
			} else {
				item[0] = '\0';
			}
			if (inet_pton(AF_INET, item, a.a) == 1) {
				a.family = AF_INET;
			} else if (inet_pton(AF_INET6, item, a.a) == 1) {
				a.family = AF_INET6;
			} else {
				pa_log_warn("FCGI_WEB_SERVER_ADDRS: \"%.*s\" is not an IP address:"
				    " ignored", (int)(e - b), p + b);
			}
			if (a.family != 0) {
				struct peer_addr *np = realloc(c->peers,
				    (c->npeers + 1) * sizeof(*np));

				if (np == NULL) {
					pa_log_error("out of memory");
					return false;
				}
				c->peers = np;
				c->peers[c->npeers++] = a;
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (c->npeers == 0)
		pa_log_warn("FCGI_WEB_SERVER_ADDRS names no address: no connection is taken");
	return true;
}

/* Whether FCGI_WEB_SERVER_ADDRS lets peer sa connect. */
static bool
peer_allowed(const pa_http_conn_t *c, const struct sockaddr_storage *sa)
{
	const unsigned char *v4 = NULL, *v6 = NULL;

	if (sa->ss_family == AF_INET) {
		v4 = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		v6 = a->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			v4 = a->s6_addr + 12;
	}
	for (size_t i = 0; i < c->npeers; i++) {
		if (c->peers[i].family == AF_INET && v4 != NULL && memcmp(c->peers[i].a, v4, 4) == 0)
			return true;
		if (c->peers[i].family == AF_INET6 && v6 != NULL &&
		    memcmp(c->peers[i].a, v6, 16) == 0)
			return true;
	}
	return false;
}

pa_http_conn_t *
pa_http_conn_new(int fd)
{
	pa_http_conn_t *c;

	if (!init_fcgx())
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		pa_log_error("out of memory");
		return NULL;
	}
	/*
	 * libfcgi gets no listener: pa_http_accept accepts, and hands libfcgi
	 * the connection.
	 */
	if (FCGX_InitRequest(&c->rq, -1, 0) != 0) {
		pa_log_error("FCGX_InitRequest failed");
		free(c);
		return NULL;
	}
	c->listen_fd = fd;
	{
		struct sockaddr_storage sa = { 0 };
		socklen_t salen = sizeof(sa);

		c->tcp = getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 &&
		    (sa.ss_family == AF_INET || sa.ss_family == AF_INET6);
	}
	if (c->tcp && !read_peers(c)) {
		pa_http_conn_free(c);
		return NULL;
	}
	return c;
}

void
pa_http_conn_free(pa_http_conn_t *c)
{
	if (c == NULL)
		return;
	if (c->active)
		pa_http_finish(c);
	FCGX_Free(&c->rq, 1);
	free(c->peers);
	free(c);
}

/*
 * The wait for a connection, and only the wait, runs under the signal mask
 * wait, which lets the stop signals in that the caller keeps blocked
 * otherwise.  libfcgi reads a request's parameters inside FCGX_Accept_r and
 * does not survive a read interrupted by a signal (EINTR): it drops the
 * connection unanswered, or goes on with the parameters read so far.  Its
 * own accept also polls each new connection and drops it when a signal
 * interrupts that.  So this module accepts under wait, and gives libfcgi the
 * connection under the caller's mask: FCGX_Accept_r takes a connection it
 * finds open (ipcFd), and keeps it through its first FCGX_Finish_r when
 * keepConnection is set (the request's own flag replaces it as soon as its
 * first record is read).  A connection nginx keeps (fastcgi_keep_conn on) is
 * waited on for its next request the same way.
 */
enum pa_accept
pa_http_accept(pa_http_conn_t *c, const sigset_t *wait, volatile sig_atomic_t *stop)
{
	struct sockaddr_storage peer = { 0 };
	socklen_t peerlen = sizeof(peer);
	bool kept = c->rq.ipcFd >= 0;
	struct pollfd p = { c->rq.ipcFd, POLLIN, 0 };
	sigset_t held;
	int fd = -1, n = 0, err, rc;

	sigprocmask(SIG_SETMASK, wait, &held);
	if (*stop && !pa_http_draining(c->listen_fd)) {
		sigprocmask(SIG_SETMASK, &held, NULL);
		return PA_ACCEPT_INTERRUPTED;
	}
	if (kept)
		n = poll(&p, 1, -1);
	else
		fd = accept4(c->listen_fd, (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC);
	err = errno;
	sigprocmask(SIG_SETMASK, &held, NULL);
	if (kept && n < 0)
		return err == EINTR ? PA_ACCEPT_INTERRUPTED : PA_ACCEPT_FAILED;
	if (!kept && fd < 0) {
		switch (err) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return pa_http_draining(c->listen_fd) ? PA_ACCEPT_EMPTY : PA_ACCEPT_INTERRUPTED;
		case EINTR:
		/* accept(2): the pending network errors of the new connection */
		case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
		case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP:
		case ENETUNREACH: case ECONNRESET: case ETIMEDOUT:
			return PA_ACCEPT_INTERRUPTED;
		default:
			errno = err;
			pa_log_syserr("accept");
			return PA_ACCEPT_FAILED;
		}
	}
	if (!kept) {
		if (c->filter && !peer_allowed(c, &peer)) {
			char host[INET6_ADDRSTRLEN] = "?";

			if (peer.ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, host,
				    sizeof(host));
			else if (peer.ss_family == AF_INET6)
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, host,
				    sizeof(host));
			pa_log_warn("FastCGI connection from %s refused: not in FCGI_WEB_SERVER_ADDRS",
			    host);
			close(fd);
			return PA_ACCEPT_INTERRUPTED;
		}
		if (c->tcp) {
			int one = 1;

			/* Nothing to wait for before sending: no Nagle (as libfcgi does). */
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		c->rq.ipcFd = fd;
		c->rq.keepConnection = 1;
	}
	rc = FCGX_Accept_r(&c->rq);
	if (rc < 0) {
		/*
		 * libfcgi closed the connection (it broke off before a whole
		 * request, or did not speak FastCGI) and, without a listener,
		 * could not accept another.
		 */
		pa_log_debug("a FastCGI connection closed before a request (%d)", rc);
		return PA_ACCEPT_INTERRUPTED;
	}
	c->active = true;
	return PA_ACCEPT_OK;
}

void
pa_http_finish(pa_http_conn_t *c)
{
	char scratch[4096];
	size_t drained = 0;
	/* nginx keeps the connection for its next request (FCGI_KEEP_CONN) */
	bool keep = c->rq.keepConnection != 0, now;
	int n;

	if (!c->active)
		return;
	/* Unread input makes libfcgi close the connection: read it to its end. */
	while (drained < MAX_DRAIN && (n = FCGX_GetStr(scratch, sizeof(scratch), c->rq.in)) > 0)
		drained += (size_t)n;
	/*
	 * libfcgi closes a connection nginx does not keep by shutting down its
	 * side and waiting for nginx to close, reading what still comes: the
	 * worker would sit idle for that round trip.  With the request read to
	 * its end, nothing unread can make the close reset the connection
	 * under the answer: the connection is closed here, at once.
	 */
	now = !keep && drained < MAX_DRAIN;
	c->rq.keepConnection = keep || now;
	FCGX_Finish_r(&c->rq);
	c->active = false;
	if (now && c->rq.ipcFd >= 0) {
		close(c->rq.ipcFd);
		c->rq.ipcFd = -1;
	}
}

const char *
pa_http_env(const pa_req_t *req, const char *name)
{
	return FCGX_GetParam(name, req->conn->rq.envp);
}

/* ---- parsers ---------------------------------------------------------- */

bool
pa_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		unsigned int cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond Unicode */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += len;
	}
	return true;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum pa_err
pa_http_decode(pa_arena_t *a, const char *s, size_t n, bool form, char **out)
{
	char *d;
	size_t i, j = 0;

	*out = NULL;
	if ((d = pa_alloc(a, n + 1)) == NULL)
		return PA_ENOMEM;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
				return PA_EINPUT;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		}
		if (c == '\0')
			return PA_EINPUT;
		d[j++] = c;
	}
	d[j] = '\0';
	if (!pa_utf8_valid(d, j))
		return PA_EINPUT;
	*out = d;
	return PA_OK;
}

/* Counts the separators to size the array once. */
static size_t
count_parts(const char *s, size_t n, char sep)
{
	size_t k = 1;

	for (size_t i = 0; i < n; i++)
		k += s[i] == sep;
	return k;
}

enum pa_err
pa_http_parse_query(pa_arena_t *a, const char *qs, size_t n, pa_param_t **out, size_t *nout)
{
	pa_param_t *p;
	size_t k = 0, i = 0;
	enum pa_err rv;

	*out = NULL;
	*nout = 0;
	if ((p = pa_calloc(a, count_parts(qs, n, '&'), sizeof(*p))) == NULL)
		return PA_ENOMEM;
	while (i < n) {
		const char *part = qs + i, *amp = memchr(part, '&', n - i), *eq;
		size_t plen = amp ? (size_t)(amp - part) : n - i;
		char *name, *value;

		i += plen + 1;
		if (plen == 0)
			continue;
		eq = memchr(part, '=', plen);
		if ((rv = pa_http_decode(a, part, eq ? (size_t)(eq - part) : plen, true, &name)) != PA_OK)
			return rv;
		if (eq != NULL)
			rv = pa_http_decode(a, eq + 1, plen - (size_t)(eq + 1 - part), true, &value);
		else
			rv = (value = pa_strdup(a, "")) ? PA_OK : PA_ENOMEM;
		if (rv != PA_OK)
			return rv;
		p[k].name = name;
		p[k].value = value;
		k++;
	}
	*out = p;
	*nout = k;
	return PA_OK;
}

/* Narrows [*b, *e) by removing spaces and tabs at both ends. */
static void
trim_ows(const char **b, const char **e)
{
	while (*b < *e && (**b == ' ' || **b == '\t'))
		(*b)++;
	while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

enum pa_err
pa_http_parse_cookies(pa_arena_t *a, const char *h, pa_param_t **out, size_t *nout)
{
	size_t n = strlen(h), k = 0, i = 0;
	pa_param_t *p;

	*out = NULL;
	*nout = 0;
	if ((p = pa_calloc(a, count_parts(h, n, ';'), sizeof(*p))) == NULL)
		return PA_ENOMEM;
	while (i < n) {
		const char *part = h + i, *semi = memchr(part, ';', n - i);
		const char *end = semi ? semi : h + n, *eq = memchr(part, '=', (size_t)(end - part));
		const char *nb = part, *ne, *vb, *ve = end;

		i = (size_t)(end - h) + 1;
		if (eq == NULL)
			continue;
		ne = eq;
		vb = eq + 1;
		trim_ows(&nb, &ne);
		trim_ows(&vb, &ve);
		/* RFC 6265 allows the value in double quotes. */
		if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"')
			vb++, ve--;
		if (ne == nb)
			continue;
		if ((p[k].name = pa_strndup(a, nb, (size_t)(ne - nb))) == NULL ||
		    (p[k].value = pa_strndup(a, vb, (size_t)(ve - vb))) == NULL)
			return PA_ENOMEM;
		k++;
	}
	*out = p;
	*nout = k;
	return PA_OK;
}

const char *
pa_http_param(const pa_param_t *p, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(p[i].name, name) == 0)
			return p[i].value;
	return NULL;
}

size_t
pa_http_param_count(const pa_param_t *p, size_t n, const char *name)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += strcmp(p[i].name, name) == 0;
	return k;
}

bool
pa_http_media_type_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, type, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* ---- request ---------------------------------------------------------- */

static void
set_parse_error(pa_req_t *req, int status, const char *why)
{
	if (req->parse_status == 0) {
		req->parse_status = status;
		req->parse_error = why;
	}
}

/*
 * Reads the body to its end, at most PA_HTTP_MAX_BODY bytes, whatever
 * CONTENT_LENGTH claims: a body larger than the limit is a 413 even when the
 * declared length is small.
 */
static enum pa_err
read_body(pa_req_t *req)
{
	const char *cl = pa_http_env(req, "CONTENT_LENGTH");
	unsigned long long declared = 0;
	size_t got = 0, cap;
	char *grown;
	int n;

	if (cl != NULL && *cl != '\0') {
		char *end;

		errno = 0;
		declared = strtoull(cl, &end, 10);
		if (errno != 0 || *end != '\0' || !isdigit((unsigned char)*cl)) {
			set_parse_error(req, 400, "invalid Content-Length");
			return PA_OK;
		}
		if (declared > PA_HTTP_MAX_BODY) {
			set_parse_error(req, 413, "request body larger than 65536 bytes");
			return PA_OK;
		}
	}
	/*
	 * Read one byte more than declared to catch a body longer than its
	 * Content-Length; only then grow to one byte over the limit.
	 */
	cap = (size_t)declared + 1;
	if ((req->body = pa_alloc(req->arena, cap + 1)) == NULL)
		return PA_ENOMEM;
	for (;;) {
		while (got < cap && (n = FCGX_GetStr(req->body + got, (int)(cap - got),
		    req->conn->rq.in)) > 0)
			got += (size_t)n;
		if (got < cap || cap == PA_HTTP_MAX_BODY + 1)
			break;
		/* longer than declared: keep reading up to the limit */
		if ((grown = pa_alloc(req->arena, PA_HTTP_MAX_BODY + 2)) == NULL)
			return PA_ENOMEM;
		memcpy(grown, req->body, got);
		req->body = grown;
		cap = PA_HTTP_MAX_BODY + 1;
	}
	req->body[got] = '\0';
	req->body_len = got;
	if (got > PA_HTTP_MAX_BODY)
		set_parse_error(req, 413, "request body larger than 65536 bytes");
	else if (got != declared)
		set_parse_error(req, 400, "request body length differs from Content-Length");
	return PA_OK;
}

/*
 * Takes nginx's $request_id (32 hex digits) when it is a sane token; else
 * (a bare FastCGI client, or a bad value) makes one, so that every request
 * has an id to log and echo.
 */
static void
set_request_id(pa_req_t *req)
{
	static const char hex[] = "0123456789abcdef";
	const char *id = pa_http_env(req, "REQUEST_ID");
	unsigned char r[16];

	if (id != NULL && pa_log_request_id_valid(id)) {
		memcpy(req->request_id, id, strlen(id) + 1);
		return;
	}
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++) {
		req->request_id[2 * i] = hex[r[i] >> 4];
		req->request_id[2 * i + 1] = hex[r[i] & 15];
	}
	req->request_id[2 * sizeof(r)] = '\0';
}

enum pa_err
pa_http_request_init(pa_req_t *req, pa_http_conn_t *c, pa_arena_t *a)
{
	const char *qs, *uri, *p;
	enum pa_err rv;

	memset(req, 0, sizeof(*req));
	req->arena = a;
	req->conn = c;
	req->method = pa_http_env(req, "REQUEST_METHOD");
	req->content_type = pa_http_env(req, "CONTENT_TYPE");
	req->remote_addr = pa_http_env(req, "REMOTE_ADDR");
	if (req->method == NULL)
		req->method = "";
	if (req->content_type != NULL && *req->content_type == '\0')
		req->content_type = NULL;
	if (req->remote_addr == NULL)
		req->remote_addr = "";
	set_request_id(req);
	req->route = -1;

	/* nginx gives the decoded, normalised path in DOCUMENT_URI. */
	if ((p = pa_http_env(req, "DOCUMENT_URI")) != NULL && *p != '\0') {
		req->path = p;
	} else if ((uri = pa_http_env(req, "REQUEST_URI")) != NULL) {
		char *decoded;

		rv = pa_http_decode(a, uri, strcspn(uri, "?"), false, &decoded);
		if (rv == PA_ENOMEM)
			return rv;
		if (rv != PA_OK)
			set_parse_error(req, 400, "malformed escape in the path");
		req->path = decoded ? decoded : "";
	} else {
		req->path = "";
	}

	qs = pa_http_env(req, "QUERY_STRING");
	if (qs != NULL && *qs != '\0') {
		rv = pa_http_parse_query(a, qs, strlen(qs), &req->query, &req->nquery);
		if (rv == PA_ENOMEM)
			return rv;
		if (rv != PA_OK)
			set_parse_error(req, 400, "malformed query string: bad percent escape, NUL "
			    "byte or invalid UTF-8");
	}
	return read_body(req);
}

/* ---- responses -------------------------------------------------------- */

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return status >= 500 ? "Internal Server Error" : "Error";
	}
}

const char *
pa_http_error_code(int status)
{
	switch (status) {
	case 400: return "VALIDATE_FAILED";
	case 401: return "AUTHENTICATION_FAILED";
	case 403: return "FORBIDDEN";
	case 404: return "NOT_FOUND";
	case 405: return "METHOD_NOT_ALLOWED";
	case 409: return "CONFLICT";
	case 413: return "PAYLOAD_TOO_LARGE";
	case 415: return "UNSUPPORTED_MEDIA_TYPE";
	case 429: return "TOO_MANY_REQUESTS";
	case 503: return "SERVICE_UNAVAILABLE";
	default: return "UNKNOWN";
	}
}

void
pa_http_add_header(pa_req_t *req, const char *fmt, ...)
{
	pa_buf_t line = PA_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	pa_buf_vprintf(&line, fmt, ap);
	va_end(ap);
	if (pa_buf_failed(&line) || line.len > PA_HTTP_MAX_HEADER ||
	    strpbrk(line.p, "\r\n") != NULL) {
		pa_log_error("refusing a malformed or oversized response header");
		req->headers.failed = true;
	} else {
		pa_buf_append(&req->headers, line.p, line.len);
		pa_buf_append(&req->headers, "\r\n", 2);
	}
	if (line.p != NULL)
		explicit_bzero(line.p, line.cap);	/* a Location may carry tokens */
	pa_buf_free(&line);
}

void
pa_http_reply(pa_req_t *req, int status, const char *body, size_t len)
{
	pa_http_reply_typed(req, status, "application/json; charset=utf-8", body, len);
}

void
pa_http_reply_typed(pa_req_t *req, int status, const char *type, const char *body, size_t len)
{
	FCGX_Stream *out = req->conn->rq.out;
	char head[256];
	int n;

	if (req->status != 0) {
		pa_log_error("a second response to one request (status %d after %d)", status,
		    req->status);
		return;
	}
	if (pa_buf_failed(&req->headers)) {
		/* A refused header (logged): never a 302 without its Location. */
		static const char err[] = "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":"
		    "\"Internal error\",\"detail\":null}]}";

		pa_buf_free(&req->headers);
		status = 500;
		body = err;
		len = sizeof(err) - 1;
	}
	req->status = status;
	n = snprintf(head, sizeof(head), "Status: %d %s\r\n"
	    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s%s", status,
	    status_text(status), req->request_id[0] ? "X-Request-Id: " : "", req->request_id,
	    req->request_id[0] ? "\r\n" : "");
	FCGX_PutStr(head, n, out);
	if (req->headers.len > 0)
		FCGX_PutStr(req->headers.p, (int)req->headers.len, out);
	if (body != NULL) {
		n = snprintf(head, sizeof(head), "Content-Type: %s\r\n"
		    "Content-Length: %zu\r\n\r\n", type, len);
		FCGX_PutStr(head, n, out);
		/* HEAD: the headers GET would have, Content-Length included, no body. */
		if (strcmp(req->method, "HEAD") != 0)
			FCGX_PutStr(body, (int)len, out);
	} else {
		FCGX_PutStr("\r\n", 2, out);
	}
	pa_buf_free(&req->headers);
}

void
pa_http_reply_error(pa_req_t *req, int status, const char *code, const char *message,
    const char *detail_json)
{
	pa_buf_t b = PA_BUF_INIT;

	pa_json_error_body(&b, code ? code : pa_http_error_code(status), message, detail_json);
	if (pa_buf_failed(&b))
		pa_http_reply(req, 500, NULL, 0);
	else
		pa_http_reply(req, status, b.p, b.len);
	pa_buf_free(&b);
}
