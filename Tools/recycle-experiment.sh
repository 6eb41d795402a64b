#!/usr/bin/env bash
# Issue #5's experiment: recycle the shipped P = 1 base into P = 2 and 4 with 10% of its
# pretraining tokens (full and frozen backbone), against (a) the base trained on at P = 1 for the
# same extra tokens and (b) models trained from scratch at that P with the base's whole budget.
#   bash Tools/recycle-experiment.sh [OUT]      (about 25 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/parscale
out=${1:-runs/recycle-experiment}
base=Checkpoints/xs-p1-synthetic
mkdir -p "$out"
common=(--seq 128 --batch 8 --eval-windows 64 --task-examples 200 --seed 0)
extra=(--steps 400 --lr 1e-3)        # 400 x 1024 tokens = 10% of the base's 4000 steps

[ -d "$out/a-p1-continued" ] || $bin pretrain --from "$base" --out "$out/a-p1-continued" "${common[@]}" "${extra[@]}"
for P in 2 4; do
  [ -d "$out/recycle-p$P-full" ] || $bin recycle --from "$base" --P $P --out "$out/recycle-p$P-full" "${common[@]}" "${extra[@]}"
  [ -d "$out/recycle-p$P-frozen" ] || $bin recycle --from "$base" --P $P --freeze-backbone --out "$out/recycle-p$P-frozen" "${common[@]}" "${extra[@]}"
done
for P in 2 4; do
  [ -d "$out/b-scratch-p$P" ] || $bin pretrain --size xs --P $P --prefix-tokens 16 --out "$out/b-scratch-p$P" "${common[@]}" --steps 4000
done
for run in "$out"/*/; do
  printf '%-28s ' "$(basename "$run")"
  $bin eval --model "$run" --seq 128 --windows 64 --task-examples 200 --json
done
