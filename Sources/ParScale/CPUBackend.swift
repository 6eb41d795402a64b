import COpenBLAS
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Host memory, 64-byte aligned, zero-filled. Buffers of 64 MiB and more (a model's parameters, the
/// optimizer's moments: long-lived) are 2 MiB aligned and asked to be backed by transparent huge
/// pages (`madvise`; THP's default mode on most distributions): streaming the weights with 4 KiB
/// pages cost 20-27% more time per decode product, a TLB miss and a stop of the hardware prefetcher
/// every 4 KiB. Smaller buffers stay on 4 KiB pages: the activations a forward pass allocates
/// anew, on huge pages, made P = 8 prefill 9% slower (faulting in and clearing 2 MiB pages each
/// call). Tools/bench/RESULTS.md, issue #19. Where the kernel refuses, ordinary pages.
public final class HostBuffer: DeviceBuffer, @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    static let hugePage = 2 << 20, hugePageThreshold = 64 << 20

    public override init(count: Int) {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = bytes >= Self.hugePageThreshold ? Self.hugePageBacked(bytes) : nil
        pointer = (raw ?? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64))
            .bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))  // first touch: faults in the huge pages
        super.init(count: count)
    }

    /// posix_memalign'd (freed with `free`, as `deallocate` does) and advised before first touch.
    static func hugePageBacked(_ bytes: Int) -> UnsafeMutableRawPointer? {
        #if os(Linux)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, hugePage, bytes) == 0, let raw else { return nil }
        _ = madvise(raw, bytes, MADV_HUGEPAGE)  // a refusal leaves ordinary pages
        return raw
        #else
        return nil
        #endif
    }

    deinit { pointer.deallocate() }
}

extension Tensor {
    /// Host pointer of a CPU tensor.
    @inline(__always) var host: UnsafeMutablePointer<Float> {
        (buffer as! HostBuffer).pointer + offset
    }
}

/// The CPU backend: OpenBLAS sgemm for matrix products, vectorised loops on all cores for the rest.
public final class CPUBackend: Backend {
    public init() {}

    /// Names the code path as well as the backend: training is reproducible to the bit only on the
    /// same one (OpenBLAS picks its kernels per processor, and they round differently), so each
    /// run's result.json records it.
    public var name: String { "cpu (OpenBLAS \(Self.blasKernels) kernels, \(Self.threads) threads; \(Self.processor))" }
    /// OpenBLAS's kernel set for this processor (its core name, such as Zen or Cooperlake).
    public static let blasKernels: String = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    /// The processor, from /proc/cpuinfo: its model name, family and model.
    public static let processor: String = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown processor" }
        func field(_ key: String) -> String? {
            info.split(separator: "\n").first { $0.split(separator: ":").first?.trimmingCharacters(in: .whitespaces) == key }
                .flatMap { $0.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) }
        }
        return "\(field("model name") ?? "unknown processor"), family \(field("cpu family") ?? "?") model \(field("model") ?? "?")"
    }()
    /// Threads used: OpenBLAS runs single-threaded calls, split over the cores by `BLAS`.
    public static var threads: Int { BLAS.workers }

    public func allocate(_ count: Int) -> Tensor { Tensor(buffer: HostBuffer(count: count)) }

    public func upload(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor) {
        precondition(values.count == tensor.count)
        tensor.host.update(from: values.baseAddress!, count: values.count)
    }

    public func download(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>) {
        precondition(values.count == tensor.count)
        values.baseAddress!.update(from: tensor.host, count: tensor.count)
    }

    public func synchronize() {}

    /// Peak GFLOP/s of this backend's sgemm on n x n x n (best of several calls after a warm-up),
    /// the figure MFU is measured against.
    public static func measureSgemmGFLOPs(size n: Int = 1024) -> Double {
        let a = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var times: [Double] = []
        for _ in 0..<8 {
            let start = DispatchTime.now().uptimeNanoseconds
            BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, a: a, lda: n, b: a, ldb: n, beta: 0, c: &c, ldc: n)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return 2 * Double(n * n * n) / times.dropFirst().min()! / 1e9
    }

    /// Read bandwidth of memory in GB/s: a sum over `bytes` (far beyond the caches) on all cores,
    /// best of several passes after a warm-up; the figure decode's weight stream is judged against.
    public static func measureReadBandwidthGBs(bytes: Int = 256 << 20) -> Double {
        let count = bytes / 4
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        var times: [Double] = []
        var sink: Float = 0
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            let parts = BLAS.workers
            let sums = UnsafeMutablePointer<Float>.allocate(capacity: parts)
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let lo = count * p / parts, hi = count * (p + 1) / parts
                sums[p] = sumOfFloats(buffer + lo, hi - lo)
            }
            for p in 0..<parts { sink += sums[p] }
            sums.deallocate()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        precondition(sink > 0)  // keeps the sums from being optimised away
        return Double(bytes) / times.dropFirst().min()! / 1e9
    }

    public func embed(ids: [Int32], table: Tensor, out: Tensor, dim: Int) {
        let src = table.host, dst = out.host
        for (i, id) in ids.enumerated() { (dst + i * dim).update(from: src + Int(id) * dim, count: dim) }
    }

    public func repeatRows(_ x: Tensor, times: Int, out: Tensor) {
        for r in 0..<times { (out.host + r * x.count).update(from: x.host, count: x.count) }
    }

    public func copy(_ src: Tensor, to dst: Tensor) {
        precondition(src.count == dst.count)
        dst.host.update(from: src.host, count: src.count)
    }

    public func gatherRows(_ x: Tensor, rowIndices: [Int32], out: Tensor, dim: Int) {
        for (i, row) in rowIndices.enumerated() {
            (out.host + i * dim).update(from: x.host + Int(row) * dim, count: dim)
        }
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, out: Tensor, rows: Int, dim: Int, eps: Float) {
        RMSNormOps.forward(x: x.host, weight: weight.host, out: out.host, rows: rows, dim: dim, eps: eps)
    }

    public func linear(
        _ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor, rows: Int, inDim: Int, outDim: Int,
        accumulate: Bool
    ) {
        LinearOps.forward(
            x: x.host, weight: weight.host, bias: bias.map { UnsafePointer($0.host) }, out: out.host,
            rows: rows, inDim: inDim, outDim: outDim, accumulate: accumulate)
    }

    public func rope(qkv: Tensor, shape: AttentionShape, theta: Float) {
        RoPEOps.forward(
            x: qkv.host, sequences: shape.rows, newTokens: shape.newTokens,
            startPosition: shape.startPosition, heads: shape.heads + shape.kvHeads,
            headDim: shape.headDim, rowStride: shape.qkvStride, theta: theta)
    }

    public func fillPrefix(prefix: Tensor, cache: Tensor, streams: Int, batch: Int, shape: AttentionShape) {
        AttentionOps.fillPrefix(prefix: prefix.host, cache: cache.host, streams: streams, batch: batch, shape: shape)
    }

    public func storeKV(qkv: Tensor, keys: Tensor, values: Tensor, shape: AttentionShape) {
        AttentionOps.storeKV(qkv: qkv.host, keys: keys.host, values: values.host, shape: shape)
    }

    public func attention(
        qkv: Tensor, keys: Tensor, values: Tensor, out: Tensor, logSumExp: Tensor?, shape: AttentionShape
    ) {
        AttentionOps.forward(
            qkv: qkv.host, keys: keys.host, values: values.host, out: out.host, logSumExp: logSumExp?.host,
            shape: shape)
    }

    public func swiglu(_ gateUp: Tensor, out: Tensor, rows: Int, dim: Int) {
        ElementwiseOps.swiglu(gateUp: gateUp.host, out: out.host, rows: rows, dim: dim)
    }

    public func silu(_ x: Tensor, out: Tensor) {
        if x.host != out.host { out.host.update(from: x.host, count: x.count) }
        ElementwiseOps.silu(out.host, count: out.count)
    }

    public func interleaveStreams(_ y: Tensor, out: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        AggregationOps.interleave(y: y.host, out: out.host, streams: streams, rowsPerStream: rowsPerStream, dim: dim)
    }

    public func aggregation(
        _ y: Tensor, logits: Tensor, weights: Tensor, out: Tensor, streams: Int, rowsPerStream: Int,
        dim: Int, smoothing: Float
    ) {
        AggregationOps.aggregation(
            y: y.host, logits: logits.host, weights: weights.host, out: out.host, streams: streams,
            rowsPerStream: rowsPerStream, dim: dim, smoothing: smoothing)
    }

    // MARK: backward

    public func linearBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor?, accumulateInput: Bool,
        dWeight: Tensor?, dBias: Tensor?, rows: Int, inDim: Int, outDim: Int
    ) {
        LinearOps.backward(
            dOut: dOut.host, x: input.host, weight: weight.host, dX: dInput?.host, accumulateDX: accumulateInput,
            dWeight: dWeight?.host, dBias: dBias?.host, rows: rows, inDim: inDim, outDim: outDim)
    }

    public func rmsNormBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor, accumulateInput: Bool,
        dWeight: Tensor?, rows: Int, dim: Int, eps: Float
    ) {
        RMSNormOps.backward(
            dOut: dOut.host, x: input.host, weight: weight.host, dX: dInput.host, accumulate: accumulateInput,
            dWeight: dWeight?.host, rows: rows, dim: dim, eps: eps)
    }

    public func ropeBackward(dQKV: Tensor, shape: AttentionShape, theta: Float) {
        RoPEOps.forward(
            x: dQKV.host, sequences: shape.rows, newTokens: shape.newTokens, startPosition: shape.startPosition,
            heads: shape.heads + shape.kvHeads, headDim: shape.headDim, rowStride: shape.qkvStride, theta: theta,
            inverse: true)
    }

    public func attentionBackward(
        dOut: Tensor, out: Tensor, qkv: Tensor, keys: Tensor, values: Tensor, logSumExp: Tensor,
        dQKV: Tensor, dKeys: Tensor, dValues: Tensor, shape: AttentionShape
    ) {
        AttentionOps.backward(
            dOut: dOut.host, out: out.host, qkv: qkv.host, keys: keys.host, values: values.host,
            logSumExp: logSumExp.host, dQKV: dQKV.host, dKeys: dKeys.host, dValues: dValues.host, shape: shape)
    }

    public func storeKVBackward(dKeys: Tensor, dValues: Tensor, dQKV: Tensor, shape: AttentionShape) {
        AttentionOps.storeKVBackward(dKeys: dKeys.host, dValues: dValues.host, dQKV: dQKV.host, shape: shape)
    }

    public func fillPrefixBackward(dCache: Tensor, dPrefix: Tensor, streams: Int, batch: Int, shape: AttentionShape) {
        AttentionOps.fillPrefixBackward(dCache: dCache.host, dPrefix: dPrefix.host, streams: streams, batch: batch, shape: shape)
    }

    public func swigluBackward(dOut: Tensor, gateUp: Tensor, dGateUp: Tensor, rows: Int, dim: Int) {
        ElementwiseOps.swigluBackward(dOut: dOut.host, gateUp: gateUp.host, dGateUp: dGateUp.host, rows: rows, dim: dim)
    }

    public func siluBackward(dOut: Tensor, input: Tensor, dInput: Tensor) {
        ElementwiseOps.siluBackward(dOut: dOut.host, x: input.host, dX: dInput.host, count: dOut.count)
    }

    public func interleaveStreamsBackward(dFeat: Tensor, dY: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        AggregationOps.interleaveBackward(dFeat: dFeat.host, dY: dY.host, streams: streams, rowsPerStream: rowsPerStream, dim: dim)
    }

    public func aggregationBackward(
        dOut: Tensor, y: Tensor, weights: Tensor, dY: Tensor, dLogits: Tensor, streams: Int,
        rowsPerStream: Int, dim: Int, smoothing: Float
    ) {
        AggregationOps.aggregationBackward(
            dOut: dOut.host, y: y.host, weights: weights.host, dY: dY.host, dLogits: dLogits.host, streams: streams,
            rowsPerStream: rowsPerStream, dim: dim, smoothing: smoothing)
    }

    public func streamDecorrelationBackward(x: Tensor, dX: Tensor, streams: Int, rowsPerStream: Int, dim: Int, scale: Float) {
        _ = StreamDecorrelationOps.penalty(
            x: x.host, streams: streams, rowsPerStream: rowsPerStream, dim: dim, dX: dX.host, scale: scale)
    }

    public func sumStreams(_ x: Tensor, streams: Int, out: Tensor) {
        EmbeddingOps.sumStreams(x.host, streams: streams, out: out.host, count: out.count)
    }

    public func embedBackward(ids: [Int32], dOut: Tensor, dTable: Tensor, dim: Int) {
        EmbeddingOps.backward(ids: ids, dOut: dOut.host, dTable: dTable.host, dim: dim)
    }

    public func crossEntropy(logits: Tensor, targets: [Int32], losses: Tensor, rows: Int, vocab: Int, gradScale: Float) {
        targets.withUnsafeBufferPointer {
            CrossEntropyOps.forwardBackward(
                logits: logits.host, targets: $0.baseAddress!, losses: losses.host, rows: rows, vocab: vocab,
                gradScale: gradScale)
        }
    }

    public func crossEntropySums(logits: Tensor, targets: [Int32], sums: Tensor, rowsPerSum: Int, vocab: Int) {
        targets.withUnsafeBufferPointer {
            CrossEntropyOps.sums(
                logits: logits.host, targets: $0.baseAddress!, sums: sums.host, count: sums.count, rowsPerSum: rowsPerSum,
                vocab: vocab)
        }
    }

    // MARK: prefix reparameterisation

    public func prefixMLP(_ x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor?, out: Tensor, shape s: PrefixMLPShape) {
        precondition(!(s.tanh && residual != nil), "a tanh layer takes no residual")
        precondition(x.count == s.rows * s.inDim && weight.count == s.outDim * s.inDim && bias.count == s.outDim && out.count == s.rows * s.outDim)
        PrefixMLPOps.forward(x: x.host, weight: weight.host, bias: bias.host, residual: residual.map { UnsafePointer($0.host) }, out: out.host, shape: s)
    }

    public func prefixMLPBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, output: Tensor, dInput: Tensor, dWeight: Tensor, dBias: Tensor,
        shape s: PrefixMLPShape
    ) {
        PrefixMLPOps.backward(
            dOut: dOut.host, x: input.host, weight: weight.host, y: output.host, dX: dInput.host, dWeight: dWeight.host,
            dBias: dBias.host, shape: s)
    }

    // MARK: optimizer

    public func fill(_ x: Tensor, value: Float) { x.host.update(repeating: value, count: x.count) }

    public func sumOfSquares(_ x: Tensor) -> Double { AdamWOps.sumOfSquares(x.host, count: x.count) }

    public func adamw(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, settings: AdamWSettings) {
        AdamWOps.update(params: params.host, grads: grads.host, m: m.host, v: v.host, count: params.count, settings: settings)
    }
}
