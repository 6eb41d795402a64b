import CVulkan
import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
@testable import ParScaleVulkan
import TestSupport

/// The free list under the sub-allocator: placement, alignment, and freed space merged back.
final class FreeListTests: XCTestCase {
    func testPlacesFirstFitAtTheAlignment() {
        var list = FreeList(size: 1024)
        XCTAssertEqual(list.allocate(10, alignment: 1), 0)
        XCTAssertEqual(list.allocate(10, alignment: 64), 64, "rounded up past the first placement")
        XCTAssertEqual(list.allocate(4, alignment: 4), 12, "the gap left before the aligned one is used")
        XCTAssertEqual(list.spans.map { $0.offset }, [10, 16, 74])
        XCTAssertEqual(list.freeBytes, 1024 - 24)
        XCTAssertNil(list.allocate(1024, alignment: 1), "no span is that large")
        XCTAssertEqual(list.allocate(950, alignment: 2), 74)
        XCTAssertEqual(list.spans.map { $0.offset }, [10, 16])
    }

    func testFreedSpaceCoalesces() {
        var list = FreeList(size: 400)
        let a = list.allocate(100, alignment: 1)!, b = list.allocate(100, alignment: 1)!
        let c = list.allocate(100, alignment: 1)!, d = list.allocate(100, alignment: 1)!
        XCTAssertEqual([a, b, c, d], [0, 100, 200, 300])
        XCTAssertTrue(list.spans.isEmpty)
        XCTAssertNil(list.allocate(1, alignment: 1))
        list.release(offset: b, bytes: 100)
        list.release(offset: d, bytes: 100)
        XCTAssertEqual(list.spans.map { $0.offset }, [100, 300])
        XCTAssertNil(list.allocate(150, alignment: 1), "free space is fragmented")
        list.release(offset: c, bytes: 100)  // merges with both neighbours
        XCTAssertEqual(list.spans.map { $0.offset }, [100])
        XCTAssertEqual(list.spans.map { $0.size }, [300])
        XCTAssertEqual(list.allocate(300, alignment: 4), 100)
        list.release(offset: 100, bytes: 300)
        list.release(offset: a, bytes: 100)  // merges with the span after it
        XCTAssertTrue(list.isEmpty)
        XCTAssertEqual(list.allocate(400, alignment: 256), 0)
    }

    func testManyPlacementsAndReleasesInAnyOrderLeaveItEmpty() {
        var list = FreeList(size: 1 << 20)
        var rng = SystemRandomNumberGenerator()
        var placed: [(Int, Int)] = []
        for round in 0..<2000 {
            if placed.isEmpty || round % 3 != 0 {
                let bytes = Int.random(in: 1...5000, using: &rng), alignment = 1 << Int.random(in: 0...8, using: &rng)
                if let offset = list.allocate(bytes, alignment: alignment) {
                    XCTAssertEqual(offset % alignment, 0)
                    for (o, b) in placed { XCTAssertTrue(offset + bytes <= o || o + b <= offset, "overlap") }
                    placed.append((offset, bytes))
                }
            } else {
                let (o, b) = placed.remove(at: Int.random(in: 0..<placed.count, using: &rng))
                list.release(offset: o, bytes: b)
            }
            for (s, t) in zip(list.spans, list.spans.dropFirst()) { XCTAssertLessThan(s.offset + s.size, t.offset, "not coalesced") }
        }
        for (o, b) in placed.shuffled() { list.release(offset: o, bytes: b) }
        XCTAssertTrue(list.isEmpty)
    }
}

/// Buffers share a few large allocations; the backend's index lists and submissions reuse theirs.
final class VulkanMemoryTests: ValidatedVulkanTestCase {
    func testBuffersShareBlocksAlignedAndFreedSpaceIsReused() throws {
        let device = try lavapipeDevice()
        let start = device.counters.memoryAllocations
        var buffers = try (1...50).map { try VulkanBuffer(device: device, count: $0 * 1000 + 3, mapped: true) }
        XCTAssertEqual(device.counters.memoryAllocations - start, 1, "one block")
        let alignment = max(16, device.info.minStorageBufferOffsetAlignment)
        for b in buffers {
            var requirements = VkMemoryRequirements()
            device.f.getBufferMemoryRequirements(device.device, b.buffer, &requirements)
            XCTAssertEqual(b.allocation.offset % Int(requirements.alignment), 0)
            XCTAssertEqual(b.allocation.offset % alignment, 0)
            XCTAssertEqual(UnsafeMutableRawPointer(b.mapped!), b.allocation.block.mapped! + b.allocation.offset)
        }
        // Placements do not overlap, and each buffer keeps its own contents.
        let sorted = buffers.map { ($0.allocation.offset, $0.allocation.bytes) }.sorted { $0.0 < $1.0 }
        for (a, b) in zip(sorted, sorted.dropFirst()) { XCTAssertLessThanOrEqual(a.0 + a.1, b.0) }
        for (i, b) in buffers.enumerated() { b.mapped!.update(repeating: Float(i), count: b.count) }
        for (i, b) in buffers.enumerated() { XCTAssertEqual(b.mapped![b.count - 1], Float(i)) }
        // Freed space is placed again: no new block.
        let offset = buffers[10].allocation.offset
        buffers.remove(at: 10)
        buffers.append(try VulkanBuffer(device: device, count: 11 * 1000 + 3, mapped: true))
        XCTAssertEqual(buffers.last!.allocation.offset, offset)
        XCTAssertEqual(buffers.last!.mapped![0], 0, "zero-filled")
        XCTAssertEqual(device.counters.memoryAllocations - start, 1)
        // A request larger than a block gets a block of its own; freed, it is released while
        // another free block of its type is kept.
        let blocks = device.allocator.blockCount()
        var large: VulkanBuffer? = try VulkanBuffer(device: device, count: device.allocator.blockBytes / 4 + 1, mapped: true)
        XCTAssertEqual(device.counters.memoryAllocations - start, 2)
        XCTAssertEqual(device.allocator.blockCount(), blocks + 1)
        large = nil
        XCTAssertEqual(device.allocator.blockCount(), blocks + 1, "the only free block of its type is kept")
        buffers.removeAll()
        XCTAssertEqual(device.allocator.blockCount(), blocks, "a second free block is released")
        _ = large
    }

    /// Everything a model's training needs on the device (parameters, gradients, AdamW's two
    /// moments, activations, scratch, index lists and, with staging, the staging buffer) comes
    /// from at most 16 allocations, and a decode step makes none.
    func testTrainingStateTakesFewAllocationsAndDecodeNone() throws {
        for memory in [VulkanMemoryMode.mapped, .staging] {
            let vulkan = try VulkanBackend(device: lavapipeDevice(), memory: memory)
            let model = ParScaleModel.initialized(
                tinyConfig(P: 4, vocab: 67, intermediate: 40, prefixTokens: 2), backend: vulkan, options: InitOptions(seed: 3))
            let adam = AdamW(model: model, options: OptimizerOptions())
            let grads = vulkan.allocate(model.parameters.count)
            var rng = SeededGenerator(seed: 5)
            for _ in 0..<3 {
                let ids = (0..<2 * 9).map { _ in Int32(rng.next() % 67) }
                vulkan.fill(grads, value: 0)
                let loss = try model.accumulateGradients(
                    inputs: Array(ids[0..<16]), targets: Array(ids[2..<18]), batch: 2, sequence: 8, gradients: grads)
                XCTAssertTrue(loss.isFinite)
                _ = adam.update(model: model, gradients: grads, learningRate: 1e-3)
            }
            vulkan.synchronize()
            XCTAssertLessThanOrEqual(vulkan.counters.memoryAllocations, 16, "\(memory): \(vulkan.counters)")
            let cache = try model.makeCache(batch: 1, capacity: 16)
            _ = try model.forward(tokens: [[1, 2, 3]], cache: cache, logits: .last)
            _ = try model.forward(tokens: [[4]], cache: cache, logits: .last)
            let before = vulkan.counters
            for token: Int32 in [5, 6, 7] { _ = try model.forward(tokens: [[token]], cache: cache, logits: .last) }
            let d = vulkan.counters - before
            XCTAssertEqual(d.memoryAllocations, 0, "\(memory): \(d)")
            if memory == .mapped { XCTAssertEqual(d.submissions, 3, "\(d)") }
        }
    }

    /// Blocks of 64 KiB: a model's tensors spread over several blocks (larger ones in blocks of
    /// their own), training still agrees with the CPU backend, and once the model is freed its
    /// blocks are released (one free block of the type kept).
    func testTrainingOverManySmallBlocksMatchesTheCPUBackend() throws {
        for memory in [VulkanMemoryMode.mapped, .staging] {
            let vulkan = try VulkanBackend(device: lavapipeDevice(), memory: memory)
            vulkan.device.allocator.blockBytes = 64 << 10
            let config = tinyConfig(P: 2, vocab: 67, intermediate: 40, prefixTokens: 2)
            try train(config, on: vulkan, memory: memory)
            vulkan.synchronize()
            XCTAssertGreaterThan(vulkan.counters.memoryAllocations, 4, "\(memory): several blocks")
            XCTAssertLessThan(vulkan.device.allocator.blockCount(), vulkan.counters.memoryAllocations, "\(memory): blocks released")
        }
    }

    /// Three steps on the CPU backend and on `vulkan`: the losses agree.
    func train(_ config: ModelConfig, on vulkan: VulkanBackend, memory: VulkanMemoryMode) throws {
        let models = [CPUBackend(), vulkan as Backend].map {
            ParScaleModel.initialized(config, backend: $0, options: InitOptions(seed: 3))
        }
        let adams = models.map { AdamW(model: $0, options: OptimizerOptions()) }
        let grads = models.map { $0.backend.allocate($0.parameters.count) }
        var rng = SeededGenerator(seed: 7)
        for step in 0..<3 {
            let ids = (0..<2 * 9).map { _ in Int32(rng.next() % 67) }
            let losses = try (0..<2).map { i in
                models[i].backend.fill(grads[i], value: 0)
                let loss = try models[i].accumulateGradients(
                    inputs: Array(ids[0..<16]), targets: Array(ids[2..<18]), batch: 2, sequence: 8, gradients: grads[i])
                _ = adams[i].update(model: models[i], gradients: grads[i], learningRate: 1e-2)
                return loss
            }
            XCTAssertEqual(losses[1], losses[0], accuracy: 1e-4 * losses[0], "\(memory) step \(step)")
        }
    }

    /// More index lists in one submission than the index area first holds (it grows, the old one
    /// kept until the submission has run), and more dispatches than one command buffer takes (a
    /// flush in between recycles the slots): every gather reads its own list.
    func testIndexListsStayValidUntilTheirSubmissionRuns() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        let rows = 64, dim = 4
        let table = vulkan.allocate(rows * dim)
        let values = (0..<rows * dim).map { Float($0) }
        values.withUnsafeBufferPointer { vulkan.upload($0, to: table) }
        let gathers = VulkanBackend.dispatchesPerSubmission + 300
        let listLength = 40  // 160 B a list: about 4,400 lists exceed the first 256 KiB area
        let out = vulkan.allocate(gathers * listLength * dim)
        var want: [Float] = []
        let before = vulkan.counters
        for g in 0..<gathers {
            let ids = (0..<listLength).map { Int32(($0 * 7 + g) % rows) }
            vulkan.gatherRows(table, rowIndices: ids, out: out.slice(g * listLength * dim, listLength * dim), dim: dim)
            want += ids.flatMap { id in (0..<dim).map { Float(Int(id) * dim + $0) } }
        }
        var got = [Float](repeating: 0, count: gathers * listLength * dim)
        got.withUnsafeMutableBufferPointer { vulkan.download(out, into: $0) }
        XCTAssertTrue(got == want, "first difference at \(zip(got, want).enumerated().first { $0.1.0 != $0.1.1 }.map { $0.0 } ?? -1)")
        let d = vulkan.counters - before
        XCTAssertEqual(d.submissions, 2, "\(d)")
    }

    /// The backend records into one command buffer, descriptor pool and fence, reused by every
    /// submission.
    func testSubmissionsReuseOneCommandBuffer() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        let t = vulkan.allocate(100)
        let commands = vulkan.sequence.commands
        for i in 0..<5 {
            vulkan.fill(t, value: Float(i))
            XCTAssertTrue(vulkan.pending === vulkan.sequence)
            vulkan.synchronize()
            XCTAssertNil(vulkan.pending)
            var out = [Float](repeating: 0, count: 100)
            out.withUnsafeMutableBufferPointer { vulkan.download(t, into: $0) }
            XCTAssertEqual(out, [Float](repeating: Float(i), count: 100))
        }
        XCTAssertEqual(vulkan.sequence.commands, commands)
    }
}

/// Running out of device memory: lavapipe's heap is the machine's memory, so the backend is given a
/// small limit (`memoryLimitBytes`) as a small GPU would have. A model or trainer that does not fit
/// is a ModelError naming what was asked for, before any allocation; the CPU backend still works.
final class VulkanOutOfMemoryTests: ValidatedVulkanTestCase {
    func testAModelOrTrainerBeyondTheDeviceMemoryIsAClearErrorAndTheCPUStillRuns() throws {
        let device = try lavapipeDevice()
        let config = tinyConfig(P: 2)
        let parameterBytes = ParameterLayout(config).totalCount * 4
        XCTAssertGreaterThan(device.info.deviceLocalBytes, 0)

        // Parameters larger than the memory: checkedInitialized and Checkpoint.load refuse them.
        let small = try VulkanBackend(device: device, memoryLimitBytes: parameterBytes / 2)
        XCTAssertEqual(small.memoryLimitBytes, parameterBytes / 2)
        XCTAssertThrowsError(try ParScaleModel.checkedInitialized(config, backend: small, options: InitOptions(seed: 1))) { error in
            XCTAssertTrue(error is ModelError, "\(error)")
            XCTAssertTrue("\(error)".contains("the parameters of a new model (\(formatBytes(parameterBytes)))"), "\(error)")
            XCTAssertTrue("\(error)".contains(device.info.name), "\(error)")
        }
        let dir = temporaryFolder()
        let cpuModel = tinyModel(P: 2)
        var host = [Float](repeating: 0, count: cpuModel.parameters.count)
        host.withUnsafeMutableBufferPointer { cpuModel.backend.download(cpuModel.parameters, into: $0) }
        try host.withUnsafeBufferPointer { try Checkpoint.save(config: config, parameters: $0, to: dir.path) }
        XCTAssertThrowsError(try Checkpoint.load(dir.path, backend: small)) { error in
            XCTAssertTrue("\(error)".contains("the parameters of "), "\(error)")
            XCTAssertTrue("\(error)".contains(dir.lastPathComponent), "\(error)")
            XCTAssertTrue("\(error)".contains("do not fit"), "\(error)")
        }

        // Room for the model but not for the trainer's gradients and two moments.
        let medium = try VulkanBackend(device: device, memoryLimitBytes: 2 * parameterBytes + parameterBytes / 2)
        let model = try Checkpoint.load(dir.path, backend: medium)
        let options = shortRunOptions(steps: 1, batch: 1, sequence: 8, evalWindows: 1)
        XCTAssertThrowsError(try Trainer.start(runDirectory: temporaryFolder().path, model: model, options: options)) { error in
            XCTAssertTrue("\(error)".contains("the trainer's gradients and optimizer moments (\(formatBytes(3 * parameterBytes)))"), "\(error)")
        }

        // The CPU backend in the same process: a forward pass as usual.
        let logits = try cpuModel.forward(tokens: [[1, 2, 3]], cache: cpuModel.makeCache(batch: 1, capacity: 3))
        XCTAssertFalse(logits.isEmpty)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
    }
    /// Past `reserve`: a KV cache, a forward pass's activations or a training step's workspace that
    /// does not fit is a ModelError naming that buffer (not a crash in an op), and the same backend
    /// then runs a smaller forward pass that matches the CPU's.
    func testACacheActivationsOrWorkspaceBeyondTheDeviceMemoryIsAClearErrorAndTheBackendStillRuns() throws {
        let device = try lavapipeDevice()
        let config = tinyConfig(P: 2)
        let parameterBytes = ParameterLayout(config).totalCount * 4
        // Room for the parameters, the trainer's three copies, the ops' index area and scratch, and
        // 4 MiB: the KV cache of 16 x 256 tokens fits (about 2 MiB), its activations (about 15 MiB) do not.
        let vulkan = try VulkanBackend(device: device, memoryLimitBytes: 4 * parameterBytes + (4 << 20) + (512 << 10))
        let cpuModel = tinyModel(P: 2)
        var host = [Float](repeating: 0, count: cpuModel.parameters.count)
        host.withUnsafeMutableBufferPointer { cpuModel.backend.download(cpuModel.parameters, into: $0) }
        let parameters = vulkan.allocate(host.count)
        host.withUnsafeBufferPointer { vulkan.upload($0, to: parameters) }
        let model = ParScaleModel(config: config, backend: vulkan, parameters: parameters)

        XCTAssertThrowsError(try model.makeCache(batch: 64, capacity: 256)) { error in
            XCTAssertTrue(error is ModelError, "\(error)")
            XCTAssertTrue("\(error)".contains("the KV cache of layer "), "\(error)")
            XCTAssertTrue("\(error)".contains("(batch 64, 256 tokens)"), "\(error)")
            XCTAssertTrue("\(error)".contains("do not fit in \(device.info.name)'s memory"), "\(error)")
        }
        let tokens = (0..<16).map { b in (0..<256).map { Int32(($0 * 7 + b) % 256) } }
        do {
            let cache = try model.makeCache(batch: 16, capacity: 256)
            XCTAssertThrowsError(try model.forward(tokens: tokens, cache: cache)) { error in
                XCTAssertTrue("\(error)".contains("the activations of \(2 * 16 * 256) rows"), "\(error)")
                XCTAssertTrue("\(error)".contains("do not fit"), "\(error)")
            }
        }
        var options = shortRunOptions(steps: 1, batch: 16, sequence: 256, evalWindows: 1)
        options.data = .synthetic(seed: 0)
        let trainer = try Trainer.start(runDirectory: temporaryFolder().path, model: model, options: options)
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("the activations of \(2 * 16 * 256) rows"), "\(error)")
        }

        // The same backend, a forward pass that fits: the CPU's logits.
        let small: [[Int32]] = [[1, 2, 3, 4], [5, 6, 7, 8]]
        let ours = try model.forward(tokens: small, cache: try model.makeCache(batch: 2, capacity: 4))
        let reference = try cpuModel.forward(tokens: small, cache: try cpuModel.makeCache(batch: 2, capacity: 4))
        assertClose(ours, reference, "logits after running out of memory")
    }
}
