#!/bin/bash
# Issue #18's measurement: the diversity recipes beside the default (reparam) and P = 1, paired by seed,
# hidden 64 and 96, P = 2 and 4, 2M tokens of the built-in code corpus. Resumable: run it again;
# `ablate` skips finished runs and continues a run from its last checkpoint. One seed and one size at
# a time, the new recipes first, so that whatever has finished when it is stopped is paired and
# comparable. The binary is a copy of the release build of the commit in binary-commit.txt
# (branch s5-diversity).
set -e
cd "$(dirname "$0")"
for s in 0 1 2 3 4; do
  for h in 64 96; do
    nice -n 19 ./parscale ablate --out . --recipes reparam-decor,reparam-keyscale,reparam --sizes $h --P 2,4 \
      --seeds $s --tokens 2000000 >> ablate.log 2>&1
  done
done
nice -n 19 ./parscale ablate --out . --table-only >> ablate.log 2>&1
