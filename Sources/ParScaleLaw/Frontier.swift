import Foundation
import ParScale
import ParScaleTrain

/// Inference FLOPs counted from the shape: 2 per multiply-add of every matrix product (the
/// q/k/v, o, gate/up and down projections of every stream, attention scores and their weighted
/// values over the prefix and the causal real tokens, the aggregation MLP, the output head).
/// Norms, RoPE, activations, softmax and biases are left out (under 1% at these shapes).
public enum FrontierFLOPs {
    /// One forward of `tokens` new tokens of one sequence after `past` tokens in the cache, all P
    /// streams, with logits for `headRows` of them.
    public static func forward(_ c: ModelConfig, tokens S: Int, past: Int, headRows: Int) -> Double {
        let P = Double(c.streams), H = Double(c.hiddenSize), I = Double(c.intermediateSize), V = Double(c.vocabSize)
        let NH = Double(c.numAttentionHeads), KVH = Double(c.numKeyValueHeads), hd = Double(c.headDim)
        let T = Double(c.prefixTokens), s = Double(S), before = Double(past)
        let projections = H * (NH + 2 * KVH) * hd + NH * hd * H + H * 2 * I + I * H
        // Query i (0-based) of a stream sees T prefix slots and past + i + 1 real tokens; QK^T and
        // the weighted sum of V are NH * hd multiply-adds per key each.
        let keys = s * T + s * before + s * (s + 1) / 2
        let layer = 2 * P * s * projections + 4 * NH * hd * P * keys
        let aggregation = c.streams > 1 ? 2 * s * (P * H * H + H * P) : 0
        return Double(c.numHiddenLayers) * layer + aggregation + 2 * Double(headRows) * H * V
    }

    /// FLOPs to answer one question: the prompt's prefill once (the n samples share it; its last
    /// logits give every sample's first token) and then, for each sample, one single-token forward per
    /// generated token after the first (`generated[k]` tokens, the stop token included).
    public static func perQuestion(_ c: ModelConfig, prompt: Int, generated: [Int]) -> Double {
        var total = forward(c, tokens: prompt, past: 0, headRows: 1)
        for g in generated where g > 1 {
            for j in 0..<(g - 1) { total += forward(c, tokens: 1, past: prompt + j, headRows: 1) }
        }
        return total
    }

    /// Bytes of the KV cache `Generator.generate` allocates for `batch` sequences of `capacity`
    /// tokens (float32; the prefix slots included).
    public static func kvCacheBytes(_ c: ModelConfig, batch: Int, capacity: Int) -> Int {
        c.streams * batch * c.numHiddenLayers * 2 * c.numKeyValueHeads * (c.prefixTokens + capacity) * c.headDim * 4
    }
}

/// A 95% interval for a proportion: Wilson's score interval (it stays inside [0, 1] and is not
/// empty at 0 or all correct, unlike mean ± 1.96 SE).
public func wilsonInterval(correct: Int, total: Int, z: Double = 1.959964) -> (low: Double, high: Double) {
    guard total > 0 else { return (0, 1) }
    let n = Double(total), p = Double(correct) / n, z2 = z * z
    let center = (p + z2 / (2 * n)) / (1 + z2 / n)
    let half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
    // Exact at the ends (0 and 1 in closed form; rounding would leave 1 - 1e-16).
    return (correct == 0 ? 0 : max(0, center - half), correct == total ? 1 : min(1, center + half))
}

/// One generated answer: its text (before the newline), the model's total log-probability of its
/// tokens (the stop token included) and how many tokens it took.
public struct FrontierSample: Codable, Equatable, Sendable {
    public var answer: String
    public var logProbability: Double
    public var tokens: Int
    public var meanLogProbability: Double { logProbability / Double(max(1, tokens)) }
    public init(answer: String, logProbability: Double, tokens: Int) {
        (self.answer, self.logProbability, self.tokens) = (answer, logProbability, tokens)
    }
}

/// How an answer is chosen from n samples.
public enum FrontierStrategy: String, Codable, CaseIterable, Sendable {
    case greedy
    /// The most frequent answer; a tie goes to the answer whose samples have the larger total
    /// log-probability (summed over those samples), then to the one drawn first.
    case vote
    /// The sample with the largest mean token log-probability (first drawn on ties).
    case likelihood
    /// The first sample the task checker accepts (else the likelihood pick): pass@n, the accuracy
    /// an ideal verifier would reach.
    case verifier

    public var label: String {
        switch self {
        case .greedy: return "greedy"
        case .vote: return "majority"
        case .likelihood: return "best-of-n (log-prob)"
        case .verifier: return "best-of-n (checker)"
        }
    }

    /// The chosen sample's index in `samples` (not empty).
    public func pick(_ samples: [FrontierSample], verify: (String) -> Bool) -> Int {
        switch self {
        case .greedy:
            return 0
        case .vote:
            var order: [String] = [], count: [String: Int] = [:], mass: [String: Double] = [:], first: [String: Int] = [:]
            for (i, s) in samples.enumerated() {
                if count[s.answer] == nil { order.append(s.answer); first[s.answer] = i }
                count[s.answer, default: 0] += 1
                mass[s.answer, default: 0] += s.logProbability
            }
            let best = order.max { a, b in count[a]! != count[b]! ? count[a]! < count[b]! : mass[a]! < mass[b]! }!
            return first[best]!
        case .likelihood:
            var best = 0
            for i in samples.indices where samples[i].meanLogProbability > samples[best].meanLogProbability { best = i }
            return best
        case .verifier:
            return samples.firstIndex { verify($0.answer) } ?? FrontierStrategy.likelihood.pick(samples, verify: verify)
        }
    }
}

/// What one model (at one weight precision) answered to each prompt.
public struct FrontierQuestion: Codable, Sendable {
    public var promptTokens: Int
    public var greedy: FrontierSample
    /// The largest n's samples; a smaller n uses the first n of them (the same seeds a run with n
    /// alone would use).
    public var samples: [FrontierSample]
}

/// Measured seconds per question for n answers: one after another at batch 1, and as one batch.
public struct FrontierLatency: Codable, Sendable {
    public var n: Int
    public var sequentialSeconds: Double
    public var batchedSeconds: Double
}

/// Peak resident memory measured for one model at one batch size (process peak minus the resident
/// memory before the model; `Cost.probe`, in a process of its own).
public struct FrontierMemory: Codable, Sendable {
    public var batch: Int
    public var measuredBytes: Int
}

/// Everything measured for one (model, dtype): DIR/cells/NAME-DTYPE.json, saved as it goes.
public struct FrontierCell: Codable, Sendable {
    public var model: String
    public var dtype: String
    public var config: ModelConfig
    public var questions: [FrontierQuestion] = []
    public var latency: [FrontierLatency]?
    public var memory: [FrontierMemory]?
    public var isComplete: Bool { latency != nil && memory != nil }
}

/// The settings every cell of a frontier folder shares (DIR/frontier-plan.json).
public struct FrontierPlan: Codable, Equatable, Sendable {
    public var prompts: Int
    public var samples: [Int]
    public var temperature: Double
    public var dtypes: [String]
    public var seed: UInt64
    public var maxNewTokens: Int
    /// Prompts timed at each n (the first ones; the median over them is kept).
    public var latencyPrompts: Int
    public var dataSeed: UInt64 = 0
    public init(prompts: Int, samples: [Int], temperature: Double, dtypes: [String], seed: UInt64, maxNewTokens: Int, latencyPrompts: Int) {
        (self.prompts, self.samples, self.temperature, self.dtypes) = (prompts, samples, temperature, dtypes)
        (self.seed, self.maxNewTokens, self.latencyPrompts) = (seed, maxNewTokens, latencyPrompts)
    }
    public var maxSamples: Int { samples.max() ?? 1 }
}

public enum Frontier {
    static let newline: Int32 = 10

    public static func planPath(_ dir: String) -> String { (dir as NSString).appendingPathComponent("frontier-plan.json") }
    public static func cellPath(_ dir: String, model: String, dtype: String) -> String {
        (dir as NSString).appendingPathComponent("frontier-cells/\(model)-\(dtype).json")
    }

    /// The evaluation prompts: the first `count` held-out examples of the synthetic corpus (the
    /// validation split, which training never reads).
    public static func prompts(_ plan: FrontierPlan) -> [TaskExample] { heldOutTasks(seed: plan.dataSeed, count: plan.prompts) }

    /// Saves the plan, or checks it equals the one already there (cells must be comparable).
    public static func prepare(_ plan: FrontierPlan, in dir: String) throws {
        try FileManager.default.createDirectory(atPath: (dir as NSString).appendingPathComponent("frontier-cells"), withIntermediateDirectories: true)
        if let data = FileManager.default.contents(atPath: planPath(dir)) {
            guard (try? JSONDecoder().decode(FrontierPlan.self, from: data)) == plan else {
                throw TrainingError("\(planPath(dir)) holds other frontier settings; use another --out, or the same flags as before")
            }
            return
        }
        try atomicWrite(encoded(plan), to: planPath(dir))
    }

    static func encoded<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(value)
    }

    /// A copy of `model` with every weight rounded to `dtype` (F32, BF16 or F16) and kept in float32.
    public static func rounded(_ model: ParScaleModel, to dtype: SafeTensorsDType) -> ParScaleModel {
        guard dtype != .F32 else { return model }
        var host = [Float](repeating: 0, count: model.parameters.count)
        host.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        for i in host.indices { host[i] = dtype.rounded(host[i]) }
        let parameters = model.backend.allocate(host.count)
        host.withUnsafeBufferPointer { model.backend.upload($0, to: parameters) }
        return ParScaleModel(config: model.config, backend: model.backend, parameters: parameters)
    }

    /// Generates `count` answers to `prompt` in one batch (greedy when `temperature` is 0).
    static func answers(
        _ model: ParScaleModel, prompt: [Int32], count: Int, temperature: Double, seed: UInt64, maxNewTokens: Int
    ) throws -> [FrontierSample] {
        let result = try Generator.generate(
            model: model, prompts: Array(repeating: prompt, count: count), maxNewTokens: maxNewTokens,
            sampling: SamplingOptions(temperature: Float(temperature), seed: seed), stopIds: [newline])
        return zip(result.tokens, result.logProbabilities).map { tokens, logProbabilities in
            FrontierSample(
                answer: ByteTokenizer.decode(Array(tokens.prefix { $0 != newline })),
                logProbability: logProbabilities.reduce(0) { $0 + Double($1) }, tokens: tokens.count)
        }
    }

    /// The seed of question `index`'s samples; sample k uses this + k (`Generator.generate`).
    static func sampleSeed(_ plan: FrontierPlan, question index: Int) -> UInt64 {
        plan.seed &* 1_000_003 &+ UInt64(index) &* 65_536
    }

    public typealias MemoryProbe = (_ config: ModelConfig, _ batch: Int, _ prompt: Int, _ new: Int) throws -> Int

    /// Measures one (model, dtype) cell, continuing a saved one: answers to every prompt (saved every
    /// 10 prompts), then latency at each n, then peak memory through `probe`.
    public static func measure(
        model name: String, directory: String, dtype: SafeTensorsDType, plan: FrontierPlan, in dir: String,
        backend: Backend, probe: MemoryProbe, log: (String) -> Void
    ) throws -> FrontierCell {
        let path = cellPath(dir, model: name, dtype: dtype.rawValue)
        let config = try Checkpoint.loadConfig(directory)
        var cell = FrontierCell(model: name, dtype: dtype.rawValue, config: config)
        if let data = FileManager.default.contents(atPath: path) {
            guard let saved = try? JSONDecoder().decode(FrontierCell.self, from: data) else {
                throw TrainingError("\(path) is not a frontier cell (unreadable JSON); remove it to measure again")
            }
            guard saved.config == config else {
                throw TrainingError("\(path) was measured on another model than \(directory); remove it or use another --out")
            }
            cell = saved
            if cell.isComplete { log("\(name) \(dtype.rawValue): done before, skipped"); return cell }
        }
        let model = rounded(try Checkpoint.load(directory, backend: backend), to: dtype)
        let examples = prompts(plan)
        let start = Date()
        for index in cell.questions.count..<examples.count {
            let prompt = ByteTokenizer.encode(examples[index].prompt)
            let greedy = try answers(model, prompt: prompt, count: 1, temperature: 0, seed: 0, maxNewTokens: plan.maxNewTokens)[0]
            let samples = try answers(
                model, prompt: prompt, count: plan.maxSamples, temperature: plan.temperature,
                seed: sampleSeed(plan, question: index), maxNewTokens: plan.maxNewTokens)
            cell.questions.append(FrontierQuestion(promptTokens: prompt.count, greedy: greedy, samples: samples))
            if (index + 1) % 10 == 0 || index + 1 == examples.count {
                try atomicWrite(encoded(cell), to: path)
            }
            if (index + 1) % 50 == 0 || index + 1 == examples.count {
                let correct = cell.questions.enumerated().filter { $1.greedy.answer == examples[$0].answer }.count
                log(String(format: "%@ %@: %d/%d prompts, greedy %d correct, %.0f s", name, dtype.rawValue, index + 1,
                           examples.count, correct, Date().timeIntervalSince(start)))
            }
        }
        // Latency: greedy and each n on the first prompts, batched and one answer at a time; the
        // median over prompts, so a burst of other work on a shared machine moves it less.
        let timed = examples.prefix(max(1, plan.latencyPrompts)).map { ByteTokenizer.encode($0.prompt) }
        func medianSeconds(_ answer: (_ index: Int, _ prompt: [Int32]) throws -> Void) rethrows -> Double {
            var times: [Double] = []
            for (i, p) in timed.enumerated() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try answer(i, p)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            times.sort()
            return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        }
        var latency = [FrontierLatency]()
        let greedySeconds = try medianSeconds { _, p in
            _ = try answers(model, prompt: p, count: 1, temperature: 0, seed: 0, maxNewTokens: plan.maxNewTokens)
        }
        latency.append(FrontierLatency(n: 0, sequentialSeconds: greedySeconds, batchedSeconds: greedySeconds))
        for n in plan.samples {
            let batched = try medianSeconds { i, p in
                _ = try answers(model, prompt: p, count: n, temperature: plan.temperature, seed: sampleSeed(plan, question: i), maxNewTokens: plan.maxNewTokens)
            }
            let sequential = try medianSeconds { i, p in
                for k in 0..<n {
                    _ = try answers(model, prompt: p, count: 1, temperature: plan.temperature,
                                    seed: sampleSeed(plan, question: i) &+ UInt64(k), maxNewTokens: plan.maxNewTokens)
                }
            }
            latency.append(FrontierLatency(n: n, sequentialSeconds: sequential, batchedSeconds: batched))
        }
        cell.latency = latency
        // Memory at each batch size the strategies use (1 for greedy), prompt of the mean length.
        let meanPrompt = Int((Double(cell.questions.map(\.promptTokens).reduce(0, +)) / Double(max(1, cell.questions.count))).rounded())
        cell.memory = try Set([1] + plan.samples).sorted().map { b in
            FrontierMemory(batch: b, measuredBytes: try probe(config, b, max(1, meanPrompt), plan.maxNewTokens))
        }
        try atomicWrite(encoded(cell), to: path)
        log(String(format: "%@ %@: done in %.0f s", name, dtype.rawValue, Date().timeIntervalSince(start)))
        return cell
    }
}
