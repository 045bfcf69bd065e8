#!/usr/bin/env bash
# Run a PHP snippet inside the running test WordPress, for humans and scripts:
#   scripts/wordpress/wp.sh 'echo get_option("timezone_string");'
#   echo 'wp_trash_post(42);' | scripts/wordpress/wp.sh
# See wp-eval.php for what the snippet can use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ "$#" -gt 0 ]; then
    printf '%s\n' "$*" | wp_php "$WP_HERE/wp-eval.php"
else
    wp_php "$WP_HERE/wp-eval.php"
fi
