/*
 * The floor of the bench: the cheapest prefork libfcgi responder, answering
 * every request with the same headers as pbx-authd and a fixed JSON body read
 * once from a file. Not part of the product; bench/run builds and runs it.
 * With "now", a connection nginx does not keep is closed at once after the
 * answer, as pbx-authd closes it, instead of libfcgi's way (shut down the
 * writing side, then wait for nginx to close).
 *
 * usage: fcgi-floor SOCKET WORKERS BODYFILE MAX_SECONDS [now]
 * Stops on SIGTERM/SIGINT, when a worker dies, and after MAX_SECONDS.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

#define MAX_WORKERS 256
#define MAX_BODY (1 << 20)

static volatile sig_atomic_t stop, expired;
static int close_now;

static void
on_signal(int sig)
{
	stop = 1;
	if (sig == SIGALRM)
		expired = 1;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(MAX_BODY);

	if (f == NULL || buf == NULL) {
		perror(path);
		exit(1);
	}
	*len = fread(buf, 1, MAX_BODY, f);
	if (ferror(f) || !feof(f)) {
		fprintf(stderr, "%s: read error or larger than %d bytes\n", path, MAX_BODY);
		exit(1);
	}
	fclose(f);
	return buf;
}

static void
serve(int fd, const char *body, size_t len, unsigned lifetime)
{
	FCGX_Request rq;
	char head[256];
	int n;

	/* Die with the master, and in any case after the lifetime. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	alarm(lifetime);
	if (getppid() == 1)
		_exit(0);

	/* The headers pbx-authd sends, Content-Length included, so that nginx
	 * answers the client with the same bytes for both. */
	n = snprintf(head, sizeof(head), "Status: 200 OK\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Content-Length: %zu\r\n"
	    "\r\n", len);

	FCGX_InitRequest(&rq, fd, 0);
	while (FCGX_Accept_r(&rq) >= 0) {
		int keep = rq.keepConnection;

		FCGX_PutStr(head, n, rq.out);
		FCGX_PutStr(body, (int)len, rq.out);
		if (close_now)
			rq.keepConnection = 1;
		FCGX_Finish_r(&rq);
		if (close_now && !keep && rq.ipcFd >= 0) {
			close(rq.ipcFd);
			rq.ipcFd = -1;
		}
	}
	_exit(0);
}

int
main(int argc, char **argv)
{
	pid_t pids[MAX_WORKERS];
	struct sigaction sa;
	sigset_t block, old;
	size_t len;
	char *body, *end;
	long nworkers, lifetime;
	int fd, i, alive;

	if (argc != 5 && !(argc == 6 && strcmp(argv[5], "now") == 0)) {
		fprintf(stderr, "usage: %s SOCKET WORKERS BODYFILE MAX_SECONDS [now]\n", argv[0]);
		return 2;
	}
	close_now = argc == 6;
	nworkers = strtol(argv[2], &end, 10);
	if (*end != '\0' || nworkers < 1 || nworkers > MAX_WORKERS) {
		fprintf(stderr, "%s: WORKERS must be 1..%d\n", argv[0], MAX_WORKERS);
		return 2;
	}
	lifetime = strtol(argv[4], &end, 10);
	if (*end != '\0' || lifetime < 1 || lifetime > 86400) {
		fprintf(stderr, "%s: MAX_SECONDS must be 1..86400\n", argv[0]);
		return 2;
	}
	body = read_file(argv[3], &len);

	if (FCGX_Init() != 0) {
		fprintf(stderr, "%s: FCGX_Init failed\n", argv[0]);
		return 1;
	}
	unlink(argv[1]);
	fd = FCGX_OpenSocket(argv[1], 1024);
	if (fd < 0 || chmod(argv[1], 0666) != 0) {
		fprintf(stderr, "%s: cannot listen on %s: %s\n", argv[0], argv[1], strerror(errno));
		return 1;
	}

	/* Signals stay blocked outside sigsuspend, so none is lost. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGALRM);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);

	for (i = 0; i < nworkers; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			nworkers = i;
			stop = 1;
			break;
		}
		if (pids[i] == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			serve(fd, body, len, (unsigned)lifetime);
		}
	}
	alarm((unsigned)lifetime);

	/* Run until told to stop, the lifetime is over, or a worker died. */
	while (!stop)
		sigsuspend(&old);

	/* Reap the workers, giving up after 5 seconds. */
	for (i = 0; i < nworkers; i++)
		kill(pids[i], SIGTERM);
	expired = 0;
	alarm(5);
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (alive = (int)nworkers; alive > 0 && !expired;) {
		if (waitpid(-1, NULL, 0) > 0)
			alive--;
		else if (errno != EINTR)
			break;
	}
	unlink(argv[1]);
	return 0;
}
