#!/usr/bin/env bash
# Install the system packages kakin uses. `system-deps.sh runtime`: Noto CJK, the
# font embedded in Japanese PDFs, and HarfBuzz's subsetter (seconds instead of
# tens of seconds per PDF). `system-deps.sh` (for the tests): also
# PostgreSQL 15, poppler-utils (the PDF tests read the text back) and Chromium (the portal's browser tests).
# Runs apt-get only when something is missing and we are root.
set -euo pipefail
# lists TEXT COMMAND...: does COMMAND's output contain TEXT? The output is read whole first: under
# pipefail, `COMMAND | grep -q` fails whenever grep exits at the first match and COMMAND dies of SIGPIPE.
lists() { local text="$1" output; shift; output=$("$@" 2>/dev/null) || true; [[ "$output" == *"$text"* ]]; }
need=()
lists "Noto Sans CJK JP" fc-list || need+=(fonts-noto-cjk)
lists libharfbuzz-subset.so.0 ldconfig -p || need+=(libharfbuzz-subset0)  # fast font subsetting
if [ "${1:-test}" != runtime ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
  [ -x /usr/bin/chromium ] || need+=(chromium)  # the portal's browser tests (Playwright drives it; no browser download)
fi
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
