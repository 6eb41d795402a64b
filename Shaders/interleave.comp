#version 450
// feat[i, d*P + r] = y[r*n + i, d]   (einops "(n b) s h -> b s (h n)")
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Y { float y[]; };
layout(std430, binding = 1) buffer Feat { float feat[]; };
layout(push_constant) uniform Push { InterleavePush p; };

void main() {
    uint idx = global_index();
    if (idx >= p.streams * p.rowsPerStream * p.dim) return;
    uint d = idx % p.dim, i = (idx / p.dim) % p.rowsPerStream, r = idx / (p.dim * p.rowsPerStream);
    feat[p.featOffset + i * p.dim * p.streams + d * p.streams + r] = y[p.yOffset + idx];
}
