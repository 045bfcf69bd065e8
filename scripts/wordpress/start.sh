#!/usr/bin/env bash
# Start a throwaway real WordPress (Debian's package) for the integration tests:
# a private MariaDB (own datadir and socket under $WP_STATE_DIR, no TCP port)
# and PHP's built-in web server on 127.0.0.1:$WP_PORT with several workers.
# A start from the stopped state always begins from an empty database, so every
# test session sees the same freshly installed site. If our server is already
# up it only prints the URL. Any failure exits non-zero with the reason (and
# stops whatever this run had started).
#
# Usage: start.sh [--seed]     (--seed also runs seed.sh)
# Env:   WP_STATE_DIR (/tmp/bulletin-wp), WP_PORT (8089), WP_WORKERS (4)
# Prints on success: WP_BASE_URL=http://127.0.0.1:PORT/wp-json/wp/v2/
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SEED=0
for arg in "$@"; do
    case "$arg" in
        --seed) SEED=1 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

# --- already running? -------------------------------------------------------
if [ -s "$PHP_PIDS_FILE" ] && [ -s "$DB_PIDFILE" ]; then
    all_up=1
    while read -r pid; do pid_is "$pid" "php" || all_up=0; done < "$PHP_PIDS_FILE"
    pid_is "$(cat "$DB_PIDFILE")" "mariadbd" || all_up=0
    if [ "$all_up" -eq 1 ] && [ "$(http_status "${WP_BASE_URL}pages?per_page=1")" = "200" ]; then
        say "already running (state in $WP_STATE_DIR)"
        [ "$SEED" -eq 1 ] && say "not re-seeding a running site; run stop.sh first for a fresh one"
        echo "WP_BASE_URL=$WP_BASE_URL"
        exit 0
    fi
fi
# Leftovers of a half-started or crashed run: stop exactly what they recorded.
"$WP_HERE/stop.sh" >&2

# --- prerequisites ----------------------------------------------------------
for cmd in php mariadbd mariadb-install-db mariadb mariadb-admin setsid; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found; run scripts/wordpress/install.sh"
done
[ -f "$WP_ROOT/wp-load.php" ] || die "$WP_ROOT/wp-load.php missing; run scripts/wordpress/install.sh"
[ -d "$WP_CONFIG_DIR" ] && [ -w "$WP_CONFIG_DIR" ] || die "$WP_CONFIG_DIR is not writable (need root)"
if [ "$(http_status "http://$WP_HOST:$WP_PORT/")" != "000" ]; then
    die "something else already answers on $WP_HOST:$WP_PORT; set WP_PORT to a free port"
fi

on_fail() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "${WP_KEEP_ON_FAIL:-0}" != "1" ]; then
        say "start failed (exit $rc); stopping what was started (logs: $LOG_DIR)"
        "$WP_HERE/stop.sh" >&2 || true
    fi
}
trap on_fail EXIT

rm -rf "$WP_STATE_DIR/db" "$WP_STATE_DIR/wp-content" "$LOG_DIR"
mkdir -p "$WP_STATE_DIR/db" "$LOG_DIR" \
    "$WP_STATE_DIR/wp-content/uploads" "$WP_STATE_DIR/wp-content/plugins" "$WP_STATE_DIR/wp-content/themes"

# --- MariaDB ----------------------------------------------------------------
as_user=()
[ "$(id -u)" -eq 0 ] && as_user=(--user=root)
say "initialising MariaDB datadir"
mariadb-install-db --no-defaults --datadir="$WP_STATE_DIR/db" "${as_user[@]}" \
    --auth-root-authentication-method=socket --skip-test-db \
    > "$LOG_DIR/mariadb-install.log" 2>&1 \
    || die "mariadb-install-db failed: $(tail -n 20 "$LOG_DIR/mariadb-install.log")"

say "starting MariaDB (socket $DB_SOCKET)"
# setsid: own session, so a Ctrl-C to the test run does not kill it mid-way; the
# launcher writes its PID before exec so we know it without guessing.
setsid bash -c 'echo $$ > "$0"; exec "$@"' "$DB_LAUNCH_PIDFILE" \
    mariadbd --no-defaults "${as_user[@]}" \
    --datadir="$WP_STATE_DIR/db" --socket="$DB_SOCKET" --pid-file="$DB_PIDFILE" \
    --skip-networking --skip-log-bin --log-error="$LOG_DIR/mariadb.err" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_520_ci \
    --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
    < /dev/null >> "$LOG_DIR/mariadb.out" 2>&1 &

for _ in $(seq 1 300); do
    if mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping >/dev/null 2>&1; then break; fi
    if [ -s "$DB_LAUNCH_PIDFILE" ] && ! pid_alive "$(cat "$DB_LAUNCH_PIDFILE")"; then
        die "mariadbd exited during startup: $(tail -n 20 "$LOG_DIR/mariadb.err" 2>/dev/null)"
    fi
    sleep 0.1
done
mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping >/dev/null 2>&1 \
    || die "mariadbd did not answer within 30s: $(tail -n 20 "$LOG_DIR/mariadb.err" 2>/dev/null)"
for _ in $(seq 1 50); do [ -s "$DB_PIDFILE" ] && break; sleep 0.1; done
[ -s "$DB_PIDFILE" ] || die "mariadbd wrote no pid file"

mariadb --no-defaults --socket="$DB_SOCKET" -u root <<'SQL' || die "creating database/user failed"
CREATE DATABASE bulletin_wp CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci;
CREATE USER 'bulletin'@'localhost' IDENTIFIED BY 'bulletin';
GRANT ALL PRIVILEGES ON bulletin_wp.* TO 'bulletin'@'localhost';
SQL

# --- WordPress config (Debian: /etc/wordpress/config-HOST.php) ----------------
salt() { php -r 'echo bin2hex(random_bytes(32));'; }
config="$WP_CONFIG_DIR/config-$WP_HOST.php"
cat > "$config.tmp" <<PHP
<?php
// Written by bulletin-pipeline scripts/wordpress/start.sh for a local test site.
// Overwritten on every start; safe to delete when the test site is stopped.
define('DB_NAME', 'bulletin_wp');
define('DB_USER', 'bulletin');
define('DB_PASSWORD', 'bulletin');
define('DB_HOST', 'localhost:$DB_SOCKET');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
define('WP_HOME', 'http://$WP_HOST:$WP_PORT');
define('WP_SITEURL', 'http://$WP_HOST:$WP_PORT');
define('WP_CONTENT_DIR', '$WP_STATE_DIR/wp-content');
define('WP_CONTENT_URL', 'http://$WP_HOST:$WP_PORT/wp-content');
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_DEBUG', false);
define('AUTH_KEY', '$(salt)');
define('SECURE_AUTH_KEY', '$(salt)');
define('LOGGED_IN_KEY', '$(salt)');
define('NONCE_KEY', '$(salt)');
define('AUTH_SALT', '$(salt)');
define('SECURE_AUTH_SALT', '$(salt)');
define('LOGGED_IN_SALT', '$(salt)');
define('NONCE_SALT', '$(salt)');
PHP
mv "$config.tmp" "$config"

say "installing WordPress"
wp_php "$WP_HERE/wp-install.php" > "$LOG_DIR/wp-install.out" 2> "$LOG_DIR/wp-install.err" \
    || die "wp-install.php failed: $(tail -n 20 "$LOG_DIR/wp-install.err")"
say "installed: $(cat "$LOG_DIR/wp-install.out")"

# --- PHP built-in web server ------------------------------------------------
say "starting PHP server on $WP_HOST:$WP_PORT with $WP_WORKERS workers"
PHP_CLI_SERVER_WORKERS="$WP_WORKERS" BULLETIN_WP_CONTENT_DIR="$WP_STATE_DIR/wp-content" \
setsid bash -c 'echo $$ > "$0"; exec "$@"' "$PHP_LAUNCH_PIDFILE" \
    php -d display_errors=stderr -d log_errors=0 -d memory_limit=512M \
    -S "$WP_HOST:$WP_PORT" -t "$WP_ROOT" "$WP_HERE/router.php" \
    < /dev/null >> "$LOG_DIR/php-server.log" 2>&1 &

for _ in $(seq 1 50); do [ -s "$PHP_LAUNCH_PIDFILE" ] && break; sleep 0.1; done
php_parent="$(cat "$PHP_LAUNCH_PIDFILE" 2>/dev/null || true)"
[ -n "$php_parent" ] || die "PHP server launcher wrote no pid"

# With PHP_CLI_SERVER_WORKERS the parent forks N workers that all hold the port.
workers=""
for _ in $(seq 1 100); do
    pid_alive "$php_parent" || die "PHP server exited: $(tail -n 20 "$LOG_DIR/php-server.log")"
    workers="$(children_of "$php_parent" | sort -n | tr '\n' ' ')"
    [ "$(wc -w <<< "$workers")" -ge "$WP_WORKERS" ] && break
    sleep 0.1
done
{ echo "$php_parent"; for w in $workers; do echo "$w"; done; } > "$PHP_PIDS_FILE"
[ "$(wc -w <<< "$workers")" -ge "$WP_WORKERS" ] \
    || die "expected $WP_WORKERS PHP workers, found: '${workers}'"

status="000"
for _ in $(seq 1 150); do
    status="$(http_status "${WP_BASE_URL}pages")"
    [ "$status" = "200" ] && break
    sleep 0.2
done
[ "$status" = "200" ] \
    || die "GET ${WP_BASE_URL}pages answered $status: $(tail -n 20 "$LOG_DIR/php-server.log")"
say "up: PHP pids $(paste -sd, "$PHP_PIDS_FILE"), mariadbd pid $(cat "$DB_PIDFILE")"

if [ "$SEED" -eq 1 ]; then
    "$WP_HERE/seed.sh"
fi

trap - EXIT
echo "WP_BASE_URL=$WP_BASE_URL"
