#!/usr/bin/env bash
# Measure the Vulkan backend on a machine without a Swift toolchain (a lent GPU machine).
#
#   bash Tools/gpu-check.sh pack [--head|--no-build]  here: release build (of the working tree, or
#                                               of HEAD exported to /tmp), then .gpu/ = the binary, every
#                                               shared library it needs beyond glibc (Swift runtime,
#                                               Foundation/ICU, OpenBLAS, gfortran, the Vulkan
#                                               loader) and the reference models
#   bash Tools/gpu-check.sh run OUTDIR          there: devices, reference models on Vulkan and CPU,
#                                               bench matmul / decode / train on Vulkan (with the
#                                               CPU rows the benches print beside it); writes
#                                               OUTDIR/gpu-check.json, OUTDIR/summary.txt and
#                                               OUTDIR/logs.tar.gz (raw logs), prints the summary
#
# `run` never aborts on a failing step: each step's status, exit code, time, stderr tail and
# parsed JSON output go into gpu-check.json. Environment for `run`:
#   GPU_CHECK_BUDGET_S   seconds for all steps together (default 360); steps skipped past it
#   GPU_CHECK_SMALL=1    small bench sizes (a rehearsal on lavapipe: VK_DRIVER_FILES=
#                        /usr/share/vulkan/icd.d/lvp_icd.x86_64.json bash Tools/gpu-check.sh run /tmp/x)
#   VK_DRIVER_FILES      a Vulkan driver manifest; if unset, NVIDIA's is looked for
# Carry `.gpu` (and `.gl`, Debian's loader/glvnd .debs, unpacked on a root NVIDIA machine without
# libGLdispatch) with the device tool: run(command: "bash Tools/gpu-check.sh run $OUT", carry: [".gpu", ".gl"]).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

pack() {
    local build=1 src=$ROOT
    local scratch=${GPU_CHECK_SCRATCH:-$ROOT/.build-gpu}
    case "${1:-}" in
        --no-build) build=0 ;;
        --head)  # build the last commit, exported beside, not the working tree others may be editing
            src=/tmp/parscale-gpu-src
            rm -rf "$src"; mkdir -p "$src"
            git archive HEAD | tar -x -C "$src" || exit 1
            [ -e Package.resolved ] && cp Package.resolved "$src/" ;;
    esac
    if [ $build = 1 ]; then
        (cd "$src" && swift build -c release --scratch-path "$scratch" --product parscale -j "${GPU_CHECK_JOBS:-2}") || exit 1
    fi
    local bin
    bin=$(cd "$src" && swift build -c release --scratch-path "$scratch" --show-bin-path)/parscale
    [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }
    rm -rf .gpu
    mkdir -p .gpu/bin .gpu/lib .gpu/lib-fallback
    # Never committed: ignored through this clone's info/exclude unless something ignores it already.
    git check-ignore -q .gpu/bin 2>/dev/null || echo /.gpu/ >> "$(git rev-parse --git-path info/exclude)"
    cp "$bin" .gpu/bin/parscale
    # Every library ldd resolves, less glibc's own; libstdc++/libgcc_s/libz go to lib-fallback,
    # used there only where the system has none (a newer system copy must win: GPU drivers need it).
    ldd "$bin" | awk '/=> \// { print $1, $3 }' | while read -r soname path; do
        case "$soname" in
            libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|ld-linux*|libresolv.so.*) ;;
            libstdc++.so.*|libgcc_s.so.*|libz.so.*) cp -L "$path" .gpu/lib-fallback/"$soname" ;;
            *) cp -L "$path" .gpu/lib/"$soname" ;;
        esac
    done
    # The Vulkan loader is dlopen'ed (ldd does not list it).
    local vk
    vk=$(ldconfig -p | awk '/libvulkan.so.1 .*x86-64/ { print $NF; exit }')
    [ -n "$vk" ] || vk=/usr/lib/x86_64-linux-gnu/libvulkan.so.1
    if [ -e "$vk" ]; then cp -L "$vk" .gpu/lib/libvulkan.so.1; else echo "warning: no libvulkan.so.1 here to bundle" >&2; fi
    # The loader's and its dependencies' own needs (none beyond glibc expected; recorded).
    for f in .gpu/lib/*; do
        ldd "$f" 2>/dev/null | awk '/=> \// { print $1, $3 }' | while read -r soname path; do
            [ -e .gpu/lib/"$soname" ] || [ -e .gpu/lib-fallback/"$soname" ] && continue
            case "$soname" in
                libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|ld-linux*|libresolv.so.*) ;;
                libstdc++.so.*|libgcc_s.so.*|libz.so.*) cp -L "$path" .gpu/lib-fallback/"$soname" ;;
                *) cp -L "$path" .gpu/lib/"$soname" ;;
            esac
        done
    done
    if command -v strip >/dev/null; then
        strip --strip-unneeded .gpu/bin/parscale .gpu/lib/* .gpu/lib-fallback/* 2>/dev/null || true
    fi
    local ref=${PARSCALE_REFERENCE_DIR:-../shared/reference}
    if [ -d "$ref" ]; then cp -r "$ref" .gpu/reference; else echo "warning: no reference models at $ref" >&2; fi
    {
        echo "commit $(git rev-parse HEAD 2>/dev/null)"
        if [ "$src" = "$ROOT" ]; then echo "source working tree, $(git status --porcelain --untracked-files=no 2>/dev/null | wc -l) modified files"
        else echo "source HEAD (exported)"; fi
        echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "swift $(swift --version 2>&1 | head -1)"
    } > .gpu/BUILD_INFO
    # Check: the binary starts with only .gpu/lib (and the fallbacks) beside glibc.
    if LD_LIBRARY_PATH="$ROOT/.gpu/lib:$ROOT/.gpu/lib-fallback" ldd .gpu/bin/parscale | grep -v -E 'linux-vdso|ld-linux' | grep -v -E "=> $ROOT/.gpu/|=> /lib|=> /usr/lib" | grep .; then
        echo "warning: libraries above resolve outside .gpu/" >&2
    fi
    LD_LIBRARY_PATH="$ROOT/.gpu/lib:$ROOT/.gpu/lib-fallback" .gpu/bin/parscale --help >/dev/null || { echo "packed binary does not start" >&2; exit 1; }
    ls -la .gpu/bin .gpu/lib .gpu/lib-fallback
    du -sh .gpu .gl 2>/dev/null
    # Uncompressed it is about 110 MiB (ICU data, OpenBLAS's kernels for every CPU): ship it as xz.
    tar -C .gpu -cJf /tmp/gpu-check-payload.tar.xz bin lib lib-fallback reference BUILD_INFO || exit 1
    rm -rf .gpu/bin .gpu/lib .gpu/lib-fallback .gpu/reference
    mv /tmp/gpu-check-payload.tar.xz .gpu/payload.tar.xz
    ls -la .gpu
    local tree
    tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    local gpu gl
    gpu=$(du -sb .gpu | cut -f1); gl=$(du -sb .gl 2>/dev/null | cut -f1); gl=${gl:-0}
    local total=$(( tree + gpu + gl ))
    echo "transfer: working tree $((tree >> 20)) MiB + .gpu $((gpu >> 20)) MiB + .gl $((gl >> 20)) MiB = $((total >> 20)) MiB (limit 64 MiB)"
    [ $total -lt $((64 * 1048576)) ] || { echo "over the 64 MiB transfer limit" >&2; exit 1; }
}

# ---------------------------------------------------------------------------------------------
run_mode() {
    local out=${1:?usage: gpu-check.sh run OUTDIR}
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    local logs
    logs=$(mktemp -d /tmp/gpu-check-logs.XXXXXX)
    local budget=${GPU_CHECK_BUDGET_S:-360}
    local t_start=$SECONDS
    local steps="$logs/steps.tsv"
    : > "$steps"

    # Libraries: on a root machine without a loader, Debian's .debs from .gl (device README's recipe).
    if [ "$(id -u)" = 0 ] && [ -d /usr/local/nvidia ] && ls .gl/*.deb >/dev/null 2>&1 \
        && ! ldconfig -p | grep -q libGLdispatch.so.0; then
        for f in .gl/*.deb; do dpkg -x "$f" / ; done
        ldconfig
        echo "unpacked .gl/*.deb" >> "$logs/env.txt"
    fi
    # The packed binary, libraries and reference models: .gpu/payload.tar.xz, or an unpacked .gpu/.
    local PK="$ROOT/.gpu"
    if [ -e .gpu/payload.tar.xz ]; then
        PK=${GPU_CHECK_UNPACK:-/tmp/gpu-check-pack}
        rm -rf "$PK"; mkdir -p "$PK"
        tar -C "$PK" -xJf .gpu/payload.tar.xz 2>> "$logs/env.txt" \
            || python3 -m tarfile -e .gpu/payload.tar.xz "$PK" 2>> "$logs/env.txt" \
            || echo "could not unpack .gpu/payload.tar.xz" | tee -a "$logs/env.txt"
    fi
    local ldp="$PK/lib"
    local missing=""
    for f in "$PK"/lib-fallback/*; do
        [ -e "$f" ] || continue
        ldconfig -p | grep -q "$(basename "$f") " || missing="$missing $(basename "$f")"
    done
    [ -n "$missing" ] && ldp="$ldp:$PK/lib-fallback"
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && ldp="$ldp:$d"; done
    export LD_LIBRARY_PATH="$ldp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if [ -z "${VK_DRIVER_FILES:-}" ]; then
        for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
                 /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
            if [ -e "$f" ]; then export VK_DRIVER_FILES=$f; break; fi
        done
    fi
    [ -n "${VK_DRIVER_FILES:-}" ] && [ -e /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] \
        && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    export MESA_SHADER_CACHE_DIR=${MESA_SHADER_CACHE_DIR:-/tmp/gpu-check-mesa-cache}
    local PY
    PY=$(command -v python3)
    local BIN="$PK/bin/parscale"
    {
        echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "uname $(uname -a)"
        echo "nproc $(nproc)"
        echo "root $ROOT"
        echo "LD_LIBRARY_PATH $LD_LIBRARY_PATH"
        echo "lib_fallback_used${missing:- none}"
        echo "VK_DRIVER_FILES ${VK_DRIVER_FILES:-}"
        [ -n "${VK_DRIVER_FILES:-}" ] && cat "$VK_DRIVER_FILES"
        echo "--- icd.d"; ls -la /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
        echo "--- ldconfig vulkan/glvnd"; ldconfig -p | grep -E 'libvulkan|libGLdispatch|libGLX_nvidia|libnvidia-glcore' || true
        echo "--- nvidia-smi"; (nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 || true)
        echo "--- lscpu"; (lscpu 2>/dev/null | grep -E 'Model name|^CPU\(s\)|Thread|Socket' || true)
        echo "--- ldd"; ldd "$BIN" 2>&1
        echo "--- build"; cat "$PK/BUILD_INFO" 2>/dev/null
    } >> "$logs/env.txt" 2>&1

    # step NAME TIMEOUT CMD...: runs CMD with stdout to NAME.out, stderr to NAME.err, records a row.
    step() {
        local name=$1 limit=$2; shift 2
        local left=$(( budget - (SECONDS - t_start) ))
        if [ $left -le 5 ]; then
            printf '%s\tskipped\t-1\t0\t%s\n' "$name" "budget of ${budget}s spent" >> "$steps"
            echo "== $name: skipped (budget spent)"
            return 1
        fi
        [ "$limit" -gt "$left" ] && limit=$left
        echo "== $name (limit ${limit}s): $*"
        local t0
        t0=$(date +%s%N)
        timeout -k 5 "$limit" "$@" > "$logs/$name.out" 2> "$logs/$name.err"
        local rc=$?
        local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        local dt
        dt=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
        local status=ok
        [ $rc = 0 ] || status=failed
        [ $rc = 124 ] || [ $rc = 137 ] && status=timeout
        printf '%s\t%s\t%d\t%.2f\t%s\n' "$name" "$status" "$rc" "$dt" "$*" >> "$steps"
        echo "   $status (rc $rc, $(printf %.1f "$dt") s)"
        [ $rc = 0 ]
    }

    local small=${GPU_CHECK_SMALL:-0}
    step devices 60 "$BIN" devices --json
    step devices_text 30 "$BIN" devices

    # Reference models: logits on both backends with the reference's input_ids, greedy generation.
    local ref
    for ref in "$PK"/reference/*/; do
        ref=${ref%/}
        local name
        name=$(basename "$ref")
        [ -e "$ref/reference.json" ] || continue
        local args
        args=$("$PY" - "$ref/reference.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join("--tokens " + ",".join(map(str, row)) for row in r["input_ids"]))
EOF
)
        local b
        for b in vulkan cpu; do
            # shellcheck disable=SC2086
            step "logits_${name}_$b" 60 "$BIN" logits --backend $b --model "$ref" $args --out "$logs/logits_${name}_$b.safetensors"
        done
        local rows
        rows=$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(len(r["prompt_ids"]))' "$ref/reference.json")
        local i
        for ((i = 0; i < rows; i++)); do
            local prompt n
            prompt=$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(",".join(map(str, r["prompt_ids"][int(sys.argv[2])])))' "$ref/reference.json" "$i")
            n=$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(len(r["gen_ids"][int(sys.argv[2])]))' "$ref/reference.json" "$i")
            step "generate_${name}_vulkan_$i" 60 "$BIN" generate --backend vulkan --model "$ref" --prompt-tokens "$prompt" --max-new-tokens "$n" --json
        done
    done

    # Benches (Vulkan; decode and train print the CPU backend's rows beside it).
    if [ "$small" = 1 ]; then
        step matmul_vulkan 120 "$BIN" bench matmul --backend vulkan --in 256 --out 512 --rows 1,8,64 --json
        step matmul_cpu 60 "$BIN" bench matmul --backend cpu --in 256 --out 512 --rows 1,8,64 --json
        step matmul_square_vulkan 120 "$BIN" bench matmul --backend vulkan --square 128,256 --json
        step matmul_square_cpu 60 "$BIN" bench matmul --backend cpu --square 128,256 --json
        step decode 120 "$BIN" bench decode --backend vulkan --hidden 128 --layers 2 --heads 4 --kv-heads 2 --intermediate 352 --prompt 16 --new 4 --P 1 --repeats 1 --json
        step train_A 240 "$BIN" bench train --backend vulkan --configs A --P 1 --steps 1 --json
        step decode_P4_8 120 "$BIN" bench decode --backend vulkan --hidden 128 --layers 2 --heads 4 --kv-heads 2 --intermediate 352 --prompt 16 --new 4 --P 4 --repeats 1 --json
    else
        # Split so that one slow part, killed at its limit, does not take the others' JSON with it.
        step matmul_vulkan 60 "$BIN" bench matmul --backend vulkan --json
        step decode 100 "$BIN" bench decode --backend vulkan --P 1,2 --json
        step train_A 100 "$BIN" bench train --backend vulkan --configs A --json
        step decode_P4_8 100 "$BIN" bench decode --backend vulkan --P 4,8 --json
        step train_B 120 "$BIN" bench train --backend vulkan --configs B --json
        step matmul_square_vulkan 60 "$BIN" bench matmul --backend vulkan --square 256,512,1024,2048,4096 --json
        step matmul_cpu 40 "$BIN" bench matmul --backend cpu --json
        step matmul_square_cpu 40 "$BIN" bench matmul --backend cpu --square 256,512,1024,2048 --json
    fi
    local total=$(( SECONDS - t_start ))

    # One JSON for everything, then the summary.
    "$PY" - "$logs" "$out" "$total" "$budget" "$PK" <<'EOF'
import json, os, struct, sys
logs, out, total, budget, pk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
try:
    import numpy as np
except Exception:
    np = None

def read_text(path, tail=None):
    try:
        with open(path, errors="replace") as f:
            s = f.read()
    except OSError:
        return None
    return s[-tail:] if tail and len(s) > tail else s

def read_f32(path, key):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[key]
        assert info["dtype"] == "F32", info["dtype"]
        a, b = info["data_offsets"]
        f.seek(8 + n + a)
        raw = f.read(b - a)
    if np is not None:
        return info["shape"], np.frombuffer(raw, dtype="<f4").astype(np.float64)
    return info["shape"], list(struct.unpack("<%df" % ((b - a) // 4), raw))

def compare(x, y):
    """max |x - y|, that over max |y|, and the largest elementwise |x - y| / max(|y|, 1e-3 max|y|)."""
    (sx, vx), (sy, vy) = x, y
    if sx != sy:
        return {"error": "shapes differ: %s vs %s" % (sx, sy)}
    if np is not None:
        d = np.abs(vx - vy); m = float(np.abs(vy).max())
        rel = float((d / np.maximum(np.abs(vy), 1e-3 * m)).max())
        return {"max_abs": float(d.max()), "max_abs_over_max_ref": float(d.max()) / m, "max_rel": rel, "max_ref": m}
    d = [abs(a - b) for a, b in zip(vx, vy)]; m = max(abs(b) for b in vy)
    rel = max(e / max(abs(b), 1e-3 * m) for e, b in zip(d, vy))
    return {"max_abs": max(d), "max_abs_over_max_ref": max(d) / m, "max_rel": rel, "max_ref": m}

result = {"total_s": total, "budget_s": budget, "env": read_text(os.path.join(logs, "env.txt")), "steps": {}, "errors": []}
for line in open(os.path.join(logs, "steps.tsv")):
    name, status, rc, secs, cmd = line.rstrip("\n").split("\t", 4)
    entry = {"status": status, "rc": int(rc), "seconds": float(secs), "command": cmd,
             "stderr_tail": read_text(os.path.join(logs, name + ".err"), 2000)}
    stdout = read_text(os.path.join(logs, name + ".out"))
    if stdout is not None:
        try:
            entry["json"] = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
        except Exception:
            entry["stdout_tail"] = stdout[-4000:]
    result["steps"][name] = entry
    if status != "ok":
        result["errors"].append("%s: %s (rc %s) %s" % (name, status, rc, (entry["stderr_tail"] or "").strip()[-300:]))

# Reference agreement.
agreement = {}
refdir = os.path.join(pk, "reference")
for name in sorted(os.listdir(refdir)) if os.path.isdir(refdir) else []:
    r = {}
    try:
        ref = read_f32(os.path.join(refdir, name, "reference.safetensors"), "logits")
        got = {}
        for b in ("vulkan", "cpu"):
            p = os.path.join(logs, "logits_%s_%s.safetensors" % (name, b))
            if os.path.exists(p):
                got[b] = read_f32(p, "logits")
        if "vulkan" in got: r["vulkan_vs_reference"] = compare(got["vulkan"], ref)
        if "cpu" in got: r["cpu_vs_reference"] = compare(got["cpu"], ref)
        if len(got) == 2: r["vulkan_vs_cpu"] = compare(got["vulkan"], got["cpu"])
        refj = json.load(open(os.path.join(refdir, name, "reference.json")))
        gens = []
        for i, want in enumerate(refj.get("gen_ids", [])):
            s = result["steps"].get("generate_%s_vulkan_%d" % (name, i), {})
            tokens = (s.get("json") or {}).get("tokens")
            gens.append({"row": i, "expected": want, "vulkan": tokens, "equal": tokens == want})
        r["greedy_generation_vulkan"] = gens
    except Exception as e:
        r["error"] = repr(e)
        result["errors"].append("agreement %s: %r" % (name, e))
    agreement[name] = r
result["reference_agreement"] = agreement

# Summary.
L = []
L.append("gpu-check: %d s of a %d s budget" % (total, budget))
dev = result["steps"].get("devices", {}).get("json")
L.append("devices: " + (json.dumps(dev)[:600] if dev is not None else "FAILED"))
for name, r in agreement.items():
    def f(k):
        c = r.get(k)
        return "n/a" if not c or "max_abs" not in c else "%.2e (rel-to-max %.2e)" % (c["max_abs"], c["max_abs_over_max_ref"])
    gens = r.get("greedy_generation_vulkan", [])
    L.append("%s: vk-vs-cpu %s | vk-vs-ref %s | cpu-vs-ref %s | greedy gen vk %d/%d equal" % (
        name, f("vulkan_vs_cpu"), f("vulkan_vs_reference"), f("cpu_vs_reference"), sum(g["equal"] for g in gens), len(gens)))
for key in ("matmul_vulkan", "matmul_cpu"):
    j = result["steps"].get(key, {}).get("json")
    if j:
        L.append("%s (%s): " % (key, j.get("backend")) + ", ".join("M=%d %.1f GFLOP/s %.3f ms" % (r["rows"], r["gflops"], r["ms"]) for r in j["rows"]))
for key in ("matmul_square_vulkan", "matmul_square_cpu"):
    j = result["steps"].get(key, {}).get("json")
    if j:
        L.append("%s: " % key + ", ".join("n=%d %.1f GFLOP/s %.2f ms" % (r["n"], r["gflops"], r["ms"]) for r in j.get("square", [])))
# Decode rows of both parts; ratio against P = 1 of the same backend kind, recomputed across parts.
drows = []
for key in ("decode", "decode_P4_8"):
    j = result["steps"].get(key, {}).get("json")
    if j:
        L.append("%s (%s), config %s" % (key, j.get("backend"), json.dumps(j.get("config"))))
        drows += j["rows"]
first = {}
for r in drows:
    first.setdefault(r["backend"], r["decode_ms_per_token"])
    r["decode_ratio_vs_P1"] = r["decode_ms_per_token"] / first[r["backend"]]
    L.append("  P=%d %-8s prefill %8.0f tok/s  decode %7.2f ms/token  x%.2f vs first P" % (r["P"], r["backend"], r["prefill_tokens_per_s"], r["decode_ms_per_token"], r["decode_ratio_vs_P1"]))
result["decode_rows"] = drows
for key in ("train_A", "train_B"):
    j = result["steps"].get(key, {}).get("json")
    if j:
        L.append("%s: " % key + json.dumps({k: v for k, v in j.items() if k != "rows"}))
        for r in j.get("rows", []):
            L.append("  " + json.dumps(r))
for name, s in result["steps"].items():
    L.append("step %-40s %-8s %6.1f s" % (name, s["status"], s["seconds"]))
if result["errors"]:
    L.append("ERRORS:")
    L.extend("  " + e for e in result["errors"])
text = "\n".join(L) + "\n"
with open(os.path.join(out, "gpu-check.json"), "w") as f:
    json.dump(result, f, indent=1)
open(os.path.join(out, "summary.txt"), "w").write(text)
print(text)
EOF
    tar -czf "$out/logs.tar.gz" -C "$logs" . 2>/dev/null
    echo "wrote $out/gpu-check.json, $out/summary.txt, $out/logs.tar.gz"
}

case "${1:-}" in
    pack) shift; pack "$@" ;;
    run) shift; run_mode "$@" ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
esac
