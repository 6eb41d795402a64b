#!/usr/bin/env bash
# The PyTorch peer of `parscale bench train` / `bench decode`: CPU torch and transformers from PyPI in
# the project's Python environment (Tools/fixtures/python-env.sh --torch; PARSCALE_VENV picks another
# folder). Prints the path of that environment's python.
#   PY=$(bash Tools/bench/peer/setup.sh) && $PY Tools/bench/peer/peer.py train
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash Tools/fixtures/python-env.sh --torch
