import CVulkan
import Foundation

/// Why Vulkan cannot be used, in one line a user can act on.
public struct VulkanUnavailable: Error, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Finds the Vulkan loader at run time. The binary never links libvulkan, so a machine without
/// it still runs everything on the CPU; this type says in one line why Vulkan is unavailable.
public enum VulkanLoader {
    public enum Status: Equatable {
        case available(library: String)
        case unavailable(reason: String)
    }

    /// The loader's `vkGetInstanceProcAddr`, resolved once per process.
    static let entry: Result<PFN_vkGetInstanceProcAddr, VulkanUnavailable> = {
        for name in ["libvulkan.so.1", "libvulkan.so"] {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            if let symbol = dlsym(handle, "vkGetInstanceProcAddr") {
                return .success(unsafeBitCast(symbol, to: PFN_vkGetInstanceProcAddr.self))
            }
            dlclose(handle)
            return .failure(VulkanUnavailable("\(name) has no vkGetInstanceProcAddr: a broken Vulkan loader"))
        }
        return .failure(VulkanUnavailable("Vulkan loader libvulkan.so.1 not found (Debian: apt-get install libvulkan1)"))
    }()

    /// dlopen's the loader and resolves `vkGetInstanceProcAddr`, the one entry point everything
    /// else is looked up through. The handle stays open for the life of the process.
    public static func probe() -> Status {
        switch entry {
        case .success: return .available(library: "libvulkan.so.1")
        case .failure(let error): return .unavailable(reason: error.reason)
        }
    }
}

/// A Vulkan instance (API 1.1+) with the functions this project uses, looked up through the loader.
public final class VulkanInstance {
    public let handle: VkInstance
    let getProcAddr: PFN_vkGetInstanceProcAddr

    var messenger: VkDebugUtilsMessengerEXT?

    /// `validation`: enable VK_LAYER_KHRONOS_validation with a messenger that records every
    /// message in `VulkanValidation.messages` (tests fail on any). PARSCALE_VULKAN_VALIDATION=1
    /// turns it on for every instance.
    public init(validation requested: Bool = false) throws {
        let validation = requested || ProcessInfo.processInfo.environment["PARSCALE_VULKAN_VALIDATION"] == "1"
        let getProcAddr = try VulkanLoader.entry.get()
        self.getProcAddr = getProcAddr
        guard let create = unsafeBitCast(getProcAddr(nil, "vkCreateInstance"), to: PFN_vkCreateInstance?.self) else {
            throw VulkanUnavailable("the Vulkan loader lacks vkCreateInstance")
        }
        var messengerInfo = VkDebugUtilsMessengerCreateInfoEXT()
        messengerInfo.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT
        messengerInfo.messageSeverity = UInt32(
            VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue)
        messengerInfo.messageType = UInt32(
            VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT.rawValue
                | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT.rawValue)
        messengerInfo.pfnUserCallback = { _, _, data, _ in
            VulkanValidation.record(data.flatMap { $0.pointee.pMessage.map { String(cString: $0) } } ?? "(no message)")
            return 0
        }
        var instance: VkInstance?
        let layerName = strdup("VK_LAYER_KHRONOS_validation"), extensionName = strdup("VK_EXT_debug_utils")
        let layers = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: 1)
        let extensions = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: 1)
        layers.initialize(to: UnsafePointer(layerName))
        extensions.initialize(to: UnsafePointer(extensionName))
        defer {
            free(layerName)
            free(extensionName)
            layers.deallocate()
            extensions.deallocate()
        }
        let result: VkResult = "parscale".withCString { name in
            var app = VkApplicationInfo(
                sType: VK_STRUCTURE_TYPE_APPLICATION_INFO, pNext: nil, pApplicationName: name, applicationVersion: 1,
                pEngineName: name, engineVersion: 1, apiVersion: (1 << 22) | (1 << 12))  // Vulkan 1.1
            return withUnsafePointer(to: &app) { appPointer in
                withUnsafeMutablePointer(to: &messengerInfo) { messengerPointer in
                    var info = VkInstanceCreateInfo(
                        sType: VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, pNext: validation ? UnsafeRawPointer(messengerPointer) : nil,
                        flags: 0, pApplicationInfo: appPointer, enabledLayerCount: validation ? 1 : 0,
                        ppEnabledLayerNames: validation ? UnsafePointer(layers) : nil,
                        enabledExtensionCount: validation ? 1 : 0,
                        ppEnabledExtensionNames: validation ? UnsafePointer(extensions) : nil)
                    return create(&info, nil, &instance)
                }
            }
        }
        guard result == VK_SUCCESS, let instance else {
            if validation && result == VK_ERROR_LAYER_NOT_PRESENT {
                throw VulkanUnavailable("the Khronos validation layer is not installed (apt-get install vulkan-validationlayers)")
            }
            throw VulkanUnavailable(result == VK_ERROR_INCOMPATIBLE_DRIVER
                ? "no Vulkan driver found (VK_ERROR_INCOMPATIBLE_DRIVER): install a GPU driver, or mesa-vulkan-drivers for the CPU driver lavapipe"
                : "vkCreateInstance failed (VkResult \(result.rawValue))")
        }
        handle = instance
        if validation, let createMessenger = function("vkCreateDebugUtilsMessengerEXT", as: PFN_vkCreateDebugUtilsMessengerEXT?.self) {
            var messenger: VkDebugUtilsMessengerEXT?
            _ = createMessenger(instance, &messengerInfo, nil, &messenger)
            self.messenger = messenger
        }
    }

    deinit {
        if let messenger, let destroy = function("vkDestroyDebugUtilsMessengerEXT", as: PFN_vkDestroyDebugUtilsMessengerEXT?.self) {
            destroy(handle, messenger, nil)
        }
        if let destroy = function("vkDestroyInstance", as: PFN_vkDestroyInstance?.self) { destroy(handle, nil) }
    }

    /// An instance-level function, or nil when the driver lacks it.
    func function<T>(_ name: String, as: T?.Type) -> T? {
        guard let pointer = getProcAddr(handle, name) else { return nil }
        return unsafeBitCast(pointer, to: T?.self)
    }

    /// Every physical device, with the properties a user (and `auto`) needs.
    public func devices() throws -> [VulkanDeviceInfo] {
        guard let enumerate = function("vkEnumeratePhysicalDevices", as: PFN_vkEnumeratePhysicalDevices?.self),
            let properties2 = function("vkGetPhysicalDeviceProperties2", as: PFN_vkGetPhysicalDeviceProperties2?.self),
            let memory = function("vkGetPhysicalDeviceMemoryProperties", as: PFN_vkGetPhysicalDeviceMemoryProperties?.self)
        else { throw VulkanUnavailable("the Vulkan driver lacks Vulkan 1.1 device queries") }
        var count: UInt32 = 0
        guard enumerate(handle, &count, nil) == VK_SUCCESS else { throw VulkanUnavailable("vkEnumeratePhysicalDevices failed") }
        var physical = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        guard enumerate(handle, &count, &physical) == VK_SUCCESS else { throw VulkanUnavailable("vkEnumeratePhysicalDevices failed") }
        return physical.compactMap { $0 }.enumerated().map { index, device in
            var subgroup = VkPhysicalDeviceSubgroupProperties()
            subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES
            var props = VkPhysicalDeviceProperties2()
            props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
            withUnsafeMutablePointer(to: &subgroup) { pointer in
                props.pNext = UnsafeMutableRawPointer(pointer)
                properties2(device, &props)
            }
            var mem = VkPhysicalDeviceMemoryProperties()
            memory(device, &mem)
            let heaps = withUnsafeBytes(of: mem.memoryHeaps) { Array($0.bindMemory(to: VkMemoryHeap.self).prefix(Int(mem.memoryHeapCount))) }
            let deviceLocal = heaps.filter { $0.flags & UInt32(VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue) != 0 }.reduce(0) { $0 + Int($1.size) }
            let p = props.properties
            let name = withUnsafeBytes(of: p.deviceName) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return VulkanDeviceInfo(
                index: index, name: name, type: VulkanDeviceInfo.typeName(p.deviceType),
                apiVersion: "\(p.apiVersion >> 22).\((p.apiVersion >> 12) & 0x3FF).\(p.apiVersion & 0xFFF)",
                deviceLocalBytes: deviceLocal, subgroupSize: Int(subgroup.subgroupSize),
                maxStorageBufferRange: Int(p.limits.maxStorageBufferRange),
                maxSharedMemoryBytes: Int(p.limits.maxComputeSharedMemorySize),
                maxWorkgroupInvocations: Int(p.limits.maxComputeWorkGroupInvocations),
                minStorageBufferOffsetAlignment: Int(p.limits.minStorageBufferOffsetAlignment))
        }
    }
}

public struct VulkanDeviceInfo: Codable, Equatable, Sendable {
    public var index: Int
    public var name: String
    /// discrete-gpu, integrated-gpu, virtual-gpu, cpu or other.
    public var type: String
    public var apiVersion: String
    public var deviceLocalBytes: Int
    public var subgroupSize: Int
    public var maxStorageBufferRange: Int
    public var maxSharedMemoryBytes: Int
    public var maxWorkgroupInvocations: Int
    public var minStorageBufferOffsetAlignment: Int = 4

    public var isGPU: Bool { type == "discrete-gpu" || type == "integrated-gpu" }

    static func typeName(_ t: VkPhysicalDeviceType) -> String {
        switch t {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete-gpu"
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated-gpu"
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual-gpu"
        case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu"
        default: return "other"
        }
    }

    /// What `--backend auto` takes: a discrete GPU, else an integrated one; never a CPU device
    /// (lavapipe runs sgemm at about 3.5 GFLOP/s on 2 cores, OpenBLAS at 175-200).
    public static func autoChoice(_ devices: [VulkanDeviceInfo]) -> VulkanDeviceInfo? {
        devices.first { $0.type == "discrete-gpu" } ?? devices.first { $0.type == "integrated-gpu" }
    }
}

/// Messages of the validation layer, recorded by the debug messenger.
public enum VulkanValidation {
    static let lock = NSLock()
    nonisolated(unsafe) static var recorded: [String] = []

    static func record(_ message: String) {
        lock.lock()
        recorded.append(message)
        lock.unlock()
    }

    /// Every message so far, and clears them.
    public static func drain() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        let all = recorded
        recorded = []
        return all
    }
}
