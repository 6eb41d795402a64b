import ArgumentParser
import Foundation
import ParScale
import ParScaleVulkan

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
