#!/usr/bin/env bash
# Install a real WordPress (Debian's package) plus PHP CLI and MariaDB, so the
# integration tests can run against the same software the pipeline reads in
# production instead of a simulator. Idempotent: does nothing when every
# package is already installed. Services are NOT started (apt would start
# apache2/mariadb); start.sh runs its own private MariaDB and PHP server.
set -euo pipefail

PACKAGES=(wordpress php-cli php-mysql mariadb-server)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install.sh: already installed: ${PACKAGES[*]}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: need root to apt-get install: ${missing[*]}" >&2
    exit 1
fi

# Keep apt from starting apache2/mariadb; remove the guard only if we made it.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "install.sh: installing: ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
echo "install.sh: done"
