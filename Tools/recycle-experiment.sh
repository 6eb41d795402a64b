#!/usr/bin/env bash
# Issue #5's experiment, over 3 seeds: recycle a P = 1 base into P = 2 and 4 with 10% of its
# pretraining tokens (all parameters, and a frozen backbone), against (a) the base trained on at
# P = 1 for the same extra tokens with the same seed (data order), paired seed by seed.
# (b), models trained from scratch at P with the base's whole budget, is the recipe ablation's
# reparam cells at the base's size (Tools/bench/RESULTS.md, issue #8).
#   bash Tools/recycle-experiment.sh [OUT] [BASE]   (about 15 minutes on 2 cores)
# BASE defaults to the shipped Checkpoints/s96-p1-code (hidden 96, 4 layers, 2M code tokens).
# LR (default 3e-4, the base's final learning rate: a higher one re-warms the backbone and costs
# more than it gains) is the peak learning rate of every arm; RECYCLE_FLAGS (default
# "--parscale-lr-scale 10") go to the recycled arms only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PARSCALE:-.build/release/parscale}
out=${1:-runs/recycle-experiment}
base=${2:-Checkpoints/s96-p1-code}
mkdir -p "$out"
# 200k tokens = 10% of the base's 2M; the code corpus's validation split is fixed, so every run
# is scored on the same 256 windows.
common=(--corpus code --seq 128 --batch 8 --eval-windows 256 --task-examples 0 --tokens 200000 --lr "${LR:-3e-4}")
read -r -a recycle_flags <<< "${RECYCLE_FLAGS---parscale-lr-scale 10}"
for S in 0 1 2; do
  [ -f "$out/a-p1-s$S/checkpoint/trainer_state.json" ] || $bin pretrain --from "$base" --out "$out/a-p1-s$S" --seed $S "${common[@]}"
  for P in 2 4; do
    [ -f "$out/full-p$P-s$S/checkpoint/trainer_state.json" ] || \
      $bin recycle --from "$base" --P $P --out "$out/full-p$P-s$S" --seed $S "${common[@]}" "${recycle_flags[@]}"
    [ -f "$out/frozen-p$P-s$S/checkpoint/trainer_state.json" ] || \
      $bin recycle --from "$base" --P $P --freeze-backbone --out "$out/frozen-p$P-s$S" --seed $S "${common[@]}" "${recycle_flags[@]}"
  done
done

# The table: final validation loss per seed, and the difference to (a) of the same seed.
loss() { sed -n 's/.*"lastValidationLoss" *: *\([-0-9.e]*\).*/\1/p' "$out/$1/checkpoint/trainer_state.json"; }
step0() { sed -n 's/.*"step0_val_loss" *: *"\([-0-9.e]*\)".*/\1/p' "$out/$1/checkpoint/trainer_state.json"; }
echo "| run | step 0 (seed 0) | val loss, seeds 0 / 1 / 2 | mean | vs (a), paired | ± SE |"
echo "|---|---|---|---|---|---|"
for run in a-p1 full-p2 frozen-p2 full-p4 frozen-p4; do
  line="$(loss $run-s0) $(loss $run-s1) $(loss $run-s2) $(loss a-p1-s0) $(loss a-p1-s1) $(loss a-p1-s2) $(step0 $run-s0)"
  echo "$run $line" | awk '{
    m = ($2 + $3 + $4) / 3; d0 = $2 - $5; d1 = $3 - $6; d2 = $4 - $7; d = (d0 + d1 + d2) / 3
    sd = sqrt(((d0 - d) ^ 2 + (d1 - d) ^ 2 + (d2 - d) ^ 2) / 2)
    if ($1 == "a-p1") printf "| %s | | %.4f / %.4f / %.4f | %.4f | | |\n", $1, $2, $3, $4, m
    else printf "| %s | %.4f | %.4f / %.4f / %.4f | %.4f | %+.4f | %.4f |\n", $1, $8, $2, $3, $4, m, d, sd / sqrt(3) }'
done
