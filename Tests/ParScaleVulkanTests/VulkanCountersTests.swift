import Foundation
import ParScale
import TestSupport
import XCTest

@testable import ParScaleVulkan

/// The counters that tests and benchmarks read (VulkanCounters): each counts what it says.
final class VulkanCountersTests: ValidatedVulkanTestCase {
    func testCountersCountSubmissionsWaitsTrafficAndAllocations() throws {
        for memory in [VulkanMemoryMode.mapped, .staging] {
            let vulkan = try VulkanBackend(device: lavapipeDevice(), memory: memory)
            vulkan.synchronize()
            let start = vulkan.counters
            let t = vulkan.allocate(1000)
            XCTAssertEqual((vulkan.counters - start).memoryAllocations, 1, "\(memory)")
            let values = (0..<1000).map { Float($0) }
            values.withUnsafeBufferPointer { vulkan.upload($0, to: t) }
            vulkan.fill(t, value: 2)
            vulkan.synchronize()
            var out = [Float](repeating: 0, count: 1000)
            out.withUnsafeMutableBufferPointer { vulkan.download(t, into: $0) }
            XCTAssertEqual(out, [Float](repeating: 2, count: 1000))
            let d = vulkan.counters - start
            XCTAssertEqual(d.bytesUploaded, 4000, "\(memory)")
            XCTAssertEqual(d.bytesDownloaded, 4000, "\(memory)")
            XCTAssertGreaterThanOrEqual(d.descriptorSetUpdates, 1, "the fill's dispatch")
            XCTAssertEqual(d.submissions, d.fenceWaits, "every submission is waited for")
            // Mapped memory needs no transfer: the zero-fill of the new buffer, the fill and the
            // download's flush ride on submissions of recorded work only.
            XCTAssertGreaterThanOrEqual(d.submissions, 1)
            XCTAssertLessThanOrEqual(d.submissions, memory == .mapped ? 1 : 4, "\(memory): \(d)")
        }
    }

    /// One decode step of a P = 4 model: one submission and one wait, and V logits down.
    func testDecodeStepIsOneSubmission() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        let model = ParScaleModel.initialized(tinyConfig(P: 4), backend: vulkan, options: InitOptions(seed: 1))
        let cache = try model.makeCache(batch: 1, capacity: 16)
        _ = try model.forward(tokens: [[1, 2, 3]], cache: cache, logits: .last)
        let before = vulkan.counters
        let logits = try model.forward(tokens: [[4]], cache: cache, logits: .last)
        let d = vulkan.counters - before
        XCTAssertEqual(logits.count, 256)
        XCTAssertEqual(d.submissions, 1, "\(d)")
        XCTAssertEqual(d.fenceWaits, 1, "\(d)")
        XCTAssertEqual(d.bytesDownloaded, 256 * 4, "\(d)")
    }
}
