import CVulkan
import Foundation

/// Finds the Vulkan loader at run time. The binary never links libvulkan, so a machine without
/// it still runs everything on the CPU; this type says in one line why Vulkan is unavailable.
public enum VulkanLoader {
    public enum Status: Equatable {
        case available(library: String)
        case unavailable(reason: String)
    }

    /// dlopen's the loader and resolves `vkGetInstanceProcAddr`, the one entry point everything
    /// else is looked up through. The handle stays open for the life of the process.
    public static func probe() -> Status {
        for name in ["libvulkan.so.1", "libvulkan.so"] {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            if dlsym(handle, "vkGetInstanceProcAddr") != nil {
                return .available(library: name)
            }
            dlclose(handle)
            return .unavailable(reason: "\(name) has no vkGetInstanceProcAddr")
        }
        return .unavailable(
            reason: "Vulkan loader libvulkan.so.1 not found (install libvulkan1 or libvulkan-dev)")
    }
}
