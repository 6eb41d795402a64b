import Foundation
import ParScale

/// Where the training text comes from, as saved in a run's state.
public struct DataSpec: Codable, Equatable, Sendable {
    public var kind: String  // "synthetic" or "text"
    public var path: String?
    public var seed: UInt64
    /// Fingerprint of the tokenizer the text is read with (the model folder's tokenizer.json);
    /// nil for byte-level text.
    public var tokenizer: String?
    public static func synthetic(seed: UInt64) -> DataSpec { DataSpec(kind: "synthetic", path: nil, seed: seed) }
    public static func text(_ path: String, seed: UInt64, tokenizer: String? = nil) -> DataSpec {
        DataSpec(kind: "text", path: path, seed: seed, tokenizer: tokenizer)
    }
    public var source: DataSource {
        kind == "text" ? .text(path: path ?? "") : .synthetic(seed: seed)
    }
    public var description: String {
        kind == "text" ? "text \(path ?? "")\(tokenizer.map { " (tokenizer \($0))" } ?? "")" : "synthetic tasks (seed \(seed))"
    }

    /// The corpus of a text spec (nil for synthetic data), tokenized with `encoding` into
    /// `cacheDirectory` (see TokenCorpus.load). `encoding` must be the one the spec names.
    public func corpus(
        encoding: TextEncoding, cacheDirectory: String?, validationOnly: Bool = false, progress: ((String) -> Void)? = nil
    ) throws -> TokenCorpus? {
        let fingerprint = encoding.tokenizer?.fingerprint
        guard fingerprint == tokenizer else {
            throw DataError(
                "the data was specified for \(tokenizer.map { "tokenizer \($0)" } ?? "byte-level text"), but the model reads "
                    + "\(fingerprint.map { "tokenizer \($0)" } ?? "bytes")")
        }
        guard kind == "text" else {
            if fingerprint != nil {
                throw DataError("the synthetic corpus is byte-level, but this model has a tokenizer: give --data PATH or --corpus code")
            }
            return nil
        }
        return try TokenCorpus.load(
            path: path ?? "", encoding: encoding, cacheDirectory: cacheDirectory, validationOnly: validationOnly, progress: progress)
    }
}

public struct TrainingOptions: Codable, Equatable, Sendable {
    public var batch = 8
    public var sequence = 128
    public var steps = 1000
    public var accumulate = 1
    public var evalEvery = 100
    public var checkpointEvery = 100
    public var evalWindows = 32
    public var taskExamples = 50
    public var seed: UInt64 = 0
    public var data = DataSpec.synthetic(seed: 0)
    public var optimizer = OptimizerOptions()
    /// Train only the prefixes and the aggregation head (recycling onto a frozen backbone).
    public var freezeBackbone = false
    /// Hidden width of the prefix reparameterisation MLP (`PrefixReparam`); 0: plain prefixes.
    public var prefixReparam = 0
    /// How checkpoints store the model (`checkpoint/model.safetensors` or its shards): F32, BF16 or
    /// F16. Training state stays F32 (`Trainer.masterFileName` holds the exact weights otherwise).
    public var checkpointDType = SafeTensorsDType.F32
    /// Shard the checkpoint's weights past this many bytes (`Checkpoint.save`).
    public var maxShardBytes = Checkpoint.defaultMaxShardBytes
    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batch = try c.decode(Int.self, forKey: .batch)
        sequence = try c.decode(Int.self, forKey: .sequence)
        steps = try c.decode(Int.self, forKey: .steps)
        accumulate = try c.decode(Int.self, forKey: .accumulate)
        evalEvery = try c.decode(Int.self, forKey: .evalEvery)
        checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery)
        evalWindows = try c.decode(Int.self, forKey: .evalWindows)
        taskExamples = try c.decode(Int.self, forKey: .taskExamples)
        seed = try c.decode(UInt64.self, forKey: .seed)
        data = try c.decode(DataSpec.self, forKey: .data)
        optimizer = try c.decode(OptimizerOptions.self, forKey: .optimizer)
        freezeBackbone = try c.decodeIfPresent(Bool.self, forKey: .freezeBackbone) ?? false
        prefixReparam = try c.decodeIfPresent(Int.self, forKey: .prefixReparam) ?? 0  // runs from before it existed
        checkpointDType = try c.decodeIfPresent(SafeTensorsDType.self, forKey: .checkpointDType) ?? .F32
        maxShardBytes = try c.decodeIfPresent(Int.self, forKey: .maxShardBytes) ?? Checkpoint.defaultMaxShardBytes
    }
    public var tokensPerStep: Int { batch * sequence * accumulate }
}

/// Everything needed to continue a run exactly: saved with each checkpoint.
public struct TrainerState: Codable, Sendable {
    public var format = 1
    public var step = 0
    public var tokens = 0
    public var elapsedSeconds = 0.0
    public var options: TrainingOptions
    public var stream: StreamPosition?
    public var lastValidationLoss: Double?
    public var recipe: [String: String] = [:]
}

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Results of an evaluation.
public struct Evaluation: Sendable {
    public var validationLoss: Double
    /// Standard error of the mean over the validation windows.
    public var standardError: Double
    /// UTF-8 bytes per token of the validation text (1 for byte-level text).
    public var bytesPerToken: Double = 1
    public var bitsPerByte: Double { validationLoss / log(2) / bytesPerToken }
    public var taskAccuracy: Double?
    public var json: [String: Any] {
        [
            "val_loss": validationLoss, "val_loss_se": standardError, "bits_per_byte": bitsPerByte,
            "task_accuracy": taskAccuracy as Any? ?? NSNull(),
        ]
    }
}

public enum Evaluator {
    /// Mean loss on the fixed validation windows, and for the synthetic corpus the exact-match
    /// accuracy of greedy answers to held-out task prompts.
    public static func evaluate(
        model: ParScaleModel, data: DataSpec, corpus: TokenCorpus?, windows: Int, sequence: Int, taskExamples: Int
    ) throws -> Evaluation {
        let set = try validationWindows(source: data.source, corpus: corpus, count: windows, sequence: sequence)
        var losses: [Double] = []
        let chunk = 8
        for start in stride(from: 0, to: set.count, by: chunk) {
            let part = Array(set[start..<min(set.count, start + chunk)])
            let inputs = part.flatMap { $0.dropLast() }, targets = part.flatMap { $0.dropFirst() }
            losses += try model.sequenceLosses(inputs: inputs, targets: targets, batch: part.count, sequence: sequence)
        }
        let mean = losses.reduce(0, +) / Double(losses.count)
        let variance = losses.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, losses.count - 1))
        var accuracy: Double?
        if data.kind == "synthetic" && taskExamples > 0 {
            accuracy = try taskAccuracy(model: model, examples: heldOutTasks(seed: data.seed, count: taskExamples))
        }
        return Evaluation(
            validationLoss: mean, standardError: (variance / Double(losses.count)).squareRoot(),
            bytesPerToken: corpus?.bytesPerToken ?? 1, taskAccuracy: accuracy)
    }

    /// Greedy decoding of each prompt until a newline; exact match of the answer.
    public static func taskAccuracy(model: ParScaleModel, examples: [TaskExample]) throws -> Double {
        var correct = 0
        for example in examples {
            let prompt = ByteTokenizer.encode(example.prompt)
            let limit = example.answer.utf8.count + 8
            let cache = model.makeCache(batch: 1, capacity: prompt.count + limit)
            var logits = try model.forward(tokens: [prompt], cache: cache, logits: .last)
            var answer: [Int32] = []
            for _ in 0..<limit {
                let next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                if next == 10 { break }
                answer.append(next)
                if cache.length >= cache.capacity { break }
                logits = try model.forward(tokens: [[next]], cache: cache, logits: .last)
            }
            if ByteTokenizer.decode(answer) == example.answer { correct += 1 }
        }
        return Double(correct) / Double(max(1, examples.count))
    }
}

/// Pretraining (and, later, post-training) loop over a run folder:
///   DIR/checkpoint/   config.json + model.safetensors or its shards (official layout, in the
///                     options' dtype), the source's tokenizer files, optimizer.safetensors,
///                     master.safetensors (the exact F32 weights, when the model file is BF16/F16),
///                     trainer_state.json; replaced as a whole (written beside, then renamed)
///   DIR/metrics.jsonl one JSON object per logged step and per evaluation
public final class Trainer {
    public let runDirectory: String
    public let model: ParScaleModel
    public private(set) var state: TrainerState
    let optimizer: AdamW
    let stream: TokenStream
    let corpus: TokenCorpus?
    let gradients: Tensor
    let backend: Backend
    let validation: TrainingOptions
    /// The prefix reparameterisation, when the recipe has one.
    let reparam: PrefixReparam?
    /// The folder whose tokenizer and other companion files every checkpoint copies
    /// (`Checkpoint.companionFiles`): the source model, or on resume the checkpoint itself.
    let companionSource: String?
    /// The exact F32 weights, kept beside a BF16/F16 model file so that --resume is exact.
    public static let masterFileName = "master.safetensors"

    public var checkpointDirectory: String { Self.checkpointDirectory(runDirectory) }
    public static func checkpointDirectory(_ run: String) -> String { (run as NSString).appendingPathComponent("checkpoint") }
    /// Token ids of tokenized text data, made once (TokenCorpus.load).
    public static func tokenCacheDirectory(_ run: String) -> String { (run as NSString).appendingPathComponent("tokens") }
    var metricsPath: String { (runDirectory as NSString).appendingPathComponent("metrics.jsonl") }

    init(
        runDirectory: String, model: ParScaleModel, state: TrainerState, encoding: TextEncoding,
        companionSource: String? = nil
    ) throws {
        let o = state.options
        guard o.batch > 0, o.sequence > 1, o.steps > 0, o.accumulate > 0, o.evalEvery > 0, o.checkpointEvery > 0 else {
            throw TrainingError("batch, steps, accumulate and the eval/checkpoint intervals must be positive, and the sequence at least 2")
        }
        backend = model.backend
        self.runDirectory = runDirectory
        self.model = model
        self.state = state
        self.companionSource = companionSource
        validation = o
        // A tokenized corpus was made into the run's token cache before the run started.
        corpus = try o.data.corpus(encoding: encoding, cacheDirectory: Self.tokenCacheDirectory(runDirectory))
        stream = try TokenStream(source: o.data.source, corpus: corpus, split: .train, seed: o.seed, position: state.stream)
        reparam = o.prefixReparam > 0 ? try PrefixReparam(model: model, hiddenSize: o.prefixReparam, seed: o.seed) : nil
        optimizer = AdamW(model: model, options: o.optimizer, freezeBackbone: o.freezeBackbone, freezePrefixes: reparam != nil)
        gradients = model.backend.allocate(model.parameters.count)
    }

    /// A new run in `runDirectory` (which must not hold one already). `encoding` reads text data
    /// (the model's tokenizer, as `options.data.tokenizer` names it, or bytes).
    public static func start(
        runDirectory: String, model: ParScaleModel, options: TrainingOptions, recipe: [String: String] = [:],
        encoding: TextEncoding = .bytes, companionSource: String? = nil
    ) throws -> Trainer {
        if FileManager.default.fileExists(atPath: checkpointDirectory(runDirectory)) {
            throw TrainingError("\(runDirectory) already holds a run: pass --resume to continue it, or choose another --out")
        }
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: (runDirectory as NSString).appendingPathComponent("metrics.jsonl"))
        return try Trainer(
            runDirectory: runDirectory, model: model, state: TrainerState(options: options, recipe: recipe), encoding: encoding,
            companionSource: companionSource)
    }

    /// Continues the run saved in `runDirectory` exactly where its last checkpoint left it.
    public static func resume(runDirectory: String, backend: Backend) throws -> Trainer {
        let dir = checkpointDirectory(runDirectory)
        recoverInterruptedSave(runDirectory)
        let statePath = (dir as NSString).appendingPathComponent("trainer_state.json")
        guard let data = FileManager.default.contents(atPath: statePath) else {
            throw TrainingError("\(runDirectory): no checkpoint to resume (expected \(statePath))")
        }
        let state: TrainerState
        do { state = try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw TrainingError("\(statePath): unreadable trainer state (\(error))")
        }
        // A BF16/F16 model file is rounded: the exact weights are in the master file.
        let master = (dir as NSString).appendingPathComponent(masterFileName)
        let model = FileManager.default.fileExists(atPath: master)
            ? try loadMaster(master, checkpoint: dir, backend: backend) : try Checkpoint.load(dir, backend: backend)
        // Text read through a tokenizer is read through the copy of it in the checkpoint.
        let encoding: TextEncoding = state.options.data.tokenizer == nil
            ? .bytes : try TextEncoding.forModel(directory: dir, config: model.config)
        let trainer = try Trainer(
            runDirectory: runDirectory, model: model, state: state, encoding: encoding, companionSource: dir)
        let optimizerPath = (dir as NSString).appendingPathComponent("optimizer.safetensors")
        let file = try SafeTensorsFile(contentsOf: optimizerPath)
        guard file.metadata["step"] == String(state.step) else {
            throw TrainingError("\(optimizerPath): its step \(file.metadata["step"] ?? "?") does not match trainer_state.json's \(state.step)")
        }
        let count = model.parameters.count
        let m = try file.floats("m"), v = try file.floats("v")
        guard m.count == count, v.count == count else {
            throw TrainingError("\(optimizerPath): moments have \(m.count) values, the model \(count)")
        }
        trainer.optimizer.restore(m: m, v: v, step: state.step, backend: backend)
        if let reparam = trainer.reparam {
            try reparam.restore(from: (dir as NSString).appendingPathComponent(PrefixReparam.fileName), step: state.step)
        }
        trainer.truncateMetrics(after: state.step)
        return trainer
    }

    /// The model of the checkpoint's config with the master file's F32 weights.
    static func loadMaster(_ path: String, checkpoint dir: String, backend: Backend) throws -> ParScaleModel {
        let config = try Checkpoint.loadConfig(dir)
        let layout = ParameterLayout(config)
        var host = [Float](repeating: 0, count: layout.totalCount)
        try host.withUnsafeMutableBufferPointer {
            try Checkpoint.readParameters(CheckpointWeights(file: path), layout: layout, into: $0)
        }
        let parameters = backend.allocate(layout.totalCount)
        host.withUnsafeBufferPointer { backend.upload($0, to: parameters) }
        return ParScaleModel(config: config, backend: backend, parameters: parameters)
    }

    /// A save killed between its two renames leaves only checkpoint.previous: put it back.
    static func recoverInterruptedSave(_ run: String) {
        let dir = checkpointDirectory(run), previous = dir + ".previous"
        if !FileManager.default.fileExists(atPath: dir) && FileManager.default.fileExists(atPath: previous) {
            try? FileManager.default.moveItem(atPath: previous, toPath: dir)
        }
    }

    /// Trains until `options.steps` (or `stopAfter` more steps), checkpointing and evaluating on
    /// schedule. Returns the last evaluation.
    @discardableResult
    public func run(stopAfter: Int? = nil, log: (String) -> Void = { _ in }) throws -> Evaluation? {
        let o = state.options, total = o.steps
        var lastEvaluation: Evaluation?
        var stepsThisRun = 0
        let runStart = Date()
        let elapsedBefore = state.elapsedSeconds
        var windowStart = Date(), windowTokens = 0
        while state.step < total {
            if let stopAfter, stepsThisRun >= stopAfter { break }
            backend.fill(gradients, value: 0)
            var loss = 0.0
            for _ in 0..<o.accumulate {
                let (inputs, targets) = stream.nextBatch(batch: o.batch, sequence: o.sequence)
                loss += try model.accumulateGradients(
                    inputs: inputs, targets: targets, batch: o.batch, sequence: o.sequence, gradients: gradients,
                    gradScale: 1 / Float(o.accumulate), trainBackbone: !o.freezeBackbone) / Double(o.accumulate)
            }
            let lr = o.optimizer.learningRate(step: state.step + 1, totalSteps: total)
            let reparamSquares = loss.isFinite ? reparam?.backward(modelGradients: gradients, backend: backend) ?? 0 : 0
            let norm = loss.isFinite
                ? optimizer.update(model: model, gradients: gradients, learningRate: lr, extraSquaredNorm: reparamSquares) : .nan
            if let reparam, norm.isFinite {
                reparam.update(
                    learningRate: lr * o.optimizer.parscaleLRScale, gradScale: o.optimizer.clipScale(norm: norm),
                    step: optimizer.step, options: o.optimizer)
                reparam.fold(into: model)
            }
            guard loss.isFinite, norm.isFinite else {
                throw TrainingError(
                    "step \(state.step + 1): non-finite \(loss.isFinite ? "gradient norm" : "loss") (loss \(loss), gradient norm \(norm)); stopped. "
                        + "The last good checkpoint (step \(lastCheckpointStep)) is in \(checkpointDirectory); "
                        + "try a lower --lr or stronger clipping, then --resume.")
            }
            state.step += 1
            state.tokens += o.tokensPerStep
            stepsThisRun += 1
            windowTokens += o.tokensPerStep
            state.elapsedSeconds = elapsedBefore + Date().timeIntervalSince(runStart)
            let windowSeconds = Date().timeIntervalSince(windowStart)
            let rate = Double(windowTokens) / max(windowSeconds, 1e-9)
            appendMetrics([
                "step": state.step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": state.tokens,
                "tokens_per_s": rate, "elapsed_s": state.elapsedSeconds,
            ])
            if state.step % 10 == 0 || state.step == total || state.step == 1 {
                let eta = Double(total - state.step) * Double(o.tokensPerStep) / max(rate, 1e-9)
                log(String(
                    format: "step %d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %@",
                    state.step, total, loss, lr, norm, rate, formatDuration(eta)))
                windowStart = Date()
                windowTokens = 0
            }
            if state.step % o.evalEvery == 0 || state.step == total {
                let e = try evaluate()
                lastEvaluation = e
                state.lastValidationLoss = e.validationLoss
                var record = e.json
                record["step"] = state.step
                record["tokens"] = state.tokens
                appendMetrics(record)
                log(String(
                    format: "eval step %d | val loss %.4f | %.4f bits/byte%@", state.step, e.validationLoss, e.bitsPerByte,
                    e.taskAccuracy.map { String(format: " | task accuracy %.1f%%", 100 * $0) } ?? ""))
            }
            if state.step % o.checkpointEvery == 0 || state.step == total { try saveCheckpoint() }
        }
        if state.step != lastCheckpointStep { try saveCheckpoint() }
        return lastEvaluation
    }

    public func evaluate() throws -> Evaluation {
        let o = state.options
        return try Evaluator.evaluate(
            model: model, data: o.data, corpus: corpus, windows: o.evalWindows, sequence: o.sequence,
            taskExamples: o.taskExamples)
    }

    private var lastCheckpointStep = -1

    /// Writes the whole checkpoint beside the current one, then swaps them by renames, so a
    /// killed process always leaves one complete checkpoint.
    public func saveCheckpoint() throws {
        state.stream = stream.position
        let dir = checkpointDirectory, partial = dir + ".partial", previous = dir + ".previous"
        let fm = FileManager.default
        try? fm.removeItem(atPath: partial)
        let o = state.options
        try Checkpoint.save(model, to: partial, dtype: o.checkpointDType, maxShardBytes: o.maxShardBytes)
        if o.checkpointDType != .F32 {
            try Checkpoint.saveWeightsFile(model, to: (partial as NSString).appendingPathComponent(Self.masterFileName))
        }
        if let companionSource { try Checkpoint.copyCompanionFiles(from: companionSource, to: partial) }
        try reparam?.save(to: (partial as NSString).appendingPathComponent(PrefixReparam.fileName), step: state.step)
        var m = [Float](repeating: 0, count: model.parameters.count), v = m
        m.withUnsafeMutableBufferPointer { model.backend.download(optimizer.m, into: $0) }
        v.withUnsafeMutableBufferPointer { model.backend.download(optimizer.v, into: $0) }
        try m.withUnsafeBufferPointer { mp in
            try v.withUnsafeBufferPointer { vp in
                try SafeTensorsWriter.write(
                    [.init(name: "m", dtype: .F32, shape: [mp.count], payload: .floats(mp)),
                     .init(name: "v", dtype: .F32, shape: [vp.count], payload: .floats(vp))],
                    metadata: ["step": String(state.step)], to: (partial as NSString).appendingPathComponent("optimizer.safetensors"))
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(encoder.encode(state), to: (partial as NSString).appendingPathComponent("trainer_state.json"))
        try? fm.removeItem(atPath: previous)
        if fm.fileExists(atPath: dir) { try fm.moveItem(atPath: dir, toPath: previous) }
        try fm.moveItem(atPath: partial, toPath: dir)
        try? fm.removeItem(atPath: previous)
        lastCheckpointStep = state.step
    }

    private func appendMetrics(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        if !FileManager.default.fileExists(atPath: metricsPath) {
            FileManager.default.createFile(atPath: metricsPath, contents: nil)
        }
        if let handle = FileHandle(forWritingAtPath: metricsPath) {
            handle.seekToEndOfFile()
            handle.write(data + Data("\n".utf8))
            try? handle.close()
        }
    }

    /// Drops metrics logged after the checkpoint being resumed (they will be logged again).
    private func truncateMetrics(after step: Int) {
        guard let data = FileManager.default.contents(atPath: metricsPath) else { return }
        let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let s = object["step"] as? Int
            else { return false }
            return s <= step
        }
        try? atomicWrite(Data(kept.map { $0 + "\n" }.joined().utf8), to: metricsPath)
        lastCheckpointStep = step
    }
}

public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}
