import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
@testable import ParScaleVulkan

/// Training on the Vulkan backend (lavapipe) against the CPU backend: the same tiny model, seed and
/// batches give the same losses step after step.
final class VulkanTrainingTests: ValidatedVulkanTestCase {
    func tinyModel(P: Int, backend: InferenceBackend, vocab: Int = 67) -> ParScaleModel {
        let config = ModelConfig(
            vocabSize: vocab, hiddenSize: 32, intermediateSize: 40, numHiddenLayers: 2, numAttentionHeads: 4,
            numKeyValueHeads: 2, tieWordEmbeddings: true, parscaleN: P, parscaleNTokens: 2, parscaleAttnSmooth: 0.1)
        return ParScaleModel.initialized(config, backend: backend, options: InitOptions(seed: 3))
    }

    /// 20 steps of accumulateGradients + AdamW (clipping and weight decay on): losses agree to 1e-4.
    func testTwentyStepsMatchTheCPUBackend() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        // Each P's models are released with AdamW's dispatches still recorded: the backend keeps
        // their buffers alive until the submission has run.
        for P in [1, 2] {
            let (B, S) = (2, 7)
            let cpuModel = tinyModel(P: P, backend: CPUBackend()), vulkanModel = tinyModel(P: P, backend: vulkan)
            var options = OptimizerOptions()
            options.learningRate = 1e-2
            options.clipNorm = 0.5  // small enough to clip: the norm's reduction is exercised too
            let cpuAdam = AdamW(model: cpuModel, options: options), vulkanAdam = AdamW(model: vulkanModel, options: options)
            let cpuGrads = cpuModel.backend.allocate(cpuModel.parameters.count)
            let vulkanGrads = vulkan.allocate(vulkanModel.parameters.count)
            var rng = SeededGenerator(seed: 11)
            for step in 1...20 {
                let ids = (0..<B * (S + 1)).map { _ in Int32(rng.next() % 67) }
                let rows = (0..<B).map { ids[($0 * (S + 1))..<(($0 + 1) * (S + 1))] }
                let inputs = rows.flatMap { $0.dropLast() }, targets = rows.flatMap { $0.dropFirst() }
                var losses: [Double] = [], norms: [Double] = [], firstGradients: [[Float]] = []
                for (model, adam, grads) in [(cpuModel, cpuAdam, cpuGrads), (vulkanModel, vulkanAdam, vulkanGrads)] {
                    model.trainingBackend!.fill(grads, value: 0)
                    losses.append(try model.accumulateGradients(inputs: inputs, targets: targets, batch: B, sequence: S, gradients: grads))
                    if step == 1 { firstGradients.append(download(grads, model.backend)) }
                    norms.append(adam.update(model: model, gradients: grads, learningRate: 1e-2))
                }
                if step == 1 { assertClose(firstGradients[1], firstGradients[0], "P=\(P) first step's gradients", tolerance: 1e-5) }
                XCTAssertEqual(losses[1], losses[0], accuracy: 1e-4 * losses[0], "P=\(P) step \(step) loss")
                XCTAssertEqual(norms[1], norms[0], accuracy: 1e-4 * norms[0], "P=\(P) step \(step) gradient norm")
            }
        }
    }

    /// The Trainer runs on Vulkan, saves a checkpoint (parameters and moments downloaded) and
    /// resumes from it; its losses match a CPU run's.
    func testTrainerRunsSavesAndResumesOnVulkan() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        var o = TrainingOptions()
        o.batch = 2
        o.sequence = 8
        o.steps = 4
        o.evalEvery = 4
        o.checkpointEvery = 2
        o.evalWindows = 2
        o.taskExamples = 0
        o.optimizer.learningRate = 1e-2
        let cpuRun = TestPaths.temporaryDirectory("cpu"), vulkanRun = TestPaths.temporaryDirectory("vulkan")
        defer { for run in [cpuRun, vulkanRun] { try? FileManager.default.removeItem(at: run) } }
        // Byte-level synthetic data: a vocabulary of 256.
        try Trainer.start(runDirectory: cpuRun.path, model: tinyModel(P: 2, backend: CPUBackend(), vocab: 256), options: o).run()
        try Trainer.start(runDirectory: vulkanRun.path, model: tinyModel(P: 2, backend: vulkan, vocab: 256), options: o).run(stopAfter: 2)
        let resumed = try Trainer.resume(runDirectory: vulkanRun.path, backend: vulkan)
        XCTAssertEqual(resumed.state.step, 2)
        try resumed.run()
        let cpuLosses = try losses(cpuRun.path), vulkanLosses = try losses(vulkanRun.path)
        XCTAssertEqual(vulkanLosses.count, 4)
        for (a, b) in zip(vulkanLosses, cpuLosses) { XCTAssertEqual(a, b, accuracy: 1e-4 * b) }
        let a = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(cpuRun.path) + "/model.safetensors")
        let b = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(vulkanRun.path) + "/model.safetensors")
        XCTAssertEqual(a.names.sorted(), b.names.sorted())
        // AdamW's first steps move each parameter by about lr * sign(g): where a gradient is nearly
        // zero, float noise between the backends changes that step, so parameters get a looser bound.
        for name in a.names { assertClose(try b.floats(name), try a.floats(name), name, tolerance: 1e-3) }
    }

    func download(_ tensor: Tensor, _ backend: InferenceBackend) -> [Float] {
        var values = [Float](repeating: 0, count: tensor.count)
        values.withUnsafeMutableBufferPointer { backend.download(tensor, into: $0) }
        return values
    }

    func losses(_ run: String) throws -> [Double] {
        let text = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }
}
