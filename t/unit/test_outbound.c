/*
 * Unit tests of src/outbound.c against a loopback stub server (a forked
 * child answering one canned response per connection): GET and form POST,
 * the status and body, the response size cap, the total timeout, no
 * redirects followed, plain http refused for non-loopback hosts, and the
 * percent-encoding of pa_outbound_param.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "log.h"
#include "outbound.h"
#include "tap.h"

/* Listens on a free loopback port; returns the fd and sets *port. */
static int
listen_any(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

/*
 * The stub: for each connection, reads the request (headers and a body of
 * Content-Length), writes it to reqfile, then answers per the path:
 * /small 200 "hello", /big 200 with 100000 bytes, /slow sleeps 5 s,
 * /redirect 302 to /small.
 */
static pid_t
stub(int fd, const char *reqfile)
{
	pid_t pid = fork();

	if (pid != 0) {
		close(fd);
		return pid;
	}
	for (;;) {
		char req[8192];
		size_t n = 0;
		ssize_t r;
		int c = accept(fd, NULL, NULL);
		char *end, *cl;
		size_t want = 0;
		FILE *f;

		if (c < 0)
			_exit(0);
		while (n < sizeof(req) - 1 && (r = read(c, req + n, sizeof(req) - 1 - n)) > 0) {
			n += (size_t)r;
			req[n] = '\0';
			if ((end = strstr(req, "\r\n\r\n")) != NULL) {
				cl = strcasestr(req, "Content-Length:");
				want = (size_t)(end + 4 - req) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
				if (n >= want)
					break;
			}
		}
		if ((f = fopen(reqfile, "w")) != NULL) {
			fwrite(req, 1, n, f);
			fclose(f);
		}
		if (strstr(req, " /small ") != NULL) {
			dprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
			    "hello");
		} else if (strstr(req, " /big ") != NULL) {
			static char big[100000];

			memset(big, 'x', sizeof(big));
			dprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
			(void)!write(c, big, sizeof(big));
		} else if (strstr(req, " /slow ") != NULL) {
			sleep(5);
		} else {
			dprintf(c, "HTTP/1.1 302 Found\r\nLocation: /small\r\nContent-Length: 0\r\n"
			    "Connection: close\r\n\r\n");
		}
		close(c);
	}
}

static char *
slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

int
main(void)
{
	pa_arena_t *a = pa_arena_new();
	char url[128], reqfile[] = "/tmp/pa-test-outbound-XXXXXX";
	pa_outbound_req_t req = { NULL, NULL, NULL, 2, 2, 1000, "test" };
	pa_outbound_res_t res;
	pa_buf_t b = PA_BUF_INIT;
	int port, fd, tmp;
	pid_t pid;

	pa_log_init("test_outbound");
	pa_log_set_level(PA_LOG__MAX);
	if ((tmp = mkstemp(reqfile)) >= 0)
		close(tmp);
	if ((fd = listen_any(&port)) < 0) {
		ok(false, "listen");
		return done_testing();
	}
	pid = stub(fd, reqfile);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/small", port);
	req.url = url;
	ok(pa_outbound_fetch(a, &req, &res) == PA_OK, "GET over http to loopback");
	is_int(res.status, 200, "status 200");
	is_str(res.body, "hello", "the body");
	ok(strncmp(slurp(reqfile), "GET /small HTTP/1.1\r\n", 21) == 0, "a GET request");

	req.form = "a=1&b=x%20y";
	ok(pa_outbound_fetch(a, &req, &res) == PA_OK, "form POST");
	ok(strncmp(slurp(reqfile), "POST /small ", 12) == 0, "a POST request");
	ok(strstr(slurp(reqfile), "application/x-www-form-urlencoded") != NULL,
	    "the form content type");
	ok(strstr(slurp(reqfile), "\r\n\r\na=1&b=x%20y") != NULL, "the form body");
	req.form = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", port);
	ok(pa_outbound_fetch(a, &req, &res) == PA_EUPSTREAM, "a body over the cap: PA_EUPSTREAM");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect", port);
	ok(pa_outbound_fetch(a, &req, &res) == PA_OK && res.status == 302,
	    "a redirect is not followed");
	snprintf(url, sizeof(url), "http://localhost:%d/slow", port);
	req.timeout = 1;
	req.connect_timeout = 1;
	ok(pa_outbound_fetch(a, &req, &res) == PA_EUPSTREAM, "a slow answer times out");
	req.timeout = 2;
	req.connect_timeout = 2;

	req.url = "http://example.com/x";
	ok(pa_outbound_fetch(a, &req, &res) == PA_EINPUT, "plain http to another host refused");
	req.url = "http://10.0.0.1/x";
	ok(pa_outbound_fetch(a, &req, &res) == PA_EINPUT, "plain http to a private address refused");
	req.url = "ftp://127.0.0.1/x";
	ok(pa_outbound_fetch(a, &req, &res) == PA_EINPUT, "ftp refused");
	req.url = "file:///etc/passwd";
	ok(pa_outbound_fetch(a, &req, &res) == PA_EINPUT, "file refused");

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/small", port);
	req.url = url;
	ok(pa_outbound_fetch(a, &req, &res) == PA_EUPSTREAM, "nothing listening: PA_EUPSTREAM");

	pa_buf_puts(&b, "https://x/?");
	pa_outbound_param(&b, "scope", "openid profile");
	pa_outbound_param(&b, "redirect_uri", "https://h/a?b=c&d");
	pa_outbound_param(&b, "v", "A-z_0.9~");
	is_str(b.p, "https://x/?scope=openid%20profile&redirect_uri=https%3A%2F%2Fh%2Fa%3Fb%3Dc%26d"
	    "&v=A-z_0.9~", "pa_outbound_param encodes all but unreserved characters");
	pa_buf_free(&b);

	unlink(reqfile);
	pa_outbound_cleanup();
	pa_arena_free(a);
	return done_testing();
}
