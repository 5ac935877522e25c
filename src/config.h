/*
 * The configuration: `key = value` lines, each key overridable by the
 * environment variable PBX_AUTH_<KEY>.  The table of keys, types, defaults and
 * validators is in config.c; cross-key checks run once after loading.
 */
#ifndef PA_CONFIG_H
#define PA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "pa.h"
#include "valid.h"

typedef struct {
	char *database;			/* libpq connection string */
	char *ctl_database;		/* pbx-authctl's connection string (the owner role); NULL: database */
	char *listen;			/* unix socket path, or host:port */
	int listen_mode;		/* mode of the unix socket */
	int listen_backlog;
	int workers;			/* request workers; 0 in the file means: number of CPUs */
	/*
	 * The hashing workers: the routes that verify or set a password
	 * (PA_CLASS_HASH in the route table) have their own socket, workers
	 * and CPU priority, so that a sign-in storm queues only sign-ins.
	 */
	char *hash_listen;		/* NULL in the file: derived from listen */
	int hash_workers;		/* 0 in the file means: number of CPUs */
	int hash_queue_max;		/* listen backlog of hash_listen */
	int hash_nice;			/* added to the hashing workers' nice value */
	char *user;			/* workers drop to this user when started as root */
	char *listen_group;		/* group of the unix socket; NULL: user's primary group */
	char *pidfile;			/* the master's pid, or NULL for none */
	enum pa_log_level log_level;
	enum pa_log_format log_format;	/* text (logfmt) or json */
	int retry_after;		/* seconds, in 503 responses */
	char *migrations_dir;
	char *ms365_authority_global;	/* scheme://host[:port], no trailing slash */
	char *ms365_authority_china;
	char *ms365_ca_file;		/* CA bundle for the IdP's TLS; NULL: the system's */
	int ms365_connect_timeout;	/* seconds, outbound requests to the IdP */
	int ms365_timeout;		/* seconds, a whole outbound request */
	int ms365_flow_ttl;		/* seconds a Microsoft sign-in may take */
	int ms365_metadata_ttl;		/* seconds discovery documents and keys are cached */
	char *portal_url;		/* where cookie-flavour Microsoft sign-ins land */
	int tenant_cache_size;		/* entries of the per-worker /api/info cache */
	int gate_cache_size;		/* entries of the per-worker verified-token cache */
	int gate_cache_memory;		/* MiB its names may take, per worker */
	int gate_offline_ttl;		/* seconds cached tokens answer without PostgreSQL */
	/* Sessions and tokens (seconds). */
	int access_token_ttl;
	int refresh_token_ttl;		/* also the lifetime of a cookie session */
	int refresh_reuse_grace;	/* a spent refresh token is refused quietly this long */
	int refresh_retry_window;	/* a rotation whose answer was lost may be retried this long */
	int two_factor_ttl;
	/* Passwords. */
	int password_hash_cost;		/* 0: libxcrypt's default for its preferred method */
	int password_min_length;	/* of a new password, in characters */
	int password_max_length;
	/* Failed sign-in throttling; failures 0 turns a limit off. */
	int throttle_ip_failures, throttle_ip_window, throttle_ip_block;
	int throttle_account_failures, throttle_account_window, throttle_account_block;
	char *throttle_exempt;		/* address blocks never blocked per address, or NULL */
	pa_cidr_t throttle_exempt_nets[PA_CIDR_MAX];	/* throttle_exempt, parsed */
	size_t throttle_exempt_n;
	/* The session cookie of the web portal. */
	char *cookie_name;
	bool cookie_secure;
	char *allowed_origins;		/* space-separated origins for cookie requests, or NULL */
	/* Password reset and email one-time codes (seconds; flows.h). */
	int reset_token_ttl;
	int mail_rate_interval;		/* at most one reset email per account this often */
	int otp_ttl;
	int otp_resend_interval;
	int otp_max_attempts;		/* wrong codes that void the two-factor token */
	/* Message texts with {placeholders} (flows.h); "\n" in the file is a line break. */
	char *reset_mail_subject, *reset_mail_body;
	char *otp_mail_subject, *otp_mail_body;
	/* The mailer (mailer.c, smtp.c): no smtp_url means mail stays queued. */
	char *smtp_url;			/* smtp://host[:port][/ehlo-name] or smtps://... */
	char *smtp_from;		/* envelope sender and From address */
	char *smtp_from_name;		/* display name in From, or NULL */
	char *smtp_user;		/* AUTH user, or NULL: no AUTH */
	char *smtp_password_file;	/* AUTH password: the file's first line */
	int smtp_starttls;		/* enum pa_smtp_tls */
	char *smtp_ca_file;		/* CA certificates for TLS, or NULL: the system's */
	int smtp_connect_timeout, smtp_timeout;	/* seconds */
	int smtp_max_attempts;		/* deliveries tried before a message is failed */
	int smtp_retry_base;		/* seconds before the 2nd attempt; doubles each time */
	int cleanup_interval;		/* seconds between deletions of expired rows */
	int mail_keep_days;		/* sent and failed mail is deleted after this */
	int audit_keep_days;		/* audit rows are deleted after this; 0: never */
} pa_config_t;

/* smtp_starttls: STARTTLS on smtp:// URLs (smtps:// is TLS from the start). */
enum pa_smtp_tls {
	PA_SMTP_TLS_REQUIRED,	/* no TLS, no mail (CURLUSESSL_ALL) */
	PA_SMTP_TLS_OPTIONAL,	/* plaintext when the server offers no STARTTLS */
	PA_SMTP_TLS_OFF,	/* never (a loopback relay) */
	PA_SMTP_TLS__MAX
};

/* Returns a configuration holding the defaults (free with pa_config_free), or NULL. */
pa_config_t *pa_config_new(void);
void pa_config_free(pa_config_t *c);

/*
 * Sets one key from its text form.  Returns PA_OK, or PA_EINPUT with a message
 * in err (unknown key or invalid value), or PA_ENOMEM.
 */
enum pa_err pa_config_set(pa_config_t *c, const char *key, const char *value,
    char *err, size_t errlen) PA_MUSTCHECK;

/*
 * Parses configuration text (name is used in messages), then applies the
 * PBX_AUTH_* environment overrides and the cross-key checks.  Returns PA_OK or
 * PA_EINPUT/PA_ENOMEM with "name:line: message" in err.
 */
enum pa_err pa_config_parse(pa_config_t *c, const char *text, const char *name,
    char *err, size_t errlen) PA_MUSTCHECK;

/* Reads and parses a file as pa_config_parse does; PA_ESYS when it cannot be read. */
enum pa_err pa_config_load(pa_config_t *c, const char *path, char *err, size_t errlen)
	PA_MUSTCHECK;

/* The default configuration file path. */
const char *pa_config_default_path(void);

#endif
