/*
 * pbx-authd: command line, configuration, the listening sockets (one per
 * worker class) and their owner, the pidfile, detaching, and the hand-over
 * to the master loop (pool.c).
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "smtp.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authd [-c CONFIG] [-f] [--check-config] [--version]\n"
	    "  -c CONFIG        configuration file (default %s)\n"
	    "  -f               stay in the foreground\n"
	    "  --check-config   validate the configuration and exit\n"
	    "  --version        print the version and exit\n", pa_config_default_path());
}

/*
 * The configuration path as given, made absolute: SIGHUP rereads it after
 * daemonize() has changed to "/".
 */
static char *
absolute_path(const char *path)
{
	char cwd[PATH_MAX], *abs = NULL;

	if (path[0] == '/')
		return strdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, "pbx-authd: cannot get the current directory: %s\n",
		    strerror(errno));
		return NULL;
	}
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		return NULL;
	return abs;
}

/*
 * Who owns the unix socket: started as root with `user`, that user and its
 * primary group; `listen_group` names the group (nginx's access) in any case.
 * (uid_t)-1 and (gid_t)-1 leave an id unchanged.
 */
static bool
socket_owner(const pa_config_t *cfg, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	struct group *gr;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (cfg->user != NULL && geteuid() == 0) {
		if ((pw = getpwnam(cfg->user)) == NULL) {
			fprintf(stderr, "pbx-authd: user = %s: no such user\n", cfg->user);
			return false;
		}
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	if (cfg->listen_group != NULL) {
		if ((gr = getgrnam(cfg->listen_group)) == NULL) {
			fprintf(stderr, "pbx-authd: listen_group = %s: no such group\n",
			    cfg->listen_group);
			return false;
		}
		*gid = gr->gr_gid;
	}
	return true;
}

/* False (and says so) when the pidfile names a process that is alive. */
static bool
pidfile_free(const char *path)
{
	char buf[32];
	ssize_t n;
	long pid;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
		return true;
	fprintf(stderr, "pbx-authd: %s: already running as pid %ld\n", path, pid);
	return false;
}

/* Written whole under another name, then renamed: readers never see half a pid. */
static bool
pidfile_write(const char *path)
{
	char tmp[PATH_MAX], buf[32];
	int fd, n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	bool ok;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		pa_log_error("pidfile path too long");
		return false;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		pa_log_syserr("cannot create %s", tmp);
		return false;
	}
	ok = write(fd, buf, (size_t)n) == n;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		pa_log_syserr("cannot write %s", path);
		unlink(tmp);
		return false;
	}
	return true;
}

/*
 * Detaches from the terminal; the parent exits once the child runs. From
 * then on the log goes to syslog: nobody reads the inherited stderr.
 */
static bool
daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		pa_log_syserr("fork");
		return false;
	}
	if (pid > 0)
		_exit(0);
	pa_log_forked();
	if (setsid() < 0) {
		pa_log_syserr("setsid");
		return false;
	}
	if (chdir("/") != 0) {
		pa_log_syserr("chdir /");
		return false;
	}
	pa_log_to_syslog();
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return true;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *arg = pa_config_default_path();
	bool foreground = false, check_only = false, have_pidfile = false;
	pa_config_t *cfg = NULL;
	char err[512], *path = NULL, *sock[PA_CLASS__MAX] = { NULL, NULL }, *pidfile = NULL;
	const char *spec[PA_CLASS__MAX];
	int backlog[PA_CLASS__MAX];
	uid_t uid;
	gid_t gid;
	int ch, fds[PA_CLASS__MAX] = { -1, -1 }, rv = 1;

	pa_log_init("pbx-authd");
	while ((ch = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': arg = optarg; break;
		case 'f': foreground = true; break;
		case 'C': check_only = true; break;
		case 'V': printf("pbx-authd %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((cfg = pa_config_new()) == NULL || (path = absolute_path(arg)) == NULL) {
		fprintf(stderr, "pbx-authd: out of memory\n");
		goto out;
	}
	if (pa_config_load(cfg, path, err, sizeof(err)) != PA_OK) {
		fprintf(stderr, "pbx-authd: %s\n", err);
		goto out;
	}
	if (!socket_owner(cfg, &uid, &gid))
		goto out;
	/*
	 * The backlog of hash_listen is the hash queue: when hash_queue_max
	 * connections wait for a busy hashing worker, the kernel refuses the
	 * next one at once (EAGAIN on a unix socket) and nginx answers 503.
	 */
	spec[PA_CLASS_REQUEST] = cfg->listen;
	backlog[PA_CLASS_REQUEST] = cfg->listen_backlog;
	spec[PA_CLASS_HASH] = cfg->hash_listen;
	backlog[PA_CLASS_HASH] = cfg->hash_queue_max;
	/* A reload replaces cfg; these stay the ones of the start. */
	if ((spec[0][0] == '/' && (sock[0] = strdup(spec[0])) == NULL) ||
	    (spec[1][0] == '/' && (sock[1] = strdup(spec[1])) == NULL) ||
	    (cfg->pidfile != NULL && (pidfile = strdup(cfg->pidfile)) == NULL)) {
		fprintf(stderr, "pbx-authd: out of memory\n");
		goto out;
	}
	if (check_only) {
		printf("pbx-authd: configuration OK\n");
		rv = 0;
		goto out;
	}
	pa_log_set_level(cfg->log_level);
	pa_log_set_format(cfg->log_format);
	/* Before binding: listening would unlink a running daemon's socket. */
	if (pidfile != NULL && !pidfile_free(pidfile))
		goto out;
	for (int c = 0; c < PA_CLASS__MAX; c++) {
		if ((fds[c] = pa_http_listen(spec[c], backlog[c], cfg->listen_mode)) < 0)
			goto out;
		if (sock[c] != NULL && (uid != (uid_t)-1 || gid != (gid_t)-1) &&
		    chown(sock[c], uid, gid) != 0) {
			pa_log_syserr("cannot give %s to user %s group %s", spec[c],
			    cfg->user ? cfg->user : "-",
			    cfg->listen_group ? cfg->listen_group : "-");
			goto out;
		}
	}
	if (!foreground && !daemonize())
		goto out;
	if (pidfile != NULL && !(have_pidfile = pidfile_write(pidfile)))
		goto out;
	/* Before any fork: libcurl's global state is set up once, for all children. */
	if (!pa_smtp_global_init())
		goto out;
	rv = pa_pool_run(path, &cfg, fds);
	/* The master loop closed the sockets (and unlinked them) when it stopped. */
	for (int c = 0; c < PA_CLASS__MAX; c++)
		fds[c] = -1;
out:
	for (int c = 0; c < PA_CLASS__MAX; c++) {
		if (fds[c] >= 0 && sock[c] != NULL)
			unlink(sock[c]);
		if (fds[c] >= 0)
			close(fds[c]);
		free(sock[c]);
	}
	if (have_pidfile)
		unlink(pidfile);
	pa_config_free(cfg);
	free(path);
	free(pidfile);
	return rv;
}
