#!/usr/bin/env bash
# Development stack and test runner for pbx-auth.
#   ./dev.sh up        install what is missing, build, start PostgreSQL, pbx-authd, nginx
#                      on http://127.0.0.1:8080 and an SMTP sink that catches the mail in
#                      ./var/mail (state under ./var)
#   ./dev.sh down      stop what `up` started
#   ./dev.sh ctl ARGS  run pbx-authctl against the dev stack
#   ./dev.sh test      build with -Werror and ASan+UBSan in a temporary directory and run
#                      `make check` (unit tests, then integration tests through nginx);
#                      then the request-path tests under valgrind, scan-build, and
#                      `make distcheck` (with the unit tests)
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
var=$top/var
http_port=${PBX_DEV_HTTP_PORT:-8080}
pg_port=${PBX_DEV_PG_PORT:-54329}
smtp_port=${PBX_DEV_SMTP_PORT:-2525}
# Passwords of the demo accounts `up` creates (a throwaway local stack only).
demo_user_password=alice-demo-password
demo_admin_password=admin-demo-password

packages=(build-essential autoconf automake pkg-config perl libfcgi-dev libjson-c-dev
	libpq-dev libcrypt-dev libcurl4-openssl-dev libssl-dev postgresql nginx-light curl valgrind mandoc
	clang clang-tools libcryptx-perl libio-socket-ssl-perl)

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

pg_bin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
	printf '%s' "$d"
}

# PostgreSQL refuses to run as root: use the postgres account then.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
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
	local f=$1 pid i
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$f"
}

cmd_up() {
	ensure_packages
	build "$var/build" --enable-werror
	local bin; bin=$(pg_bin)
	mkdir -p "$var/run" "$var/log" "$var/nginx"
	if [ "$(id -u)" -eq 0 ]; then chown postgres "$var/run" "$var/log"; fi
	if [ ! -f "$var/pg/PG_VERSION" ]; then
		mkdir -p "$var/pg"
		[ "$(id -u)" -eq 0 ] && chown postgres "$var/pg"
		as_pg "$bin/initdb" -A trust -U postgres -E UTF8 --locale=C.UTF-8 -D "$var/pg" >/dev/null
		cat >>"$var/pg/postgresql.conf" <<-CONF
		listen_addresses = ''
		unix_socket_directories = '$var/run'
		port = $pg_port
		CONF
	fi
	if ! as_pg "$bin/pg_ctl" -D "$var/pg" status >/dev/null 2>&1; then
		as_pg "$bin/pg_ctl" -D "$var/pg" -w -l "$var/log/postgresql.log" start >/dev/null
	fi
	as_pg "$bin/psql" -X -q -h "$var/run" -p "$pg_port" -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'pbxauth'" | grep -q 1 ||
		as_pg "$bin/createdb" -h "$var/run" -p "$pg_port" -U postgres pbxauth
	# pbx-authd runs as the runtime role migration 0005 grants (README "Database guide").
	as_pg "$bin/psql" -X -q -h "$var/run" -p "$pg_port" -U postgres -d postgres -c \
		"DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pbx_auth_runtime')
		THEN CREATE ROLE pbx_auth_runtime LOGIN; END IF; END \$\$" >/dev/null

	cat >"$var/pbx-auth.conf" <<-CONF
	# Written by ./dev.sh up
	database = host=$var/run port=$pg_port dbname=pbxauth user=pbx_auth_runtime
	ctl_database = host=$var/run port=$pg_port dbname=pbxauth user=postgres
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
	CONF
	cmd_ctl migrate >/dev/null
	cmd_ctl tenant show demo.pbx.test >/dev/null 2>&1 ||
		cmd_ctl tenant add demo.pbx.test --name "Demo tenant" \
			--website https://demo.pbx.test --callback-prefix "http://127.0.0.1:$http_port/" >/dev/null
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
	for i in $(seq 50); do [ -f "$var/run/smtp-sink.pid" ] && break; sleep 0.1; done
	[ -f "$var/run/smtp-sink.pid" ] ||
		die "the SMTP sink did not start (port $smtp_port busy? set PBX_DEV_SMTP_PORT): $var/log/smtp-sink.log"

	stop_pid "$var/run/pbx-authd.pid"
	"$var/build/src/pbx-authd" -f -c "$var/pbx-auth.conf" >>"$var/log/pbx-authd.log" 2>&1 &
	echo $! >"$var/run/pbx-authd.pid"

	local user_line=""
	[ "$(id -u)" -eq 0 ] && user_line="user root;"
	cat >"$var/nginx/nginx.conf" <<-CONF
	$user_line
	worker_processes 1;
	pid $var/run/nginx.pid;
	error_log $var/log/nginx-error.log;
	events { worker_connections 1024; }
	http {
	    access_log $var/log/nginx-access.log;
	    client_body_temp_path $var/nginx/client_body;
	    fastcgi_temp_path $var/nginx/fastcgi;
	    proxy_temp_path $var/nginx/proxy;
	    uwsgi_temp_path $var/nginx/uwsgi;
	    scgi_temp_path $var/nginx/scgi;
	    client_max_body_size 128k;
	    server {
	        listen 127.0.0.1:$http_port;
	        location /api/ {
	            include /etc/nginx/fastcgi_params;
	            fastcgi_pass unix:$var/run/fcgi.sock;
	        }
	    }
	}
	CONF
	if [ -f "$var/run/nginx.pid" ] && kill -0 "$(cat "$var/run/nginx.pid")" 2>/dev/null; then
		kill -HUP "$(cat "$var/run/nginx.pid")"
	else
		nginx -p "$var/nginx" -c "$var/nginx/nginx.conf" -e "$var/log/nginx-error.log"
	fi
	local i
	for i in $(seq 50); do
		curl -fsS "http://127.0.0.1:$http_port/api/info" >/dev/null 2>&1 && break
		sleep 0.1
	done
	cat <<-MSG
	pbx-auth is running on http://127.0.0.1:$http_port (state and logs under $var).

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
	    -d '{"domain":"demo.pbx.test","username":"alice","callback_url":"http://127.0.0.1:$http_port/reset"}'
	  cat "\$(ls -t $var/mail/*.eml | head -n 1)"
	Stop it with ./dev.sh down.
	MSG
}

cmd_down() {
	stop_pid "$var/run/nginx.pid"
	stop_pid "$var/run/pbx-authd.pid"
	stop_pid "$var/run/smtp-sink.pid"
	if [ -f "$var/pg/PG_VERSION" ]; then
		as_pg "$(pg_bin)/pg_ctl" -D "$var/pg" -m fast stop >/dev/null 2>&1 || true
	fi
	say "dev.sh: stopped"
}

cmd_ctl() {
	[ -x "$var/build/src/pbx-authctl" ] || die "run ./dev.sh up first"
	"$var/build/src/pbx-authctl" -c "$var/pbx-auth.conf" "$@"
}

cmd_test() {
	ensure_packages
	local tmp rc=0
	tmp=$(mktemp -d /tmp/pbx-auth-test.XXXXXX)
	chmod 0755 "$tmp"
	say "dev.sh: building with -Werror, ASan and UBSan in $tmp/build"
	build "$tmp/build" --enable-werror --enable-sanitizers
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:log_path=stderr}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	make -C "$tmp/build" check --no-print-directory || rc=$?
	if [ $rc -ne 0 ]; then
		find "$tmp/build/t" -name '*.log' -newer "$tmp/build/Makefile" -print0 |
			xargs -0 grep -l -E '^(not ok|FAIL|ERROR)' 2>/dev/null |
			while read -r f; do say "---- $f"; tail -n 60 "$f" >&2; done
	fi
	# The TAP driver counts test points.
	local log=$tmp/build/test-suite.log pass fail err
	pass=$(sed -n 's/^# PASS: *//p' "$log" 2>/dev/null)
	fail=$(sed -n 's/^# FAIL: *//p' "$log" 2>/dev/null)
	err=$(sed -n 's/^# ERROR: *//p' "$log" 2>/dev/null)
	pass=${pass:-0}
	fail=$(( ${fail:-0} + ${err:-0} ))

	# The request path again under valgrind memcheck (a build without
	# sanitizers): any error or definite/indirect leak fails the run.
	say "dev.sh: running the request-path tests under valgrind"
	build "$tmp/build-valgrind"
	make -C "$tmp/build-valgrind" --no-print-directory test-helpers >/dev/null ||
		die "building the test helpers failed"
	local vlog=$tmp/valgrind-prove.log vrc=0 vpass=0 vfail=0
	PA_TEST_VALGRIND=1 PA_BUILDDIR="$tmp/build-valgrind" PA_SRCDIR="$top" \
		prove -v -I"$top/t/lib" "${valgrind_tests[@]/#/$top/}" >"$vlog" 2>&1 || vrc=$?
	tail -n 5 "$vlog" >&2
	vpass=$(grep -c '^ok ' "$vlog" || true)
	if [ $vrc -ne 0 ]; then
		cat "$vlog" >&2
		vfail=$(grep -c '^not ok ' "$vlog" || true)
		[ "$vfail" -gt 0 ] || vfail=1
		rc=1
	fi

	# Static analysis (clang's analyzer over the whole tree) and the
	# release tarball (builds, installs and runs the unit tests from it).
	local extra_pass=0 extra_fail=0
	say "dev.sh: scan-build"
	mkdir -p "$tmp/build-scan"
	if (cd "$tmp/build-scan" && scan-build "$top/configure" --quiet >/dev/null 2>&1 &&
		scan-build -o "$tmp/scan-report" --status-bugs make -j"$(nproc)" >"$tmp/scan.log" 2>&1); then
		extra_pass=$((extra_pass + 1))
	else
		grep -E 'warning:|bugs? found' "$tmp/scan.log" >&2 || tail -n 20 "$tmp/scan.log" >&2
		extra_fail=$((extra_fail + 1)); rc=1
	fi
	say "dev.sh: make distcheck"
	if make -C "$tmp/build-valgrind" distcheck --no-print-directory \
		DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
		TESTS="$(make -s -C "$tmp/build-valgrind" --no-print-directory print-unit-tests)" \
		>"$tmp/distcheck.log" 2>&1; then
		extra_pass=$((extra_pass + 1))
	else
		tail -n 30 "$tmp/distcheck.log" >&2
		extra_fail=$((extra_fail + 1)); rc=1
	fi
	echo "$(( pass + vpass + extra_pass )) passed, $(( fail + vfail + extra_fail )) failed"
	if [ $rc -eq 0 ]; then rm -rf "$tmp"; else say "dev.sh: kept $tmp for inspection"; fi
	return $rc
}

case "${1:-}" in
	up) cmd_up ;;
	down) cmd_down ;;
	ctl) shift; cmd_ctl "$@" ;;
	test) cmd_test ;;
	*) say "usage: ./dev.sh up | down | ctl ARGS… | test"; exit 2 ;;
esac
