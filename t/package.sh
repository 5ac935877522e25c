#!/usr/bin/env bash
# t/package.sh: the Debian package, end to end, without installing it.
#
# Builds pbx-auth_<version>_<arch>.deb (DEB_BUILD_OPTIONS=nocheck) from a
# temporary copy of the tree, runs lintian (errors fail), checks the unit with
# systemd-analyze verify, unpacks the package with dpkg-deb -x into a scratch
# root (the host's /usr and /etc are never touched), and brings up a
# production-like stack from the unpacked files only, following the README's
# "Installing" steps: a PostgreSQL cluster on a free loopback port, the role
# and database as documented, `pbx-authctl migrate` as the service user,
# pbx-authd with the installed configuration, nginx with the installed nginx
# files over TLS (self-signed), and a sign-in over https.
#
# What differs from a real host, and why:
# - Paths: the unpacked files live under $root instead of /, so the
#   configuration and nginx files are edited to point there (installed paths
#   only), plus the keys an operator sets (database, listen, ports, certs).
#   The edits are printed as a diff.
# - The service user: the package's postinst would create pbx-auth; here
#   (when root) `nobody` stands in for it, so that /etc/passwd is left alone.
#   pbx-authd starts as root with `user` and `listen_group = www-data`
#   (README step 6: how nginx reaches the socket without systemd); nginx's
#   workers run as www-data.
#
# Usage: t/package.sh   (PA_PACKAGE_KEEP=1 keeps the scratch directory;
#   PA_PACKAGE_DEB=FILE tests that package instead of building one)
# Prints what it does on stderr; exit 0 when everything worked.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d /tmp/pbx-auth-package.XXXXXX)
chmod 0755 "$work"
root=$work/root
started=$(date +%s)
nginx_pid= pg_started= lintian_pid=

say() { printf 'package.sh: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

as_root=false
[ "$(id -u)" -eq 0 ] && as_root=true
# The service user and nginx's user (see the header).
if $as_root; then svc=nobody; web=www-data; else svc=$(id -un); web=; fi
as_svc() { if $as_root; then runuser -u "$svc" -- "$@"; else "$@"; fi; }
as_pg() { if $as_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
	local rc=$?
	set +e
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
	[ -n "$lintian_pid" ] && kill "$lintian_pid" 2>/dev/null && wait "$lintian_pid" 2>/dev/null
	if [ -f "$work/run/pbx-authd.pid" ]; then
		local pid
		pid=$(cat "$work/run/pbx-authd.pid")
		kill "$pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	[ -n "$pg_started" ] && as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1
	if [ $rc -ne 0 ] || [ -n "${PA_PACKAGE_KEEP:-}" ]; then
		say "kept $work (logs: build.log lintian.log pg.log nginx/error.log)"
	else
		rm -rf "$work"
	fi
	say "took $(( $(date +%s) - started )) s"
}
trap cleanup EXIT

free_port() {
	perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(LocalAddr => "127.0.0.1",
	    LocalPort => 0, Listen => 1, ReuseAddr => 1)->sockport'
}

###############################################################################
# 1. build the package in a copy of the tree

version=$(sed -n 's/^AC_INIT(\[pbx-auth\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
changelog_version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
[ "$version" = "$changelog_version" ] ||
	fail "configure.ac says $version, debian/changelog $changelog_version"
arch=$(dpkg --print-architecture)
if [ -n "${PA_PACKAGE_DEB:-}" ]; then
	deb=$PA_PACKAGE_DEB
else
	say "building pbx-auth_${version}_$arch.deb in $work/src"
	mkdir -p "$work/src/pbx-auth"
	tar -C "$top" --exclude=./.git --exclude='./build*' --exclude=./var \
		--exclude=./autom4te.cache -cf - . | tar -C "$work/src/pbx-auth" -xf -
	(cd "$work/src/pbx-auth" &&
		DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" \
		dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1 ||
		{ tail -n 40 "$work/build.log" >&2; fail "dpkg-buildpackage"; }
	deb=$work/src/pbx-auth_${version}_$arch.deb
fi
[ -f "$deb" ] || fail "$deb not built"

###############################################################################
# 2. lintian: no errors (warnings and infos are printed). It takes half a
# minute: it runs while the stack is brought up, and is waited for at the end.

say "lintian $deb (in the background)"
lintian --fail-on error --display-info "$deb" >"$work/lintian.log" 2>&1 &
lintian_pid=$!

###############################################################################
# 3. unpack into the scratch root; what the package holds

dpkg-deb -x "$deb" "$root"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
unit=$(find "$root" -name pbx-authd.service -path '*/systemd/system/*')
for f in usr/sbin/pbx-authd usr/bin/pbx-authctl etc/pbx-auth/pbx-auth.conf \
	etc/pbx-auth/nginx/pbx-auth-http.conf etc/pbx-auth/nginx/pbx-auth-locations.conf \
	etc/pbx-auth/nginx/pbx-auth-site.conf usr/share/pbx-auth/migrations/0001_init.sql \
	usr/share/man/man8/pbx-authd.8.gz usr/share/man/man8/pbx-authctl.8.gz \
	usr/share/man/man5/pbx-auth.conf.5.gz usr/share/doc/pbx-auth/README.md \
	usr/share/doc/pbx-auth/pbx-auth.conf.example etc/pbx-auth/nginx/pbx-auth-www.conf \
	usr/share/pbx-auth/www/index.html usr/share/pbx-auth/www/reset.html; do
	[ -e "$root/$f" ] || fail "the package lacks /$f"
done
[ -n "$unit" ] || fail "the package lacks the systemd unit"
grep -qx /etc/pbx-auth/pbx-auth.conf "$work/conffiles" ||
	fail "/etc/pbx-auth/pbx-auth.conf is not a conffile"
grep -q '^migrations_dir = /usr/share/pbx-auth/migrations$' "$root/etc/pbx-auth/pbx-auth.conf" ||
	fail "the installed configuration's migrations_dir is not the installed one"
say "contents, conffiles and paths OK"

###############################################################################
# 4. the unit

if command -v systemd-analyze >/dev/null; then
	# --root checks ExecStart= inside the unpacked tree; it also wants the
	# targets the unit hangs off, so a copy of the root gets the host's units
	# (not overwriting the package's). Documentation=man:… is looked up with
	# man(1): point it at the unpacked pages.
	udir=$(dirname "${unit#"$root"}")
	cp -a "$root" "$work/verify-root"
	cp -an "$udir/." "$work/verify-root$udir/"
	MANPATH=$root/usr/share/man systemd-analyze verify --root="$work/verify-root" \
		"${unit#"$root"}" >"$work/verify.log" 2>&1 ||
		{ cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
	grep -v 'not recommended' "$work/verify.log" >&2 || true
	say "systemd-analyze verify OK"
else
	fail "systemd-analyze not found (Debian package systemd)"
fi
grep -qx 'Type=notify' "$unit" || fail "the unit is not Type=notify"
grep -qx 'ExecStart=/usr/sbin/pbx-authd -f -c /etc/pbx-auth/pbx-auth.conf' "$unit" ||
	fail "the unit's ExecStart"

###############################################################################
# 5. PostgreSQL: a cluster, then the role and database as the README says

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgport=$(free_port)
mkdir -p "$work/pg" "$work/pgsock" "$work/run"
$as_root && chown postgres: "$work/pg" "$work/pgsock"
as_pg "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; fail initdb; }
as_pg "$pgbin/pg_ctl" -D "$work/pg" -w -l "$work/pgsock/pg.log" \
	-o "-p $pgport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work/pgsock" \
	start >/dev/null || fail "PostgreSQL did not start"
pg_started=1
pg=(-h "$work/pgsock" -p "$pgport" -U postgres)
# the owner role (migrations, pbx-authctl) and the runtime role pbx-authd
# connects as (README "Database guide"; migration 0005 grants it)
as_pg "$pgbin/createuser" "${pg[@]}" pbx-auth
as_pg "$pgbin/createuser" "${pg[@]}" pbx_auth_runtime
as_pg "$pgbin/createdb" "${pg[@]}" -O pbx-auth pbxauth
say "PostgreSQL on 127.0.0.1:$pgport, roles pbx-auth (owner) and pbx_auth_runtime, database pbxauth"

###############################################################################
# 6. the configuration: installed paths moved under $root, the README's keys set

conf=$root/etc/pbx-auth/pbx-auth.conf
cp "$conf" "$work/pbx-auth.conf.dist"
sed -i -e "s|^database = .*|database = host=$work/pgsock port=$pgport dbname=pbxauth user=pbx_auth_runtime|" \
	-e "s|^ctl_database = .*|ctl_database = host=$work/pgsock port=$pgport dbname=pbxauth user=pbx-auth|" \
	-e "s|^listen = .*|listen = $work/run/fcgi.sock|" \
	-e "s|^migrations_dir = /|migrations_dir = $root/|" \
	-e "s|^#pidfile = .*|pidfile = $work/run/pbx-authd.pid|" "$conf"
if $as_root; then
	sed -i -e "s|^user =.*|user = $svc|" -e "s|^#listen_group = .*|listen_group = $web|" "$conf"
fi
diff -u "$work/pbx-auth.conf.dist" "$conf" >&2 || true
"$root/usr/sbin/pbx-authd" --check-config -c "$conf" >/dev/null || fail "--check-config"

ctl() { as_svc "$root/usr/bin/pbx-authctl" -c "$conf" "$@"; }
ctl migrate >/dev/null || fail "pbx-authctl migrate as $svc"
ctl tenant add example.test --name Example >/dev/null || fail "tenant add"
password=package-test-password-1
printf '%s\n' "$password" | ctl user add --domain example.test alice >/dev/null ||
	fail "user add"
say "migrated as $svc; tenant example.test, user alice"

###############################################################################
# 7. pbx-authd, detached as an init script would start it

"$root/usr/sbin/pbx-authd" -c "$conf" || fail "pbx-authd did not start"
for _ in $(seq 100); do [ -S "$work/run/fcgi.sock" ] && [ -f "$work/run/pbx-authd.pid" ] && break; sleep 0.1; done
[ -S "$work/run/fcgi.sock" ] || fail "no socket $work/run/fcgi.sock"
owner=$(stat -c %U:%G "$work/run/fcgi.sock")
if $as_root; then
	[ "$owner" = "$svc:$web" ] || fail "socket owned by $owner, expected $svc:$web"
fi
say "pbx-authd pid $(cat "$work/run/pbx-authd.pid"), socket $owner $(stat -c %a "$work/run/fcgi.sock")"

###############################################################################
# 8. nginx with the installed files, TLS with a self-signed certificate

http_port=$(free_port)
https_port=$(free_port)
mkdir -p "$work/tls" "$work/nginx"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=auth.example.com \
	-addext subjectAltName=DNS:auth.example.com \
	-keyout "$work/tls/privkey.pem" -out "$work/tls/fullchain.pem" >/dev/null 2>&1 ||
	fail openssl
ngx=$root/etc/pbx-auth/nginx
cp -r "$ngx" "$work/nginx.dist"
# As an operator would: the socket path, ports on loopback, certificate paths
# (and the files' own directory, which is under $root here). No IPv6 listen.
sed -i -E -e "s|/etc/pbx-auth/nginx|$ngx|g" \
	-e "s|unix:[^; ]*fcgi\.sock|unix:$work/run/fcgi.sock|" \
	-e "s|unix:[^; ]*fcgi-hash\.sock|unix:$work/run/fcgi-hash.sock|" \
	-e '/listen[[:space:]]+\[::\]/d' \
	-e "s/^([[:space:]]*listen[[:space:]]+)80([[:space:];])/\\1127.0.0.1:$http_port\\2/" \
	-e "s/^([[:space:]]*listen[[:space:]]+)443([[:space:];])/\\1127.0.0.1:$https_port\\2/" \
	-e "s|/etc/ssl/pbx-auth/|$work/tls/|g" \
	-e "s|/usr/share/pbx-auth/www|$root/usr/share/pbx-auth/www|g" "$ngx"/*.conf
diff -ru "$work/nginx.dist" "$ngx" >&2 || true
for d in client_body fastcgi proxy uwsgi scgi; do mkdir -p "$work/nginx/$d"; done
$as_root && chown -R "$web:" "$work/nginx"
# The operator's own nginx.conf, in a directory standing in for /etc/nginx.
mkdir -p "$work/etc-nginx"
ln -s /etc/nginx/fastcgi_params /etc/nginx/mime.types "$work/etc-nginx/"
cat >"$work/etc-nginx/nginx.conf" <<EOF
${web:+user $web;}
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
    include mime.types;
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx/client_body;
    fastcgi_temp_path $work/nginx/fastcgi;
    proxy_temp_path $work/nginx/proxy;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $ngx/pbx-auth-site.conf;
}
EOF
nginx=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx" -t -q -p "$work/nginx/" -c "$work/etc-nginx/nginx.conf" -g 'daemon off;' ||
	fail "nginx -t with the installed files"
"$nginx" -p "$work/nginx/" -c "$work/etc-nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$http_port/" && break
	sleep 0.1
done

###############################################################################
# 9. over https: the redirect, /api/info, a sign-in

c=(curl -sS --max-time 10 --cacert "$work/tls/fullchain.pem"
	--resolve "auth.example.com:$https_port:127.0.0.1"
	--resolve "auth.example.com:$http_port:127.0.0.1")
base=https://auth.example.com:$https_port
loc=$("${c[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' \
	"http://auth.example.com:$http_port/api/info?domain=example.test")
case $loc in
"301 https://auth.example.com"*) ;;
*) fail "http is not redirected to https: $loc" ;;
esac
info=$("${c[@]}" -w '\n%{http_code}' "$base/api/info?domain=example.test")
[ "${info##*$'\n'}" = 200 ] || fail "GET /api/info over https: $info"
out=$("${c[@]}" -w '\n%{http_code}' -H 'Content-Type: application/json' \
	--data "{\"domain\":\"example.test\",\"username\":\"alice\",\"password\":\"$password\"}" \
	"$base/api/auth/sign_in")
[ "${out##*$'\n'}" = 200 ] || fail "sign-in over https: $out"
grep -q '"access_token":"[A-Za-z0-9_-]\{43\}"' <<<"$out" || fail "no access token: $out"
bad=$("${c[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
	--data '{"domain":"example.test","username":"alice","password":"wrong-password"}' \
	"$base/api/auth/sign_in")
[ "$bad" = 401 ] || fail "a wrong password gives $bad, expected 401"
page=$("${c[@]}" -D - -o "$work/login.html" -w '%{http_code}' "$base/login/")
grep -q '^HTTP/[0-9.]* 200' <<<"$page" || fail "GET /login/ over https: $page"
grep -qi '^content-security-policy:.*frame-ancestors' <<<"$page" || fail "/login/ without its CSP: $page"
grep -q 'type="password"' "$work/login.html" || fail "/login/ is not the sign-in page"
say "over https: redirect 301, /api/info 200, sign-in 200 with a token, wrong password 401, /login/ 200 with its CSP"

###############################################################################
# 10. stop: the pidfile goes away with the daemon

pid=$(cat "$work/run/pbx-authd.pid")
kill "$pid"
for _ in $(seq 150); do [ -e "$work/run/pbx-authd.pid" ] || break; sleep 0.1; done
[ ! -e "$work/run/pbx-authd.pid" ] || fail "pbx-authd did not stop and remove its pidfile"

wait "$lintian_pid" || { cat "$work/lintian.log" >&2; fail "lintian reports errors"; }
lintian_pid=
say "lintian: no errors"
grep -v 'running with root privileges' "$work/lintian.log" >&2 || true
say "OK"
