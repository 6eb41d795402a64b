"""The peer of tokenizing a training folder into the token cache (`parscale pretrain/recycle --data
FOLDER` with a tokenizer): Hugging Face `tokenizers` encoding the same files, each with the "\n"
the corpus appends, by encode_batch on 2 threads, reading included.

  RAYON_NUM_THREADS=2 python Tools/bench/tokenize_cache_peer.py TOKENIZER.json FOLDER
"""
import os
import sys
import time

from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file(sys.argv[1])
root = sys.argv[2]
start = time.perf_counter()
texts, total = [], 0
for folder, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for name in sorted(files):
        if name.startswith("."):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        try:  # the corpus skips files that are not UTF-8 text, or hold NUL bytes
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" in text:
            continue
        total += len(data) + 1
        texts.append(text + "\n")
ids = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
seconds = time.perf_counter() - start
print(f"HF tokenizers {len(texts)} files, {total / 1e6:.1f} MB, {ids} ids in {seconds:.1f} s: "
      f"{total / 1e6 / seconds:.2f} MB/s (RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'all')})")
