import CVulkan
import Foundation
import ParScale

/// The manager: one logical device with a compute queue, its function table, and the memory
/// types used for buffers.
public final class VulkanDevice {
    public let instance: VulkanInstance
    public let info: VulkanDeviceInfo
    let physical: VkPhysicalDevice
    let device: VkDevice
    let queue: VkQueue
    let queueFamily: UInt32
    let commandPool: VkCommandPool
    /// Host-visible coherent memory: mapped buffers, staging, small index buffers.
    let hostMemoryType: UInt32
    /// Device-local memory; on a discrete GPU it is not host-visible and is reached by staging.
    let deviceLocalMemoryType: UInt32
    /// Whether the device has device-local memory the host cannot map (a discrete GPU's VRAM):
    /// then buffers live there by default and inputs and outputs go through staging.
    public let hasSeparateDeviceMemory: Bool
    let f: DeviceFunctions
    /// The sub-allocator every buffer's memory comes from (VulkanMemory.swift).
    let allocator: VulkanMemoryAllocator
    /// Driver calls and bus traffic so far (see VulkanCounters).
    public internal(set) var counters = VulkanCounters()

    /// Opens device `index` (see `VulkanInstance.devices()`).
    public init(instance: VulkanInstance, index: Int) throws {
        self.instance = instance
        let infos = try instance.devices()
        guard index >= 0, index < infos.count else {
            throw VulkanUnavailable("Vulkan device \(index) does not exist (\(infos.count) found)")
        }
        info = infos[index]
        let enumerate = instance.function("vkEnumeratePhysicalDevices", as: PFN_vkEnumeratePhysicalDevices?.self)!
        var count: UInt32 = 0
        _ = enumerate(instance.handle, &count, nil)
        var all = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        _ = enumerate(instance.handle, &count, &all)
        physical = all[index]!
        // A queue family with compute.
        let familyProperties = instance.function("vkGetPhysicalDeviceQueueFamilyProperties", as: PFN_vkGetPhysicalDeviceQueueFamilyProperties?.self)!
        var familyCount: UInt32 = 0
        familyProperties(physical, &familyCount, nil)
        var families = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(familyCount))
        familyProperties(physical, &familyCount, &families)
        guard let family = families.firstIndex(where: { $0.queueFlags & UInt32(VK_QUEUE_COMPUTE_BIT.rawValue) != 0 }) else {
            throw VulkanUnavailable("\(info.name) has no compute queue")
        }
        queueFamily = UInt32(family)
        var priority: Float = 1
        var queueInfo = VkDeviceQueueCreateInfo(
            sType: VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, pNext: nil, flags: 0, queueFamilyIndex: queueFamily,
            queueCount: 1, pQueuePriorities: &priority)
        var deviceInfo = VkDeviceCreateInfo(
            sType: VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, pNext: nil, flags: 0, queueCreateInfoCount: 1,
            pQueueCreateInfos: &queueInfo, enabledLayerCount: 0, ppEnabledLayerNames: nil, enabledExtensionCount: 0,
            ppEnabledExtensionNames: nil, pEnabledFeatures: nil)
        let createDevice = instance.function("vkCreateDevice", as: PFN_vkCreateDevice?.self)!
        var device: VkDevice?
        let result = createDevice(physical, &deviceInfo, nil, &device)
        guard result == VK_SUCCESS, let device else {
            throw VulkanUnavailable("vkCreateDevice failed on \(info.name) (VkResult \(result.rawValue))")
        }
        self.device = device
        let getDeviceProcAddr = instance.function("vkGetDeviceProcAddr", as: PFN_vkGetDeviceProcAddr?.self)!
        f = try DeviceFunctions(device: device, lookup: getDeviceProcAddr)
        var queue: VkQueue?
        f.getDeviceQueue(device, queueFamily, 0, &queue)
        self.queue = queue!
        var poolInfo = VkCommandPoolCreateInfo(
            sType: VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, pNext: nil,
            flags: UInt32(VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT.rawValue), queueFamilyIndex: queueFamily)
        var pool: VkCommandPool?
        try check(f.createCommandPool(device, &poolInfo, nil, &pool), "vkCreateCommandPool")
        commandPool = pool!
        let memoryProperties = instance.function("vkGetPhysicalDeviceMemoryProperties", as: PFN_vkGetPhysicalDeviceMemoryProperties?.self)!
        var memory = VkPhysicalDeviceMemoryProperties()
        memoryProperties(physical, &memory)
        let types = withUnsafeBytes(of: memory.memoryTypes) { Array($0.bindMemory(to: VkMemoryType.self).prefix(Int(memory.memoryTypeCount))) }
        let hostVisible = UInt32(VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue)
        let deviceLocal = UInt32(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue)
        guard let host = types.firstIndex(where: { $0.propertyFlags & hostVisible == hostVisible }) else {
            throw VulkanUnavailable("\(info.name) has no host-visible coherent memory")
        }
        hostMemoryType = UInt32(host)
        // Prefer device-local memory the host cannot see (VRAM), else any device-local type
        // (lavapipe and integrated GPUs: one unified memory), else the host type.
        let vram = types.firstIndex { $0.propertyFlags & deviceLocal != 0 && $0.propertyFlags & hostVisible == 0 }
        hasSeparateDeviceMemory = vram != nil
        deviceLocalMemoryType = UInt32(vram ?? types.firstIndex { $0.propertyFlags & deviceLocal != 0 } ?? host)
        // Blocks of 64 MiB (at most a quarter of the smallest heap), never past
        // maxMemoryAllocationSize (Vulkan 1.1, VkPhysicalDeviceMaintenance3Properties).
        let heaps = withUnsafeBytes(of: memory.memoryHeaps) { Array($0.bindMemory(to: VkMemoryHeap.self).prefix(Int(memory.memoryHeapCount))) }
        let usedTypes = [hostMemoryType, deviceLocalMemoryType]
        let usedHeaps = Set(usedTypes.map { Int(types[Int($0)].heapIndex) })
        let smallestHeap = usedHeaps.map { Int(heaps[$0].size) }.min() ?? Int.max
        var maxAllocation = Int.max
        if let properties2 = instance.function("vkGetPhysicalDeviceProperties2", as: PFN_vkGetPhysicalDeviceProperties2?.self) {
            var maintenance3 = VkPhysicalDeviceMaintenance3Properties()
            maintenance3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES
            var properties = VkPhysicalDeviceProperties2()
            properties.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
            let handle = physical
            withUnsafeMutablePointer(to: &maintenance3) { pointer in
                properties.pNext = UnsafeMutableRawPointer(pointer)
                properties2(handle, &properties)
            }
            if maintenance3.maxMemoryAllocationSize > 0 { maxAllocation = Int(clamping: maintenance3.maxMemoryAllocationSize) }
        }
        let blockBytes = max(1 << 20, min(64 << 20, smallestHeap / 4, maxAllocation))
        allocator = VulkanMemoryAllocator(
            blockBytes: blockBytes, maxAllocationBytes: maxAllocation, minAlignment: max(16, info.minStorageBufferOffsetAlignment),
            hostVisible: types.map { $0.propertyFlags & UInt32(VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue) != 0 })
    }

    deinit {
        allocator.releaseAll { f.freeMemory(device, $0.memory, nil) }
        f.destroyCommandPool(device, commandPool, nil)
        f.destroyDevice(device, nil)
    }
}

func check(_ result: VkResult, _ what: String) throws {
    guard result == VK_SUCCESS else { throw VulkanUnavailable("\(what) failed (VkResult \(result.rawValue))") }
}

/// Device-level functions, looked up once.
struct DeviceFunctions {
    let destroyDevice: PFN_vkDestroyDevice
    let getDeviceQueue: PFN_vkGetDeviceQueue
    let createCommandPool: PFN_vkCreateCommandPool
    let destroyCommandPool: PFN_vkDestroyCommandPool
    let createBuffer: PFN_vkCreateBuffer
    let destroyBuffer: PFN_vkDestroyBuffer
    let getBufferMemoryRequirements: PFN_vkGetBufferMemoryRequirements
    let allocateMemory: PFN_vkAllocateMemory
    let freeMemory: PFN_vkFreeMemory
    let bindBufferMemory: PFN_vkBindBufferMemory
    let mapMemory: PFN_vkMapMemory
    let createShaderModule: PFN_vkCreateShaderModule
    let destroyShaderModule: PFN_vkDestroyShaderModule
    let createDescriptorSetLayout: PFN_vkCreateDescriptorSetLayout
    let destroyDescriptorSetLayout: PFN_vkDestroyDescriptorSetLayout
    let createPipelineLayout: PFN_vkCreatePipelineLayout
    let destroyPipelineLayout: PFN_vkDestroyPipelineLayout
    let createComputePipelines: PFN_vkCreateComputePipelines
    let destroyPipeline: PFN_vkDestroyPipeline
    let createDescriptorPool: PFN_vkCreateDescriptorPool
    let destroyDescriptorPool: PFN_vkDestroyDescriptorPool
    let allocateDescriptorSets: PFN_vkAllocateDescriptorSets
    let updateDescriptorSets: PFN_vkUpdateDescriptorSets
    let allocateCommandBuffers: PFN_vkAllocateCommandBuffers
    let freeCommandBuffers: PFN_vkFreeCommandBuffers
    let beginCommandBuffer: PFN_vkBeginCommandBuffer
    let endCommandBuffer: PFN_vkEndCommandBuffer
    let cmdBindPipeline: PFN_vkCmdBindPipeline
    let cmdBindDescriptorSets: PFN_vkCmdBindDescriptorSets
    let cmdPushConstants: PFN_vkCmdPushConstants
    let cmdDispatch: PFN_vkCmdDispatch
    let cmdPipelineBarrier: PFN_vkCmdPipelineBarrier
    let cmdCopyBuffer: PFN_vkCmdCopyBuffer
    let cmdFillBuffer: PFN_vkCmdFillBuffer
    let queueSubmit: PFN_vkQueueSubmit
    let createFence: PFN_vkCreateFence
    let destroyFence: PFN_vkDestroyFence
    let waitForFences: PFN_vkWaitForFences
    let resetFences: PFN_vkResetFences
    let resetDescriptorPool: PFN_vkResetDescriptorPool
    let resetCommandBuffer: PFN_vkResetCommandBuffer

    init(device: VkDevice, lookup: PFN_vkGetDeviceProcAddr) throws {
        func load<T>(_ name: String) throws -> T {
            guard let pointer = lookup(device, name) else { throw VulkanUnavailable("the Vulkan driver lacks \(name)") }
            return unsafeBitCast(pointer, to: T.self)
        }
        destroyDevice = try load("vkDestroyDevice")
        getDeviceQueue = try load("vkGetDeviceQueue")
        createCommandPool = try load("vkCreateCommandPool")
        destroyCommandPool = try load("vkDestroyCommandPool")
        createBuffer = try load("vkCreateBuffer")
        destroyBuffer = try load("vkDestroyBuffer")
        getBufferMemoryRequirements = try load("vkGetBufferMemoryRequirements")
        allocateMemory = try load("vkAllocateMemory")
        freeMemory = try load("vkFreeMemory")
        bindBufferMemory = try load("vkBindBufferMemory")
        mapMemory = try load("vkMapMemory")
        createShaderModule = try load("vkCreateShaderModule")
        destroyShaderModule = try load("vkDestroyShaderModule")
        createDescriptorSetLayout = try load("vkCreateDescriptorSetLayout")
        destroyDescriptorSetLayout = try load("vkDestroyDescriptorSetLayout")
        createPipelineLayout = try load("vkCreatePipelineLayout")
        destroyPipelineLayout = try load("vkDestroyPipelineLayout")
        createComputePipelines = try load("vkCreateComputePipelines")
        destroyPipeline = try load("vkDestroyPipeline")
        createDescriptorPool = try load("vkCreateDescriptorPool")
        destroyDescriptorPool = try load("vkDestroyDescriptorPool")
        allocateDescriptorSets = try load("vkAllocateDescriptorSets")
        updateDescriptorSets = try load("vkUpdateDescriptorSets")
        allocateCommandBuffers = try load("vkAllocateCommandBuffers")
        freeCommandBuffers = try load("vkFreeCommandBuffers")
        beginCommandBuffer = try load("vkBeginCommandBuffer")
        endCommandBuffer = try load("vkEndCommandBuffer")
        cmdBindPipeline = try load("vkCmdBindPipeline")
        cmdBindDescriptorSets = try load("vkCmdBindDescriptorSets")
        cmdPushConstants = try load("vkCmdPushConstants")
        cmdDispatch = try load("vkCmdDispatch")
        cmdPipelineBarrier = try load("vkCmdPipelineBarrier")
        cmdCopyBuffer = try load("vkCmdCopyBuffer")
        cmdFillBuffer = try load("vkCmdFillBuffer")
        queueSubmit = try load("vkQueueSubmit")
        createFence = try load("vkCreateFence")
        destroyFence = try load("vkDestroyFence")
        waitForFences = try load("vkWaitForFences")
        resetFences = try load("vkResetFences")
        resetDescriptorPool = try load("vkResetDescriptorPool")
        resetCommandBuffer = try load("vkResetCommandBuffer")
    }
}
