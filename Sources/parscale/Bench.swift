import ArgumentParser
import Foundation
import ParScale
import ParScaleVulkan

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print measured figures (release builds only give meaningful numbers).",
        subcommands: [BenchDecode.self, BenchMatmul.self, BenchTrain.self, BenchTokenize.self])
}

struct BenchDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Prefill tokens/s and batch-1 decode ms/token for several P on one model shape.",
        discussion: """
            Random weights of the given shape (default hidden 1024, 8 layers, 16/4 heads, intermediate 2816: \
            ~360 MB of float32 weights, far beyond the CPU caches, so decode is bound by reading the weights). \
            The P streams of a sequence run as one batch, so every weight is read once per step for all \
            P rows: the ratio column shows what P costs against P = 1 measured in the same run. Figures \
            are medians.
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
        var rows: [[String: Any]] = []
        if !json {
            print("bench decode: hidden \(s.hidden), layers \(s.layers), heads \(s.heads)/\(s.kvHeads), intermediate \(s.intermediate), vocab \(vocab), T \(prefixTokens), prompt \(prompt), \(new) decode steps, batch 1, \(backends.map(\.name).joined(separator: " and "))")
            print("   P  backend    weights    prefill tok/s   decode ms/token   decode vs P=1")
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
                for _ in 0..<max(1, repeats) {
                    let cache = model.makeCache(batch: 1, capacity: prompt + new + 1)
                    var start = DispatchTime.now().uptimeNanoseconds
                    var logits = try model.forward(tokens: [promptIds], cache: cache, logits: .last)
                    prefillTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                    for _ in 0...new where decodeTimes.count < new * max(1, repeats) {
                        let next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                        start = DispatchTime.now().uptimeNanoseconds
                        logits = try model.forward(tokens: [[next]], cache: cache, logits: .last)
                        decodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                    }
                }
                let prefillRate = Double(prompt) / median(prefillTimes)
                let decodeMs = median(decodeTimes) * 1000
                let kind = benchKind(backend)
                if baseline[kind] == nil { baseline[kind] = decodeMs }
                let ratio = decodeMs / baseline[kind]!
                rows.append([
                    "P": P, "backend": kind, "parameters": layout.totalCount, "prefill_tokens_per_s": prefillRate,
                    "decode_ms_per_token": decodeMs, "decode_ratio_vs_first": ratio,
                ])
                if !json {
                    print(String(
                        format: "%4d  %@ %9@   %13.0f   %15.2f   %12.2fx", P, kind.padding(toLength: 8, withPad: " ", startingAt: 0), formatBytes(layout.totalCount * 4),
                        prefillRate, decodeMs, ratio))
                }
            }
        }
        if json {
            printJSON([
                "config": ["hidden": s.hidden, "layers": s.layers, "heads": s.heads, "kv_heads": s.kvHeads,
                           "intermediate": s.intermediate, "vocab": vocab, "prefix_tokens": prefixTokens,
                           "prompt": prompt, "new": new],
                "backend": backends.map(\.name).joined(separator: " and "), "rows": rows,
            ])
        }
    }
}

/// The CPU backend, and beside it the backend --backend makes when that is not the CPU (default cpu).
func benchBackends(_ flag: BackendFlag) throws -> [Backend] {
    let choice = flag.choice(default: .cpu)
    let other = choice == .cpu ? nil : try choice.make()
    return [CPUBackend()] + (other.map { $0 is CPUBackend ? [] : [$0] } ?? [])
}

/// "cpu", "vulkan" (its defaults), or "vk-rows" / "vk-tiles": Vulkan with the few-rows matrix
/// kernel forced on or off against the device's default.
func benchKind(_ backend: Backend) -> String {
    guard let vulkan = backend as? VulkanBackend else { return "cpu" }
    if vulkan.useFewRowsKernel == vulkan.device.info.isGPU { return "vulkan" }
    return vulkan.useFewRowsKernel ? "vk-rows" : "vk-tiles"
}

/// Why `config` cannot run on `backend` (a Vulkan device's limits), or nil.
func benchLimitation(_ config: ModelConfig, _ backend: Backend) -> String? {
    guard let vulkan = backend as? VulkanBackend else { return nil }
    return VulkanBackend.limitation(for: config, on: vulkan.device.info)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

struct BenchMatmul: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matmul",
        abstract: "GFLOP/s and GB/s of the CPU backend's matrix product x W^T for several row counts.",
        discussion: "Few rows (decode) are bound by reading W; many rows (prefill, training) by arithmetic.")

    @Option(name: .customLong("in"), help: "Input size K.") var inDim: Int = 1024
    @Option(name: .customLong("out"), help: "Output size N.") var outDim: Int = 5632
    @Option(help: "Row counts M, comma-separated.") var rows: String = "1,2,4,8,16,64,256,1024"
    @Option(help: "Square products n x n x n instead (e.g. 256,512,1024,2048), the shader benchmark's sizes.") var square: String?
    @OptionGroup var backend: BackendFlag
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let choice = self.backend.choice(default: .cpu)
        let backend = try choice == .auto ? CPUBackend() : choice.make()
        if let square {
            try runSquare(try parseTokenList(square, flag: "--square").map(Int.init), backend)
            return
        }
        let mList = try parseTokenList(rows, flag: "--rows").map(Int.init)
        let w = backend.allocate(inDim * outDim)
        var rng = SeededGenerator(seed: 1)
        var host = (0..<w.count).map { _ in rng.nextUniform() - 0.5 }
        host.withUnsafeBufferPointer { backend.upload($0, to: w) }
        host = []
        var results: [[String: Any]] = []
        if !json { print("matmul x[M, \(inDim)] W[\(outDim), \(inDim)]^T, \(backend.name)\n     M     ms     GFLOP/s   weight GB/s") }
        for m in mList {
            let x = backend.allocate(m * inDim), out = backend.allocate(m * outDim)
            var times: [Double] = []
            let start = DispatchTime.now().uptimeNanoseconds
            while times.count < 5 || (DispatchTime.now().uptimeNanoseconds - start < 300_000_000 && times.count < 200) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                backend.linear(x, weight: w, bias: nil, out: out, rows: m, inDim: inDim, outDim: outDim, accumulate: false)
                backend.synchronize()  // Vulkan records; this waits for the product
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            let t = median(times)
            let gflops = 2 * Double(m * inDim * outDim) / t / 1e9
            let gbs = Double(inDim * outDim * 4) / t / 1e9
            results.append(["rows": m, "ms": t * 1000, "gflops": gflops, "weight_gb_per_s": gbs])
            if !json { print(String(format: "%6d %7.3f %10.1f %12.1f", m, t * 1000, gflops, gbs)) }
        }
        if json { printJSON(["in": inDim, "out": outDim, "backend": backend.name, "rows": results]) }
    }

    /// n x n x n products (one warm-up, then the median of a few), GFLOP/s.
    func runSquare(_ sizes: [Int], _ backend: Backend) throws {
        var results: [[String: Any]] = []
        if !json { print("matmul n x n x n, \(backend.name)\n     n        ms     GFLOP/s") }
        for n in sizes {
            if let vulkan = backend as? VulkanBackend, n * n * 4 > vulkan.device.info.maxStorageBufferRange {
                throw ValidationError("--square \(n): a \(n)x\(n) matrix exceeds \(vulkan.device.info.name)'s storage buffer range")
            }
            let a = backend.allocate(n * n), b = backend.allocate(n * n), c = backend.allocate(n * n)
            var rng = SeededGenerator(seed: 1)
            let values = (0..<n * n).map { _ in rng.nextUniform() - 0.5 }
            values.withUnsafeBufferPointer { backend.upload($0, to: a); backend.upload($0, to: b) }
            var times: [Double] = []
            for i in 0..<4 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                backend.linear(a, weight: b, bias: nil, out: c, rows: n, inDim: n, outDim: n, accumulate: false)
                backend.synchronize()
                if i > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
            }
            let t = median(times), gflops = 2 * Double(n * n * n) / t / 1e9
            results.append(["n": n, "ms": t * 1000, "gflops": gflops])
            if !json { print(String(format: "%6d %9.2f %11.2f", n, t * 1000, gflops)) }
        }
        if json { printJSON(["backend": backend.name, "square": results]) }
    }
}
