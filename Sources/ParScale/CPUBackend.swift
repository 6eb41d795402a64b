import COpenBLAS

/// Host memory, 64-byte aligned, zero-filled.
public final class HostBuffer: DeviceBuffer, @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>

    public override init(count: Int) {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
        super.init(count: count)
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

    public var name: String { "cpu (OpenBLAS, \(Self.threads) threads)" }
    public static var threads: Int { Int(openblas_get_num_threads()) }

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

    public func attention(qkv: Tensor, keys: Tensor, values: Tensor, out: Tensor, shape: AttentionShape) {
        AttentionOps.forward(qkv: qkv.host, keys: keys.host, values: values.host, out: out.host, shape: shape)
    }

    public func swiglu(_ gateUp: Tensor, out: Tensor, rows: Int, dim: Int) {
        ElementwiseOps.swiglu(gateUp: gateUp.host, out: out.host, rows: rows, dim: dim)
    }

    public func silu(_ x: Tensor) { ElementwiseOps.silu(x.host, count: x.count) }

    public func interleaveStreams(_ y: Tensor, out: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        AggregationOps.interleave(y: y.host, out: out.host, streams: streams, rowsPerStream: rowsPerStream, dim: dim)
    }

    public func mixStreams(
        _ y: Tensor, logits: Tensor, weights: Tensor, out: Tensor, streams: Int, rowsPerStream: Int,
        dim: Int, smoothing: Float
    ) {
        AggregationOps.mix(
            y: y.host, logits: logits.host, weights: weights.host, out: out.host, streams: streams,
            rowsPerStream: rowsPerStream, dim: dim, smoothing: smoothing)
    }
}
