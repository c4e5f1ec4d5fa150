#!/usr/bin/env bash
# The README's main job on the embedded sandbox: start a fake DataRobot cluster and API on
# 127.0.0.1, then run the whole upgrade runbook against it with the real output of each step:
# `prepare` (backup, deployment snapshot + deactivation through the helper in the app pod, Spark
# cleanup), a simulated upgrade (LRSes and pods deleted with the real kubectl), `recover`
# (restore, exact reactivation, verification), then `list` and `diff` showing all is back.
# Nothing touches real clusters.
# Usage: testkit/scripts/demo.sh [TARGET_DIR]   (default: target/debug, after `cargo build --workspace`)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/debug}
for tool in mlbackup-sandbox kubectl-mlbackup mlbackup-helper; do
    [ -x "$bin/$tool" ] || { echo "error: $bin/$tool not found; run: cargo build --workspace" >&2; exit 2; }
done
command -v kubectl >/dev/null || { echo "error: kubectl is not on the PATH" >&2; exit 2; }

work=$(mktemp -d -t mlbackup-demo.XXXXXX)
"$bin/mlbackup-sandbox" serve --kubeconfig "$work/kubeconfig" --lrs 12 --spark 3 --namespaces 2 \
    --deployments 6 --inactive-deployments 2 > "$work/ready.json" &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
[ -s "$work/ready.json" ] || { echo "error: the sandbox did not start" >&2; exit 1; }
ready() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/ready.json" "$1"; }

# The operator's environment, as the vendor runbook sets it (the token is never an argument).
export KUBECONFIG="$work/kubeconfig" MLBACKUP_DIR="$work/backups"
export DR_CORE_NAMESPACE; DR_CORE_NAMESPACE=$(ready appNamespace)
export LRS_DATAROBOT_URL; LRS_DATAROBOT_URL=$(ready datarobotUrl)
export LRS_DATAROBOT_API_TOKEN; LRS_DATAROBOT_API_TOKEN=$(ready datarobotToken)
export SSL_CERT_FILE; SSL_CERT_FILE=$(ready datarobotCaFile)
# Put the plugin on PATH so `kubectl mlbackup` finds it (and the helper beside it), as after an install.
export PATH="$PWD/$bin:$PATH"
run() { printf '\n$ %s\n' "$*"; "$@"; }

echo "sandbox ready: kubeconfig $KUBECONFIG, app namespace $DR_CORE_NAMESPACE, DataRobot $LRS_DATAROBOT_URL"
run kubectl get lrs -A -L datarobot-lrs-type
run kubectl mlbackup deployments list

echo; echo "### Before the upgrade"
run kubectl mlbackup prepare --yes --name before-upgrade
run kubectl mlbackup deployments list

echo; echo "### The upgrade (simulated): LRSes go away"
victims=$(kubectl get lrs -n "$DR_CORE_NAMESPACE" -l datarobot-lrs-type=deployment -o name | awk "NR <= 3")
# kubectl waits until they are gone: the sandbox's LRS operator releases its finalizer, as on a
# real cluster.
# shellcheck disable=SC2086
run kubectl delete -n "$DR_CORE_NAMESPACE" $victims
run kubectl get lrs -A -L datarobot-lrs-type

echo; echo "### After the upgrade"
run kubectl mlbackup recover before-upgrade
echo; echo "### A second recover changes nothing"
run kubectl mlbackup recover before-upgrade
run kubectl mlbackup list
# The Spark sessions are the only difference, on purpose: prepare deleted them and recover leaves them out.
run kubectl mlbackup diff before-upgrade || true
run kubectl mlbackup deployments list
