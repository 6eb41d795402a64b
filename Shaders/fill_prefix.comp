#version 450
// Every row r*B + b gets stream r's prefix ([P, KVH, T, hd]) in its first T cache slots.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Prefix { float prefix[]; };
layout(std430, binding = 1) buffer Cache { float cache[]; };
layout(push_constant) uniform Push { FillPrefixPush p; };

void main() {
    uint block = p.prefixTokens * p.headDim;
    uint idx = global_index();
    if (idx >= p.streams * p.batch * p.kvHeads * block) return;
    uint i = idx % block, h = (idx / block) % p.kvHeads, b = (idx / (block * p.kvHeads)) % p.batch;
    uint r = idx / (block * p.kvHeads * p.batch);
    cache[p.cacheOffset + (((r * p.batch + b) * p.kvHeads + h) * p.capacity) * p.headDim + i] =
        prefix[p.prefixOffset + (r * p.kvHeads + h) * block + i];
}
