#version 450
// dTable[id, :] += dOut[i, :] for every position i holding id, without atomics: the host groups
// the positions by id (index = [ids of U distinct tokens | U+1 starts | positions in order]) and
// one thread per (distinct id, column) adds that id's positions in order, as the CPU does.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DOut { float dOut[]; };
layout(std430, binding = 1) readonly buffer Index { uint index[]; };
layout(std430, binding = 2) buffer DTable { float dTable[]; };
layout(push_constant) uniform Push { EmbeddingBackwardPush p; };

void main() {
    uint idx = global_index();
    if (idx >= p.distinct * p.dim) return;
    uint u = idx / p.dim, d = idx % p.dim, U = p.distinct;
    uint at = p.dTableOffset + index[u] * p.dim + d;
    float sum = dTable[at];
    for (uint e = index[U + u]; e < index[U + u + 1]; e++) sum += dOut[p.dOutOffset + index[2 * U + 1 + e] * p.dim + d];
    dTable[at] = sum;
}
