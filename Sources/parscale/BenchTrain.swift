import ArgumentParser
import Foundation
import ParScale
import ParScaleTrain
import ParScaleVulkan

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training tokens/s and MFU for P = 1, 2, 4, 8 on two fixed configs.",
        discussion: """
            A: hidden 128, 4 layers, 4/2 heads, intermediate 352, vocab 256, seq 128, batch 8. \
            B: hidden 256, 6 layers, 8/4 heads, intermediate 688, vocab 256, seq 256, batch 8. \
            48 prefix tokens. tokens/s = input tokens per optimizer step (B*S, not P*B*S) over the time of \
            forward + backward + AdamW. MFU = model FLOPs per second / sgemm GFLOP/s measured in this run \
            (1024^3). Model FLOPs = 3 x forward FLOPs (forward + backward), where forward counts every matrix \
            product: projections and MLP on P*B*S rows, attention scores and values over the T prefix slots \
            plus the causal real tokens (S*T + S(S+1)/2 per sequence and head), the aggregation head and \
            the output head. Nothing is counted for padding: none is computed.
            """)

    @Option(help: "Configs to run: A, B or A,B.") var configs: String = "A,B"
    @Option(name: .customLong("P"), help: "Stream counts.") var streams: String = "1,2,4,8"
    @Option(help: "Timed steps per row (after one warm-up step).") var steps: Int = 5
    @Option(name: .customLong("prefix-tokens"), help: "Prefix tokens T.") var prefixTokens: Int = 48
    @OptionGroup var backend: BackendFlag
    @Flag(help: "Print one JSON object.") var json = false

    struct Shape { let name: String; let hidden, layers, heads, kvHeads, intermediate, seq, batch: Int }
    static let shapes = [
        Shape(name: "A", hidden: 128, layers: 4, heads: 4, kvHeads: 2, intermediate: 352, seq: 128, batch: 8),
        Shape(name: "B", hidden: 256, layers: 6, heads: 8, kvHeads: 4, intermediate: 688, seq: 256, batch: 8),
    ]

    /// Forward FLOPs of one step (see the discussion above).
    static func forwardFLOPs(_ c: ModelConfig, batch B: Int, seq S: Int) -> Double {
        let P = c.streams, H = c.hiddenSize, I = c.intermediateSize, hd = c.headDim, NH = c.numAttentionHeads
        let rows = Double(P * B * S), n = Double(B * S)
        let qkv = (NH + 2 * c.numKeyValueHeads) * hd
        let perLayer = 2 * rows * Double(H * qkv + NH * hd * H + H * 2 * I + I * H)
        let T = c.prefixTokens
        let attention = 4 * Double(hd * NH * P * B) * Double(S * T + S * (S + 1) / 2)
        let aggregation = P > 1 ? 2 * n * Double(P * H * H + H * P) : 0
        let head = 2 * n * Double(H * c.vocabSize)
        return Double(c.numHiddenLayers) * (perLayer + attention) + aggregation + head
    }

    func run() throws {
        let names = configs.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
        let chosen = Self.shapes.filter { names.contains($0.name) }
        guard !chosen.isEmpty else { throw ValidationError("--configs must name A and/or B, got '\(configs)'") }
        let pList = try parseTokenList(streams, flag: "--P").map(Int.init)
        let backends = try benchBackends(backend)
        let peak = CPUBackend.measureSgemmGFLOPs()
        if !json {
            print(String(format: "bench train: %@, sgemm 1024^3 %.1f GFLOP/s, T = %d, %d timed steps", backends.map(\.name).joined(separator: " and "), peak, prefixTokens, steps))
            print("config  P  backend   tokens/s   ms/step   GFLOP/s   MFU")
        }
        var rows: [[String: Any]] = []
        for shape in chosen {
            for P in pList {
                for backend in backends {
                    let config = ModelConfig(
                        vocabSize: 256, hiddenSize: shape.hidden, intermediateSize: shape.intermediate, numHiddenLayers: shape.layers,
                        numAttentionHeads: shape.heads, numKeyValueHeads: shape.kvHeads, tieWordEmbeddings: true, parscaleN: P,
                        parscaleNTokens: prefixTokens)
                    if let reason = benchLimitation(config, backend) { throw ValidationError(reason) }
                    let model = ParScaleModel.initialized(config, backend: backend, options: InitOptions(seed: 1))
                    let adam = AdamW(model: model, options: OptimizerOptions())
                    let grads = model.backend.allocate(model.parameters.count)
                    let scalars = StepScalars(backend: backend, count: 2)  // loss, squared gradient norm
                    var rng = SeededGenerator(seed: 3)
                    let count = shape.batch * shape.seq
                    let inputs = (0..<count).map { _ in Int32(rng.next() % 256) }, targets = (0..<count).map { _ in Int32(rng.next() % 256) }
                    var times: [Double] = []
                    var counted = VulkanCounters()
                    for i in 0...steps {
                        if i == 1 { counted = benchCounters(backend) ?? counted }
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        // As the Trainer's step: everything recorded, then the loss and norm read once.
                        backend.fill(grads, value: 0)
                        backend.fill(scalars.storage, value: 0)
                        try model.accumulateGradients(
                            inputs: inputs, targets: targets, batch: shape.batch, sequence: shape.seq, gradients: grads, loss: scalars[0])
                        adam.record(model: model, gradients: grads, learningRate: 1e-3, squaredNorm: scalars[1])
                        _ = adam.finish(squaredNorm: backend.readScalars(scalars)[1])
                        if i > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
                    }
                    let t = median(times)
                    let flops = 3 * Self.forwardFLOPs(config, batch: shape.batch, seq: shape.seq) / t / 1e9
                    let rate = Double(count) / t
                    let kind = benchKind(backend)
                    var row: [String: Any] = ["config": shape.name, "P": P, "backend": kind, "tokens_per_s": rate, "ms_per_step": t * 1000, "gflops": flops, "mfu": flops / peak]
                    let perStep = benchCounters(backend).map { ($0 - counted).per(steps) }
                    if let perStep { row["vulkan_per_step"] = perStep.json }
                    rows.append(row)
                    if !json {
                        print(String(format: "%-6@ %2d  %@ %10.0f %9.1f %9.1f %5.1f%%", shape.name, P, kind.padding(toLength: 7, withPad: " ", startingAt: 0), rate, t * 1000, flops, 100 * flops / peak))
                        if let perStep { print("          per step: \(perStep)") }
                    }
                }
            }
        }
        if json { printJSON(["backend": backends.map(\.name).joined(separator: " and "), "sgemm_gflops": peak, "prefix_tokens": prefixTokens, "rows": rows]) }
    }
}
