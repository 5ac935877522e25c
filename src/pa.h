/*
 * Definitions every module shares: the status codes functions return and the
 * length-carrying string type.  No third-party header is included here.
 */
#ifndef PA_H
#define PA_H

#include <stdbool.h>
#include <stddef.h>

#define PA_MUSTCHECK __attribute__((warn_unused_result))
#define PA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PA_NELEM(a) (sizeof(a) / sizeof((a)[0]))

enum pa_err {
	PA_OK = 0,
	PA_ENOMEM,	/* allocation failed */
	PA_EINPUT,	/* the caller's input is invalid */
	PA_ENOTFOUND,	/* the thing asked for does not exist */
	PA_EDB,		/* the database is unreachable or failed */
	PA_ECONFLICT,	/* a uniqueness constraint said no */
	PA_ESYS,	/* a system call failed */
	PA_EUPSTREAM,	/* an outside service failed */
	PA_ECONFIG	/* an outside service refused our own configuration */
};

/* A string with its length; p is NUL-terminated where the producer says so. */
typedef struct {
	const char *p;
	size_t len;
} pa_str_t;

#define PA_STR(lit) ((pa_str_t){ (lit), sizeof(lit) - 1 })

#endif
