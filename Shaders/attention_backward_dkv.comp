#version 450
// The key and value gradients of attention.comp, cache-shaped and overwritten: one thread per
// (row, kv head, slot j) sums over the group's query heads and the queries that see slot j
// (dk_j = sum dS q, dv_j = sum P dO; see attention_backward_dq.comp), so no two threads write
// the same value. Slots no query sees get zero.
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) readonly buffer Out { float o[]; };
layout(std430, binding = 4) readonly buffer DOut { float dO[]; };
layout(std430, binding = 5) readonly buffer LSE { float lse[]; };
layout(std430, binding = 6) buffer DK { float dk[]; };
layout(std430, binding = 7) buffer DV { float dv[]; };
layout(push_constant) uniform Push { AttentionBackwardPush p; };

void main() {
    uint item = global_index();
    if (item >= p.shape.rows * p.shape.kvHeads * p.shape.capacity) return;
    uint j = item % p.shape.capacity, kvh = (item / p.shape.capacity) % p.shape.kvHeads,
        row = item / (p.shape.capacity * p.shape.kvHeads);
    uint hd = p.shape.headDim, stride = (p.shape.heads + 2 * p.shape.kvHeads) * hd,
        group = p.shape.heads / p.shape.kvHeads;
    uint slot = item * hd;  // ((row * kvHeads + kvh) * capacity + j) * hd
    float scale = 1.0 / sqrt(float(hd));
    float accK[128], accV[128];
    for (uint d = 0; d < hd; d++) { accK[d] = 0.0; accV[d] = 0.0; }
    // Query t sees slots 0 ..< T + startPosition + t + 1.
    uint seen = p.shape.prefixTokens + p.shape.startPosition;
    uint firstQuery = j < seen ? 0 : j - seen;
    for (uint h = kvh * group; h < (kvh + 1) * group; h++) {
        for (uint t = firstQuery; t < p.shape.newTokens; t++) {
            uint q = (row * p.shape.newTokens + t) * stride + h * hd;
            uint out_ = (row * p.shape.newTokens + t) * p.shape.heads * hd + h * hd;
            float s = 0.0, dp = 0.0, D = 0.0;
            for (uint d = 0; d < hd; d++) {
                float g = dO[p.dOutOffset + out_ + d];
                s += qkv[p.qkvOffset + q + d] * k[p.keysOffset + slot + d];
                dp += g * v[p.valuesOffset + slot + d];
                D += g * o[p.outOffset + out_ + d];
            }
            float prob = exp(s * scale - lse[p.lseOffset + (row * p.shape.heads + h) * p.shape.newTokens + t]);
            float ds = prob * (dp - D) * scale;
            for (uint d = 0; d < hd; d++) {
                accK[d] += ds * qkv[p.qkvOffset + q + d];
                accV[d] += prob * dO[p.dOutOffset + out_ + d];
            }
        }
    }
    for (uint d = 0; d < hd; d++) {
        dk[p.dKeysOffset + slot + d] = accK[d];
        dv[p.dValuesOffset + slot + d] = accV[d];
    }
}
