import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
import TestSupport

final class TrainingTests: XCTestCase {
    func options(steps: Int) -> TrainingOptions {
        shortRunOptions(steps: steps, batch: 4, sequence: 32, evalWindows: 8, learningRate: 1e-2)
    }

    func testScheduleWarmsUpThenDecaysToTheFloor() {
        var o = OptimizerOptions()
        o.learningRate = 1
        o.warmupSteps = 10
        XCTAssertEqual(o.learningRate(step: 5, totalSteps: 110), 0.5, accuracy: 1e-12)
        XCTAssertEqual(o.learningRate(step: 10, totalSteps: 110), 1, accuracy: 1e-12)
        XCTAssertEqual(o.learningRate(step: 60, totalSteps: 110), 0.1 + 0.9 * 0.5, accuracy: 1e-12)
        XCTAssertEqual(o.learningRate(step: 110, totalSteps: 110), 0.1, accuracy: 1e-12)
    }

    /// One AdamW step from zero moments moves each parameter by lr * (g/|g| + wd * p), decay only
    /// on weight matrices; clipping scales gradients to the configured norm.
    func testAdamWStepMatchesClosedForm() throws {
        let model = tinyModel(P: 2)
        var o = OptimizerOptions()
        o.weightDecay = 0.5
        o.clipNorm = 0
        o.epsilon = 0
        let adam = AdamW(model: model, options: o)
        let before = Array(UnsafeBufferPointer(start: model.parameters.host, count: model.parameters.count))
        let grads = model.backend.allocate(model.parameters.count)
        for i in 0..<grads.count { grads.host[i] = i % 3 == 0 ? 0.25 : -2 }
        adam.update(model: model, gradients: grads, learningRate: 0.01)
        for e in model.layout.entries {
            let decays = e.shape.count == 2 && !e.name.contains("prefix")
            for i in [e.offset, e.offset + e.count - 1] {
                let g = grads.host[i]
                let expected = before[i] - 0.01 * ((g > 0 ? 1 : -1) + (decays ? 0.5 * before[i] : 0))
                XCTAssertEqual(model.parameters.host[i], expected, accuracy: 1e-6, e.name)
            }
        }
        XCTAssertFalse(ParameterGroup.groups(model.layout, parscaleLRScale: 1).contains { g in
            model.layout.entries.contains { $0.name.hasSuffix("prefix_k") && $0.offset >= g.offset && $0.offset < g.offset + g.count && g.decay }
        }, "prefixes are not decayed")
    }

    /// A tiny model learns the synthetic corpus: validation loss falls well below the unigram entropy.
    func testTrainingBeatsTheUnigramEntropyAtP1AndP4() throws {
        let sample = try validationWindows(source: .synthetic(seed: 0), corpus: nil, count: 64, sequence: 64).flatMap { $0 }
        let unigram = unigramEntropy(sample)
        for P in [1, 4] {
            let model = tinyModel(P: P)
            var o = options(steps: 150)
            o.sequence = 64
            o.batch = 8
            let trainer = try Trainer.start(runDirectory: temporaryFolder().path, model: model, options: o)
            let e = try XCTUnwrap(try trainer.run())
            XCTAssertLessThan(e.validationLoss, unigram - 0.5, "P=\(P): val loss \(e.validationLoss) vs unigram entropy \(unigram)")
        }
    }

    /// N steps in one go equal N/2 steps, a stop, and N/2 resumed steps, bit for bit.
    func testResumeContinuesExactly() throws {
        for P in [1, 2] {
            let straight = temporaryFolder().path, split = temporaryFolder().path
            let o = options(steps: 6)
            try Trainer.start(runDirectory: straight, model: tinyModel(P: P), options: o).run()
            try Trainer.start(runDirectory: split, model: tinyModel(P: P), options: o).run(stopAfter: 3)
            let resumed = try Trainer.resume(runDirectory: split, backend: CPUBackend())
            XCTAssertEqual(resumed.state.step, 3)
            try resumed.run()
            XCTAssertEqual(try losses(straight), try losses(split), "P=\(P) loss sequence")
            XCTAssertEqual(try losses(straight).count, 6)
            let a = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(straight) + "/model.safetensors")
            let b = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(split) + "/model.safetensors")
            for name in a.names { XCTAssertEqual(try a.floats(name), try b.floats(name), name) }
        }
    }

    /// BF16 shards in every checkpoint while the training state stays F32 (master.safetensors):
    /// N steps equal N/2, a stop and N/2 resumed, bit for bit; the dtype, the shard size and the
    /// source's tokenizer files carry over the resume.
    func testResumeIsExactWithBF16ShardedCheckpoints() throws {
        var o = options(steps: 6)
        o.checkpointDType = .BF16
        o.maxShardBytes = 8_000
        let source = temporaryFolder().path
        let tokenizer = Data(#"{"model": {"type": "BPE"}}"#.utf8), generation = Data(#"{"temperature": 0.7}"#.utf8)
        try tokenizer.write(to: URL(fileURLWithPath: source + "/tokenizer.json"))
        try generation.write(to: URL(fileURLWithPath: source + "/generation_config.json"))
        let straight = temporaryFolder().path, split = temporaryFolder().path
        try Trainer.start(runDirectory: straight, model: tinyModel(P: 2), options: o, companionSource: source).run()
        try Trainer.start(runDirectory: split, model: tinyModel(P: 2), options: o, companionSource: source).run(stopAfter: 3)
        let checkpoint = Trainer.checkpointDirectory(split)
        let names = try FileManager.default.contentsOfDirectory(atPath: checkpoint)
        XCTAssertGreaterThanOrEqual(names.filter { $0.hasPrefix("model-") }.count, 3, "\(names)")
        for name in ["model.safetensors.index.json", Trainer.masterFileName, "tokenizer.json", "generation_config.json"] {
            XCTAssertTrue(names.contains(name), "\(name) not in \(names)")
        }
        XCTAssertFalse(names.contains("model.safetensors"))
        try FileManager.default.removeItem(atPath: source)  // resume copies from the checkpoint itself

        let resumed = try Trainer.resume(runDirectory: split, backend: CPUBackend())
        XCTAssertEqual(resumed.state.step, 3)
        XCTAssertEqual(resumed.state.options.checkpointDType, .BF16)
        XCTAssertEqual(resumed.state.options.maxShardBytes, 8_000)
        try resumed.run()
        XCTAssertEqual(try losses(straight), try losses(split), "loss sequence")
        XCTAssertEqual(try losses(straight).count, 6)
        let a = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(straight) + "/" + Trainer.masterFileName)
        let b = try SafeTensorsFile(contentsOf: checkpoint + "/" + Trainer.masterFileName)
        for name in a.names { XCTAssertEqual(try a.floats(name).map(\.bitPattern), try b.floats(name).map(\.bitPattern), name) }
        // The model file is the master rounded to bfloat16.
        let model = try Checkpoint.load(checkpoint, backend: CPUBackend())
        var weights = [Float](repeating: 0, count: model.parameters.count)
        weights.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        for entry in model.layout.entries {
            let exact = try b.floats(entry.name)
            XCTAssertEqual(
                Array(weights[entry.offset..<entry.offset + entry.count]).map(\.bitPattern),
                exact.map { UInt32(SafeTensorsWriter.bfloat16Bits($0)) << 16 }, entry.name)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: checkpoint + "/tokenizer.json"), tokenizer)
        XCTAssertEqual(FileManager.default.contents(atPath: checkpoint + "/generation_config.json"), generation)
    }

    /// Runs saved before checkpoints had a dtype resume as F32, unsharded past 5 GB.
    func testOptionsOfOlderRunsDecodeWithTheDefaultDType() throws {
        var o = options(steps: 2)
        o.checkpointDType = .F16
        o.maxShardBytes = 1234
        let encoded = try JSONEncoder().encode(o)
        XCTAssertEqual(try JSONDecoder().decode(TrainingOptions.self, from: encoded), o)
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        object["checkpointDType"] = nil
        object["maxShardBytes"] = nil
        let old = try JSONDecoder().decode(TrainingOptions.self, from: JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(old.checkpointDType, .F32)
        XCTAssertEqual(old.maxShardBytes, Checkpoint.defaultMaxShardBytes)
    }

    func losses(_ run: String) throws -> [UInt64] {
        let text = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (object?["loss"] as? Double)?.bitPattern
        }
    }

    /// Accumulating two half batches (gradScale 1/2 each) gives the gradient of the whole batch.
    func testGradientAccumulationEqualsTheFullBatch() throws {
        let model = tinyModel(P: 2)
        var rng = SeededGenerator(seed: 5)
        let S = 8
        let inputs = (0..<4 * S).map { _ in Int32(rng.next() % 256) }, targets = (0..<4 * S).map { _ in Int32(rng.next() % 256) }
        let whole = model.backend.allocate(model.parameters.count), halves = model.backend.allocate(model.parameters.count)
        let loss = try model.accumulateGradients(inputs: inputs, targets: targets, batch: 4, sequence: S, gradients: whole)
        var accumulated = 0.0
        for half in 0..<2 {
            let range = (half * 2 * S)..<((half + 1) * 2 * S)
            accumulated += 0.5 * (try model.accumulateGradients(
                inputs: Array(inputs[range]), targets: Array(targets[range]), batch: 2, sequence: S, gradients: halves, gradScale: 0.5))
        }
        XCTAssertEqual(loss, accumulated, accuracy: 1e-6)
        let a = Array(UnsafeBufferPointer(start: whole.host, count: whole.count))
        let b = Array(UnsafeBufferPointer(start: halves.host, count: halves.count))
        let worst = zip(a, b).map { abs($0 - $1) }.max()!, scale = a.map(abs).max()!
        XCTAssertLessThan(worst / scale, 1e-5)
    }

    func testPretrainedCheckpointHasOfficialNamesShapesAndKeys() throws {
        let run = temporaryFolder().path
        try Trainer.start(runDirectory: run, model: tinyModel(P: 4), options: options(steps: 2)).run()
        let dir = Trainer.checkpointDirectory(run)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        let official = TestPaths.reference.appendingPathComponent("p4_t8_mqa_smooth0p1_tied")
        let officialConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: official.appendingPathComponent("config.json"))) as! [String: Any]
        for key in ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "parscale_n",
                    "parscale_n_tokens", "parscale_attn_smooth", "architectures"] {
            XCTAssertNotNil(officialConfig[key], key)
            XCTAssertNotNil(config[key], "pretrained config lacks \(key)")
        }
        let ours = try SafeTensorsFile(contentsOf: dir + "/model.safetensors")
        let theirs = try SafeTensorsFile(contentsOf: official.appendingPathComponent("model.safetensors").path)
        XCTAssertEqual(ours.names, theirs.names)
        // Loads back as a model, through the run folder too.
        XCTAssertEqual(try Checkpoint.load(run, backend: CPUBackend()).config.streams, 4)
    }

    func testNonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        let run = temporaryFolder().path
        var o = options(steps: 4)
        o.checkpointEvery = 2
        o.evalEvery = 100
        let model = tinyModel(P: 2)
        let trainer = try Trainer.start(runDirectory: run, model: model, options: o)
        try trainer.run(stopAfter: 2)
        model.parameters.host[model.layout.entry("model.norm.weight")!.offset] = .nan
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("non-finite"), "\(error)")
            XCTAssertTrue("\(error)".contains("step 2"), "\(error)")
        }
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: Trainer.checkpointDirectory(run) + "/trainer_state.json")))
        XCTAssertEqual(state.step, 2)
        let saved = try SafeTensorsFile(contentsOf: Trainer.checkpointDirectory(run) + "/model.safetensors")
        XCTAssertTrue(try saved.floats("model.norm.weight").allSatisfy { $0.isFinite })
    }
}

final class CodeCorpusTests: XCTestCase {
    /// The built-in code corpus: the toolchain's .swiftinterface files, duplicates dropped, split by file.
    func testBuiltinCodeCorpusIsTheToolchainsInterfacesWithoutDuplicates() throws {
        guard TextCorpus.builtinCodeRoot() != nil else { try requireOrSkip("no Swift toolchain folder found") }
        let corpus = try TextCorpus(path: TextCorpus.builtinCode)
        XCTAssertTrue(corpus.files.allSatisfy { $0.hasSuffix(".swiftinterface") })
        XCTAssertGreaterThan(corpus.train.count, 1_000_000)
        XCTAssertGreaterThan(corpus.validation.count, 10_000)
        XCTAssertTrue(String(decoding: corpus.train.prefix(100_000), as: UTF8.self).contains("public func"))
        let again = try TextCorpus(path: TextCorpus.builtinCode)
        XCTAssertEqual(again.validation, corpus.validation, "deterministic")
        // Near-copies are dropped: no X.private.swiftinterface beside its X.swiftinterface.
        let files = Set(corpus.files)
        for file in files where file.hasSuffix(".private.swiftinterface") {
            XCTAssertFalse(files.contains(String(file.dropLast(".private.swiftinterface".count)) + ".swiftinterface"), file)
        }
        // An i.i.d. split of 4 KiB blocks: about 1 block in 20 is validation.
        let fraction = Double(corpus.validation.count) / Double(corpus.train.count + corpus.validation.count)
        XCTAssertEqual(fraction, 0.05, accuracy: 0.015)
    }
}
