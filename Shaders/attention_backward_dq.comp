#version 450
// The query gradient of attention.comp: one thread per (row, head, query), as the forward.
// Probabilities are recomputed from q, k and the saved log-sum-exp; with D = dO . o,
// dS_j = P_j (dO . v_j - D) / sqrt(hd) and dq = sum_j dS_j k_j, written into dQKV's q part.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) readonly buffer Out { float o[]; };
layout(std430, binding = 4) readonly buffer DOut { float dO[]; };
layout(std430, binding = 5) readonly buffer LSE { float lse[]; };
layout(std430, binding = 6) buffer DQKV { float dqkv[]; };
layout(push_constant) uniform Push { AttentionBackwardPush p; };

void main() {
    uint item = global_index();
    if (item >= p.shape.rows * p.shape.heads * p.shape.newTokens) return;
    uint t = item % p.shape.newTokens, h = (item / p.shape.newTokens) % p.shape.heads,
        row = item / (p.shape.newTokens * p.shape.heads);
    uint hd = p.shape.headDim, stride = (p.shape.heads + 2 * p.shape.kvHeads) * hd;
    uint q = (row * p.shape.newTokens + t) * stride + h * hd;
    uint out_ = (row * p.shape.newTokens + t) * p.shape.heads * hd + h * hd;
    uint kv = ((row * p.shape.kvHeads + h / (p.shape.heads / p.shape.kvHeads)) * p.shape.capacity) * hd;
    uint visible = p.shape.prefixTokens + p.shape.startPosition + t + 1;
    float scale = 1.0 / sqrt(float(hd)), logSum = lse[p.lseOffset + item];
    float D = 0.0;
    for (uint d = 0; d < hd; d++) D += dO[p.dOutOffset + out_ + d] * o[p.outOffset + out_ + d];
    float acc[128];
    for (uint d = 0; d < hd; d++) acc[d] = 0.0;
    for (uint j = 0; j < visible; j++) {
        float s = 0.0, dp = 0.0;
        for (uint d = 0; d < hd; d++) {
            s += qkv[p.qkvOffset + q + d] * k[p.keysOffset + kv + j * hd + d];
            dp += dO[p.dOutOffset + out_ + d] * v[p.valuesOffset + kv + j * hd + d];
        }
        float ds = exp(s * scale - logSum) * (dp - D) * scale;
        for (uint d = 0; d < hd; d++) acc[d] += ds * k[p.keysOffset + kv + j * hd + d];
    }
    for (uint d = 0; d < hd; d++) dqkv[p.dqkvOffset + q + d] = acc[d];
}
