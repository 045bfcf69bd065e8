#!/usr/bin/env bash
# Stop exactly the processes start.sh recorded in $WP_STATE_DIR: the PHP
# built-in server (parent and its forked workers, which all hold the port) and
# the private MariaDB. Never matches processes by name. Waits until they are
# gone (SIGTERM, then SIGKILL after a grace period). Idempotent: with nothing
# running it just says so.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

GRACE="${WP_STOP_GRACE:-20}"   # seconds before SIGKILL

# stop_pids LABEL MATCH PID...: TERM those alive and matching, wait, then KILL.
stop_pids() {
    local label="$1" match="$2"; shift 2
    local pids=() pid
    for pid in "$@"; do
        [[ " ${pids[*]} " == *" $pid "* ]] && continue   # listed twice
        pid_is "$pid" "$match" && pids+=("$pid")
    done
    [ "${#pids[@]}" -eq 0 ] && return 0
    say "stopping $label: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + GRACE)) left
    while :; do
        left=()
        for pid in "${pids[@]}"; do pid_is "$pid" "$match" && left+=("$pid"); done
        [ "${#left[@]}" -eq 0 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "$label still alive after ${GRACE}s, sending SIGKILL: ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            sleep 0.5
            for pid in "${left[@]}"; do
                pid_is "$pid" "$match" && die "could not stop $label pid $pid"
            done
            return 0
        fi
        sleep 0.1
    done
}

stopped_any=0

# PHP server: recorded parent + workers, plus any worker of the recorded parent
# that was forked after start.sh wrote the list.
php_pids=()
[ -s "$PHP_PIDS_FILE" ] && mapfile -t php_pids < "$PHP_PIDS_FILE"
[ -s "$PHP_LAUNCH_PIDFILE" ] && php_pids+=("$(cat "$PHP_LAUNCH_PIDFILE")")
if [ "${#php_pids[@]}" -gt 0 ]; then
    parent="${php_pids[0]}"
    if pid_is "$parent" "php"; then
        mapfile -t -O "${#php_pids[@]}" php_pids < <(children_of "$parent")
    fi
    for p in "${php_pids[@]}"; do pid_is "$p" "php" && stopped_any=1; done
    stop_pids "PHP server" "php" "${php_pids[@]}"
fi
rm -f "$PHP_PIDS_FILE" "$PHP_LAUNCH_PIDFILE"

# MariaDB: SIGTERM is its clean shutdown.
db_pids=()
[ -s "$DB_PIDFILE" ] && db_pids+=("$(cat "$DB_PIDFILE")")
[ -s "$DB_LAUNCH_PIDFILE" ] && db_pids+=("$(cat "$DB_LAUNCH_PIDFILE")")
if [ "${#db_pids[@]}" -gt 0 ]; then
    for p in "${db_pids[@]}"; do pid_is "$p" "mariadbd" && stopped_any=1; done
    GRACE=$((GRACE + 40)) stop_pids "MariaDB" "mariadbd" "${db_pids[@]}"
fi
rm -f "$DB_PIDFILE" "$DB_LAUNCH_PIDFILE" "$DB_SOCKET"

if [ "$stopped_any" -eq 1 ]; then
    say "stopped"
else
    say "nothing running (state dir $WP_STATE_DIR)"
fi
