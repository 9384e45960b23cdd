#!/bin/sh
# Builds podvisor and plays a pod's life on this machine:
#   - a "sidecar" HTTP server that only starts listening after 2 seconds,
#   - a second sidecar kept alive by `podvisor --until-marker` until the step is done,
#   - the step: `podvisor --wait-http ... --marker ... -- <fetch the page>`.
# Needs cargo and python3.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet
podvisor=$PWD/target/release/podvisor
work=$(mktemp -d)
server= sidecar= watchdog=
trap 'kill $server $sidecar $watchdog 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
echo "hello from the sidecar" > "$work/index.html"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "== sidecar: HTTP server on 127.0.0.1:$port, listening in 2 s"
(sleep 2; exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1) &
server=$!

echo "== sidecar: 'sleep infinity' kept until the step's marker appears"
"$podvisor" --until-marker "$work/workspace/step.marker" -- sleep infinity &
sidecar=$!
# Never hang: a demo that does not finish in 60 s has failed. (The sleep gets none of our
# output pipes, so that `scripts/demo.sh | tail` ends with the demo.)
(sleep 60 >/dev/null 2>&1; echo "== demo: timed out, stopping the sidecar" >&2; kill "$sidecar") &
watchdog=$!

echo "== step: podvisor --wait-http http://127.0.0.1:$port/ --marker ... -- fetch the page"
status=0
"$podvisor" --wait-http "http://127.0.0.1:$port/" --timeout 30s --marker "$work/workspace/step.marker" -- \
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/').read().decode().strip())" ||
  status=$?
echo "== step exited with $status"

sidecar_status=0
wait "$sidecar" || sidecar_status=$?
sidecar=
echo "== sidecar exited with $sidecar_status after the marker appeared:"
cat "$work/workspace/step.marker"; echo
[ "$status" -eq 0 ] && [ "$sidecar_status" -eq 0 ]
