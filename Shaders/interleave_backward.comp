#version 450
// The gradient of interleave.comp, added: dY[r*n + i, d] += dFeat[i, d*P + r].
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DFeat { float dFeat[]; };
layout(std430, binding = 1) buffer DY { float dy[]; };
layout(push_constant) uniform Push { InterleaveBackwardPush p; };

void main() {
    uint idx = global_index();
    if (idx >= p.streams * p.rowsPerStream * p.dim) return;
    uint d = idx % p.dim, i = (idx / p.dim) % p.rowsPerStream, r = idx / (p.dim * p.rowsPerStream);
    dy[p.dyOffset + idx] += dFeat[p.dFeatOffset + i * p.dim * p.streams + d * p.streams + r];
}
