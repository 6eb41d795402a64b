// Shared by every shader: the push-constant structs (push_constants.glsl, mirrored by
// Sources/ParScaleVulkan/PushConstants.swift) and the flat index of a 2-D dispatch grid.
#extension GL_EXT_control_flow_attributes : enable
#include "push_constants.glsl"

// Dispatches of more than 65535 work groups (the smallest maxComputeWorkGroupCount[0] Vulkan
// allows) are split into a 2-D grid by the backend; these give the flat index back. Shaders
// return early when it is past their count (the last row of the grid overshoots). Macros, not
// functions: gl_WorkGroupSize is only known after the shader's own layout(local_size_x) line.
#define global_index() (gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x)
#define group_index() (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x)
