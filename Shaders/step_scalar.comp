#version 450
// A step scalar (VulkanBackend: a float sum and its rounding error, two floats) += scale times the
// sum of x, or of its squares: the loss and the squared gradient norm of a training step, kept on
// the device. One work group: each thread sums a strided run, a tree adds the 256 sums, and
// thread 0 adds the total to the scalar compensated (TwoSum), so many additions lose nothing.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Scalars { float scalars[]; };
layout(push_constant) uniform Push { StepScalarPush p; };
shared float partial[256];

void main() {
    uint t = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint i = t; i < p.count; i += 256) { float v = x[p.offset + i]; s += p.squares != 0 ? v * v : v; }
    partial[t] = s;
    barrier();
    for (uint stride = 128; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        barrier();
    }
    if (t == 0) {
        precise float a = partial[0] * p.scale;
        precise float hi = scalars[p.scalarOffset];
        precise float sum = hi + a;
        precise float b = sum - hi;
        precise float error = (hi - (sum - b)) + (a - b);
        scalars[p.scalarOffset] = sum;
        scalars[p.scalarOffset + 1] += error;
    }
}
