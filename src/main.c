/*
 * pbx-authd: command line, configuration, the listening socket, and the
 * hand-over to the master loop (pool.c).
 */
#include "autoconfig.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Detaches from the terminal; the parent exits once the child runs. */
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
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, STDIN_FILENO);
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
	const char *path = pa_config_default_path();
	bool foreground = false, check_only = false;
	pa_config_t *cfg = NULL;
	char err[512];
	int ch, fd = -1, rv = 1;

	pa_log_init("pbx-authd");
	while ((ch = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
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
	if ((cfg = pa_config_new()) == NULL) {
		fprintf(stderr, "pbx-authd: out of memory\n");
		return 1;
	}
	if (pa_config_load(cfg, path, err, sizeof(err)) != PA_OK) {
		fprintf(stderr, "pbx-authd: %s\n", err);
		goto out;
	}
	if (check_only) {
		printf("pbx-authd: configuration OK\n");
		rv = 0;
		goto out;
	}
	pa_log_set_level(cfg->log_level);
	pa_log_set_format(cfg->log_format);
	if ((fd = pa_http_listen(cfg->listen, cfg->listen_backlog, cfg->listen_mode)) < 0)
		goto out;
	if (!foreground && !daemonize())
		goto out;
	/* Before any fork: libcurl's global state is set up once, for all children. */
	if (!pa_smtp_global_init())
		goto out;
	rv = pa_pool_run(path, &cfg, fd);
	if (cfg->listen[0] == '/')
		unlink(cfg->listen);
out:
	if (fd >= 0)
		close(fd);
	pa_config_free(cfg);
	return rv;
}
