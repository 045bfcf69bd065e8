#!/usr/bin/env bash
# Seed the running test site (see seed.php for what and why). Refuses to seed a
# site twice; stop.sh + start.sh give a fresh one. Prints seed.php's one-line
# JSON summary on stdout.
# Env: WP_SEED_PAGES (600), WP_SEED_MEDIA (300), WP_SEED_TIE (160).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ -S "$DB_SOCKET" ] || die "no database socket at $DB_SOCKET; run start.sh first"
mkdir -p "$LOG_DIR"
if ! wp_php "$WP_HERE/seed.php" 2> "$LOG_DIR/seed.err"; then
    die "seed.php failed: $(tail -n 30 "$LOG_DIR/seed.err")"
fi
