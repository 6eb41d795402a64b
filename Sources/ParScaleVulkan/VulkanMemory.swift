import CVulkan
import Foundation

/// The free space of one range [0, size): sorted, coalesced free spans; first-fit placement at an
/// alignment. Pure bookkeeping (no Vulkan), so the placement rules are testable on their own.
struct FreeList {
    let size: Int
    /// Free spans by increasing offset, never touching (neighbours are merged).
    private(set) var spans: [(offset: Int, size: Int)]

    init(size: Int) {
        self.size = size
        spans = size > 0 ? [(0, size)] : []
    }

    /// Whether nothing is placed.
    var isEmpty: Bool { spans.count == 1 && spans[0].size == size }
    var freeBytes: Int { spans.reduce(0) { $0 + $1.size } }

    /// The offset of `bytes` bytes placed at the first free offset that is a multiple of
    /// `alignment` (a power of two), or nil where none is free.
    mutating func allocate(_ bytes: Int, alignment: Int) -> Int? {
        precondition(bytes > 0 && alignment > 0 && alignment & (alignment - 1) == 0)
        for (i, span) in spans.enumerated() {
            let start = (span.offset + alignment - 1) & ~(alignment - 1)
            let end = span.offset + span.size
            guard start + bytes <= end else { continue }
            var replacement: [(offset: Int, size: Int)] = []
            if start > span.offset { replacement.append((span.offset, start - span.offset)) }
            if start + bytes < end { replacement.append((start + bytes, end - start - bytes)) }
            spans.replaceSubrange(i...i, with: replacement)
            return start
        }
        return nil
    }

    /// Returns [offset, offset + bytes) (placed by `allocate`) to the free space, merged with the
    /// free spans it touches.
    mutating func release(offset: Int, bytes: Int) {
        precondition(offset >= 0 && bytes > 0 && offset + bytes <= size)
        // The first span after the released one (binary search).
        var low = 0, high = spans.count
        while low < high {
            let mid = (low + high) / 2
            if spans[mid].offset < offset { low = mid + 1 } else { high = mid }
        }
        let i = low
        precondition(i == spans.count || offset + bytes <= spans[i].offset, "release of space that is free")
        precondition(i == 0 || spans[i - 1].offset + spans[i - 1].size <= offset, "release of space that is free")
        let mergesBefore = i > 0 && spans[i - 1].offset + spans[i - 1].size == offset
        let mergesAfter = i < spans.count && offset + bytes == spans[i].offset
        switch (mergesBefore, mergesAfter) {
        case (true, true):
            spans[i - 1].size += bytes + spans[i].size
            spans.remove(at: i)
        case (true, false): spans[i - 1].size += bytes
        case (false, true): spans[i] = (offset, bytes + spans[i].size)
        case (false, false): spans.insert((offset, bytes), at: i)
        }
    }
}

/// One vkAllocateMemory: tensors' buffers are bound at offsets into it. Blocks of host-visible
/// types stay mapped from creation to release (a mapped buffer's pointer is the block's plus its
/// offset).
final class VulkanMemoryBlock {
    let memory: VkDeviceMemory
    let type: UInt32
    let size: Int
    let mapped: UnsafeMutableRawPointer?
    var space: FreeList

    init(memory: VkDeviceMemory, type: UInt32, size: Int, mapped: UnsafeMutableRawPointer?) {
        self.memory = memory
        self.type = type
        self.size = size
        self.mapped = mapped
        space = FreeList(size: size)
    }
}

/// Where a buffer's memory lies: `bytes` at `offset` in `block`.
struct VulkanAllocation {
    let block: VulkanMemoryBlock
    let offset: Int
    let bytes: Int
    var mapped: UnsafeMutableRawPointer? { block.mapped.map { $0 + offset } }
}

/// The device's sub-allocator: a few large blocks per memory type (`blockBytes`, or the request
/// rounded up to 64 KiB when larger, within maxMemoryAllocationSize), buffers placed first-fit at
/// their required alignment, space returned on free. A block that becomes wholly free is kept
/// when it is its type's only free one (so a step's temporaries do not allocate again next
/// step), else released.
final class VulkanMemoryAllocator {
    /// The size of a new block (a request that is larger gets a block of its own size).
    var blockBytes: Int
    let maxAllocationBytes: Int
    /// Every placement starts at a multiple of this (besides the buffer's own alignment).
    let minAlignment: Int
    /// Whether each memory type is host-visible (its blocks are mapped).
    let hostVisible: [Bool]
    private(set) var blocks: [VulkanMemoryBlock] = []
    private let lock = NSLock()

    init(blockBytes: Int, maxAllocationBytes: Int, minAlignment: Int, hostVisible: [Bool]) {
        self.blockBytes = blockBytes
        self.maxAllocationBytes = maxAllocationBytes
        self.minAlignment = minAlignment
        self.hostVisible = hostVisible
    }

    /// Places `requirements.size` bytes of memory type `type`; a new block is made by `allocate`
    /// (vkAllocateMemory and, for host-visible types, vkMapMemory) only where none has room.
    func place(
        _ requirements: VkMemoryRequirements, type: UInt32,
        allocate: (_ bytes: Int, _ type: UInt32, _ map: Bool) throws -> (VkDeviceMemory, UnsafeMutableRawPointer?),
        release: (VulkanMemoryBlock) -> Void
    ) throws -> VulkanAllocation {
        lock.lock()
        defer { lock.unlock() }
        let bytes = max(Int(requirements.size), 1)
        let alignment = max(Int(requirements.alignment), minAlignment, 1)
        for block in blocks where block.type == type {
            if let offset = block.space.allocate(bytes, alignment: alignment) { return VulkanAllocation(block: block, offset: offset, bytes: bytes) }
        }
        let granule = 64 << 10
        var size = max(blockBytes, (bytes + granule - 1) / granule * granule)
        if size > maxAllocationBytes { size = bytes }
        let made: (VkDeviceMemory, UnsafeMutableRawPointer?)
        do {
            made = try allocate(size, type, hostVisible[Int(type)])
        } catch {
            // Out of memory: give back every free block and try once more with the bare request.
            for block in blocks where block.space.isEmpty { release(block) }
            blocks.removeAll { $0.space.isEmpty }
            size = bytes
            made = try allocate(size, type, hostVisible[Int(type)])
        }
        let block = VulkanMemoryBlock(memory: made.0, type: type, size: size, mapped: made.1)
        blocks.append(block)
        let offset = block.space.allocate(bytes, alignment: alignment)!
        return VulkanAllocation(block: block, offset: offset, bytes: bytes)
    }

    /// Returns an allocation's space; releases its block (by `release`) when it became wholly free
    /// and its type already has another free block.
    func free(_ allocation: VulkanAllocation, release: (VulkanMemoryBlock) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        let block = allocation.block
        block.space.release(offset: allocation.offset, bytes: allocation.bytes)
        guard block.space.isEmpty,
            blocks.contains(where: { $0 !== block && $0.type == block.type && $0.space.isEmpty })
        else { return }
        release(block)
        blocks.removeAll { $0 === block }
    }

    /// Releases every block (the device is closing).
    func releaseAll(_ release: (VulkanMemoryBlock) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        blocks.forEach(release)
        blocks = []
    }

    /// Bytes placed in blocks now (all types), what `VulkanBackend.reserve` counts as in use.
    var usedBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return blocks.reduce(0) { $0 + $1.size - $1.space.freeBytes }
    }

    /// The number of blocks held now (of `type`, or of all types).
    func blockCount(type: UInt32? = nil) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return blocks.filter { type == nil || $0.type == type }.count
    }
}

extension VulkanDevice {
    /// Memory for a buffer with these requirements in memory type `type`, sub-allocated from the
    /// device's blocks (vkAllocateMemory only when no block has room).
    func allocateMemory(_ requirements: VkMemoryRequirements, type: UInt32) throws -> VulkanAllocation {
        try allocator.place(
            requirements, type: type,
            allocate: { bytes, type, map in
                var allocation = VkMemoryAllocateInfo(
                    sType: VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, pNext: nil, allocationSize: VkDeviceSize(bytes), memoryTypeIndex: type)
                var memory: VkDeviceMemory?
                let result = f.allocateMemory(device, &allocation, nil, &memory)
                counters.memoryAllocations += 1
                guard result == VK_SUCCESS, let memory else {
                    throw VulkanUnavailable(
                        "\(info.name) could not allocate \(bytes >> 20) MiB of memory type \(type) (VkResult \(result.rawValue))")
                }
                var pointer: UnsafeMutableRawPointer?
                if map {
                    let mapped = f.mapMemory(device, memory, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &pointer)
                    guard mapped == VK_SUCCESS else {
                        f.freeMemory(device, memory, nil)
                        throw VulkanUnavailable("vkMapMemory failed (VkResult \(mapped.rawValue))")
                    }
                }
                return (memory, pointer)
            }, release: releaseBlock)
    }

    func freeMemory(_ allocation: VulkanAllocation) { allocator.free(allocation, release: releaseBlock) }

    /// vkFreeMemory of a block (which unmaps it).
    func releaseBlock(_ block: VulkanMemoryBlock) { f.freeMemory(device, block.memory, nil) }
}
