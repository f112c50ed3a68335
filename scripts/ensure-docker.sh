#!/usr/bin/env bash
# Makes sure a Docker engine answers. Uses a running engine; where none runs and we are root on
# Debian/Ubuntu, installs docker.io if needed and starts dockerd. Otherwise says what to do.
# A dockerd started here on a machine without the NVIDIA Container Toolkit gets the stand-in NVIDIA hook
# (tests/standins/nvidia-container-hook) on its PATH, so `docker run --gpus all` (the docs' serve-spec line)
# runs against the stand-in image; where the real hook is installed, the engine uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  daemon_path=$PATH
  if ! command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
    # a copy outside the checkout: the engine outlives it (CI deletes its clone; the hook is looked up per --gpus run)
    hook_dir=/usr/local/lib/sglang-prep/nvidia-container-hook-standin
    install -D -m 0755 tests/standins/nvidia-container-hook/nvidia-container-runtime-hook \
      "$hook_dir/nvidia-container-runtime-hook"
    daemon_path=$hook_dir:$PATH
    echo "No NVIDIA Container Toolkit: dockerd gets the stand-in NVIDIA hook ($hook_dir) for --gpus"
  fi
  echo "Starting dockerd (log: /var/log/sglang-prep-dockerd.log) ..."
  # dockerd (and the containerd it starts) outlive this script: they must not inherit an open file such as the lock
  # of a `flock <lock> make ...` caller, which they would hold for as long as they run
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      case $fd in 0|1|2|255) ;; *) eval "exec $fd>&-" ;; esac
    done 2>/dev/null || true
    PATH=$daemon_path exec nohup dockerd >/var/log/sglang-prep-dockerd.log 2>&1 </dev/null
  ) &
fi
if ! wait_for_engine; then
  echo "error: dockerd did not answer within 60 s; see /var/log/sglang-prep-dockerd.log" >&2
  tail -n 20 /var/log/sglang-prep-dockerd.log >&2 || true
  exit 1
fi
