#!/usr/bin/env bash
# The fuzz campaign of docs/results.md ("Fuzzing"): each target for a fixed number of cases, one after the other,
# seeded, on one core. Writes fuzz/work/TARGET.stats.json and benchmarks/results/fuzz_campaign.log.
#   bash benchmarks/fuzz_campaign.sh            (about 1.3 million cases)
set -euo pipefail
cd "$(dirname "$0")/.."
log=benchmarks/results/fuzz_campaign.log
: > "$log"
for spec in spix:400000 model:300000 gainer:250000 checkpoint:100000 edit_spec:150000 scene:100000; do
  t=${spec%%:*}; n=${spec##*:}
  start=$(date +%s)
  rc=0
  .venv/bin/python fuzz/run.py "$t" -runs="$n" -seed=7 -print_final_stats=1 > "/tmp/fuzz_$t.out" 2>&1 || rc=$?
  end=$(date +%s)
  echo "{\"target\": \"$t\", \"runs\": $n, \"rc\": $rc, \"wall_seconds\": $((end - start)), \"done\": \"$(grep '^Done' /tmp/fuzz_$t.out | tail -1)\", \"stats\": $(cat fuzz/work/$t.stats.json | tr -d '\n')}" >> "$log"
  grep -E "^stat::" "/tmp/fuzz_$t.out" | sed "s/^/$t /" >> "$log" || true
done
