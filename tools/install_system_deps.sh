#!/usr/bin/env bash
# Installs the Debian tools clipmesh's tests call, when they are missing:
#   promtool (package prometheus) — checks /metrics output and alert rules;
#   a CJK font (fonts-wqy-microhei) — the animatic backend draws Chinese prompts with it.
# Needs root (or sudo) and apt-get; otherwise says what to install and fails.
set -euo pipefail

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "error: need root to install ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: no apt-get here; install ${missing[*]} with your package manager" >&2; exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
