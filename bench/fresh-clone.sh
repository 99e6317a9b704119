#!/usr/bin/env bash
# The README's two commands (or `.ci/run`) on a fresh clone with an empty cargo home and target/, each
# stage timed (issue 50, items 4-5). Nothing else may run beside it (2 cores: a build beside a
# training run measures both).
#
#   bench/fresh-clone.sh readme [DIR]     # first command (build, fetch, pretrain, probe), then the test command
#   bench/fresh-clone.sh ci [DIR]         # .ci/run from scratch
#
# DIR (default /tmp/ddmlab-fresh) is deleted first; the clone is of this checkout's HEAD.
set -uo pipefail
what=${1:?readme or ci}
dir=${2:-/tmp/ddmlab-fresh}
src=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$dir" "$dir-cargo"
git clone -q "$src" "$dir"
export CARGO_HOME="$dir-cargo" PATH="$(dirname "$(command -v cargo)"):$PATH"
cd "$dir"
echo "commit $(git rev-parse --short HEAD), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(date -u +%FT%TZ)"
stage() {
  local s=$(date +%s)
  bash -o pipefail -c "$1"
  local rc=$?
  echo "STAGE $(( $(date +%s) - s )) s, exit $rc: $1"
  return $rc
}
case $what in
  readme)
    # the README's first command, one stage per `&&` part, then its test command as one stage
    first=$(grep -m1 '^cargo build --release' README.md)
    while read -r part; do
      stage "$part 2>&1 | tail -12" || exit 1
    done < <(sed 's/ && /\n/g' <<<"$first")
    stage "$(grep -m1 '^(dpkg -s' README.md) 2>&1 | grep -E '^test result|Running|FAILED|panicked'"
    ;;
  ci) stage '.ci/run 2>&1 | grep -E "^test result|Running|FAILED|panicked|error|Finished"' ;;
  *) echo "unknown: $what (readme or ci)" >&2; exit 2 ;;
esac
