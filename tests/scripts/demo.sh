#!/usr/bin/env bash
# The README's main job on the embedded sandbox: start a fake DataRobot cluster on 127.0.0.1,
# then run kubectl-mlbackup against it and show its real output. Nothing touches real clusters.
# Usage: tests/scripts/demo.sh [TARGET_DIR]   (default: target/debug, after `cargo build --workspace`)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/debug}
for tool in mlbackup-sandbox kubectl-mlbackup; do
    [ -x "$bin/$tool" ] || { echo "error: $bin/$tool not found; run: cargo build --workspace" >&2; exit 2; }
done

work=$(mktemp -d -t mlbackup-demo.XXXXXX)
"$bin/mlbackup-sandbox" serve --kubeconfig "$work/kubeconfig" --lrs 24 --spark 4 --namespaces 3 \
    > "$work/ready.json" &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
[ -s "$work/ready.json" ] || { echo "error: the sandbox did not start" >&2; exit 1; }

export KUBECONFIG="$work/kubeconfig" MLBACKUP_DIR="$work/backups"
# Put the plugin on PATH so `kubectl mlbackup` finds it, as after an install.
export PATH="$PWD/$bin:$PATH"
run() { printf '\n$ %s\n' "$*"; "$@"; }

echo "sandbox ready: $(cat "$work/ready.json")"
run kubectl mlbackup version
run kubectl get lrs -A -L datarobot-lrs-type
run kubectl mlbackup backup
run kubectl mlbackup backup --all-types --name all-types
run kubectl mlbackup list
name=$(kubectl mlbackup list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][-1]["name"])')
run kubectl mlbackup show "$name"
run kubectl mlbackup verify "$name"
