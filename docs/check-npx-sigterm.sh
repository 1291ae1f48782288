#!/usr/bin/env bash
# Checks what docs/deployment.md says about running the CLI long-lived:
# npx (and npm run) do not pass SIGTERM on to the CLI they start (the CLI is
# orphaned and keeps serving its port) and add time at start;
# node_modules/.bin/named-semaphore, run directly or by exec, ends on SIGTERM.
#
#   bash docs/check-npx-sigterm.sh [PORT]     (from a clone, after npm run build)
#
# Installs this clone into a temporary folder (npm install --offline DIR: a
# link, no registry), as a user's project would have it, and signals the
# process that a container runtime or systemd would signal: the one started.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-39461}
work=$(mktemp -d)
gauge=/nsem-npx-check-$$
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --offline --no-audit --no-fund --ignore-scripts "$repo" >/dev/null
npm pkg set "scripts.metrics=named-semaphore serve-metrics --port $port $gauge"
echo "npm $(npm --version), node $(node --version)"

serving() { curl -s -o /dev/null "http://127.0.0.1:$port/metrics"; }
wait_serving() { for _ in $(seq 1 200); do serving && return 0; sleep 0.05; done; return 1; }
cli_pids() { ps -eo pid,args | awk -v pat="serve-metrics --port $port $gauge" 'index($0, pat) && !/awk/ {print $1}'; }

for how in npx npm-run bin; do
  t0=$(date +%s%N)
  if [ $how = npx ]; then
    npx named-semaphore serve-metrics --port "$port" "$gauge" >/dev/null 2>&1 &
  elif [ $how = npm-run ]; then
    npm run metrics >/dev/null 2>&1 &
  else
    node_modules/.bin/named-semaphore serve-metrics --port "$port" "$gauge" >/dev/null 2>&1 &
  fi
  pid=$!
  wait_serving
  echo "$how: serving after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  sleep 1
  echo "$how: the started process ($pid) ended with status $status after SIGTERM"
  if serving; then echo "$how: port $port still served 1 s later"; else echo "$how: port $port closed"; fi
  left=$(cli_pids)
  if [ -n "$left" ]; then
    ps -o pid,ppid,args -p $left | sed "s/^/$how: left running: /"
    kill $left   # this check's own orphan, by PID
  else
    echo "$how: no CLI process left"
  fi
done
