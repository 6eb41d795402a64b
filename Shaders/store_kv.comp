#version 450
// The new keys and values of each row into cache slots T + startPosition + t.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) buffer K { float k[]; };
layout(std430, binding = 2) buffer V { float v[]; };
layout(push_constant) uniform Push {
    uint rows, newTokens, startPosition, heads, kvHeads, headDim, prefixTokens, capacity;
    uint qkvOffset, keysOffset, valuesOffset;
} p;

void main() {
    uint idx = global_index(), hd = p.headDim;
    if (idx >= p.rows * p.newTokens * p.kvHeads * hd) return;
    uint d = idx % hd, h = (idx / hd) % p.kvHeads, t = (idx / (hd * p.kvHeads)) % p.newTokens;
    uint row = idx / (hd * p.kvHeads * p.newTokens);
    uint src = p.qkvOffset + (row * p.newTokens + t) * (p.heads + 2 * p.kvHeads) * hd;
    uint slot = ((row * p.kvHeads + h) * p.capacity + p.prefixTokens + p.startPosition + t) * hd + d;
    k[p.keysOffset + slot] = qkv[src + (p.heads + h) * hd + d];
    v[p.valuesOffset + slot] = qkv[src + (p.heads + p.kvHeads + h) * hd + d];
}
