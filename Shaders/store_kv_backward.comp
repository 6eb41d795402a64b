#version 450
// The gradient of store_kv.comp: the real-token slots of dKeys / dValues into dQKV's k and v parts.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DK { float dk[]; };
layout(std430, binding = 1) readonly buffer DV { float dv[]; };
layout(std430, binding = 2) buffer DQKV { float dqkv[]; };
layout(push_constant) uniform Push { StoreKVBackwardPush p; };

void main() {
    uint idx = global_index(), hd = p.shape.headDim;
    if (idx >= p.shape.rows * p.shape.newTokens * p.shape.kvHeads * hd) return;
    uint d = idx % hd, h = (idx / hd) % p.shape.kvHeads, t = (idx / (hd * p.shape.kvHeads)) % p.shape.newTokens;
    uint row = idx / (hd * p.shape.kvHeads * p.shape.newTokens);
    uint dst = p.dqkvOffset + (row * p.shape.newTokens + t) * (p.shape.heads + 2 * p.shape.kvHeads) * hd;
    uint slot = ((row * p.shape.kvHeads + h) * p.shape.capacity
        + p.shape.prefixTokens + p.shape.startPosition + t) * hd + d;
    dqkv[dst + (p.shape.heads + h) * hd + d] = dk[p.dKeysOffset + slot];
    dqkv[dst + (p.shape.heads + p.shape.kvHeads + h) * hd + d] = dv[p.dValuesOffset + slot];
}
