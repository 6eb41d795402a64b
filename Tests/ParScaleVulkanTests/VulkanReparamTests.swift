import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
@testable import ParScaleVulkan
import TestSupport

/// The prefix reparameterisation on Vulkan (lavapipe): its MLP, gradients and AdamW moments live on
/// the device, so the default recipe trains like the CPU and a step moves no prefix blocks.
final class VulkanReparamTests: ValidatedVulkanTestCase {
    func model(P: Int, backend: Backend, prefixTokens: Int = 2, vocab: Int = 256) -> ParScaleModel {
        ParScaleModel.initialized(
            tinyConfig(P: P, vocab: vocab, intermediate: 40, prefixTokens: prefixTokens, smoothing: 0.1), backend: backend,
            options: Recipe.standard.initOptions(seed: 3))
    }

    /// P = 4 with the default recipe (--prefix-reparam 64) through the Trainer, CPU and Vulkan:
    /// the same losses to 1e-5 relative, step after step.
    func testDefaultRecipeTrainsLikeTheCPU() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        var o = shortRunOptions(steps: 6, batch: 2, sequence: 8, evalWindows: 1)
        Recipe.standard.apply(to: &o, streams: 4)
        XCTAssertEqual(o.prefixReparam, 64)
        let cpuRun = TestPaths.temporaryDirectory("cpu"), vulkanRun = TestPaths.temporaryDirectory("vulkan")
        defer { for run in [cpuRun, vulkanRun] { try? FileManager.default.removeItem(at: run) } }
        try Trainer.start(runDirectory: cpuRun.path, model: model(P: 4, backend: CPUBackend()), options: o).run()
        let trainer = try Trainer.start(runDirectory: vulkanRun.path, model: model(P: 4, backend: vulkan), options: o)
        try trainer.run()
        XCTAssertTrue(trainer.reparam?.parameters.buffer is VulkanBuffer, "the MLP lives on the device")
        let cpuLosses = try losses(cpuRun.path), vulkanLosses = try losses(vulkanRun.path)
        XCTAssertEqual(vulkanLosses.count, 6)
        for (step, (a, b)) in zip(vulkanLosses, cpuLosses).enumerated() {
            XCTAssertEqual(a, b, accuracy: 1e-5 * b, "step \(step + 1) loss")
        }
        // The folded prefixes of the checkpoints agree too.
        let a = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(cpuRun.path) + "/model.safetensors")
        let b = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(vulkanRun.path) + "/model.safetensors")
        for name in a.names where name.hasSuffix("prefix_k") || name.hasSuffix("prefix_v") {
            assertClose(try b.floats(name), try a.floats(name), name, tolerance: 1e-4)
        }
    }

    /// One optimizer step as `Trainer.run` takes it, with or without a reparameterisation.
    func step(
        _ model: ParScaleModel, _ adam: AdamW, _ reparam: PrefixReparam?, _ grads: Tensor, _ options: OptimizerOptions,
        batch: Int, sequence: Int, seed: UInt64
    ) throws {
        var rng = SeededGenerator(seed: seed)
        let count = batch * sequence
        let inputs = (0..<count).map { _ in Int32(rng.next() % 256) }, targets = (0..<count).map { _ in Int32(rng.next() % 256) }
        model.backend.fill(grads, value: 0)
        _ = try model.accumulateGradients(inputs: inputs, targets: targets, batch: batch, sequence: sequence, gradients: grads)
        // As Trainer.step: the MLP's backward, norm, update and fold are recorded with the rest.
        reparam?.backward(modelGradients: grads, backend: model.backend)
        let scalars = StepScalars(backend: model.backend, count: 1), squaredNorm = scalars[0]
        adam.record(
            model: model, gradients: grads, learningRate: 1e-3, squaredNorm: squaredNorm,
            extraGradients: reparam.map { [$0.gradientTensor] } ?? [])
        if let reparam {
            reparam.update(learningRate: 1e-3, step: adam.step, options: options, squaredNorm: squaredNorm)
            reparam.fold(into: model)
        }
        _ = adam.finish(squaredNorm: model.backend.readScalars(scalars)[0])
    }

    /// Per-step counters of a P = 4 training step with and without the reparameterisation.
    func stepCounters(
        _ vulkan: VulkanBackend, config: ModelConfig, batch: Int, sequence: Int, steps: Int
    ) throws -> (plain: VulkanCounters, reparam: VulkanCounters, prefixBytes: Int) {
        var results: [VulkanCounters] = []
        var prefixBytes = 0
        for withReparam in [false, true] {
            let model = ParScaleModel.initialized(config, backend: vulkan, options: Recipe.standard.initOptions(seed: 1))
            let options = OptimizerOptions()
            let reparam = withReparam ? try PrefixReparam(model: model, hiddenSize: 64, seed: 1) : nil
            let adam = AdamW(model: model, options: options, freezePrefixes: withReparam)
            let grads = vulkan.allocate(model.parameters.count)
            try step(model, adam, reparam, grads, options, batch: batch, sequence: sequence, seed: 0)  // warm-up
            let start = vulkan.counters
            for i in 1...steps { try step(model, adam, reparam, grads, options, batch: batch, sequence: sequence, seed: UInt64(i)) }
            results.append((vulkan.counters - start).per(steps))
            if let reparam { prefixBytes = reparam.streams * reparam.outputSize * 4 }
        }
        return (results[0], results[1], prefixBytes)
    }

    /// A step with the reparameterisation moves what a plain step moves and makes as many
    /// submissions: not the 2 L P prefix blocks, which the host loops moved down and up (behind
    /// staging, one submission and fence wait per block and stream each way), nor a read-back of
    /// the MLP's gradient norm, in mapped and in staging memory.
    func testAReparamStepMovesNoPrefixBlocks() throws {
        for memory in [VulkanMemoryMode.mapped, .staging] {
            let vulkan = try VulkanBackend(device: lavapipeDevice(), memory: memory)
            let (plain, reparam, prefixBytes) = try stepCounters(
                vulkan, config: tinyConfig(P: 4, prefixTokens: 48), batch: 2, sequence: 8, steps: 2)
            XCTAssertEqual(prefixBytes, 4 * 2 * 2 * 2 * 48 * 8 * 4, "P * L * (k, v) * KVH * T * hd floats")
            let what = "\(memory): plain \(plain), reparam \(reparam)"
            XCTAssertLessThanOrEqual(reparam.bytesUploaded, plain.bytesUploaded, what)
            XCTAssertLessThanOrEqual(reparam.bytesDownloaded, plain.bytesDownloaded, what)
            XCTAssertLessThanOrEqual(reparam.submissions, plain.submissions, what)
            XCTAssertLessThanOrEqual(reparam.fenceWaits, plain.fenceWaits, what)
            XCTAssertLessThanOrEqual(reparam.memoryAllocations, plain.memoryAllocations, what)
        }
    }

    func losses(_ run: String) throws -> [Double] {
        let text = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }
}
