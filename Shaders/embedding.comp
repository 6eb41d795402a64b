#version 450
// out[i, :] = table[index[i], :]: embedding lookup, stream copies (index i mod n) and row selection.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Table { float table[]; };
layout(std430, binding = 1) readonly buffer Index { uint index[]; };
layout(std430, binding = 2) buffer Out { float o[]; };
layout(push_constant) uniform Push { EmbeddingPush p; };

void main() {
    uint idx = global_index();
    if (idx >= p.rows * p.dim) return;
    uint i = idx / p.dim, d = idx % p.dim;
    o[p.outOffset + idx] = table[p.tableOffset + index[i] * p.dim + d];
}
