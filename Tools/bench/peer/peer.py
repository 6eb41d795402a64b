"""The PyTorch peer of `parscale bench train` and `parscale bench decode`: the same shapes and protocol,
timed in the same run as our binary, interleaved (ours, peer, ours, peer, ...), best of each; prints
tokens/s or ms/token of both and the ratio. Set up with Tools/bench/peer/setup.sh.

  python Tools/bench/peer/peer.py train  [--configs A,B] [--P 1,4] [--rounds 2] [--threads 2]
  python Tools/bench/peer/peer.py decode [--P 1,8] [--rounds 2] [--threads 2]
  python Tools/bench/peer/peer.py check MODEL_DIR     # our logits against this file's model

The peer model: P = 1 is transformers' Qwen2ForCausalLM. P > 1 is the Qwen2 of
../shared/parscale-spec.md written here in plain torch (prefix key/values as the head of each stream's
cache, the aggregation head); `check` compares its logits (and transformers' at P = 1) with
`parscale logits` on a checkpoint folder, and fails above 1e-4 relative (the spec's bar).
Our binary: .build/release/parscale, or PARSCALE_BIN.

On a machine shared with other jobs, run with OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads spin
at each barrier by default, and with more runnable threads than cores that made a batch-1 decode
step 20x slower (800 ms against 35 ms at P = 1, load average 16 on 2 cores); the headers print it.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
BINARY = os.environ.get("PARSCALE_BIN", os.path.normpath(os.path.join(ROOT, ".build", "release", "parscale")))

# As BenchTrain.swift: A and B, 48 prefix tokens, vocab 256, tied head.
TRAIN_SHAPES = {
    "A": dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=352, seq=128, batch=8),
    "B": dict(hidden=256, layers=6, heads=8, kv_heads=4, intermediate=688, seq=256, batch=8),
}
# As BenchDecode.swift's defaults: untied, vocab 256, prompt 128, 32 decode steps, batch 1.
DECODE_SHAPE = dict(hidden=1024, layers=8, heads=16, kv_heads=4, intermediate=2816)


def make_config(shape, vocab, P, T, tied):
    return {
        "vocab_size": vocab, "hidden_size": shape["hidden"], "intermediate_size": shape["intermediate"],
        "num_hidden_layers": shape["layers"], "num_attention_heads": shape["heads"],
        "num_key_value_heads": shape["kv_heads"], "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": tied, "parscale_n": P, "parscale_n_tokens": T, "parscale_attn_smooth": 0.1,
    }


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, NH, KVH = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.nh, self.kvh, self.hd = NH, KVH, H // NH
        self.q_proj = nn.Linear(H, NH * self.hd)
        self.k_proj = nn.Linear(H, KVH * self.hd)
        self.v_proj = nn.Linear(H, KVH * self.hd)
        self.o_proj = nn.Linear(NH * self.hd, H, bias=False)
        P, T = c["parscale_n"], c["parscale_n_tokens"]
        self.P, self.T = P, (T if P > 1 else 0)
        if P > 1:  # spec step 3: [P, KVH, T, hd], prepended to each stream's keys/values, no RoPE
            self.prefix_k = nn.Parameter(torch.randn(P, KVH, T, self.hd) * 0.02)
            self.prefix_v = nn.Parameter(torch.randn(P, KVH, T, self.hd) * 0.02)

    def forward(self, h, cos, sin, cache):
        R, S, _ = h.shape  # R = P*B rows, replica-major
        q = self.q_proj(h).view(R, S, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(R, S, self.kvh, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(R, S, self.kvh, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if cache is not None:  # decode: a preallocated [R, KVH, T + capacity, hd] per layer
            keys, values, length = cache
            keys[:, :, self.T + length:self.T + length + S] = k
            values[:, :, self.T + length:self.T + length + S] = v
            k, v = keys[:, :, :self.T + length + S], values[:, :, :self.T + length + S]
            past = length
        else:
            if self.P > 1:
                B = R // self.P
                pk = self.prefix_k.repeat_interleave(B, dim=0)  # stream r -> rows r*B .. r*B+B-1
                pv = self.prefix_v.repeat_interleave(B, dim=0)
                k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
            past = 0
        group = self.nh // self.kvh  # GQA, grouped: query head j reads kv head j // group
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        # Query i (position past + i) sees every prefix slot and real keys 0 ... past + i.
        total = k.shape[2]
        key_pos = torch.arange(total) - self.T
        query_pos = torch.arange(S) + past
        mask = key_pos[None, :] <= query_pos[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(R, S, self.nh * self.hd))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, I = c["hidden_size"], c["intermediate_size"]
        self.input_layernorm = RMSNorm(H, c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(H, c["rms_norm_eps"])
        self.mlp = nn.Module()
        self.mlp.gate_proj = nn.Linear(H, I, bias=False)
        self.mlp.up_proj = nn.Linear(H, I, bias=False)
        self.mlp.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x, cos, sin, cache):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        h = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


class ParScaleQwen2(nn.Module):
    """Spec steps 1-8, parameter names as the official checkpoints (so a parscale folder loads)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        H, P, V = c["hidden_size"], c["parscale_n"], c["vocab_size"]
        self.P, self.smooth = P, c["parscale_attn_smooth"]
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(V, H)
        self.model.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.model.norm = RMSNorm(H, c["rms_norm_eps"])
        if P > 1:
            self.model.aggregate_layer = nn.Sequential(nn.Linear(P * H, H), nn.SiLU(), nn.Linear(H, P))
        if not c["tie_word_embeddings"]:
            self.lm_head = nn.Linear(H, V, bias=False)
        hd = H // c["num_attention_heads"]
        self.inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def head_weight(self):
        return self.model.embed_tokens.weight if self.c["tie_word_embeddings"] else self.lm_head.weight

    def make_cache(self, batch, capacity):
        """Per layer [P*B, KVH, T + capacity, hd] keys and values, the prefix copied into the head."""
        caches = []
        for layer in self.model.layers:
            a = layer.self_attn
            keys = torch.zeros(self.P * batch, a.kvh, a.T + capacity, a.hd)
            values = torch.zeros_like(keys)
            if self.P > 1:
                keys[:, :, :a.T] = a.prefix_k.detach().repeat_interleave(batch, dim=0)
                values[:, :, :a.T] = a.prefix_v.detach().repeat_interleave(batch, dim=0)
            caches.append([keys, values])
        return {"layers": caches, "length": 0}

    def forward(self, ids, cache=None):
        B, S = ids.shape
        past = cache["length"] if cache is not None else 0
        freqs = torch.outer(torch.arange(past, past + S, dtype=torch.float32), self.inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.model.embed_tokens(ids).repeat(self.P, 1, 1)  # replica-major: row r*B + b
        for i, layer in enumerate(self.model.layers):
            lc = None if cache is None else (cache["layers"][i][0], cache["layers"][i][1], past)
            x = layer(x, cos, sin, lc)
        if cache is not None:
            cache["length"] = past + S
        y = self.model.norm(x)
        if self.P > 1:
            ys = y.view(self.P, B, S, -1)
            feat = ys.permute(1, 2, 3, 0).reshape(B, S, -1)  # feature-interleaved: d*P + r
            w = torch.softmax(self.model.aggregate_layer(feat).float(), dim=-1)
            if self.smooth:
                w = w * (1 - self.smooth) + self.smooth / self.P
            y = torch.einsum("bsp,pbsd->bsd", w, ys)
        return y @ self.head_weight().T


def transformers_qwen2(c):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    config = Qwen2Config(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_key_value_heads"], rope_theta=c["rope_theta"], rms_norm_eps=c["rms_norm_eps"],
        tie_word_embeddings=c["tie_word_embeddings"], max_position_embeddings=4096, attn_implementation="sdpa")
    return Qwen2ForCausalLM(config)


def peer_model(c):
    """P = 1: transformers' Qwen2ForCausalLM; P > 1: ParScaleQwen2."""
    return transformers_qwen2(c) if c["parscale_n"] == 1 else ParScaleQwen2(c)


def logits_of(model, ids, cache=None):
    if isinstance(model, ParScaleQwen2):
        return model(ids, cache)
    out = model(input_ids=ids, cache=cache, use_cache=cache is not None)
    return out.logits


def make_peer_cache(model, batch, capacity):
    if isinstance(model, ParScaleQwen2):
        return model.make_cache(batch, capacity)
    from transformers import DynamicCache
    return DynamicCache()


# ---- train -----------------------------------------------------------------------------------

def time_train_peer(shape, P, T, steps):
    """Median seconds of forward + backward + clip + AdamW over `steps` steps after one warm-up."""
    torch.manual_seed(1)
    model = peer_model(make_config(shape, 256, P, T, tied=True))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 256, (shape["batch"], shape["seq"]), generator=g)
    targets = torch.randint(0, 256, (shape["batch"], shape["seq"]), generator=g)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        logits = logits_of(model, ids)
        loss = F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_settings():
    return (f"torch {torch.__version__} ({torch.get_num_threads()} threads, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})")


def run_ours(args):
    out = subprocess.run([BINARY] + args + ["--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cmd_train(a):
    rows = []
    print(f"peer train: {torch_settings()} against {BINARY}, "
          f"{a.rounds} rounds interleaved, best of each; tokens/s")
    print("config  P   ours tok/s   peer tok/s   ratio   ours MFU   sgemm GFLOP/s")
    for name in a.configs.split(","):
        shape = TRAIN_SHAPES[name.strip().upper()]
        for P in map(int, a.P.split(",")):
            ours, peer, mfu, peak = [], [], [], []
            for _ in range(a.rounds):
                r = run_ours(["bench", "train", "--configs", name, "--P", str(P), "--steps", str(a.steps),
                              "--prefix-tokens", str(a.prefix_tokens)])
                ours.append(r["rows"][0]["tokens_per_s"])
                mfu.append(r["rows"][0]["mfu"])
                peak.append(r["sgemm_gflops"])
                t = time_train_peer(shape, P, a.prefix_tokens, a.steps)
                peer.append(shape["batch"] * shape["seq"] / t)
            best = max(range(a.rounds), key=lambda i: ours[i])
            row = {"config": name, "P": P, "ours_tokens_per_s": max(ours), "peer_tokens_per_s": max(peer),
                   "ratio": max(ours) / max(peer), "ours_all": ours, "peer_all": peer, "mfu": mfu[best],
                   "sgemm_gflops": peak[best]}
            rows.append(row)
            print(f"{name:6s} {P:2d} {row['ours_tokens_per_s']:12,.0f} {row['peer_tokens_per_s']:12,.0f} "
                  f"{row['ratio']:6.2f}x {100 * row['mfu']:8.1f}% {row['sgemm_gflops']:10.1f}", flush=True)
    if a.json:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}))


# ---- decode ----------------------------------------------------------------------------------

def time_decode_peer(P, T, prompt, new):
    """Prefill tok/s and median decode ms/token at batch 1, as BenchDecode.swift (argmax feeding)."""
    torch.manual_seed(1)
    c = make_config(DECODE_SHAPE, 256, P, T, tied=False)
    model = peer_model(c)
    model.eval()
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 256, (1, prompt), generator=g)
    with torch.no_grad():
        cache = make_peer_cache(model, 1, prompt + new + 1)
        t0 = time.perf_counter()
        logits = logits_of(model, ids, cache)
        prefill = time.perf_counter() - t0
        times = []
        for _ in range(new):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            t0 = time.perf_counter()
            logits = logits_of(model, nxt, cache)
            times.append(time.perf_counter() - t0)
    return prompt / prefill, statistics.median(times) * 1000


def cmd_decode(a):
    rows = []
    print(f"peer decode: {torch_settings()} against {BINARY}, "
          f"hidden 1024, 8 layers, prompt {a.prompt}, {a.new} steps, batch 1, {a.rounds} rounds interleaved, best of each")
    print("   P   ours ms/tok   peer ms/tok   peer/ours   ours vs P1   peer vs P1   ours prefill tok/s   peer prefill tok/s")
    first = None
    for P in map(int, a.P.split(",")):
        ours, peer, ours_pre, peer_pre = [], [], [], []
        for _ in range(a.rounds):
            r = run_ours(["bench", "decode", "--P", str(P), "--prompt", str(a.prompt), "--new", str(a.new),
                          "--repeats", "1", "--prefix-tokens", str(a.prefix_tokens)])
            ours.append(r["rows"][0]["decode_ms_per_token"])
            ours_pre.append(r["rows"][0]["prefill_tokens_per_s"])
            pre, ms = time_decode_peer(P, a.prefix_tokens, a.prompt, a.new)
            peer.append(ms)
            peer_pre.append(pre)
        row = {"P": P, "ours_ms_per_token": min(ours), "peer_ms_per_token": min(peer),
               "ratio_peer_over_ours": min(peer) / min(ours), "ours_prefill_tokens_per_s": max(ours_pre),
               "peer_prefill_tokens_per_s": max(peer_pre), "ours_all": ours, "peer_all": peer}
        first = first or row
        row["ours_vs_first"] = row["ours_ms_per_token"] / first["ours_ms_per_token"]
        row["peer_vs_first"] = row["peer_ms_per_token"] / first["peer_ms_per_token"]
        rows.append(row)
        print(f"{P:4d} {row['ours_ms_per_token']:13.2f} {row['peer_ms_per_token']:13.2f} "
              f"{row['ratio_peer_over_ours']:10.2f}x {row['ours_vs_first']:11.2f}x {row['peer_vs_first']:11.2f}x "
              f"{row['ours_prefill_tokens_per_s']:20.0f} "
              f"{row['peer_prefill_tokens_per_s']:20.0f}", flush=True)
    if a.json:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}))


# ---- check -----------------------------------------------------------------------------------

def load_checkpoint(model_dir):
    from safetensors.torch import load_file
    with open(os.path.join(model_dir, "config.json")) as f:
        raw = json.load(f)
    c = make_config(
        dict(hidden=raw["hidden_size"], layers=raw["num_hidden_layers"], heads=raw["num_attention_heads"],
             kv_heads=raw["num_key_value_heads"], intermediate=raw["intermediate_size"]),
        raw["vocab_size"], raw.get("parscale_n", 1), raw.get("parscale_n_tokens", 48), raw["tie_word_embeddings"])
    c["rope_theta"], c["rms_norm_eps"] = float(raw["rope_theta"]), float(raw["rms_norm_eps"])
    c["parscale_attn_smooth"] = float(raw.get("parscale_attn_smooth", 0.01))
    state = {}
    for name in sorted(os.listdir(model_dir)):
        if name.startswith("model") and name.endswith(".safetensors"):
            state.update({k: v.float() for k, v in load_file(os.path.join(model_dir, name)).items()})
    return c, state


def cmd_check(a):
    c, state = load_checkpoint(a.model_dir)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, c["vocab_size"], (2, a.tokens), generator=g)
    out = os.path.join(tempfile.mkdtemp(), "logits.safetensors")
    subprocess.check_call([BINARY, "logits", "--model", a.model_dir, "--backend", "cpu", "--out", out]
                          + sum([["--tokens", ",".join(map(str, row.tolist()))] for row in ids], []))
    from safetensors.torch import load_file
    ours = load_file(out)["logits"].reshape(2, a.tokens, -1)
    models = [("ParScaleQwen2 (this file)", ParScaleQwen2(c))]
    if c["parscale_n"] == 1:
        models.append(("transformers Qwen2ForCausalLM", transformers_qwen2(c)))
    worst = 0.0
    for label, model in models:
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [m for m in missing if m != "lm_head.weight" or not c["tie_word_embeddings"]]
        if missing or unexpected:
            sys.exit(f"{a.model_dir}: tensors missing {missing} or unexpected {unexpected} for {label}")
        model.eval()
        with torch.no_grad():
            theirs = logits_of(model, ids)
            # Through the cache as well (the decode protocol): half the tokens, then one at a time.
            cache = make_peer_cache(model, 2, a.tokens)
            half = a.tokens // 2
            steps = [logits_of(model, ids[:, :half], cache)]
            steps += [logits_of(model, ids[:, t:t + 1], cache) for t in range(half, a.tokens)]
            cached = torch.cat(steps, dim=1)
        for what, x in [("full forward", theirs), ("through the cache", cached)]:
            error = ((ours - x).abs().max() / x.abs().max()).item()
            worst = max(worst, error)
            print(f"{label}, {what}: P = {c['parscale_n']}, 2 x {a.tokens} tokens: "
                  f"max |ours - peer| / max |peer| = {error:.2e}")
    sys.exit(0 if worst < 1e-4 else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch.set_num_threads; default: the cores this process may use, as ours does")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="bench train against the peer")
    t.add_argument("--configs", default="A,B", help="A, B or A,B (BenchTrain.swift's shapes)")
    t.add_argument("--P", default="1,4", help="stream counts, comma-separated")
    t.add_argument("--steps", type=int, default=5, help="timed steps per measurement (after one warm-up); median")
    t.add_argument("--rounds", type=int, default=2, help="ours-then-peer rounds per row; best of each")
    t.add_argument("--prefix-tokens", type=int, default=48, help="prefix tokens T")
    t.add_argument("--json", action="store_true", help="also print one JSON object")
    d = sub.add_parser("decode", help="bench decode against the peer")
    d.add_argument("--P", default="1,8", help="stream counts, comma-separated (the first is the baseline)")
    d.add_argument("--prompt", type=int, default=128, help="prompt length for prefill")
    d.add_argument("--new", type=int, default=32, help="decode steps measured; median")
    d.add_argument("--rounds", type=int, default=2, help="ours-then-peer rounds per row; best of each")
    d.add_argument("--prefix-tokens", type=int, default=48, help="prefix tokens T")
    d.add_argument("--json", action="store_true", help="also print one JSON object")
    k = sub.add_parser("check", help="our logits against the peer model's on a checkpoint folder")
    k.add_argument("model_dir", help="a checkpoint folder (config.json, model*.safetensors)")
    k.add_argument("--tokens", type=int, default=12, help="tokens per sequence (2 random sequences)")
    a = p.parse_args()
    if a.command != "check" and not os.access(BINARY, os.X_OK):
        sys.exit(f"our binary {BINARY} is missing: run `swift build -c release --product parscale` or set PARSCALE_BIN")
    if a.command == "train":
        unknown = [c for c in a.configs.split(",") if c.strip().upper() not in TRAIN_SHAPES]
        if unknown:
            sys.exit(f"--configs: expected A and/or B, got {', '.join(unknown)}")
    if a.command in ("train", "decode"):
        try:
            if any(int(P) < 1 for P in a.P.split(",")):
                raise ValueError
        except ValueError:
            sys.exit(f"--P: expected stream counts >= 1, comma-separated, got '{a.P}'")
    if a.command == "check" and not os.path.isfile(os.path.join(a.model_dir, "config.json")):
        sys.exit(f"{a.model_dir}: no config.json (expected a checkpoint folder)")
    torch.set_num_threads(a.threads)
    {"train": cmd_train, "decode": cmd_decode, "check": cmd_check}[a.command](a)


if __name__ == "__main__":
    main()
