import Foundation

/// How the next token is chosen from logits. temperature 0 means greedy (argmax, first on ties,
/// as torch.argmax); otherwise softmax(logits / temperature), cut to the top-k tokens and to the
/// smallest set whose probability reaches top-p, then drawn with a seeded generator.
public struct SamplingOptions: Sendable, Equatable {
    public var temperature: Float = 0
    public var topK: Int = 0  // 0: no cut
    public var topP: Float = 1  // 1: no cut
    public var seed: UInt64 = 0
    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }
    public static let greedy = SamplingOptions()
}

public struct Sampler {
    public let options: SamplingOptions
    private var rng: SeededGenerator

    public init(_ options: SamplingOptions) {
        self.options = options
        rng = SeededGenerator(seed: options.seed)
    }

    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        if options.temperature <= 0 { return Self.argmax(logits) }
        // Candidates sorted by logit, descending (ties by index, for reproducibility).
        var order = Array(logits.indices)
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if options.topK > 0 && options.topK < order.count { order.removeSubrange(options.topK...) }
        let top = logits[order[0]]
        var probs = order.map { Double(expf((logits[$0] - top) / options.temperature)) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        if options.topP < 1 {
            var cumulative = 0.0, keep = 0
            while keep < probs.count {
                cumulative += probs[keep]
                keep += 1
                if cumulative >= Double(options.topP) { break }
            }
            order.removeSubrange(keep...)
            probs.removeSubrange(keep...)
        }
        let mass = probs.reduce(0, +)
        var u = Double(rng.nextUniform()) * mass
        for (i, p) in probs.enumerated() {
            u -= p
            if u < 0 { return Int32(order[i]) }
        }
        return Int32(order[order.count - 1])
    }
}

/// Byte-level text <-> ids: ids 0-255 are the UTF-8 bytes. Models with another vocabulary take
/// raw token ids (`--prompt-tokens`).
public enum ByteTokenizer {
    public static func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }

    /// Ids that are not bytes are shown as <id>; invalid UTF-8 is repaired, as a terminal would.
    public static func decode(_ ids: [Int32]) -> String {
        var out = "", bytes: [UInt8] = []
        func flush() {
            out += String(decoding: bytes, as: UTF8.self)
            bytes.removeAll()
        }
        for id in ids {
            if (0..<256).contains(id) {
                bytes.append(UInt8(id))
            } else {
                flush()
                out += "<\(id)>"
            }
        }
        flush()
        return out
    }
}

/// Prefill then one token per step for every sequence and all P streams at once, on one cache
/// allocated for prompt + new tokens.
public enum Generator {
    public struct Result {
        public var tokens: [[Int32]]  // new tokens per sequence
        /// log softmax(logits)[token] of each new token: the model's own (untempered) probability.
        public var logProbabilities: [[Float]]
        public var prefillSeconds: Double
        public var decodeSeconds: Double  // every step after the first token
    }

    /// A sequence ends after `maxNewTokens` or after it emits one of `stopIds` (kept as its last
    /// token, as transformers' generate does); generation ends when every sequence has ended.
    public static func generate(
        model: ParScaleModel, prompts: [[Int32]], maxNewTokens: Int, sampling: SamplingOptions,
        stopIds: Set<Int32> = [], onStep: (([Int32]) -> Void)? = nil
    ) throws -> Result {
        let B = prompts.count
        let cache = try model.makeCache(batch: B, capacity: (prompts.first?.count ?? 0) + maxNewTokens)
        var samplers = (0..<B).map { b in
            var options = sampling
            options.seed = sampling.seed &+ UInt64(b)
            return Sampler(options)
        }
        let V = model.config.vocabSize
        var generated = [[Int32]](repeating: [], count: B)
        var logProbabilities = [[Float]](repeating: [], count: B)
        var stopped = [Bool](repeating: false, count: B)
        var start = DispatchTime.now().uptimeNanoseconds
        var logits = try model.forward(tokens: prompts, cache: cache, logits: .last)
        let prefill = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        start = DispatchTime.now().uptimeNanoseconds
        for step in 0..<maxNewTokens {
            let next = logits.withUnsafeBufferPointer { all in
                (0..<B).map { b in samplers[b].sample(UnsafeBufferPointer(rebasing: all[b * V..<(b + 1) * V])) }
            }
            for b in 0..<B where !stopped[b] {
                generated[b].append(next[b])
                logProbabilities[b].append(logits.withUnsafeBufferPointer {
                    logSoftmax(UnsafeBufferPointer(rebasing: $0[b * V..<(b + 1) * V]), at: Int(next[b]))
                })
                stopped[b] = stopIds.contains(next[b])
            }
            onStep?(next)
            if stopped.allSatisfy({ $0 }) { break }
            if step + 1 < maxNewTokens {
                logits = try model.forward(tokens: next.map { [$0] }, cache: cache, logits: .last)
            }
        }
        let decode = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(tokens: generated, logProbabilities: logProbabilities, prefillSeconds: prefill, decodeSeconds: decode)
    }

    /// log softmax(logits)[index], with the maximum subtracted first so exp cannot overflow.
    public static func logSoftmax(_ logits: UnsafeBufferPointer<Float>, at index: Int) -> Float {
        let top = logits.max() ?? 0
        var sum: Double = 0
        for x in logits { sum += Double(expf(x - top)) }
        return logits[index] - top - Float(log(sum))
    }
}
