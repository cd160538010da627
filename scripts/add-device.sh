#!/usr/bin/env bash
# Creates (or changes) a device's broker login in the compose stack:
#   scripts/add-device.sh <device-id> <password>
# The MQTT username is the device id; the broker's ACL lets it publish only
# under devices/<device-id>/. Logins live in the mosquitto-auth volume (not in
# the repository); the service's and the simulator's come from .env and are
# written by the broker at every start. Works with `docker compose` (v2) and
# `docker-compose` (v1).
set -euo pipefail
id=${1:?usage: add-device.sh <device-id> <password>}
password=${2:?usage: add-device.sh <device-id> <password>}
[[ $id =~ ^[A-Za-z0-9_.:-]{1,64}$ ]] || { echo "device id must match [A-Za-z0-9_.:-]{1,64}" >&2; exit 2; }
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "neither \`docker compose\` nor \`docker-compose\` is installed" >&2
  exit 1
fi
# The id and password travel as arguments, never through a shell string.
"${compose[@]}" run --rm --no-deps -T --entrypoint /bin/sh mosquitto -c '
  set -e
  f=/mosquitto/auth/passwd
  [ -f "$f" ] || : > "$f"
  mosquitto_passwd -b "$f" "$1" "$2"
  chown mosquitto:mosquitto "$f" && chmod 0600 "$f"
' add-device "$id" "$password"
# Mosquitto reloads logins on SIGHUP; when it is not running, it reads them at start.
"${compose[@]}" kill -s SIGHUP mosquitto >/dev/null 2>&1 || true
echo "login for $id stored in the mosquitto-auth volume"
