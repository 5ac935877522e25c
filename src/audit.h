/*
 * The audit trail: who signed in, failed, signed out, was locked out.  Rows
 * of audit_log, each also written as one log line for the operator.  Never a
 * password or a token.  State changes that carry their own audit row write
 * it in the same statement (sessions.c, throttle.c) and only log it here.
 */
#ifndef PA_AUDIT_H
#define PA_AUDIT_H

#include "arena.h"
#include "db.h"
#include "pa.h"

typedef struct {
	const char *domain;	/* tenant domain; NULL: system-level */
	const char *username;	/* NULL: none */
	const char *user_id;	/* NULL: unknown user */
	const char *client_addr;
	const char *event;	/* sign_in, sign_out, refresh_reuse, lockout, ... */
	const char *outcome;	/* success, failure, blocked, ... */
	const char *detail;	/* NULL or a short note (flavour, session id) */
} pa_audit_t;

/* Inserts the row and logs it.  PA_OK or PA_EDB. */
enum pa_err pa_audit(pa_db_t *db, pa_arena_t *a, const pa_audit_t *e) PA_MUSTCHECK;
/* Logs an event whose row another statement wrote. */
void pa_audit_log(const pa_audit_t *e);

#endif
