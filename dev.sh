#!/usr/bin/env bash
# Development stack and test runner for pbx-auth.
#   ./dev.sh up        install what is missing, build, start PostgreSQL, pbx-authd, nginx
#                      on http://127.0.0.1:8080 and an SMTP sink that catches the mail in
#                      ./var/mail (state under ./var; as root the PostgreSQL cluster is in
#                      /var/tmp, see pg_paths)
#   ./dev.sh down      stop what `up` started
#   ./dev.sh clean     down, then delete the state: ./var and the PostgreSQL cluster
#   ./dev.sh ctl ARGS  run pbx-authctl against the dev stack
#   ./dev.sh test      build with -Werror and ASan+UBSan in a temporary directory and run
#                      `make check` (unit tests, then integration tests through nginx);
#                      then the request-path tests under valgrind, scan-build, and
#                      `make distcheck` (with the unit tests); per-stage summaries, the
#                      logs of failures only, and one `N passed, N failed` line at the end
# Environment (README, "Development stack"): PBX_DEV_HTTP_PORT (8080),
# PBX_DEV_PG_PORT (54329), PBX_DEV_SMTP_PORT (2525), PBX_DEV_BUILD (a build
# directory whose binaries `up` uses instead of building ./var/build).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
var=$top/var
http_port=${PBX_DEV_HTTP_PORT:-8080}
pg_port=${PBX_DEV_PG_PORT:-54329}
smtp_port=${PBX_DEV_SMTP_PORT:-2525}
dev_build=${PBX_DEV_BUILD:-}
# Passwords of the demo accounts `up` creates (a throwaway local stack only).
demo_user_password=alice-demo-password
demo_admin_password=admin-demo-password

packages=(build-essential autoconf automake pkg-config perl libfcgi-dev libjson-c-dev
	libpq-dev libcrypt-dev libcurl4-openssl-dev libssl-dev postgresql nginx-light curl valgrind mandoc
	clang clang-tools libcryptx-perl libio-socket-ssl-perl debhelper dpkg-dev lintian systemd openssl chromium
	iproute2 prometheus)

# Tests that dev.sh test runs a second time with pbx-authd, and the pbx-authctl
# calls they make, under valgrind.
valgrind_tests=(t/info.t t/info_cache.t t/http.t t/db_outage.t t/sign_in.t t/tokens.t t/cookie.t
	t/ctl.t t/ctl_users.t t/ctl_ms365.t t/ms365.t t/reset_password.t t/otp.t t/mailer.t
	t/ctl_audit.t t/ctl_delete.t)

say() { printf '%s\n' "$*" >&2; }
die() { say "dev.sh: $*"; exit 1; }

ensure_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "dev.sh: installing ${missing[*]}"
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian package built, linted, unpacked and run (t/package.sh); counts
# into the caller's extra_pass/extra_fail and rc like the distcheck step.
run_package_test() {
	say "dev.sh: package test (t/package.sh)"
	if "$top/t/package.sh" >"$tmp/package.log" 2>&1; then
		extra_pass=$((extra_pass + 1))
	else
		tail -n 40 "$tmp/package.log" >&2
		extra_fail=$((extra_fail + 1)); rc=1
	fi
}

pg_bin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
	printf '%s' "$d"
}

# PostgreSQL refuses to run as root: use the postgres account then.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Where the PostgreSQL cluster lives: pgdata, its socket directory pgsock and
# its log pglog. As root the cluster runs as postgres, which must reach all
# three: a clone under /root or in a 0700 directory is out of its reach, so
# as root they live in /var/tmp/pbx-auth-dev-<hash of the clone's path>,
# owned by postgres (a cluster an older dev.sh made in ./var/pg stays there).
pg_paths() {
	if [ "$(id -u)" -ne 0 ] || [ -f "$var/pg/PG_VERSION" ]; then
		pgdata=$var/pg pgsock=$var/run pglog=$var/log/postgresql.log
		return 0
	fi
	local d
	d=/var/tmp/pbx-auth-dev-$(printf '%s' "$top" | sha256sum | cut -c1-16)
	pgdata=$d/pg pgsock=$d/run pglog=$d/postgresql.log
}

# make_pg_dirs: the cluster's directories, owned by postgres when we are root.
make_pg_dirs() {
	if [ "$(id -u)" -ne 0 ]; then
		mkdir -p "$pgdata" "$pgsock" "$(dirname "$pglog")"
		return 0
	fi
	local d
	for d in "$(dirname "$pgdata")" "$pgsock" "$pgdata"; do
		if [ -L "$d" ] || { [ -e "$d" ] && [ "$(stat -c %U "$d")" != postgres ] &&
			[ "$d" != "$var/run" ]; }; then
			die "$d exists and is not postgres's directory: remove it"
		fi
		install -d -o postgres -g postgres -m 0700 "$d"
	done
	[ "$pgsock" != "$var/run" ] || chmod 0755 "$var/run"
	touch "$pglog" && chown postgres "$pglog"
}

# running PIDFILE: whether the process a pid file names is alive.
running() {
	[ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# port_busy PORT: whether something listens on 127.0.0.1:PORT (or on all
# addresses): a bind there fails.
port_busy() {
	! perl -MIO::Socket::INET -e 'IO::Socket::INET->new(LocalAddr => "127.0.0.1",
		LocalPort => $ARGV[0], Proto => "tcp", Listen => 1, ReuseAddr => 1) or exit 1' "$1"
}

# Before anything starts: the TCP ports `up` needs are free, or ours already.
# PostgreSQL opens no TCP port (listen_addresses is empty): its port only
# names the socket in its own directory, which nothing else uses.
check_ports() {
	local what port var_name pidfile
	while read -r what port var_name pidfile; do
		[[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) ||
			die "$var_name=$port is not a port number"
		[ "$pidfile" != - ] || continue
		running "$var/run/$pidfile" && continue
		if port_busy "$port"; then
			die "port $port ($what) is in use by another program: set $var_name to a free port"
		fi
	done <<-PORTS
	HTTP $http_port PBX_DEV_HTTP_PORT nginx.pid
	SMTP $smtp_port PBX_DEV_SMTP_PORT smtp-sink.pid
	PostgreSQL $pg_port PBX_DEV_PG_PORT -
	PORTS
}

# build DIR CONFIGURE-ARGS…: configure (once) and make in DIR, out of tree.
build() {
	local dir=$1; shift
	if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ] ||
		[ "$top/Makefile.am" -nt "$top/configure" ]; then
		(cd "$top" && autoreconf -fi >/dev/null 2>&1) || die "autoreconf failed"
	fi
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ]; then
		(cd "$dir" && "$top/configure" --quiet "$@") || die "configure failed"
	fi
	make -C "$dir" -j"$(nproc)" --no-print-directory >/dev/null || {
		make -C "$dir" --no-print-directory 2>&1 | tail -n 30 >&2
		die "build failed"
	}
}

stop_pid() {	# stop_pid PIDFILE: SIGTERM the process it names and wait for it
	local f=$1 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$f"
}

# The binaries `up` runs: PBX_DEV_BUILD's as they are, or ./var/build, built.
authd_bin() { printf '%s/src/pbx-authd' "${dev_build:-$var/build}"; }
authctl_bin() { printf '%s/src/pbx-authctl' "${dev_build:-$var/build}"; }

cmd_up() {
	check_ports
	if [ -n "$dev_build" ]; then
		[ -x "$(authd_bin)" ] && [ -x "$(authctl_bin)" ] ||
			die "PBX_DEV_BUILD=$dev_build holds no src/pbx-authd and src/pbx-authctl"
	fi
	ensure_packages
	[ -n "$dev_build" ] || build "$var/build" --enable-werror
	mkdir -p "$var"
	printf '%s\n' "$dev_build" >"$var/build-dir"
	local bin; bin=$(pg_bin)
	pg_paths
	# From here on, a failure stops the stack (what this run started, and
	# what an earlier up left running).
	trap 'say "dev.sh: up failed; stopping what it started"; cmd_down >/dev/null 2>&1' EXIT
	mkdir -p "$var/run" "$var/log" "$var/nginx"
	make_pg_dirs
	if [ ! -f "$pgdata/PG_VERSION" ]; then
		as_pg "$bin/initdb" -A trust -U postgres -E UTF8 --locale=C.UTF-8 -D "$pgdata" >/dev/null
		cat >>"$pgdata/postgresql.conf" <<-CONF
		listen_addresses = ''
		unix_socket_directories = '$pgsock'
		port = $pg_port
		CONF
	fi
	if ! as_pg "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
		as_pg "$bin/pg_ctl" -D "$pgdata" -w -o "-p $pg_port" -l "$pglog" start >/dev/null ||
			die "PostgreSQL did not start: $pglog"
	fi
	as_pg "$bin/psql" -X -q -h "$pgsock" -p "$pg_port" -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'pbxauth'" | grep -q 1 ||
		as_pg "$bin/createdb" -h "$pgsock" -p "$pg_port" -U postgres pbxauth
	# pbx-authd runs as the runtime role migration 0005 grants (README "Database guide").
	as_pg "$bin/psql" -X -q -h "$pgsock" -p "$pg_port" -U postgres -d postgres -c \
		"DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pbx_auth_runtime')
		THEN CREATE ROLE pbx_auth_runtime LOGIN; END IF; END \$\$" >/dev/null

	cat >"$var/pbx-auth.conf" <<-CONF
	# Written by ./dev.sh up
	database = host=$pgsock port=$pg_port dbname=pbxauth user=pbx_auth_runtime
	ctl_database = host=$pgsock port=$pg_port dbname=pbxauth user=postgres
	listen = $var/run/fcgi.sock
	listen_mode = 0666
	workers = 2
	log_level = info
	migrations_dir = $top/sql/migrations
	# plain http on 127.0.0.1: no Secure cookie, and the portal's origin
	cookie_secure = off
	allowed_origins = http://127.0.0.1:$http_port
	# the local SMTP sink (t/lib/smtp-sink): mail lands in $var/mail
	smtp_url = smtp://127.0.0.1:$smtp_port
	smtp_from = noreply@pbx.test
	smtp_from_name = PBX (development)
	smtp_starttls = off
	# the sign-in pages (www/) are the portal: a Microsoft sign-in lands there
	portal_url = http://127.0.0.1:$http_port/login/
	CONF
	cmd_ctl migrate >/dev/null
	cmd_ctl tenant show demo.pbx.test >/dev/null 2>&1 ||
		cmd_ctl tenant add demo.pbx.test --name "Demo tenant" \
			--website https://demo.pbx.test >/dev/null
	# the sign-in pages' reset page is the reset mail's link
	cmd_ctl tenant set demo.pbx.test callback_prefixes="http://127.0.0.1:$http_port/login/" >/dev/null
	cmd_ctl system set web_domain=pbx.test private_ipv4=127.0.0.1 \
		public_base_url="http://127.0.0.1:$http_port"
	# Demo accounts (development only: the passwords are printed below).
	cmd_ctl user show --domain demo.pbx.test alice >/dev/null 2>&1 ||
		printf '%s\n' "$demo_user_password" |
		cmd_ctl user add --domain demo.pbx.test alice --email alice@demo.pbx.test >/dev/null
	cmd_ctl user show admin >/dev/null 2>&1 ||
		printf '%s\n' "$demo_admin_password" | cmd_ctl user add admin >/dev/null

	stop_pid "$var/run/smtp-sink.pid"
	mkdir -p "$var/mail"
	perl "$top/t/lib/smtp-sink" --port "$smtp_port" --dir "$var/mail" \
		--pidfile "$var/run/smtp-sink.pid" >>"$var/log/smtp-sink.log" 2>&1 &
	for _ in $(seq 50); do [ -f "$var/run/smtp-sink.pid" ] && break; sleep 0.1; done
	[ -f "$var/run/smtp-sink.pid" ] ||
		die "the SMTP sink did not start (port $smtp_port busy? set PBX_DEV_SMTP_PORT): $var/log/smtp-sink.log"

	stop_pid "$var/run/pbx-authd.pid"
	"$(authd_bin)" -f -c "$var/pbx-auth.conf" >>"$var/log/pbx-authd.log" 2>&1 &
	echo $! >"$var/run/pbx-authd.pid"

	# nginx: the shipped files (deploy/nginx), rendered for this stack, in a
	# minimal nginx.conf of ours; the credential endpoints keep the shipped
	# rate limit.
	local user_line="" n=$var/nginx t
	[ "$(id -u)" -eq 0 ] && user_line="user root;"
	mkdir -p "$n/client_body" "$n/fastcgi" "$n/proxy" "$n/uwsgi" "$n/scgi"
	ln -sfn /etc/nginx/fastcgi_params "$n/fastcgi_params"
	for t in pbx-auth-http.conf pbx-auth-locations.conf; do
		"$top/deploy/nginx/render" --set PA_FCGI_PASS="unix:$var/run/fcgi.sock" \
			-o "$n/$t" "$top/deploy/nginx/$t.in"
	done
	# the sign-in pages: the shipped snippet with this tree's www/
	"$top/deploy/nginx/render" --set PA_WWW_DIR="$top/www" -o "$n/pbx-auth-www.conf" \
		"$top/deploy/nginx/pbx-auth-www.conf.in"
	cat >"$n/nginx.conf" <<-CONF
	# Written by ./dev.sh up
	$user_line
	worker_processes 1;
	pid $var/run/nginx.pid;
	error_log $var/log/nginx-error.log;
	events { worker_connections 1024; }
	http {
	    access_log $var/log/nginx-access.log;
	    client_body_temp_path $n/client_body;
	    fastcgi_temp_path $n/fastcgi;
	    proxy_temp_path $n/proxy;
	    uwsgi_temp_path $n/uwsgi;
	    scgi_temp_path $n/scgi;
	    include $n/pbx-auth-http.conf;
	    server {
	        listen 127.0.0.1:$http_port;
	        server_name localhost;
	        include $n/pbx-auth-locations.conf;
	        include $n/pbx-auth-www.conf;
	        # portal_url: the sign-in pages
	        location = / { return 302 /login/; }
	    }
	}
	CONF
	if running "$var/run/nginx.pid"; then
		nginx -q -t -p "$n" -c "$n/nginx.conf" -e "$var/log/nginx-error.log" ||
			die "nginx refuses $n/nginx.conf"
		kill -HUP "$(cat "$var/run/nginx.pid")"
	else
		nginx -p "$n" -c "$n/nginx.conf" -e "$var/log/nginx-error.log" ||
			die "nginx did not start: $var/log/nginx-error.log"
	fi
	local ok=0
	for _ in $(seq 100); do
		curl -fsS "http://127.0.0.1:$http_port/api/info" >/dev/null 2>&1 && { ok=1; break; }
		sleep 0.1
	done
	[ $ok -eq 1 ] || die "no answer from http://127.0.0.1:$http_port/api/info (logs in $var/log)"
	trap - EXIT
	cat <<-MSG
	pbx-auth is running on http://127.0.0.1:$http_port (state and logs under $var).

	Sign-in pages: http://127.0.0.1:$http_port/login/?domain=demo.pbx.test

	Demo accounts: alice of tenant demo.pbx.test (password $demo_user_password)
	and the system administrator admin (password $demo_admin_password).

	Try:
	  curl -s http://127.0.0.1:$http_port/api/info
	  curl -s 'http://127.0.0.1:$http_port/api/info?domain=demo.pbx.test'
	  curl -s -H 'Content-Type: application/json' http://127.0.0.1:$http_port/api/auth/sign_in \\
	    -d '{"domain":"demo.pbx.test","username":"alice","password":"$demo_user_password"}'
	  curl -s -H 'Authorization: Bearer ACCESS_TOKEN' http://127.0.0.1:$http_port/api/auth/user
	  curl -s -H 'Content-Type: application/json' http://127.0.0.1:$http_port/api/auth/refresh_token \\
	    -d '{"refresh_token":"REFRESH_TOKEN"}'
	  curl -s -c var/cookies -H 'Content-Type: application/json' http://127.0.0.1:$http_port/api/login \\
	    -d '{"username":"admin","password":"$demo_admin_password"}'
	  curl -s -b var/cookies http://127.0.0.1:$http_port/api/login
	  ./dev.sh ctl user list --domain demo.pbx.test
	  ./dev.sh ctl audit --since 1h
	  ./dev.sh ctl tenant list
	  ./dev.sh ctl ms365 show demo.pbx.test   # Microsoft 365: see "ms365 set" in the README
	  tail -f $var/log/pbx-authd.log

	Mail (password reset links, sign-in codes) is caught by a local SMTP sink on
	127.0.0.1:$smtp_port and lands in $var/mail, one .eml file per message:
	  curl -s -H 'Content-Type: application/json' http://127.0.0.1:$http_port/api/auth/forget_password \\
	    -d '{"domain":"demo.pbx.test","username":"alice","callback_url":"http://127.0.0.1:$http_port/login/reset.html"}'
	  cat "\$(ls -t $var/mail/*.eml | head -n 1)"
	Stop it with ./dev.sh down.
	MSG
}

cmd_down() {
	stop_pid "$var/run/nginx.pid"
	stop_pid "$var/run/pbx-authd.pid"
	stop_pid "$var/run/smtp-sink.pid"
	pg_paths
	if [ -f "$pgdata/PG_VERSION" ]; then
		as_pg "$(pg_bin)/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
	fi
	say "dev.sh: stopped"
}

cmd_clean() {
	local gone=$var
	cmd_down
	pg_paths
	case $pgdata in
	/var/tmp/pbx-auth-dev-*) gone+=" $(dirname "$pgdata")"; rm -rf "$(dirname "$pgdata")" ;;
	esac
	rm -rf "$var"
	say "dev.sh: removed $gone"
}

cmd_ctl() {
	# the build `up` used (PBX_DEV_BUILD)
	[ -n "$dev_build" ] || dev_build=$(cat "$var/build-dir" 2>/dev/null || true)
	[ -x "$(authctl_bin)" ] && [ -f "$var/pbx-auth.conf" ] || die "run ./dev.sh up first"
	"$(authctl_bin)" -c "$var/pbx-auth.conf" "$@"
}

cmd_test() {
	ensure_packages
	local tmp rc=0
	tmp=$(mktemp -d /tmp/pbx-auth-test.XXXXXX)
	chmod 0755 "$tmp"
	say "dev.sh: building with -Werror, ASan and UBSan in $tmp/build"
	local t0=$SECONDS
	build "$tmp/build" --enable-werror --enable-sanitizers
	say "dev.sh: built ($((SECONDS - t0)) s)"
	# puppeteer-core for t/browser.t, at the version of its lockfile (it drives
	# Debian's chromium: nothing else is downloaded)
	(cd "$top/t/browser" && npm ci --ignore-scripts --no-audit --no-fund --silent) ||
		die "npm ci in t/browser failed"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:log_path=stderr}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	# make check's output (a PASS line per test point) goes to a log; the
	# logs of failed tests are printed, then a summary.
	t0=$SECONDS
	say "dev.sh: make check (unit tests, fuzz corpus, integration tests); log in $tmp/check.log"
	# Two test files at a time: the integration tests mostly wait on sockets,
	# and their timing checks compare cases measured in the same run.
	make -j2 -C "$tmp/build" check --no-print-directory >"$tmp/check.log" 2>&1 || rc=$?
	local log=$tmp/build/test-suite.log pass fail err f
	if [ $rc -ne 0 ]; then
		grep -E '^(FAIL|ERROR|XPASS):' "$tmp/check.log" >&2 || tail -n 40 "$tmp/check.log" >&2
		for f in $(grep -E '^(FAIL|ERROR|XPASS):' "$tmp/check.log" | awk '{print $2}' | sort -u); do
			[ -f "$tmp/build/${f%.t}.log" ] || continue
			say "---- $tmp/build/${f%.t}.log (last 80 lines)"
			tail -n 80 "$tmp/build/${f%.t}.log" >&2
		done
	fi
	# t/browser.t's screenshots of the sign-in pages outlive the temporary directory
	if [ -d "$tmp/build/t/screenshots" ]; then
		rm -rf "$var/screenshots"
		mkdir -p "$var"
		cp -R "$tmp/build/t/screenshots" "$var/screenshots"
		say "dev.sh: screenshots of the sign-in pages in $var/screenshots"
	fi
	# The TAP driver counts test points.
	pass=$(sed -n 's/^# PASS: *//p' "$log" 2>/dev/null)
	fail=$(sed -n 's/^# FAIL: *//p' "$log" 2>/dev/null)
	err=$(sed -n 's/^# ERROR: *//p' "$log" 2>/dev/null)
	pass=${pass:-0}
	fail=$(( ${fail:-0} + ${err:-0} ))
	[ $rc -eq 0 ] || [ $fail -gt 0 ] || fail=1
	say "dev.sh: make check: $pass passed, $fail failed ($((SECONDS - t0)) s)"

	# The request path again under valgrind memcheck (a build without
	# sanitizers): any error or definite/indirect leak fails the run.
	say "dev.sh: running the request-path tests under valgrind"
	t0=$SECONDS
	build "$tmp/build-valgrind"
	make -C "$tmp/build-valgrind" --no-print-directory test-helpers >/dev/null ||
		die "building the test helpers failed"
	local vlog=$tmp/valgrind-prove.log vrc=0 vpass=0 vfail=0
	say "dev.sh: built without sanitizers ($((SECONDS - t0)) s)"
	t0=$SECONDS
	# two at a time: memcheck keeps one core busy per daemon under test
	PA_TEST_VALGRIND=1 PA_BUILDDIR="$tmp/build-valgrind" PA_SRCDIR="$top" \
		prove -j2 -v -I"$top/t/lib" "${valgrind_tests[@]/#/$top/}" >"$vlog" 2>&1 || vrc=$?
	vpass=$(grep -c '^ok ' "$vlog" || true)
	if [ $vrc -ne 0 ]; then
		# the failed test points with their diagnostics, and prove's summary
		awk '/^not ok /{n=12} n>0{print; n--} /^Test Summary Report/{s=1} s' "$vlog" >&2
		vfail=$(grep -c '^not ok ' "$vlog" || true)
		[ "$vfail" -gt 0 ] || vfail=1
		rc=1
	fi
	say "dev.sh: valgrind: $vpass passed, $vfail failed ($((SECONDS - t0)) s; log in $vlog)"

	# Static analysis (clang's analyzer over the whole tree) and the
	# release tarball (builds, installs and runs the unit tests from it).
	local extra_pass=0 extra_fail=0
	t0=$SECONDS
	mkdir -p "$tmp/build-scan"
	if (cd "$tmp/build-scan" && scan-build "$top/configure" --quiet >/dev/null 2>&1 &&
		scan-build -o "$tmp/scan-report" --status-bugs make -j"$(nproc)" >"$tmp/scan.log" 2>&1); then
		extra_pass=$((extra_pass + 1))
		say "dev.sh: scan-build: no bugs ($((SECONDS - t0)) s)"
	else
		grep -E 'warning:|bugs? found' "$tmp/scan.log" >&2 || tail -n 20 "$tmp/scan.log" >&2
		extra_fail=$((extra_fail + 1)); rc=1
		say "dev.sh: scan-build: failed ($((SECONDS - t0)) s; log in $tmp/scan.log)"
	fi
	t0=$SECONDS
	if make -C "$tmp/build-valgrind" distcheck --no-print-directory \
		DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
		TESTS="$(make -s -C "$tmp/build-valgrind" --no-print-directory print-unit-tests)" \
		>"$tmp/distcheck.log" 2>&1; then
		extra_pass=$((extra_pass + 1))
		say "dev.sh: make distcheck: ok ($((SECONDS - t0)) s)"
	else
		tail -n 30 "$tmp/distcheck.log" >&2
		extra_fail=$((extra_fail + 1)); rc=1
		say "dev.sh: make distcheck: failed ($((SECONDS - t0)) s; log in $tmp/distcheck.log)"
	fi
	run_package_test
	echo "$(( pass + vpass + extra_pass )) passed, $(( fail + vfail + extra_fail )) failed"
	if [ $rc -eq 0 ]; then rm -rf "$tmp"; else say "dev.sh: kept $tmp for inspection"; fi
	return $rc
}

case "${1:-}" in
	up) cmd_up ;;
	down) cmd_down ;;
	clean) cmd_clean ;;
	ctl) shift; cmd_ctl "$@" ;;
	test) cmd_test ;;
	*) say "usage: ./dev.sh up | down | clean | ctl ARGS… | test"; exit 2 ;;
esac
