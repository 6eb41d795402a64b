#version 450
// dWeight[i] += sum over rows of dy[r, i] * x[r, i] / rms[r]: one thread per feature, rows in
// order (deterministic; 1/rms from rms_norm_backward.comp).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer DOut { float dy[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Inverse { float inverse[]; };
layout(std430, binding = 3) buffer DW { float dw[]; };
layout(push_constant) uniform Push { RMSNormBackwardWeightPush p; };

void main() {
    uint i = global_index();
    if (i >= p.dim) return;
    float sum = 0.0;
    for (uint r = 0; r < p.rows; r++) {
        uint at = r * p.dim + i;
        sum += dy[p.dOutOffset + at] * x[p.xOffset + at] * inverse[p.inverseOffset + r];
    }
    dw[p.dwOffset + i] += sum;
}
