/*
 * The raw rate of password verification on this machine: one thread per
 * online CPU calls libxcrypt's crypt_rn on the same hash until the time is
 * up, the ceiling for sign-ins per second.  Not part of the product;
 * bench/run builds it with cc -O2 ... -lcrypt -lpthread.
 *
 * usage: verify-rate [COST [SECONDS]]
 *   COST     libxcrypt cost of the preferred method (0, the default: libxcrypt's default)
 *   SECONDS  how long to run (10)
 * Prints one line:
 *   verify_rate threads=2 cost=0 verifies=1234 seconds=10.0 per_second=77.1
 */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024

static const char password[] = "bench password 1234";
static char hash[CRYPT_OUTPUT_SIZE];
static struct timespec deadline;

struct worker {
	pthread_t tid;
	unsigned long verifies;
	int failed;
};

static double
elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int
past(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void *
run(void *arg)
{
	struct worker *w = arg;
	struct crypt_data *cd = calloc(1, sizeof(*cd));	/* 32 KiB: not on the thread's stack */

	if (cd == NULL) {
		w->failed = 1;
		return NULL;
	}
	do {
		const char *h = crypt_rn(password, hash, cd, (int)sizeof(*cd));

		if (h == NULL || strcmp(h, hash) != 0) {
			w->failed = 1;
			break;
		}
		w->verifies++;
	} while (!past(&deadline));
	free(cd);
	return NULL;
}

static long
number(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "verify-rate: %s must be %ld..%ld\n", what, min, max);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static struct worker workers[MAX_THREADS];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	struct timespec start, end;
	unsigned long total = 0;
	long cost = 0, seconds = 10, n;
	const char *h;
	double secs;
	int i, rc = 0;

	if (argc > 3) {
		fprintf(stderr, "usage: verify-rate [COST [SECONDS]]\n");
		return 2;
	}
	if (argc > 1)
		cost = number(argv[1], "COST", 0, 31);
	if (argc > 2)
		seconds = number(argv[2], "SECONDS", 1, 3600);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > MAX_THREADS)
		n = MAX_THREADS;

	/* Hash the password once, as a stored hash of the configured cost. */
	if ((cd = calloc(1, sizeof(*cd))) == NULL ||
	    crypt_gensalt_rn(NULL, (unsigned long)cost, NULL, 0, setting, sizeof(setting)) == NULL ||
	    (h = crypt_rn(password, setting, cd, (int)sizeof(*cd))) == NULL || h[0] == '*') {
		fprintf(stderr, "verify-rate: cannot hash at cost %ld: %s\n", cost, strerror(errno));
		return 1;
	}
	strcpy(hash, h);
	free(cd);

	clock_gettime(CLOCK_MONOTONIC, &start);
	deadline = start;
	deadline.tv_sec += seconds;
	for (i = 0; i < n; i++)
		if ((errno = pthread_create(&workers[i].tid, NULL, run, &workers[i])) != 0) {
			fprintf(stderr, "verify-rate: pthread_create: %s\n", strerror(errno));
			n = i;
			rc = 1;
			break;
		}
	for (i = 0; i < n; i++) {
		pthread_join(workers[i].tid, NULL);
		total += workers[i].verifies;
		if (workers[i].failed) {
			fprintf(stderr, "verify-rate: a verification failed\n");
			rc = 1;
		}
	}
	/* The last verifications end after the deadline: count them, and their time. */
	clock_gettime(CLOCK_MONOTONIC, &end);
	secs = elapsed(&start, &end);
	if (rc != 0)
		return rc;
	printf("verify_rate threads=%ld cost=%ld verifies=%lu seconds=%.1f per_second=%.1f\n",
	    n, cost, total, secs, secs > 0 ? (double)total / secs : 0.0);
	return 0;
}
