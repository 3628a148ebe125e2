#!/usr/bin/env bash
# Installs the Debian tools clipmesh's tests call, when they are missing:
#   prometheus and promtool (package prometheus) — a real Prometheus the tests run the rules and
#     the dashboards' queries on (tests/e2e/test_prometheus.py); promtool checks /metrics
#     output, the rules and deploy/prometheus's scrape configuration;
#   kubectl with kustomize v4 or later (package kubectl) — renders deploy/k8s overlays, which
#     use kustomize components (Debian's older kubernetes-client 1.20 cannot);
#   a CJK font (fonts-wqy-microhei) — the animatic backend draws Chinese prompts with it;
#   PostgreSQL's server binaries (package postgresql) — the tests start a throwaway cluster of
#     their own (tests/postgres.py); the package's default cluster is not created.
# Needs root (or sudo) and apt-get; otherwise says what to install and fails.
set -euo pipefail

# The major version of kubectl's built-in kustomize (0 when kubectl is missing).
kustomize_major() {
  command -v kubectl >/dev/null || { echo 0; return; }
  kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p' | grep . \
    || echo 0
}

missing=()
{ command -v promtool && command -v prometheus; } >/dev/null || missing+=(prometheus)
[ "$(kustomize_major)" -ge 4 ] || missing+=(kubectl)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "error: need root to install ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: no apt-get here; install ${missing[*]} with your package manager" >&2; exit 1
fi
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  # The tests run their own cluster: no system-wide one listening on 5432.
  $sudo mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ "$(kustomize_major)" -lt 4 ]; then
  echo "error: kubectl with kustomize v4+ is needed (kubectl kustomize renders deploy/k8s);" \
    "this machine's apt sources do not provide it: install kubectl 1.21 or later" >&2
  exit 1
fi
