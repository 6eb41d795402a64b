#version 450
// The first pass of a sum of squares: work group g writes the sum over its threads, each thread
// summing a strided run of x; the host adds the partial sums in Double.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Partial { float partialSums[]; };
layout(push_constant) uniform Push { SumOfSquaresPush p; };
shared float partial[256];

void main() {
    uint t = gl_LocalInvocationID.x, threads = gl_NumWorkGroups.x * 256;
    float s = 0.0;
    for (uint i = gl_GlobalInvocationID.x; i < p.count; i += threads) { float v = x[p.offset + i]; s += v * v; }
    partial[t] = s;
    barrier();
    for (uint stride = 128; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        barrier();
    }
    if (t == 0) partialSums[p.partialOffset + gl_WorkGroupID.x] = partial[0];
}
