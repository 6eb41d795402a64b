import Foundation
import ParScale

/// The measured cost comparison of the paper's Figure 1 / Table: going from a P = 1 model to P
/// streams, against growing the P = 1 model to the dense size the law says is equivalent.
public enum CostModel {
    /// The dense model with `targetNonEmbedding` parameters, grown from `base` by widening hidden and
    /// intermediate sizes together (as the paper grows width), heads kept, hidden a multiple of
    /// 2 * heads (even head_dim).
    public static func grownDense(from base: ModelConfig, targetNonEmbedding target: Double) -> ModelConfig {
        func make(_ factor: Double) -> ModelConfig {
            var c = base
            c.parscaleN = 1
            let unit = 2 * c.numAttentionHeads
            c.hiddenSize = max(unit, Int((Double(base.hiddenSize) * factor / Double(unit)).rounded()) * unit)
            c.intermediateSize = max(8, Int((Double(base.intermediateSize) * factor / 8).rounded()) * 8)
            return c
        }
        var lo = 1.0, hi = 4.0
        while Double(ParameterLayout(make(hi)).counts.nonEmbedding) < target { hi *= 2 }
        for _ in 0..<50 {
            let mid = (lo + hi) / 2
            if Double(ParameterLayout(make(mid)).counts.nonEmbedding) < target { lo = mid } else { hi = mid }
        }
        let a = make(lo), b = make(hi)
        let da = abs(Double(ParameterLayout(a).counts.nonEmbedding) - target)
        let db = abs(Double(ParameterLayout(b).counts.nonEmbedding) - target)
        return da <= db ? a : b
    }

    /// What one probe process measured.
    public struct Measurement: Codable, Sendable {
        public var batch: Int
        public var peakBytes: Int  // peak resident memory minus the process's resident memory before the model
        public var weightBytes: Int
        public var kvCacheBytes: Int
        public var prefillSeconds: Double
        public var decodeSecondsPerToken: Double
        public var totalSeconds: Double  // prefill + every decode step
    }

    /// Resident memory now and at its peak, from /proc/self/status (Linux), in bytes.
    public static func residentMemory() -> (current: Int, peak: Int) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        return (statusField(text, "VmRSS:"), statusField(text, "VmHWM:"))
    }

    /// A "Name:\t 1234 kB" field of /proc/self/status, in bytes. The padding before the number
    /// shrinks as it grows (none from 10 GB on), so the line is split on any whitespace.
    static func statusField(_ text: String, _ name: String) -> Int {
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return (words.dropFirst().lazy.compactMap { Int($0) }.first ?? 0) * 1024
        }
        return 0
    }

    /// Builds `config` with random weights and measures batch-B prefill of `prompt` tokens and
    /// `new` decode steps. Run it in a process of its own: the peak is the process's.
    /// The timing is the median of `repeats` runs, each on a fresh cache.
    public static func probe(config: ModelConfig, batch: Int, prompt: Int, new: Int, repeats: Int = 3) throws -> Measurement {
        let before = residentMemory().current
        let backend = CPUBackend()
        let layout = ParameterLayout(config)
        let parameters = backend.allocate(layout.totalCount)
        // Random weights suffice for timing; a cheap generator keeps start-up short at 1.6B.
        var state: UInt32 = 12345
        let p = (parameters.buffer as! HostBuffer).pointer
        for i in 0..<layout.totalCount {
            state = state &* 1_664_525 &+ 1_013_904_223
            p[i] = (Float(state >> 9) / 8_388_608 - 0.5) * 0.04
        }
        for e in layout.entries where e.name.hasSuffix("norm.weight") { backend.fill(parameters.slice(e), value: 1) }
        let model = ParScaleModel(config: config, backend: backend, parameters: parameters)
        let ids = (0..<batch).map { b in (0..<prompt).map { Int32(($0 * 31 + b * 7) % config.vocabSize) } }
        let V = config.vocabSize
        var runs: [(prefill: Double, total: Double)] = []
        var kvBytes = 0
        for _ in 0..<max(1, repeats) {
            let cache = try model.makeCache(batch: batch, capacity: prompt + new)
            kvBytes = cache.floatCount * 4
            let start = DispatchTime.now().uptimeNanoseconds
            var logits = try model.forward(tokens: ids, cache: cache, logits: .last)
            let prefill = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            for _ in 0..<new {
                let next = (0..<batch).map { b in
                    logits.withUnsafeBufferPointer { Sampler.argmax(UnsafeBufferPointer(rebasing: $0[b * V..<(b + 1) * V])) }
                }
                logits = try model.forward(tokens: next.map { [$0] }, cache: cache, logits: .last)
            }
            runs.append((prefill, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
        }
        let (prefill, total) = runs.sorted { $0.total < $1.total }[runs.count / 2]
        return Measurement(
            batch: batch, peakBytes: residentMemory().peak - before, weightBytes: layout.totalCount * 4,
            kvCacheBytes: kvBytes, prefillSeconds: prefill,
            decodeSecondsPerToken: new > 0 ? (total - prefill) / Double(new) : 0, totalSeconds: total)
    }
}

/// The result of a cost comparison (saved as DIR/cost.json by `study`, read by `report`).
public struct CostReport: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var batch: Int
        public var base: CostModel.Measurement
        public var parscale: CostModel.Measurement
        public var dense: CostModel.Measurement
        /// (dense - base) / (ParScale - base): how many times less ParScale adds.
        public var memoryIncreaseRatio: Double {
            Double(dense.peakBytes - base.peakBytes) / Double(parscale.peakBytes - base.peakBytes)
        }
        public var latencyIncreaseRatio: Double {
            (dense.totalSeconds - base.totalSeconds) / (parscale.totalSeconds - base.totalSeconds)
        }
    }
    public var base: ModelConfig
    public var parscale: ModelConfig
    public var dense: ModelConfig
    public var k: Double
    public var prompt: Int
    public var new: Int
    public var rows: [Row]
    /// The paper's analytical ratios for 1.6B at P = 8 (batch 1, 2, 4, 8), for comparison.
    public static let paperMemoryRatios = [22.5, 12.8, 6.9, 3.6]
    public static let paperLatencyRatios = [6.4, 3.3, 1.7, 0.9]
    public static let paperBatches = [1, 2, 4, 8]

    public typealias Probe = (_ config: ModelConfig, _ batch: Int, _ prompt: Int, _ new: Int) throws -> CostModel.Measurement

    /// Measures base, P-stream and law-equivalent dense models at each batch size through `probe`.
    public static func measure(
        base: ModelConfig, streams P: Int, k: Double, batches: [Int], prompt: Int, new: Int, probe: Probe
    ) throws -> CostReport {
        var parscale = base
        parscale.parscaleN = P
        let N = Double(ParameterLayout(base).counts.nonEmbedding)
        let dense = CostModel.grownDense(from: base, targetNonEmbedding: N * (1 + k * log(Double(P))))
        let rows = try batches.map { b in
            Row(batch: b, base: try probe(base, b, prompt, new), parscale: try probe(parscale, b, prompt, new), dense: try probe(dense, b, prompt, new))
        }
        return CostReport(base: base, parscale: parscale, dense: dense, k: k, prompt: prompt, new: new, rows: rows)
    }

    public static func path(_ dir: String) -> String { (dir as NSString).appendingPathComponent("cost.json") }
}
