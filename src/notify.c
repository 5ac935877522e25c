/*
 * The notification protocol of sd_notify(3), which systemd documents as
 * stable: one datagram per state change to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, a path or, with a leading '@', an abstract address.
 * Twenty lines here instead of a libsystemd dependency (and a build option).
 */
#include "autoconfig.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

bool
pa_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n, len = strlen(state);
	bool ok = false;
	int fd = -1;

	if (path == NULL || path[0] == '\0')
		return true;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
		pa_log_error("NOTIFY_SOCKET is not an absolute path or @abstract name");
		goto out;
	}
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract: no terminating NUL counted */
	else
		n++;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		pa_log_syserr("socket for NOTIFY_SOCKET");
		goto out;
	}
	if (sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) != (ssize_t)len) {
		pa_log_syserr("cannot notify the service manager (%s)", path);
		goto out;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	return ok;
}

bool
pa_notify_reloading(void)
{
	struct timespec ts;
	char state[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	return pa_notify(state);
}
