#!/usr/bin/env bash
# README command 1 as a new user runs it: a fresh clone of REPO (default: this checkout's HEAD),
# the command copied from the README word for word, timed from its start to the first search of
# the demo that answers, then the size of the venv it made. Port 8000 must be free.
#
#   bash bench/quickstart.sh [REPO] [FOLDER]
set -u
repo=${1:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}
dest=${2:-$(mktemp -d)/clone}
git clone -q "$repo" "$dest" && cd "$dest" || exit 1
command=$(grep -m1 -F 'python3 -m venv .venv && .venv/bin/pip install -r requirements.txt' README.md)
echo "command: $command"
start=$(date +%s.%N)
setsid bash -c "$command" > quickstart.log 2>&1 &
leader=$!
answer=""
for _ in $(seq 1 900); do
  answer=$(curl -sf -F file=@data/the_images/dog.jpg -F k=1 http://127.0.0.1:8000/search) && break
  kill -0 "$leader" 2>/dev/null || break
  sleep 1
done
end=$(date +%s.%N)
kill -- -"$leader" 2>/dev/null
wait "$leader" 2>/dev/null
echo "searchable after: $(echo "$end - $start" | bc) s"
echo "first result: $(echo "$answer" | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["path"], r["match"], r["score"])' 2>/dev/null)"
echo "venv: $(du -sh .venv | cut -f1)"
