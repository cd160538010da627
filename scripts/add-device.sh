#!/usr/bin/env bash
# Creates (or changes) broker credentials for the docker-compose stack:
#   scripts/add-device.sh <device-id> <password>
# The MQTT username is the device id; the ACL lets it publish only under
# devices/<device-id>/. Use the service's user name (MQTT_SERVICE_USER) once
# to create the service's own login. Mosquitto reloads the file on SIGHUP.
set -euo pipefail
id=${1:?usage: add-device.sh <device-id> <password>}
password=${2:?usage: add-device.sh <device-id> <password>}
[[ $id =~ ^[A-Za-z0-9_.:-]{1,64}$ ]] || { echo "device id must match [A-Za-z0-9_.:-]{1,64}" >&2; exit 2; }
cd "$(dirname "$0")/.."
docker-compose run --rm --no-deps -T --entrypoint mosquitto_passwd mosquitto -b /mosquitto/config/passwd "$id" "$password"
docker-compose kill -s SIGHUP mosquitto >/dev/null 2>&1 || true
echo "credentials for $id written to docker/mosquitto/passwd"
