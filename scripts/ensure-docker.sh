#!/usr/bin/env bash
# Makes sure a Docker engine answers. Uses a running engine; where none runs and we are root on
# Debian/Ubuntu, installs docker.io if needed and starts dockerd. Otherwise says what to do.
set -euo pipefail
answers() { docker info >/dev/null 2>&1; }
wait_for_engine() {
  for _ in $(seq 1 300); do answers && return 0; sleep 0.2; done
  return 1
}
if command -v docker >/dev/null 2>&1 && answers; then exit 0; fi
if [ "$(id -u)" != 0 ] || [ ! -r /etc/debian_version ]; then
  echo "error: no Docker engine answers 'docker info'." >&2
  echo "Start it (e.g. 'sudo systemctl start docker') and make sure $(id -un) may use it (docker group)." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  echo "Installing docker.io (Debian package) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  systemctl start docker || true
fi
if ! answers; then
  echo "Starting dockerd (log: /var/log/sglang-prep-dockerd.log) ..."
  nohup dockerd >/var/log/sglang-prep-dockerd.log 2>&1 &
fi
if ! wait_for_engine; then
  echo "error: dockerd did not answer within 60 s; see /var/log/sglang-prep-dockerd.log" >&2
  tail -n 20 /var/log/sglang-prep-dockerd.log >&2 || true
  exit 1
fi
