import ArgumentParser
import Foundation
import ParScale
import ParScaleVulkan

struct BenchDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Prefill tokens/s and batch-1 decode ms/token for several P on one model shape.",
        discussion: """
            Random weights of the given shape (default hidden 1024, 8 layers, 16/4 heads, intermediate 2816: \
            ~360 MB of float32 weights, far beyond the CPU caches, so decode is bound by reading the weights). \
            The P streams of a sequence run as one batch, so every weight is read once per step for all \
            P rows: the ratio column shows what P costs against P = 1 measured in the same run. Figures \
            are medians. Roofline (CPU rows): the least time a decode step can take on this machine, the \
            larger of its memory time (bytes read per step: every weight but the embedding table, plus the \
            prefix and KV cache, over the read bandwidth measured in this run: a sum over 256 MiB on all \
            cores) and its arithmetic time (FLOPs per step: 2 x P rows x every matrix weight, plus \
            attention over the T prefix slots and the context, over the sgemm GFLOP/s of this run, \
            1024^3); 'reached' is roofline / measured. 'prefill' is the prefill's model FLOPs (bench train's \
            forward count for one sequence of the prompt, the output head on the last token only) per \
            second as a fraction of the same sgemm rate: the P streams of a prompt are P times the rows \
            of one matrix product, so prefill should run near that rate.
            """)

    @OptionGroup var shape: ShapeFlags
    @Option(help: "Vocabulary size.") var vocab: Int = 256
    @Option(name: .customLong("prefix-tokens"), help: "Prefix tokens T.") var prefixTokens: Int = 48
    @Option(name: .customLong("P"), help: "Stream counts to measure, comma-separated.") var streams: String = "1,2,4,8"
    @OptionGroup var backend: BackendFlag
    @Option(help: "Prompt length for prefill.") var prompt: Int = 128
    @Option(help: "Decode steps measured.") var new: Int = 32
    @Option(help: "Prefill repetitions.") var repeats: Int = 3
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let pList = try parseTokenList(streams, flag: "--P").map(Int.init)
        guard pList.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--P values must be >= 1") }
        let s = shape.shape(hidden: 1024, layers: 8, heads: 16, kvHeads: 4, intermediate: 2816)
        var backends = try benchBackends(backend)
        // On Vulkan, also the other kernel for few-row products: linear_rows.comp against the 32 x 32 tiles.
        if let vulkan = backends.last as? VulkanBackend {
            let other = try VulkanBackend(device: vulkan.device)
            other.useFewRowsKernel.toggle()
            backends.append(other)
        }
        let peak = CPUBackend.measureSgemmGFLOPs()
        let bandwidth = CPUBackend.measureReadBandwidthGBs()
        var rows: [[String: Any]] = []
        if !json {
            print(String(format: "roofline: read bandwidth %.1f GB/s (256 MiB, all cores), sgemm 1024^3 %.1f GFLOP/s", bandwidth, peak))
            print("bench decode: hidden \(s.hidden), layers \(s.layers), heads \(s.heads)/\(s.kvHeads), intermediate \(s.intermediate), vocab \(vocab), T \(prefixTokens), prompt \(prompt), \(new) decode steps, batch 1, \(backends.map(\.name).joined(separator: " and "))")
            print("   P  backend    weights    prefill tok/s   decode ms/token   decode vs P=1   memory ms   FLOP ms   reached   prefill")
        }
        var baseline: [String: Double] = [:]
        for P in pList {
            for backend in backends {
                let config = try s.config(vocab: vocab, tied: false, streams: P, prefixTokens: prefixTokens)
                if let reason = benchLimitation(config, backend) { throw ValidationError(reason) }
                let model = ParScaleModel.initialized(config, backend: backend, options: InitOptions(seed: 1))
                let layout = model.layout
                var rng = SeededGenerator(seed: 7)
                let promptIds = (0..<prompt).map { _ in Int32(rng.next() % UInt64(vocab)) }

                var prefillTimes: [Double] = []
                var decodeTimes: [Double] = []
                var decodeCounters = VulkanCounters()
                for _ in 0..<max(1, repeats) {
                    let cache = try model.makeCache(batch: 1, capacity: prompt + new + 1)
                    var start = DispatchTime.now().uptimeNanoseconds
                    var logits = try model.forward(tokens: [promptIds], cache: cache, logits: .last)
                    prefillTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                    for _ in 0...new where decodeTimes.count < new * max(1, repeats) {
                        let next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                        let before = benchCounters(backend)
                        start = DispatchTime.now().uptimeNanoseconds
                        logits = try model.forward(tokens: [[next]], cache: cache, logits: .last)
                        decodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                        if let before, let after = benchCounters(backend) { decodeCounters = decodeCounters + (after - before) }
                    }
                }
                let prefillRate = Double(prompt) / median(prefillTimes)
                let decodeMs = median(decodeTimes) * 1000
                let kind = benchKind(backend)
                if baseline[kind] == nil { baseline[kind] = decodeMs }
                let ratio = decodeMs / baseline[kind]!
                var row: [String: Any] = [
                    "P": P, "backend": kind, "parameters": layout.totalCount, "prefill_tokens_per_s": prefillRate,
                    "decode_ms_per_token": decodeMs, "decode_ratio_vs_first": ratio,
                ]
                let bound = Self.decodeStep(config, layout: layout, context: prompt + new / 2)
                let memoryMs = bound.bytes / bandwidth / 1e6, flopMs = bound.flops / peak / 1e6
                let reached = max(memoryMs, flopMs) / decodeMs
                let prefillFLOPs = BenchTrain.forwardFLOPs(config, batch: 1, seq: prompt) - 2 * Double((prompt - 1) * s.hidden * vocab)
                let prefillFraction = prefillFLOPs * prefillRate / Double(prompt) / 1e9 / peak
                if kind == "cpu" {
                    row["roofline"] = [
                        "bytes": bound.bytes, "flops": bound.flops, "memory_ms": memoryMs, "flop_ms": flopMs,
                        "fraction_reached": reached, "prefill_flops": prefillFLOPs, "prefill_fraction_of_sgemm": prefillFraction,
                    ]
                }
                let perToken = benchCounters(backend) == nil ? nil : decodeCounters.per(decodeTimes.count)
                if let perToken { row["vulkan_per_token"] = perToken.json }
                rows.append(row)
                if !json {
                    print(String(
                        format: "%4d  %@ %9@   %13.0f   %15.2f   %12.2fx", P, kind.padding(toLength: 8, withPad: " ", startingAt: 0), formatBytes(layout.totalCount * 4),
                        prefillRate, decodeMs, ratio)
                        + (kind == "cpu"
                            ? String(format: "   %9.2f   %7.2f   %6.0f%%   %6.0f%%", memoryMs, flopMs, 100 * reached, 100 * prefillFraction) : ""))
                    if let perToken { print("          per token: \(perToken)") }
                }
            }
        }
        if json {
            printJSON([
                "config": ["hidden": s.hidden, "layers": s.layers, "heads": s.heads, "kv_heads": s.kvHeads,
                           "intermediate": s.intermediate, "vocab": vocab, "prefix_tokens": prefixTokens,
                           "prompt": prompt, "new": new],
                "backend": backends.map(\.name).joined(separator: " and "), "rows": rows,
                "read_bandwidth_gb_per_s": bandwidth, "sgemm_gflops": peak,
            ])
        }
    }

    /// Bytes read and FLOPs of one batch-1 decode step with `context` real tokens in the cache.
    static func decodeStep(_ c: ModelConfig, layout: ParameterLayout, context: Int) -> (bytes: Double, flops: Double) {
        let P = c.streams, H = c.hiddenSize, I = c.intermediateSize, hd = c.headDim
        let NH = c.numAttentionHeads, KVH = c.numKeyValueHeads, L = c.numHiddenLayers, V = c.vocabSize
        let slots = c.prefixTokens + context
        let weights = layout.totalCount - V * H + H  // one embedding row is read, not the table
        let cache = L * P * 2 * KVH * hd * slots
        let matrices = H * (NH + 2 * KVH) * hd + NH * hd * H + 3 * H * I
        let perLayer = 2 * P * matrices + 4 * P * NH * hd * slots
        let aggregation = P > 1 ? 2 * (P * H * H + H * P) : 0
        let flops = L * perLayer + aggregation + 2 * H * V
        return (Double(4 * (weights + cache)), Double(flops))
    }
}
