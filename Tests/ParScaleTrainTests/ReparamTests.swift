import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
import TestSupport

/// The prefix reparameterisation: its gradients against finite differences, and checkpoints that
/// hold plain official-layout prefixes reproducing the trained model's own logits.
extension TrainingTests {

    /// d(sum c * prefixes)/d(every MLP parameter), against central differences in Double.
    func testReparamGradientsMatchFiniteDifferences() throws {
        let model = tinyModel(P: 3)
        let reparam = try PrefixReparam(model: model, hiddenSize: 5, vectorSize: 4, seed: 2)
        // W2 starts at zero, where W1, b1 and e get no gradient: move it off zero first.
        var rng = SeededGenerator(seed: 9)
        let p = reparam.pointer(reparam.parameters)
        for i in reparam.w2..<reparam.count { p[i] = Float(rng.nextNormal() * 0.3) }
        // A linear loss on the prefixes: its gradient in the model's layout is c at the prefix entries.
        let modelGradients = model.backend.allocate(model.parameters.count)
        var c = [Float](repeating: 0, count: model.parameters.count)
        for layer in model.layout.layers {
            for prefix in [layer.prefixK!, layer.prefixV!] {
                for i in prefix.range { c[i] = Float(rng.nextNormal()) }
            }
        }
        c.withUnsafeBufferPointer { model.backend.upload($0, to: modelGradients) }
        let cOut = PrefixReparam.read(blocks: reparam.blocks, streams: reparam.streams, from: modelGradients, backend: model.backend)
        func loss() -> Double {
            let out = reparam.prefixes()
            var sum = 0.0
            for i in 0..<out.count { sum += Double(out[i]) * Double(cOut[i]) }
            return sum
        }
        _ = reparam.backward(modelGradients: modelGradients, backend: model.backend)
        let g = reparam.array(reparam.gradients)
        var worst = 0.0
        for i in stride(from: 0, to: reparam.count, by: 7) {
            let saved = p[i], h: Float = 1e-2
            p[i] = saved + h
            let up = loss()
            p[i] = saved - h
            let down = loss()
            p[i] = saved
            let numeric = (up - down) / (2 * Double(h))
            worst = max(worst, abs(numeric - Double(g[i])) / max(1, abs(numeric)))
        }
        XCTAssertLessThan(worst, 2e-3, "worst relative gradient error")
        XCTAssertGreaterThan(g[reparam.e..<reparam.w1].map(abs).max()!, 0, "stream vectors get gradients")
    }

    func reparamLogits(_ model: ParScaleModel) throws -> [Float] {
        let tokens = ByteTokenizer.encode("let x = [1, 2, 3]\n")
        return try model.forward(tokens: [tokens], cache: model.makeCache(batch: 1, capacity: tokens.count), logits: .all)
    }

    func testReparameterisedRunWritesPlainPrefixesThatReproduceItsLogits() throws {
        let run = temporaryFolder().path
        var o = options(steps: 5)
        o.prefixReparam = 8
        let initial = tinyModel(P: 2)
        let before = PrefixReparam.read(
            blocks: try PrefixReparam(model: initial, hiddenSize: 1, seed: 0).blocks, streams: 2, from: initial.parameters,
            backend: initial.backend)
        let trainer = try Trainer.start(runDirectory: run, model: initial, options: o)
        try trainer.run()
        let dir = Trainer.checkpointDirectory(run)
        // The checkpoint is the official layout: the same tensor names as a plain run, nothing else.
        let names = try SafeTensorsFile(contentsOf: dir + "/model.safetensors").names
        XCTAssertEqual(names, ParameterLayout(trainer.model.config).entries.map(\.name).sorted())
        XCTAssertFalse(names.contains { $0.contains("reparam") })
        // Loaded back as a plain model, it gives the trained model's logits exactly.
        let loaded = try Checkpoint.load(dir, backend: CPUBackend())
        XCTAssertEqual(try reparamLogits(loaded), try reparamLogits(trainer.model))
        // Its prefixes are the MLP's output from the saved reparameterisation, and moved from the start.
        let saved = try PrefixReparam(model: loaded, hiddenSize: 8, seed: 123)
        try saved.restore(from: dir + "/" + PrefixReparam.fileName, step: 5)
        let folded = PrefixReparam.read(blocks: saved.blocks, streams: 2, from: loaded.parameters, backend: loaded.backend)
        XCTAssertEqual(saved.prefixes(), folded)
        let moved = zip(folded, before).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(moved, 1e-4, "the reparameterised prefixes were trained")
        // The plain optimizer did not touch them on its own: with reparam off they would differ.
        XCTAssertEqual(trainer.state.options.prefixReparam, 8)
    }

    func testResumeWithReparamContinuesExactly() throws {
        let straight = temporaryFolder().path, split = temporaryFolder().path
        var o = options(steps: 6)
        o.prefixReparam = 8
        try Trainer.start(runDirectory: straight, model: tinyModel(P: 2), options: o).run()
        try Trainer.start(runDirectory: split, model: tinyModel(P: 2), options: o).run(stopAfter: 3)
        try Trainer.resume(runDirectory: split, backend: CPUBackend()).run()
        XCTAssertEqual(try losses(straight), try losses(split))
        XCTAssertEqual(try losses(straight).count, 6)
    }

    func testReparamNeedsSeveralStreams() {
        XCTAssertThrowsError(try PrefixReparam(model: tinyModel(P: 1), hiddenSize: 8, seed: 0))
    }
}
