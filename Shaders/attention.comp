#version 450
// Causal attention over the per-row cache [R, KVH, capacity, hd] (prefix in slots 0..T-1, no
// mask on them). One thread per (row, head, query); single pass with a running maximum
// (online softmax), float32. Query head j reads kv head j / (NH / KVH). In training each
// query's log-sum-exp of its scaled scores goes to `lse` ([rows, NH, newTokens]) for the backward.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) buffer Out { float o[]; };
layout(std430, binding = 4) buffer LSE { float lse[]; };
layout(push_constant) uniform Push { AttentionPush p; };

void main() {
    uint item = global_index();
    if (item >= p.shape.rows * p.shape.heads * p.shape.newTokens) return;
    uint t = item % p.shape.newTokens, h = (item / p.shape.newTokens) % p.shape.heads,
        row = item / (p.shape.newTokens * p.shape.heads);
    uint hd = p.shape.headDim, stride = (p.shape.heads + 2 * p.shape.kvHeads) * hd;
    uint q = p.qkvOffset + (row * p.shape.newTokens + t) * stride + h * hd;
    uint kv = ((row * p.shape.kvHeads + h / (p.shape.heads / p.shape.kvHeads)) * p.shape.capacity) * hd;
    uint visible = p.shape.prefixTokens + p.shape.startPosition + t + 1;
    float scale = 1.0 / sqrt(float(hd));
    float acc[128];
    for (uint d = 0; d < hd; d++) acc[d] = 0.0;
    float runningMax = -1.0 / 0.0, total = 0.0;
    for (uint j = 0; j < visible; j++) {
        float s = 0.0;
        for (uint d = 0; d < hd; d++) s += qkv[q + d] * k[p.keysOffset + kv + j * hd + d];
        s *= scale;
        float newMax = max(runningMax, s);
        float correction = exp(runningMax - newMax), e = exp(s - newMax);
        total = total * correction + e;
        for (uint d = 0; d < hd; d++) acc[d] = acc[d] * correction + e * v[p.valuesOffset + kv + j * hd + d];
        runningMax = newMax;
    }
    uint out_ = p.outOffset + (row * p.shape.newTokens + t) * p.shape.heads * hd + h * hd;
    for (uint d = 0; d < hd; d++) o[out_ + d] = acc[d] / total;
    if (p.keepLSE != 0u) lse[p.lseOffset + item] = runningMax + log(total);
}
