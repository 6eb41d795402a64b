#version 450
// The new keys and values of each row into cache slots T + startPosition + t.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) buffer K { float k[]; };
layout(std430, binding = 2) buffer V { float v[]; };
layout(push_constant) uniform Push { StoreKVPush p; };

void main() {
    uint idx = global_index(), hd = p.shape.headDim;
    if (idx >= p.shape.rows * p.shape.newTokens * p.shape.kvHeads * hd) return;
    uint d = idx % hd, h = (idx / hd) % p.shape.kvHeads, t = (idx / (hd * p.shape.kvHeads)) % p.shape.newTokens;
    uint row = idx / (hd * p.shape.kvHeads * p.shape.newTokens);
    uint src = p.qkvOffset + (row * p.shape.newTokens + t) * (p.shape.heads + 2 * p.shape.kvHeads) * hd;
    uint slot = ((row * p.shape.kvHeads + h) * p.shape.capacity
        + p.shape.prefixTokens + p.shape.startPosition + t) * hd + d;
    k[p.keysOffset + slot] = qkv[src + (p.shape.heads + h) * hd + d];
    v[p.valuesOffset + slot] = qkv[src + (p.shape.heads + p.shape.kvHeads + h) * hd + d];
}
