#version 450
// Next-token losses summed per sequence, without the gradient (evaluation), float32: one work
// group per sequence, its rowsPerSum rows in turn; sums[s] = sum of logsumexp(l) - l[target]
// over them. The logits are only read.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Logits { float l[]; };
layout(std430, binding = 1) readonly buffer Targets { uint targets[]; };
layout(std430, binding = 2) buffer Sums { float sums[]; };
layout(push_constant) uniform Push { CrossEntropySumsPush p; };
shared float partial[256];

void main() {
    uint s = group_index(), t = gl_LocalInvocationID.x;
    if (s >= p.sums) return;
    float total = 0.0;
    for (uint i = s * p.rowsPerSum; i < (s + 1) * p.rowsPerSum; i++) {
        uint row = p.logitsOffset + i * p.vocab;
        float m = -1.0 / 0.0;
        for (uint v = t; v < p.vocab; v += 256) m = max(m, l[row + v]);
        partial[t] = m;
        barrier();
        for (uint stride = 128; stride > 0; stride >>= 1) {
            if (t < stride) partial[t] = max(partial[t], partial[t + stride]);
            barrier();
        }
        float maxLogit = partial[0];
        barrier();
        float e = 0.0;
        for (uint v = t; v < p.vocab; v += 256) e += exp(l[row + v] - maxLogit);
        partial[t] = e;
        barrier();
        for (uint stride = 128; stride > 0; stride >>= 1) {
            if (t < stride) partial[t] += partial[t + stride];
            barrier();
        }
        total += maxLogit + log(partial[0]) - l[row + targets[i]];
        barrier();  // every thread has read partial[0] before the next row writes it
    }
    if (t == 0) sums[p.sumsOffset + s] = total;
}
