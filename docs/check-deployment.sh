#!/usr/bin/env bash
# Checks the statements of docs/deployment.md that this machine can check
# (root needed: unshare, mount, setpriv). No Docker, Kubernetes or systemd is
# needed: their isolation is rebuilt here from the kernel features they use.
#
#   bash docs/check-deployment.sh        (from a clone, after npm run build)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
g=/nsem-deploy-check-$$
node=$(command -v node)
js() { "$node" -e "const { Gauge } = require('$repo'); $1"; }
cleanup() { js "Gauge.unlink('$g')" || true; }
trap cleanup EXIT

echo "== 1. One page of /dev/shm per share (what --shm-size and a Memory emptyDir's sizeLimit count)"
js "
const gauges = Array.from({ length: 10 }, () => new Gauge('$g'));
const { execFileSync } = require('node:child_process');
const files = require('node:fs').readdirSync('/dev/shm').filter((f) => f.startsWith('sem.${g:1}'));
const du = execFileSync('du', ['-ck', ...files.map((f) => '/dev/shm/' + f)], { encoding: 'utf8' }).trim().split('\n').at(-1);
console.log('10 Gauge objects: ' + files.length + ' files (10 shares and the generation), du says ' + du);
console.log('one share file: ' + require('node:fs').statSync('/dev/shm/' + files[0]).size + ' bytes long, ' + require('node:fs').statSync('/dev/shm/' + files[0]).blocks * 512 + ' bytes allocated');
gauges.forEach((x) => x.close());"

echo "== 1b. A full /dev/shm (16 KiB here): new Gauge() fails with a code, the server's other gauges go on"
unshare --mount sh -c "mount -t tmpfs -o size=16k tmpfs /dev/shm && '$node' -e \"
const { Gauge } = require('$repo'); const held = [];
try { for (;;) held.push(new Gauge('$g')); } catch (e) { console.log(held.length + ' Gauge objects fit, the next one: ' + e.code + ' (' + e.message + ')'); }
held[0].release(); console.log('an open one still counts: ' + held[0].value);\""

echo "== 2. A private /dev/shm (a container without --ipc sharing; systemd's TemporaryFileSystem=/dev/shm) does not see the host's gauges"
js "const x = new Gauge('$g'); x.release(3); console.log('host: ' + Gauge.read('$g'));
require('node:child_process').execFileSync('unshare', ['--mount', 'sh', '-c',
  'mount -t tmpfs -o size=1m tmpfs /dev/shm && $node -e \"try { require(\\'$repo\\').Gauge.read(\\'$g\\') } catch (e) { console.log(\\'private /dev/shm: \\' + e.code) }\"'], { stdio: 'inherit' });
x.close();"

echo "== 3. A shared /dev/shm across PID namespaces (--ipc=container:X without --pid=container:X)"
# The owner runs as PID 1 of its own PID namespace; the host reads and reaps.
unshare --pid --fork --mount-proc "$node" -e "
const x = new (require('$repo').Gauge)('$g'); x.release(2);
console.log('in the namespace: pid ' + process.pid + ', holds 2');
setTimeout(() => x.close(), 3000);" &
owner=$!
sleep 1.5
js "const { listShares } = require('$repo/dist/shares');
console.log('host reads ' + Gauge.read('$g') + '; share names carry pids ' + listShares('$g').map((s) => s.pid).join(', '));
console.log('host reap removed ' + require('$repo/dist/gauge').reapGauge('$g') + ' while its owner was alive; host reads ' + Gauge.read('$g'));"
wait $owner

echo "== 4. Readers as another user need the mode to let them (User= in systemd, runAsUser in Kubernetes)"
for mode in 600 666; do
  js "const x = new Gauge('$g-m$mode', { mode: 0o$mode }); x.release();
  const r = require('node:child_process').spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '$node', '-e',
    \"try { console.log('nobody reads ' + require('$repo').Gauge.read('$g-m$mode')) } catch (e) { console.log('nobody: ' + e.code) }\"], { encoding: 'utf8' });
  console.log('mode $mode: ' + r.stdout.trim()); x.close(); Gauge.unlink('$g-m$mode');"
done

echo "== 5. listenQueue() sees the listeners of its own network namespace only (why a sidecar shares the app's)"
"$node" -e "
const { execFileSync } = require('node:child_process');
const { listenQueue } = require('$repo/dist/http');
const server = require('node:net').createServer().listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const read = 'console.log(JSON.stringify(require(\'$repo/dist/http\').listenQueue(' + port + ')))';
  console.log('the same namespace: ' + JSON.stringify(listenQueue(port)));
  console.log('another one (unshare --net): ' + execFileSync('unshare', ['--net', '$node', '-e', read], { encoding: 'utf8' }).trim());
  server.close();
});"

echo "== 6. The Prometheus files in docs/deployment.md (promtool, from Debian's prometheus package)"
if command -v promtool >/dev/null; then
  dir=$(mktemp -d)
  # Each ```yaml block that starts with '# file: NAME' is written to NAME.
  awk -v dir="$dir" '/^```yaml$/ { inblock = 1; file = ""; next }
    /^```$/ { inblock = 0; next }
    inblock && file == "" && /^# file: / { file = dir "/" $3; next }
    inblock && file != "" { print > file }' "$repo/docs/deployment.md"
  # (Only the rules: Debian's promtool is built without Kubernetes discovery and
  # rejects kubernetes_sd_configs, so prometheus.yml is not checked here.)
  (cd "$dir" && promtool check rules alerts.yml)
  rm -rf "$dir"
else
  echo "promtool not installed: skipped"
fi
