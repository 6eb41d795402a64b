import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
@testable import ParScaleVulkan
import TestSupport

/// One optimizer step on Vulkan is one submission (issue #17 item 2): the loss and the global
/// gradient norm are step scalars on the device, clipping and AdamW read the norm there, and the
/// host reads the loss and the norm once after the step.
final class VulkanTrainingStepTests: ValidatedVulkanTestCase {
    /// The Trainer's step path at P = 1 (the default recipe: no reparameterisation at P = 1), with
    /// and without gradient accumulation, and at P = 4 with plain prefixes (`prefixReparam = 0`).
    /// After the merge of the device reparameterisation, add P = 4 with the default recipe here
    /// (and drop the check that there is no reparameterisation).
    func testTrainerStepIsOneSubmission() throws {
        let plain = Recipe.standard.changed { $0.prefixReparam = 0 }
        let cases: [(P: Int, accumulate: Int, recipe: Recipe, memory: VulkanMemoryMode)] = [
            (1, 1, .standard, .mapped), (1, 3, .standard, .mapped), (4, 1, plain, .mapped),
            (1, 2, .standard, .staging), (4, 1, plain, .staging),  // a discrete GPU's memory: the read rides along
            (4, 1, .standard, .mapped), (4, 2, .standard, .staging),  // the default recipe's reparameterisation
        ]
        for c in cases {
            let vulkan = try VulkanBackend(device: lavapipeDevice(), memory: c.memory)
            var o = shortRunOptions(steps: 10, batch: 2, sequence: 8, evalWindows: 2, learningRate: 1e-2)
            o.accumulate = c.accumulate
            c.recipe.apply(to: &o, streams: c.P)
            let model = ParScaleModel.initialized(tinyConfig(P: c.P), backend: vulkan, options: c.recipe.initOptions(seed: 1))
            let run = temporaryFolder("step\(c.P)x\(c.accumulate)\(c.memory)")
            let trainer = try Trainer.start(runDirectory: run.path, model: model, options: o, recipe: c.recipe.metadata)
            XCTAssertEqual(trainer.reparam != nil, c.P > 1 && c.recipe.prefixReparam > 0, "P=\(c.P)")
            _ = try trainer.step(learningRate: 1e-2)  // the first allocates the workspace
            for _ in 0..<2 {
                let before = vulkan.counters
                let (loss, norm) = try trainer.step(learningRate: 1e-2)
                let d = vulkan.counters - before
                let what = "P=\(c.P) accumulate \(c.accumulate) \(c.memory): \(d)"
                XCTAssertLessThanOrEqual(d.submissions, 1, what)
                XCTAssertLessThanOrEqual(d.fenceWaits, 2, what)
                XCTAssertLessThanOrEqual(d.bytesDownloaded, 64, what)
                XCTAssertTrue(loss.isFinite && loss > 0 && norm.isFinite && norm > 0, "\(what): loss \(loss), norm \(norm)")
            }
        }
    }

    /// The step's scalars and the clipped AdamW against the CPU backend's (its host Doubles): sums
    /// of squares over pieces and offsets, a mean over micro-batches, a seeded norm, clipping on and
    /// off, and a non-finite norm that leaves parameters and moments untouched.
    func testStepScalarsAndClippedAdamWMatchTheCPUBackend() throws {
        let cpu = CPUBackend(), vulkan = try VulkanBackend(device: lavapipeDevice(), maxBindingBytes: 16 << 10)
        var rng = SeededGenerator(seed: 5)
        let count = 10_003  // past one 16 KiB binding: pieces
        let values = (0..<count).map { _ in Float(rng.nextNormal()) }
        func upload(_ v: [Float], _ b: Backend) -> Tensor {
            let t = b.allocate(v.count)
            v.withUnsafeBufferPointer { b.upload($0, to: t) }
            return t
        }
        var results: [[Double]] = []
        var parameters: [[Float]] = []
        for backend in [cpu as Backend, vulkan] {
            let x = upload(values, backend)
            let scalars = StepScalars(backend: backend, count: 4)
            backend.fill(scalars.storage, value: 0)
            backend.sumOfSquares(x, addingTo: scalars[0])
            backend.sumOfSquares(x.slice(7, 300), addingTo: scalars[0])
            backend.mean(x.slice(0, 50), dividedBy: 3, addingTo: scalars[1])
            backend.mean(x.slice(50, 50), dividedBy: 3, addingTo: scalars[1])
            backend.setScalar(scalars[2], to: 0.1234567890123)
            backend.sumOfSquares(x.slice(1000, 10), addingTo: scalars[2])
            backend.setScalar(scalars[3], to: .nan)
            // AdamW clipped by scalars[0] (norm about 100, clip 1), unclipped (clip 1e6), and not at all (NaN).
            let params = upload(values, backend), m = backend.allocate(count), v = backend.allocate(count)
            let settings = AdamWSettings(learningRate: 0.01, weightDecay: 0.1, step: 1)
            let grads = x.slice(0, 5000), rest = x.slice(5000, count - 5000)
            backend.adamw(params: params.slice(0, 5000), grads: grads, m: m.slice(0, 5000), v: v.slice(0, 5000), settings: settings, clipNorm: 1, squaredNorm: scalars[0])
            backend.adamw(params: params.slice(5000, count - 5000), grads: rest, m: m.slice(5000, count - 5000), v: v.slice(5000, count - 5000), settings: settings, clipNorm: 1e6, squaredNorm: scalars[0])
            backend.adamw(params: params.slice(0, 100), grads: grads.slice(0, 100), m: m.slice(0, 100), v: v.slice(0, 100), settings: settings, clipNorm: 1, squaredNorm: scalars[3])
            results.append(backend.readScalars(scalars))
            var p = [Float](repeating: 0, count: count)
            p.withUnsafeMutableBufferPointer { backend.download(params, into: $0) }
            parameters.append(p)
        }
        let (want, got) = (results[0], results[1])
        let exact = values.reduce(0.0) { $0 + Double($1) * Double($1) } + values[7..<307].reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(want[0], exact, accuracy: 1e-6 * exact)  // float dot products per chunk
        XCTAssertEqual(got[0], want[0], accuracy: 1e-6 * want[0])
        XCTAssertEqual(got[1], want[1], accuracy: 1e-6 * abs(want[1]))
        XCTAssertEqual(got[2], want[2], accuracy: 1e-6 * want[2])
        XCTAssertTrue(want[3].isNaN && got[3].isNaN)
        assertClose(parameters[1], parameters[0], "parameters after clipped AdamW", tolerance: 1e-6)
    }

    /// 20 Trainer steps (clipping on, two micro-batches each) on Vulkan and on the CPU: the same
    /// losses and gradient norms to 1e-6.
    func testTrainerStepsMatchTheCPUBackend() throws {
        var o = shortRunOptions(steps: 20, batch: 2, sequence: 7, evalWindows: 2, learningRate: 1e-2)
        o.accumulate = 2
        o.optimizer.clipNorm = 0.5
        var trainers: [Trainer] = []
        for backend in [CPUBackend() as Backend, try VulkanBackend(device: lavapipeDevice())] {
            let model = ParScaleModel.initialized(tinyConfig(P: 2), backend: backend, options: InitOptions(seed: 3))
            trainers.append(try Trainer.start(runDirectory: temporaryFolder("steps").path, model: model, options: o))
        }
        for step in 1...20 {
            let lr = o.optimizer.learningRate(step: step, totalSteps: 20)
            let (cpuLoss, cpuNorm) = try trainers[0].step(learningRate: lr), (loss, norm) = try trainers[1].step(learningRate: lr)
            XCTAssertEqual(loss, cpuLoss, accuracy: 1e-6 * cpuLoss, "step \(step) loss")
            XCTAssertEqual(norm, cpuNorm, accuracy: 1e-5 * cpuNorm, "step \(step) gradient norm")
        }
    }
}
