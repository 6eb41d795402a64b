#version 450
// The gradient of store_kv.comp: the real-token slots of dKeys / dValues into dQKV's k and v parts.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DK { float dk[]; };
layout(std430, binding = 1) readonly buffer DV { float dv[]; };
layout(std430, binding = 2) buffer DQKV { float dqkv[]; };
layout(push_constant) uniform Push {
    uint rows, newTokens, startPosition, heads, kvHeads, headDim, prefixTokens, capacity;
    uint dKeysOffset, dValuesOffset, dqkvOffset;
} p;

void main() {
    uint idx = global_index(), hd = p.headDim;
    if (idx >= p.rows * p.newTokens * p.kvHeads * hd) return;
    uint d = idx % hd, h = (idx / hd) % p.kvHeads, t = (idx / (hd * p.kvHeads)) % p.newTokens;
    uint row = idx / (hd * p.kvHeads * p.newTokens);
    uint dst = p.dqkvOffset + (row * p.newTokens + t) * (p.heads + 2 * p.kvHeads) * hd;
    uint slot = ((row * p.kvHeads + h) * p.capacity + p.prefixTokens + p.startPosition + t) * hd + d;
    dqkv[dst + (p.heads + h) * hd + d] = dk[p.dKeysOffset + slot];
    dqkv[dst + (p.heads + p.kvHeads + h) * hd + d] = dv[p.dValuesOffset + slot];
}
