import Foundation
import ParScale
import ParScaleTrain
import TestSupport
import XCTest

@testable import ParScaleVulkan

/// Evaluation on the Vulkan backend (lavapipe): the losses are summed per window on the device,
/// so an evaluation downloads a few bytes per window, not the windows' logits; the results agree
/// with the CPU backend's.
final class VulkanEvaluationTests: ValidatedVulkanTestCase {
    func testEvaluationDownloadsBytesPerWindowAndMatchesTheCPUBackend() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        let (windows, sequence) = (12, 32)
        for P in [1, 2] {
            let config = tinyConfig(P: P)
            let model = ParScaleModel.initialized(config, backend: vulkan, options: InitOptions(seed: 1))
            let reference = ParScaleModel.initialized(config, backend: CPUBackend(), options: InitOptions(seed: 1))
            let data = DataSpec.synthetic(seed: 3)
            vulkan.synchronize()
            let before = vulkan.counters
            let e = try Evaluator.evaluate(model: model, data: data, corpus: nil, windows: windows, sequence: sequence, taskExamples: 0)
            let d = vulkan.counters - before
            // One float per window; the logits alone are windows * sequence * vocab floats.
            XCTAssertLessThanOrEqual(d.bytesDownloaded, 64 * windows, "P=\(P): \(d)")
            XCTAssertEqual(d.bytesDownloaded, 4 * windows, "P=\(P): \(d)")
            // The host path evaluation used before: the logits of every window come down.
            let set = try validationWindows(source: data.source, corpus: nil, count: windows, sequence: sequence)
            let hostBefore = vulkan.counters
            for start in stride(from: 0, to: windows, by: 8) {
                let part = Array(set[start..<min(windows, start + 8)])
                _ = try model.sequenceLosses(
                    inputs: part.flatMap { $0.dropLast() }, targets: part.flatMap { $0.dropFirst() }, batch: part.count,
                    sequence: sequence)
            }
            let host = vulkan.counters - hostBefore
            XCTAssertEqual(host.bytesDownloaded, 4 * windows * sequence * config.vocabSize, "P=\(P): \(host)")
            print("evaluation of \(windows) windows of \(sequence) tokens, P=\(P): \(host.bytesDownloaded) bytes down before, \(d.bytesDownloaded) after")
            let c = try Evaluator.evaluate(
                model: reference, data: data, corpus: nil, windows: windows, sequence: sequence, taskExamples: 0)
            XCTAssertEqual(e.validationLoss, c.validationLoss, accuracy: 1e-5 * c.validationLoss, "P=\(P)")
            XCTAssertEqual(e.standardError, c.standardError, accuracy: 1e-5 * c.validationLoss, "P=\(P)")
        }
    }
}
