#version 450
// x[i] = value
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(push_constant) uniform Push { FillPush p; };

void main() {
    uint i = global_index();
    if (i < p.count) x[p.offset + i] = p.value;
}
