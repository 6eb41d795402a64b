#version 450
// The gradient of fill_prefix.comp: dPrefix[r] += sum over the batch of the prefix slots'
// gradients of rows r*B + b. One thread per prefix value, the batch in order.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DCache { float dCache[]; };
layout(std430, binding = 1) buffer DPrefix { float dPrefix[]; };
layout(push_constant) uniform Push { FillPrefixBackwardPush p; };

void main() {
    uint block = p.prefixTokens * p.headDim;
    uint idx = global_index();
    if (idx >= p.streams * p.kvHeads * block) return;
    uint i = idx % block, h = (idx / block) % p.kvHeads, r = idx / (block * p.kvHeads);
    float sum = dPrefix[p.dPrefixOffset + idx];
    for (uint b = 0; b < p.batch; b++) sum += dCache[p.dCacheOffset + (((r * p.batch + b) * p.kvHeads + h) * p.capacity) * p.headDim + i];
    dPrefix[p.dPrefixOffset + idx] = sum;
}
