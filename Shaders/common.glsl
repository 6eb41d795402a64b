// Shared by every shader. Push constants mirror Swift structs in ParScaleVulkan/Kernels.swift.
#extension GL_EXT_control_flow_attributes : enable
