# Shared settings and helpers for the scripts in this folder (sourced, not run).
# Kept in one place so start.sh, seed.sh, wp.sh and stop.sh agree on where the
# state lives and which processes are ours.
# shellcheck shell=bash

WP_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WP_STATE_DIR="${WP_STATE_DIR:-/tmp/bulletin-wp}"
WP_PORT="${WP_PORT:-8089}"
WP_WORKERS="${WP_WORKERS:-4}"
WP_ROOT="${WP_ROOT:-/usr/share/wordpress}"      # Debian's wordpress package
WP_CONFIG_DIR="${WP_CONFIG_DIR:-/etc/wordpress}" # Debian's per-host configs
WP_HOST="127.0.0.1"
WP_BASE_URL="http://${WP_HOST}:${WP_PORT}/wp-json/wp/v2/"
export WP_STATE_DIR WP_PORT WP_ROOT

DB_SOCKET="$WP_STATE_DIR/mysqld.sock"
DB_PIDFILE="$WP_STATE_DIR/mariadbd.pid"        # written by mariadbd itself
DB_LAUNCH_PIDFILE="$WP_STATE_DIR/mariadbd.launch.pid"
PHP_PIDS_FILE="$WP_STATE_DIR/php-server.pids"  # parent first, then workers
PHP_LAUNCH_PIDFILE="$WP_STATE_DIR/php-server.launch.pid"
LOG_DIR="$WP_STATE_DIR/logs"

die() { echo "$(basename "$0"): ERROR: $*" >&2; exit 1; }
say() { echo "$(basename "$0"): $*" >&2; }

# Alive = exists and is not a zombie (an exited child not yet reaped by whoever
# inherited it still answers kill -0).
pid_alive() {
    local stat
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [ "${stat:0:1}" != "Z" ]
}

# True when PID $1 is alive and its command line contains $2 (guards against
# acting on a recycled PID that now belongs to someone else).
pid_is() {
    local pid="$1" want="$2" cmd
    pid_alive "$pid" || return 1
    cmd="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmd" == *"$want"* ]]
}

# Direct children of PID $1, read from /proc (no procps dependency).
children_of() {
    local parent="$1" stat rest
    for stat in /proc/[0-9]*/stat; do
        rest="$(cat "$stat" 2>/dev/null)" || continue
        rest="${rest##*) }"              # drop "pid (comm) "
        set -- $rest                     # $1=state $2=ppid
        if [ "${2:-}" = "$parent" ]; then
            stat="${stat#/proc/}"; echo "${stat%/stat}"
        fi
    done
}

# HTTP status of GET $1 using PHP (curl is not guaranteed to be installed).
http_status() {
    php -d display_errors=stderr -r '
        $ctx = stream_context_create(["http" => ["ignore_errors" => true, "timeout" => 10]]);
        @file_get_contents($argv[1], false, $ctx);
        if (!isset($http_response_header[0])) { echo "000"; exit; }
        echo explode(" ", $http_response_header[0])[1];
    ' "$1" 2>/dev/null || echo "000"
}

# Run a PHP script inside WordPress (CLI), with the host that selects our config.
wp_php() {
    WP_PORT="$WP_PORT" WP_ROOT="$WP_ROOT" php -d display_errors=stderr -d memory_limit=1024M "$@"
}
