#!/usr/bin/env bash
# Two ddmlab binaries side by side (issue 48: "no step slower" after a refactor): `ddmlab bench`'s
# training steps of l-DAE, DiT, MAR and the conv tokenizer, and a short pretraining run through
# the run driver (wall seconds, tokenizer fit included), alternated REPS times (the order of the
# two binaries swaps every repetition). Prints every figure and the median ratio new / old per case.
# Nothing else may run on the machine meanwhile.
#
#   bench/compare-binaries.sh OLD_BIN NEW_BIN [REPS] [DATA_DIR]
#   CASES='bench --preset ldae-fmnist --steps 30;...' bench/compare-binaries.sh ...   (other cases)
set -euo pipefail
old=${1:?old binary}
new=${2:?new binary}
reps=${3:-5}
data=${4:-data}
cases=(
  "bench --preset ldae-fmnist --steps 10"
  "bench --preset dit-fmnist --steps 10"
  "bench --preset mar-tiny --steps 10"
  "bench --tokenizer kl-fmnist --batch-size 32 --steps 5"
  "pretrain --preset ldae-tiny --steps 60 --batch-size 64"
)
if [[ -n ${CASES:-} ]]; then IFS=';' read -r -a cases <<< "$CASES"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
measure() { # BIN CASE -> a figure (img/s for bench, seconds for pretrain)
  local bin=$1 case=$2
  if [[ $case == bench* ]]; then
    # One measurement per call (this script alternates the binaries itself); binaries before
    # `--repeats` measure once anyway.
    local once=""
    "$bin" bench --help 2>/dev/null | grep -q -- --repeats && once="--repeats 1"
    "$bin" $case $once --data-dir "$data" 2>/dev/null | sed -n 's/^ddmlab .*: \(median \)\{0,1\}\([0-9.]*\) img\/s.*/\2/p'
  else
    rm -rf "$tmp/run"
    local t0 t1
    t0=$(date +%s.%N)
    "$bin" $case --data-dir "$data" --out "$tmp/run" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
  fi
}
declare -A figs
for ((r = 0; r < reps; r++)); do
  for c in "${!cases[@]}"; do
    if ((r % 2 == 0)); then order=(old new); else order=(new old); fi
    for which in "${order[@]}"; do
      bin=$old; [[ $which == new ]] && bin=$new
      f=$(measure "$bin" "${cases[$c]}")
      figs[$c,$which]+="$f "
      echo "rep $r  $which  ${cases[$c]}: $f"
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
echo "| case | old (median) | new (median) | new / old |"
echo "|---|---|---|---|"
for c in "${!cases[@]}"; do
  o=$(echo "${figs[$c,old]}" | median)
  n=$(echo "${figs[$c,new]}" | median)
  unit="img/s"; [[ ${cases[$c]} == pretrain* ]] && unit="s"
  echo "| \`${cases[$c]}\` | $o $unit | $n $unit | $(echo "$n / $o" | bc -l | cut -c1-5) |"
done
