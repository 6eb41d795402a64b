#version 450
// out[c] (+)= sum over r of m[r, c]: a bias gradient (added) and the sum of the P stream copies
// (sumStreams, overwritten). One thread per column adds the rows in order: deterministic.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer M { float m[]; };
layout(std430, binding = 1) buffer Out { float o[]; };
layout(push_constant) uniform Push { ColumnSumsPush p; };

void main() {
    uint c = global_index();
    if (c >= p.columns) return;
    float sum = p.accumulate != 0u ? o[p.outOffset + c] : 0.0;
    for (uint r = 0; r < p.rows; r++) sum += m[p.mOffset + r * p.columns + c];
    o[p.outOffset + c] = sum;
}
