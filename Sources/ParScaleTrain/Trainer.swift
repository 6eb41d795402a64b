import Foundation
import ParScale

/// The training loop (pretraining, and recycling's post-training) over a run folder:
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
        companionSource: String? = nil, acceptChangedData: Bool = false
    ) throws {
        let o = state.options
        guard o.batch > 0, o.sequence > 1, o.steps > 0, o.accumulate > 0, o.evalEvery > 0, o.checkpointEvery > 0 else {
            throw TrainingError("batch, steps, accumulate and the eval/checkpoint intervals must be positive, and the sequence at least 2")
        }
        guard o.streamDecorrelation >= 0 && o.streamDecorrelation.isFinite else {
            throw TrainingError("--stream-decorrelation must be a finite weight of at least 0, got \(o.streamDecorrelation)")
        }
        // Checked here too (the model checks each step) so that it fails before any file is written.
        if o.streamDecorrelation > 0, let problem = StreamDecorrelationOps.unsupported(streams: model.config.streams) {
            throw TrainingError(problem)
        }
        backend = model.backend
        self.runDirectory = runDirectory
        self.model = model
        self.state = state
        self.companionSource = companionSource
        validation = o
        // Gradients and AdamW's two moments: three copies of the parameters (plus the reparam's).
        try model.backend.reserve(3 * model.parameters.count, for: "the trainer's gradients and optimizer moments")
        // A tokenized corpus was made into the run's token cache before the run started.
        corpus = try o.data.corpus(encoding: encoding, cacheDirectory: Self.tokenCacheDirectory(runDirectory))
        // A run continues on the text it started with: its hash is recorded at the start and checked on resume.
        if let hash = corpus?.contentHash {
            if let recorded = o.data.contentHash, recorded != hash, !acceptChangedData {
                throw DataError(
                    "\(o.data.path ?? ""): the training text changed since this run started (content hash \(hash), "
                        + "recorded in trainer_state.json \(recorded)), so resuming would continue on other data. Restore the "
                        + "original text, or continue on the text as it is now with --resume --accept-changed-data "
                        + "(pretrain, recycle; in a sweep, remove the run's folder to train it again)")
            }
            self.state.options.data.contentHash = hash
        }
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
        do {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("\(runDirectory): cannot create the run folder (\(error.localizedDescription)); choose a writable --out")
        }
        try requireWritable(runDirectory)
        try? FileManager.default.removeItem(atPath: (runDirectory as NSString).appendingPathComponent("metrics.jsonl"))
        return try Trainer(
            runDirectory: runDirectory, model: model, state: TrainerState(options: options, recipe: recipe), encoding: encoding,
            companionSource: companionSource)
    }

    /// Continues the run saved in `runDirectory` exactly where its last checkpoint left it.
    /// `acceptChangedData`: continue although the text data's content hash differs from the one
    /// recorded when the run started (the new hash is recorded); otherwise that is an error.
    public static func resume(runDirectory: String, backend: Backend, acceptChangedData: Bool = false) throws -> Trainer {
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
        if FileManager.default.fileExists(atPath: runDirectory) { try requireWritable(runDirectory) }
        let trainer = try Trainer(
            runDirectory: runDirectory, model: model, state: state, encoding: encoding, companionSource: dir,
            acceptChangedData: acceptChangedData)
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

    /// What a killed process leaves behind, tidied before a run continues: a save killed between
    /// its two renames leaves only checkpoint.previous (put back); one killed after them, a
    /// checkpoint.previous beside the new checkpoint, perhaps half removed; one killed while writing,
    /// checkpoint.partial; an atomic write, its temporary file (`.NAME.tmp-PID-N`); `requireWritable`,
    /// its probe. Those are removed.
    static func recoverInterruptedSave(_ run: String) {
        let fm = FileManager.default
        let dir = checkpointDirectory(run), previous = dir + ".previous"
        if !fm.fileExists(atPath: dir) && fm.fileExists(atPath: previous) {
            try? fm.moveItem(atPath: previous, toPath: dir)
        }
        try? fm.removeItem(atPath: previous)
        try? fm.removeItem(atPath: dir + ".partial")
        for folder in [run, dir] {
            for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? []
            where name.hasPrefix(".") && (name.contains(".tmp-") || name.hasPrefix(writeCheckPrefix)) {
                try? fm.removeItem(atPath: (folder as NSString).appendingPathComponent(name))
            }
        }
    }

    static let writeCheckPrefix = ".parscale-write-check-"

    /// Fails early, naming the folder, when files cannot be made in the run folder (read-only,
    /// no permission): checkpoints and metrics could not be saved.
    static func requireWritable(_ run: String) throws {
        let probe = (run as NSString).appendingPathComponent("\(writeCheckPrefix)\(getpid())")
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw TrainingError("\(run): cannot write in the run folder (\(reason)); make it writable, or choose another --out")
        }
        close(fd)
        unlink(probe)
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
            let lr = o.optimizer.learningRate(step: state.step + 1, totalSteps: total)
            let (loss, norm) = try step(learningRate: lr)
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
            try appendMetrics([
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
                try appendMetrics(record)
                log(String(
                    format: "eval step %d | val loss %.4f | %.4f bits/byte%@", state.step, e.validationLoss, e.bitsPerByte,
                    e.taskAccuracy.map { String(format: " | task accuracy %.1f%%", 100 * $0) } ?? ""))
            }
            if state.step % o.checkpointEvery == 0 || state.step == total { try saveCheckpoint() }
        }
        if state.step != lastCheckpointStep { try saveCheckpoint() }
        return lastEvaluation
    }

    /// Scalars of a step where the backend computes: [0] the loss, [1] the squared gradient norm.
    private lazy var stepScalars = StepScalars(backend: backend, count: 2)

    /// One optimizer step at `learningRate`: the micro-batches' forward and backward, the global
    /// gradient norm, clipping and AdamW are all recorded before the host reads the loss and the
    /// norm once (on a GPU, one submission and one wait; the reparameterisation, when there is one,
    /// still runs on the host). A non-finite gradient norm updates nothing (clipping and AdamW skip on
    /// the device); the caller stops on a non-finite loss or norm.
    func step(learningRate lr: Double) throws -> (loss: Double, norm: Double) {
        let o = state.options
        backend.fill(gradients, value: 0)
        backend.fill(stepScalars.storage, value: 0)
        for _ in 0..<o.accumulate {
            let (inputs, targets) = stream.nextBatch(batch: o.batch, sequence: o.sequence)
            try model.accumulateGradients(
                inputs: inputs, targets: targets, batch: o.batch, sequence: o.sequence, gradients: gradients,
                gradScale: 1 / Float(o.accumulate), trainBackbone: !o.freezeBackbone,
                streamDecorrelation: Float(o.streamDecorrelation), loss: stepScalars[0], microBatches: o.accumulate)
        }
        // The reparameterisation's gradients, norm, update and fold into the prefixes are recorded
        // with the rest: the step is one submission, and its one wait reads the loss and the norm.
        reparam?.backward(modelGradients: gradients, backend: backend)
        optimizer.record(
            model: model, gradients: gradients, learningRate: lr, squaredNorm: stepScalars[1],
            extraGradients: reparam.map { [$0.gradientTensor] } ?? [])
        if let reparam {
            reparam.update(
                learningRate: lr * o.optimizer.parscaleLRScale, step: optimizer.step, options: o.optimizer,
                squaredNorm: stepScalars[1])
            reparam.fold(into: model)
        }
        let values = backend.readScalars(stepScalars)
        return (values[0], optimizer.finish(squaredNorm: values[1]))
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
        do { try writeCheckpoint(to: partial) } catch {
            // A full disk or a file size limit: the last complete checkpoint stays as it was.
            try? fm.removeItem(atPath: partial)
            throw TrainingError(
                "step \(state.step): cannot write the checkpoint (\(error)); "
                    + (lastCheckpointStep >= 0
                        ? "the previous checkpoint (step \(lastCheckpointStep)) in \(dir) is intact; make room (free space, a higher file size limit), then --resume"
                        : "no checkpoint was saved before this one"))
        }
        try? fm.removeItem(atPath: previous)
        if fm.fileExists(atPath: dir) { try fm.moveItem(atPath: dir, toPath: previous) }
        try fm.moveItem(atPath: partial, toPath: dir)
        try? fm.removeItem(atPath: previous)
        lastCheckpointStep = state.step
    }

    /// The whole checkpoint into the folder `partial`.
    private func writeCheckpoint(to partial: String) throws {
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
    }

    private func appendMetrics(_ record: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) + Data("\n".utf8)
        let fd = open(metricsPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("\(metricsPath): cannot open the metrics file (\(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard written == data.count else {
            throw TrainingError("\(metricsPath): cannot append metrics (\(written < 0 ? String(cString: strerror(errno)) : "short write"))")
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
