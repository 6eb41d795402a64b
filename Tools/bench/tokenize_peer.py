"""The Hugging Face `tokenizers` side of `parscale bench tokenize`.

    RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
      python Tools/bench/tokenize_peer.py --tokenizer tokenizer.json --file text.txt --threads 1 \
        --repeats 5 --ids-out ids.bin

Loads the tokenizer, reads the text (UTF-8), and times, best of --repeats after one warm-up call:
  threads 1: tokenizer.encode(whole text) (one call, one thread: run it with RAYON_NUM_THREADS=1);
  threads k > 1: tokenizer.encode_batch(chunks) with k rayon threads (RAYON_NUM_THREADS=k), the
    text cut into ~64 KB chunks before a "\\n" followed by an ASCII letter, where the Qwen2 pattern
    cannot match across (the concatenated ids are checked against the whole-text encode).
Wall-clock and process CPU time (all threads) of the best runs are reported.
Writes the whole-text ids (little-endian int32) to --ids-out and prints one JSON object.
Exit status 3 with a message when `tokenizers` cannot be imported.
"""
import argparse
import json
import os
import re
import struct
import sys
import time


def chunks(text, size=1 << 16):
    out, start = [], 0
    for m in re.finditer(r"\n(?=[A-Za-z])", text):
        cut = m.end()
        if cut - start >= size:
            out.append(text[start:cut])
            start = cut
    out.append(text[start:])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ids-out")
    a = ap.parse_args()
    try:
        import tokenizers
    except ImportError as e:
        print(f"tokenize_peer.py: {sys.executable} cannot import tokenizers ({e}); make an environment "
              f"with `bash Tools/fixtures/python-env.sh` and pass its python with --python", file=sys.stderr)
        sys.exit(3)
    tok = tokenizers.Tokenizer.from_file(a.tokenizer)
    with open(a.file, "rb") as fh:
        raw = fh.read()
    text = raw.decode("utf-8")
    whole = tok.encode(text).ids
    result = {"tokenizers_version": tokenizers.__version__, "threads": a.threads, "bytes": len(raw),
              "ids": len(whole), "rayon_threads": os.environ.get("RAYON_NUM_THREADS")}
    if a.threads <= 1:
        def run():
            return tok.encode(text).ids
    else:
        parts = chunks(text)
        result["chunks"] = len(parts)

        def run():
            return [i for e in tok.encode_batch(parts) for i in e.ids]
    ids = run()  # warm-up
    result["ids_match_whole_text"] = ids == whole
    best = best_cpu = float("inf")
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    result["best_seconds"] = best
    result["best_cpu_seconds"] = best_cpu
    result["mb_per_s"] = len(raw) / best / 1e6
    if a.ids_out:
        with open(a.ids_out, "wb") as fh:
            fh.write(struct.pack("<%di" % len(whole), *whole))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
