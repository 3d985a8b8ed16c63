#!/usr/bin/env bash
# Install the system packages kakin's tests use (PostgreSQL 15 for the database
# tests). Runs apt-get only when something is missing and we are root.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${need[*]}; install them as root (apt-get install -y ${need[*]})" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a cluster on install; kakin's tests start their own throwaway one.
service postgresql stop >/dev/null 2>&1 || true
