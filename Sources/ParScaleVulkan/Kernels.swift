import CVulkan
import Foundation
import ParScale

/// Storage of the Vulkan backend: one VkBuffer bound at an offset into a block of the device's
/// sub-allocator (VulkanMemory.swift), its space returned when the buffer is freed. `mapped`: in
/// host-visible coherent memory, zero-filled here, its pointer into the block's persistent
/// mapping; otherwise in device-local memory the host cannot touch (the backend zero-fills it on
/// the device and moves data through a staging buffer). A buffer may exceed the device's
/// maxStorageBufferRange: dispatches bind a window of it (`VulkanBackend.window`).
public final class VulkanBuffer: DeviceBuffer, @unchecked Sendable {
    let device: VulkanDevice
    let buffer: VkBuffer
    let allocation: VulkanAllocation
    public let mapped: UnsafeMutablePointer<Float>?
    var bytes: Int { max(count, 1) * 4 }
    /// The backend's index area: tensors of it are bound from their own start (`VulkanBackend.window`).
    var isIndexArea = false

    init(device: VulkanDevice, count: Int, mapped map: Bool) throws {
        let bytes = max(count, 1) * 4
        self.device = device
        let usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue
            | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue
        var info = VkBufferCreateInfo(
            sType: VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, pNext: nil, flags: 0, size: VkDeviceSize(bytes),
            usage: UInt32(usage), sharingMode: VK_SHARING_MODE_EXCLUSIVE, queueFamilyIndexCount: 0, pQueueFamilyIndices: nil)
        var buffer: VkBuffer?
        try check(device.f.createBuffer(device.device, &info, nil, &buffer), "vkCreateBuffer (\(bytes) bytes)")
        var requirements = VkMemoryRequirements()
        device.f.getBufferMemoryRequirements(device.device, buffer, &requirements)
        let type = map ? device.hostMemoryType : device.deviceLocalMemoryType
        guard requirements.memoryTypeBits & (1 << type) != 0 else {
            device.f.destroyBuffer(device.device, buffer, nil)
            throw VulkanUnavailable("\(device.info.name): storage buffers cannot use memory type \(type)")
        }
        let allocation: VulkanAllocation
        do {
            allocation = try device.allocateMemory(requirements, type: type)
        } catch {
            device.f.destroyBuffer(device.device, buffer, nil)
            throw VulkanUnavailable("\(error) (for \(bytes >> 20) MiB of \(map ? "host-visible" : "device") memory)")
        }
        let bound = device.f.bindBufferMemory(device.device, buffer, allocation.block.memory, VkDeviceSize(allocation.offset))
        guard bound == VK_SUCCESS else {
            device.f.destroyBuffer(device.device, buffer, nil)
            device.freeMemory(allocation)
            throw VulkanUnavailable("vkBindBufferMemory failed (VkResult \(bound.rawValue))")
        }
        self.buffer = buffer!
        self.allocation = allocation
        if map {
            mapped = allocation.mapped!.bindMemory(to: Float.self, capacity: max(count, 1))
            mapped!.initialize(repeating: 0, count: max(count, 1))
        } else {
            mapped = nil
        }
        super.init(count: count)
    }

    deinit {
        device.f.destroyBuffer(device.device, buffer, nil)
        device.freeMemory(allocation)
    }
}

/// One shader of Shaders/ as the generated kernel table (Generated/Shaders.swift) lists it: its
/// index in `ShaderTable.all`, its file's stem, its storage-buffer binding count, its SPIR-V, and
/// `Push`, the Swift mirror of its push-constant block (PushConstants.swift). A dispatch takes a
/// `Shader<Push>` and a `Push` value, so a shader the table lacks or a push of the wrong type is a
/// compile error.
struct Shader<Push>: AnyShader {
    let index: Int
    let name: String
    let bindings: Int
    let spirv: String
    var pushConstantType: Any.Type { Push.self }
    var pushConstantBytes: Int { MemoryLayout<Push>.size }
}

/// A shader of the table with its push-constant type erased (`ShaderTable.all`).
protocol AnyShader {
    var index: Int { get }
    var name: String { get }
    var bindings: Int { get }
    var spirv: String { get }
    var pushConstantType: Any.Type { get }
    var pushConstantBytes: Int { get }
}

/// An algorithm: one compute shader with its storage-buffer bindings and push-constant size, and
/// the values of its specialization constants (ids 0, 1, ...; 32-bit, booleans as 0 or 1).
final class VulkanKernel {
    let device: VulkanDevice
    let setLayout: VkDescriptorSetLayout
    let layout: VkPipelineLayout
    let pipeline: VkPipeline
    let bindings: Int
    let pushConstantBytes: Int

    init(device: VulkanDevice, spirv base64: String, bindings: Int, pushConstantBytes: Int, specialization: [UInt32] = []) throws {
        self.device = device
        self.bindings = bindings
        self.pushConstantBytes = pushConstantBytes
        let code = Data(base64Encoded: base64)!
        var module: VkShaderModule?
        try code.withUnsafeBytes { raw in
            var info = VkShaderModuleCreateInfo(
                sType: VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, pNext: nil, flags: 0, codeSize: code.count,
                pCode: raw.bindMemory(to: UInt32.self).baseAddress)
            try check(device.f.createShaderModule(device.device, &info, nil, &module), "vkCreateShaderModule")
        }
        defer { device.f.destroyShaderModule(device.device, module, nil) }
        var layoutBindings = (0..<bindings).map {
            VkDescriptorSetLayoutBinding(
                binding: UInt32($0), descriptorType: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: 1,
                stageFlags: UInt32(VK_SHADER_STAGE_COMPUTE_BIT.rawValue), pImmutableSamplers: nil)
        }
        var setInfo = VkDescriptorSetLayoutCreateInfo(
            sType: VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, pNext: nil, flags: 0, bindingCount: UInt32(bindings),
            pBindings: &layoutBindings)
        var setLayout: VkDescriptorSetLayout?
        try check(device.f.createDescriptorSetLayout(device.device, &setInfo, nil, &setLayout), "vkCreateDescriptorSetLayout")
        self.setLayout = setLayout!
        var range = VkPushConstantRange(stageFlags: UInt32(VK_SHADER_STAGE_COMPUTE_BIT.rawValue), offset: 0, size: UInt32(pushConstantBytes))
        var layoutInfo = VkPipelineLayoutCreateInfo(
            sType: VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, pNext: nil, flags: 0, setLayoutCount: 1,
            pSetLayouts: &setLayout, pushConstantRangeCount: 1, pPushConstantRanges: &range)
        var layout: VkPipelineLayout?
        try check(device.f.createPipelineLayout(device.device, &layoutInfo, nil, &layout), "vkCreatePipelineLayout")
        self.layout = layout!
        var pipeline: VkPipeline?
        // Specialization data, in memory that outlives the pipeline's creation.
        let entries = UnsafeMutableBufferPointer<VkSpecializationMapEntry>.allocate(capacity: max(1, specialization.count))
        let values = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: max(1, specialization.count))
        let specializationInfo = UnsafeMutablePointer<VkSpecializationInfo>.allocate(capacity: 1)
        defer { entries.deallocate(); values.deallocate(); specializationInfo.deallocate() }
        for (i, value) in specialization.enumerated() {
            entries[i] = VkSpecializationMapEntry(constantID: UInt32(i), offset: UInt32(i * 4), size: 4)
            values[i] = value
        }
        specializationInfo.initialize(to: VkSpecializationInfo(
            mapEntryCount: UInt32(specialization.count), pMapEntries: entries.baseAddress, dataSize: specialization.count * 4,
            pData: values.baseAddress))
        try "main".withCString { entry in
            let stage = VkPipelineShaderStageCreateInfo(
                sType: VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, pNext: nil, flags: 0,
                stage: VK_SHADER_STAGE_COMPUTE_BIT, module: module, pName: entry,
                pSpecializationInfo: specialization.isEmpty ? nil : UnsafePointer(specializationInfo))
            var info = VkComputePipelineCreateInfo(
                sType: VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO, pNext: nil, flags: 0, stage: stage, layout: layout,
                basePipelineHandle: nil, basePipelineIndex: -1)
            try check(device.f.createComputePipelines(device.device, nil, 1, &info, nil, &pipeline), "vkCreateComputePipelines")
        }
        self.pipeline = pipeline!
    }

    deinit {
        device.f.destroyPipeline(device.device, pipeline, nil)
        device.f.destroyPipelineLayout(device.device, layout, nil)
        device.f.destroyDescriptorSetLayout(device.device, setLayout, nil)
    }
}

/// A sequence: dispatches recorded into one command buffer with a barrier after each (the next
/// may read what this one wrote), submitted once and waited for with one fence. The backend keeps
/// one and reuses it: `begin` resets its descriptor pool and command buffer, `run` submits, waits
/// and resets the fence.
final class VulkanSequence {
    let device: VulkanDevice
    let pool: VkDescriptorPool
    let commands: VkCommandBuffer
    let fence: VkFence
    /// Between `begin` and `run`.
    private(set) var isRecording = false

    init(device: VulkanDevice, maxDispatches: Int, maxBindings: Int) throws {
        self.device = device
        var size = VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: UInt32(maxDispatches * maxBindings))
        var poolInfo = VkDescriptorPoolCreateInfo(
            sType: VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, pNext: nil, flags: 0, maxSets: UInt32(maxDispatches),
            poolSizeCount: 1, pPoolSizes: &size)
        var pool: VkDescriptorPool?
        try check(device.f.createDescriptorPool(device.device, &poolInfo, nil, &pool), "vkCreateDescriptorPool")
        self.pool = pool!
        var allocate = VkCommandBufferAllocateInfo(
            sType: VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, pNext: nil, commandPool: device.commandPool,
            level: VK_COMMAND_BUFFER_LEVEL_PRIMARY, commandBufferCount: 1)
        var commands: VkCommandBuffer?
        let allocated = device.f.allocateCommandBuffers(device.device, &allocate, &commands)
        guard allocated == VK_SUCCESS else {
            device.f.destroyDescriptorPool(device.device, pool, nil)
            throw VulkanUnavailable("vkAllocateCommandBuffers failed (VkResult \(allocated.rawValue))")
        }
        self.commands = commands!
        var fenceInfo = VkFenceCreateInfo(sType: VK_STRUCTURE_TYPE_FENCE_CREATE_INFO, pNext: nil, flags: 0)
        var fence: VkFence?
        let created = device.f.createFence(device.device, &fenceInfo, nil, &fence)
        guard created == VK_SUCCESS else {
            device.f.freeCommandBuffers(device.device, device.commandPool, 1, &commands)
            device.f.destroyDescriptorPool(device.device, pool, nil)
            throw VulkanUnavailable("vkCreateFence failed (VkResult \(created.rawValue))")
        }
        self.fence = fence!
    }

    deinit {
        var c: VkCommandBuffer? = commands
        device.f.freeCommandBuffers(device.device, device.commandPool, 1, &c)
        device.f.destroyDescriptorPool(device.device, pool, nil)
        device.f.destroyFence(device.device, fence, nil)
    }

    /// Starts recording afresh: the descriptor sets and commands of the last run are dropped.
    func begin() throws {
        precondition(!isRecording)
        try check(device.f.resetDescriptorPool(device.device, pool, 0), "vkResetDescriptorPool")
        try check(device.f.resetCommandBuffer(commands, 0), "vkResetCommandBuffer")
        var begin = VkCommandBufferBeginInfo(
            sType: VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, pNext: nil,
            flags: UInt32(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue), pInheritanceInfo: nil)
        try check(device.f.beginCommandBuffer(commands, &begin), "vkBeginCommandBuffer")
        isRecording = true
    }

    /// `push`: the shader's push constants, all `kernel.pushConstantBytes` of them.
    /// Each binding is a window of a buffer: `offset` bytes in, `range` bytes long (nil: to the end).
    func dispatch<Push>(_ kernel: VulkanKernel, bindings: [VulkanBinding], push: Push, groups: (Int, Int, Int)) throws {
        precondition(bindings.count == kernel.bindings && MemoryLayout<Push>.size == kernel.pushConstantBytes)
        var setLayout: VkDescriptorSetLayout? = kernel.setLayout
        var allocate = VkDescriptorSetAllocateInfo(
            sType: VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, pNext: nil, descriptorPool: pool, descriptorSetCount: 1,
            pSetLayouts: &setLayout)
        var set: VkDescriptorSet?
        try check(device.f.allocateDescriptorSets(device.device, &allocate, &set), "vkAllocateDescriptorSets")
        var infos = bindings.map {
            VkDescriptorBufferInfo(
                buffer: $0.buffer.buffer, offset: VkDeviceSize($0.offset), range: $0.range.map { VkDeviceSize($0) } ?? VkDeviceSize(VK_WHOLE_SIZE))
        }
        infos.withUnsafeMutableBufferPointer { infoPointer in
            var writes = (0..<bindings.count).map { i in
                VkWriteDescriptorSet(
                    sType: VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, pNext: nil, dstSet: set, dstBinding: UInt32(i),
                    dstArrayElement: 0, descriptorCount: 1, descriptorType: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                    pImageInfo: nil, pBufferInfo: infoPointer.baseAddress! + i, pTexelBufferView: nil)
            }
            device.f.updateDescriptorSets(device.device, UInt32(writes.count), &writes, 0, nil)
            device.counters.descriptorSetUpdates += 1
        }
        device.f.cmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline)
        device.f.cmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.layout, 0, 1, &set, 0, nil)
        withUnsafeBytes(of: push) { bytes in
            device.f.cmdPushConstants(
                commands, kernel.layout, UInt32(VK_SHADER_STAGE_COMPUTE_BIT.rawValue), 0, UInt32(bytes.count), bytes.baseAddress)
        }
        device.f.cmdDispatch(commands, UInt32(groups.0), UInt32(groups.1), UInt32(groups.2))
        barrier()
    }

    /// Copies `bytes` bytes between buffers (staging transfers).
    func copy(from source: VulkanBuffer, offset sourceOffset: Int, to destination: VulkanBuffer, offset destinationOffset: Int, bytes: Int) {
        var region = VkBufferCopy(srcOffset: VkDeviceSize(sourceOffset), dstOffset: VkDeviceSize(destinationOffset), size: VkDeviceSize(bytes))
        device.f.cmdCopyBuffer(commands, source.buffer, destination.buffer, 1, &region)
        barrier()
    }

    /// Zero-fills a whole buffer on the device.
    func zero(_ buffer: VulkanBuffer) {
        device.f.cmdFillBuffer(commands, buffer.buffer, 0, VkDeviceSize(VK_WHOLE_SIZE), 0)
        barrier()
    }

    /// Everything recorded so far (shader or transfer writes) happens before what comes next
    /// reads or writes (a shader, a transfer, or the host after the fence).
    private func barrier() {
        let write = VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue
        let next = VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_READ_BIT.rawValue
            | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue | VK_ACCESS_HOST_READ_BIT.rawValue
        var barrier = VkMemoryBarrier(sType: VK_STRUCTURE_TYPE_MEMORY_BARRIER, pNext: nil, srcAccessMask: UInt32(write), dstAccessMask: UInt32(next))
        let compute = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue, transfer = VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue
        device.f.cmdPipelineBarrier(
            commands, UInt32(compute | transfer), UInt32(compute | transfer | VK_PIPELINE_STAGE_HOST_BIT.rawValue), 0, 1, &barrier,
            0, nil, 0, nil)
    }

    /// Submits everything recorded and waits for it; the fence is reset for the next run.
    func run() throws {
        precondition(isRecording)
        isRecording = false
        try check(device.f.endCommandBuffer(commands), "vkEndCommandBuffer")
        var c: VkCommandBuffer? = commands
        var submit = VkSubmitInfo(
            sType: VK_STRUCTURE_TYPE_SUBMIT_INFO, pNext: nil, waitSemaphoreCount: 0, pWaitSemaphores: nil,
            pWaitDstStageMask: nil, commandBufferCount: 1, pCommandBuffers: &c, signalSemaphoreCount: 0, pSignalSemaphores: nil)
        try check(device.f.queueSubmit(device.queue, 1, &submit, fence), "vkQueueSubmit")
        device.counters.submissions += 1
        var f: VkFence? = fence
        try check(device.f.waitForFences(device.device, 1, &f, 1, UInt64.max), "vkWaitForFences")
        device.counters.fenceWaits += 1
        try check(device.f.resetFences(device.device, 1, &f), "vkResetFences")
    }
}

/// A window of a buffer bound to one binding of a dispatch.
struct VulkanBinding {
    let buffer: VulkanBuffer
    let offset: Int
    let range: Int?
}
