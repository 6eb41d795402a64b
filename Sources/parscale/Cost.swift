import ArgumentParser
import Foundation
import ParScale
import ParScaleLaw

struct Cost: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the memory and latency of P streams against the dense model the law says is equivalent.",
        discussion: """
            Builds (random weights) three models: the P = 1 base, the same with P streams, and the dense \
            P = 1 model grown in width (hidden and intermediate together) to N_eq = N (1 + k ln P) \
            non-embedding parameters. Each is measured in a process of its own, for each batch size: peak \
            resident memory (weights, KV cache, activations, as the process sees them) and the time of \
            prefill + decoding every new token. Printed: each model's increase over the base, and the ratio \
            of the dense increase to the ParScale increase (the paper's "22x less memory increase, 6x less \
            latency increase" for 1.6B at P = 8, batch 1, which it estimated analytically). The base's \
            default shape: hidden 256, 6 layers, 8/2 heads, intermediate 2.75 x hidden.
            --preset paper-1.6b sets the paper's 1.6B shape (hidden 1536, 36 layers, 16/2 heads, \
            intermediate 8320, vocab 151936, tied, T = 48) and P = 8, k = 0.39; it needs about 12 GiB. \
            Measured on the CPU backend: the memory figure is the process's resident memory, which does \
            not see a GPU's own memory.
            """)

    enum Preset: String, ExpressibleByArgument { case paper16b = "paper-1.6b" }

    @OptionGroup var shape: ShapeFlags
    @Option(help: "Vocabulary size.") var vocab: Int = 256
    @Option(name: .customLong("prefix-tokens"), help: "Prefix tokens T.") var prefixTokens: Int = 48
    @Option(name: .customLong("P"), help: "Streams.") var streams: Int = 8
    @Option(help: "The law's k (default 0.39, the paper's Stack-V2-Python fit).") var k: Double?
    @Option(help: "Take k from a fitted sweep folder (DIR/fit.json, written by `parscale fit DIR`).") var fit: String?
    @Option(help: "Batch sizes, comma-separated (default 1,2,4,8; the paper preset: 1).") var batch: String?
    @Option(help: "Prompt tokens.") var prompt: Int = 64
    @Option(help: "Generated tokens (default 64; the paper preset: 4).") var new: Int?
    @Option(help: "Timed repetitions per model and batch (median; the paper preset uses 1).") var repeats: Int = 3
    @Option(help: "A preset shape.") var preset: Preset?
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Also save the measurements as JSON to this file (study saves DIR/cost.json).") var out: String?

    func validate() throws {
        if k != nil && fit != nil { throw ValidationError("give --k or --fit, not both") }
        if streams < 2 { throw ValidationError("--P must be at least 2, got \(streams)") }
    }

    func run() throws {
        let s = shape.shape(hidden: 256, layers: 6, heads: 8, kvHeads: 2, intermediate: nil)
        var base = ModelConfig(
            vocabSize: vocab, hiddenSize: s.hidden, intermediateSize: s.intermediate, numHiddenLayers: s.layers,
            numAttentionHeads: s.heads, numKeyValueHeads: s.kvHeads, tieWordEmbeddings: true, parscaleN: 1, parscaleNTokens: prefixTokens)
        var P = streams, lawK = k ?? 0.39
        var batches = try parseTokenList(batch ?? "1,2,4,8", flag: "--batch").map(Int.init)
        var newTokens = new ?? 64, repetitions = repeats
        if preset == .paper16b {
            base = ModelConfig(
                vocabSize: 151_936, hiddenSize: 1536, intermediateSize: 8320, numHiddenLayers: 36, numAttentionHeads: 16,
                numKeyValueHeads: 2, tieWordEmbeddings: true, parscaleN: 1, parscaleNTokens: 48)
            P = 8
            if k == nil && fit == nil { lawK = 0.39 }
            if batch == nil { batches = [1] }
            if new == nil { newTokens = 4 }
            repetitions = 1
        }
        if let fit { lawK = try FitSummary.load(fit).k }
        base = try validated(base)
        let report = try CostReport.measure(
            base: base, streams: P, k: lawK, batches: batches, prompt: prompt, new: newTokens
        ) { config, b, prompt, new in
            try Self.probeInOwnProcess(config: config, batch: b, prompt: prompt, new: new, repeats: repetitions)
        }
        if let out {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try atomicWrite(encoder.encode(report), to: out)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            Self.printReport(report)
        }
    }

    static func printReport(_ r: CostReport) {
        let N = Double(ParameterLayout(r.base).counts.nonEmbedding), P = r.parscale.streams
        print(String(
            format: "cost: base hidden %d, %d layers, N = %.3gM; P = %d (k = %.3f): N_eq = %.3gM -> dense hidden %d, intermediate %d (N = %.3gM); prompt %d, %d new tokens; %@",
            r.base.hiddenSize, r.base.numHiddenLayers, N / 1e6, P, r.k, N * (1 + r.k * log(Double(P))) / 1e6, r.dense.hiddenSize,
            r.dense.intermediateSize, Double(ParameterLayout(r.dense).counts.nonEmbedding) / 1e6, r.prompt, r.new, CPUBackend().name))
        for row in r.rows {
            print(String(
                format: "batch %d: memory base %@, P=%d +%@, dense +%@ -> ratio %.2f | time base %.3f s, P=%d +%.3f s, dense +%.3f s -> ratio %.2f",
                row.batch, Report.mib(row.base.peakBytes), P, Report.mib(row.parscale.peakBytes - row.base.peakBytes),
                Report.mib(row.dense.peakBytes - row.base.peakBytes), row.memoryIncreaseRatio, row.base.totalSeconds, P,
                row.parscale.totalSeconds - row.base.totalSeconds, row.dense.totalSeconds - row.base.totalSeconds,
                row.latencyIncreaseRatio))
        }
        print("paper (1.6B, P = 8, analytical): memory ratio 22.5, 12.8, 6.9, 3.6 and latency ratio 6.4, 3.3, 1.7, 0.9 at batch 1, 2, 4, 8")
    }


    /// Runs `parscale cost-probe` in a child process, so each model's peak memory is its own.
    static func probeInOwnProcess(config: ModelConfig, batch: Int, prompt: Int, new: Int, repeats: Int) throws -> CostModel.Measurement {
        let child = try runChild(
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
            [
                "cost-probe", "--config", String(decoding: try config.jsonData(), as: UTF8.self), "--batch", "\(batch)",
                "--prompt", "\(prompt)", "--new", "\(new)", "--repeats", "\(repeats)",
            ])
        guard child.status == 0 else {
            throw ValidationError("cost probe failed (batch \(batch), hidden \(config.hiddenSize), P = \(config.streams)): \(String(decoding: child.err, as: UTF8.self))")
        }
        return try JSONDecoder().decode(CostModel.Measurement.self, from: child.out)
    }
}
