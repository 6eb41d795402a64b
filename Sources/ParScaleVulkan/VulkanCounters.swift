/// What the Vulkan backend asked of the driver and moved over the bus, counted since the device
/// was opened: the traffic that sets the speed of small models on a GPU (each submission and
/// fence wait is a round trip). Take differences around the work to measure (`-`).
public struct VulkanCounters: Equatable, Sendable, CustomStringConvertible {
    /// vkQueueSubmit calls.
    public var submissions = 0
    /// vkWaitForFences calls (the host waiting for the device).
    public var fenceWaits = 0
    /// Bytes the host wrote for the device: uploads (mapped or staged) and index buffers.
    public var bytesUploaded = 0
    /// Bytes the host read back from the device.
    public var bytesDownloaded = 0
    /// Descriptor sets written (one per dispatch).
    public var descriptorSetUpdates = 0
    /// vkAllocateMemory calls.
    public var memoryAllocations = 0

    public init() {}

    /// Field by field.
    static func combine(_ a: VulkanCounters, _ b: VulkanCounters, _ op: (Int, Int) -> Int) -> VulkanCounters {
        var d = VulkanCounters()
        d.submissions = op(a.submissions, b.submissions)
        d.fenceWaits = op(a.fenceWaits, b.fenceWaits)
        d.bytesUploaded = op(a.bytesUploaded, b.bytesUploaded)
        d.bytesDownloaded = op(a.bytesDownloaded, b.bytesDownloaded)
        d.descriptorSetUpdates = op(a.descriptorSetUpdates, b.descriptorSetUpdates)
        d.memoryAllocations = op(a.memoryAllocations, b.memoryAllocations)
        return d
    }

    public static func - (a: VulkanCounters, b: VulkanCounters) -> VulkanCounters { combine(a, b, -) }
    public static func + (a: VulkanCounters, b: VulkanCounters) -> VulkanCounters { combine(a, b, +) }

    /// Each count divided by `n` (per step or per token), rounded down.
    public func per(_ n: Int) -> VulkanCounters { Self.combine(self, self) { a, _ in a / max(1, n) } }

    public var json: [String: Int] {
        [
            "submissions": submissions, "fence_waits": fenceWaits, "bytes_uploaded": bytesUploaded,
            "bytes_downloaded": bytesDownloaded, "descriptor_set_updates": descriptorSetUpdates,
            "memory_allocations": memoryAllocations,
        ]
    }

    public var description: String {
        "\(submissions) submissions, \(fenceWaits) fence waits, \(bytesUploaded) B up, \(bytesDownloaded) B down, "
            + "\(descriptorSetUpdates) descriptor sets, \(memoryAllocations) allocations"
    }
}
