import CVulkan
import Foundation
import ParScale

/// The model on Vulkan compute shaders: forward, backward and optimizer ops, one shader (or two)
/// per op. Ops are recorded into one command buffer, a barrier after each, and submitted once
/// when the host needs a result (download, upload, synchronize, sumOfSquares): a whole forward
/// pass, decode step or training step's backward is one submission with one fence.
public final class VulkanBackend: Backend {
    public let device: VulkanDevice
    let kernels: [String: VulkanKernel]
    /// The command buffer being recorded, and the buffers its dispatches use: kept alive until it
    /// has run, since a tensor may be released (a model or a temporary index buffer freed) first.
    var pending: VulkanSequence?
    var pendingDispatches = 0
    var keepAlive: [VulkanBuffer] = []
    /// Work space of ops that need one (per-row 1/rms, partial sums); grows, never shrinks.
    var scratchBuffer: VulkanBuffer?
    static let dispatchesPerSubmission = 4096
    static let maxBindings = 8

    public var name: String { "vulkan (\(device.info.name))" }

    /// Why `config` cannot run on `device` yet, or nil: the attention shader keeps one head in
    /// registers (head_dim <= 128), and every tensor is one binding, so the flat parameter buffer
    /// must fit the device's maxStorageBufferRange (binding ranges of a larger buffer: issue #4).
    public static func limitation(for config: ModelConfig, on device: VulkanDeviceInfo) -> String? {
        if config.headDim > 128 { return "head_dim \(config.headDim) > 128 is not supported by the attention shader yet" }
        let bytes = ParameterLayout(config).totalCount * 4
        if bytes > device.maxStorageBufferRange {
            return "the model's \(bytes >> 20) MiB of parameters exceed \(device.name)'s storage buffer range of \(device.maxStorageBufferRange >> 20) MiB"
        }
        return nil
    }

    /// `sharedMemoryTiles`: whether matrix products stage their operands in shared memory (by
    /// default on GPUs, not on CPU devices such as lavapipe, where it is slower).
    public init(device: VulkanDevice, sharedMemoryTiles: Bool? = nil) throws {
        self.device = device
        func kernel(_ spirv: String, _ bindings: Int, _ push: Int, _ specialization: [UInt32] = []) throws -> VulkanKernel {
            try VulkanKernel(device: device, spirv: spirv, bindings: bindings, pushConstantBytes: push, specialization: specialization)
        }
        let tiles: UInt32 = (sharedMemoryTiles ?? device.info.isGPU) ? 1 : 0
        kernels = [
            "linear": try kernel(SPIRV.linear, 4, MemoryLayout<LinearPush>.size, [tiles]),
            "rms_norm": try kernel(SPIRV.rms_norm, 3, 24), "swiglu": try kernel(SPIRV.swiglu, 2, 16),
            "silu": try kernel(SPIRV.silu, 2, 12), "rope": try kernel(SPIRV.rope, 1, 36),
            "store_kv": try kernel(SPIRV.store_kv, 3, 44),
            "fill_prefix": try kernel(SPIRV.fill_prefix, 2, 32), "gather_rows": try kernel(SPIRV.gather_rows, 3, 16),
            "interleave": try kernel(SPIRV.interleave, 2, 20), "mix_streams": try kernel(SPIRV.mix_streams, 4, 32),
            "attention": try kernel(SPIRV.attention, 5, 56),
            // Training.
            "column_sums": try kernel(SPIRV.column_sums, 2, 20),
            "rms_norm_backward": try kernel(SPIRV.rms_norm_backward, 5, 36),
            "rms_norm_weight_grad": try kernel(SPIRV.rms_norm_weight_grad, 4, 24),
            "attention_backward_dq": try kernel(SPIRV.attention_backward_dq, 7, 60),
            "attention_backward_dkv": try kernel(SPIRV.attention_backward_dkv, 8, 64),
            "store_kv_backward": try kernel(SPIRV.store_kv_backward, 3, 44),
            "fill_prefix_backward": try kernel(SPIRV.fill_prefix_backward, 2, 32),
            "swiglu_backward": try kernel(SPIRV.swiglu_backward, 3, 20),
            "silu_backward": try kernel(SPIRV.silu_backward, 3, 16),
            "interleave_backward": try kernel(SPIRV.interleave_backward, 2, 20),
            "mix_streams_backward": try kernel(SPIRV.mix_streams_backward, 5, 36),
            "embed_backward": try kernel(SPIRV.embed_backward, 3, 16),
            "cross_entropy": try kernel(SPIRV.cross_entropy, 3, 20),
            "fill": try kernel(SPIRV.fill, 1, 12),
            "sum_of_squares": try kernel(SPIRV.sum_of_squares, 2, 12),
            "adamw": try kernel(SPIRV.adamw, 4, 52),
        ]
    }

    /// Records one dispatch of `kernel` into the pending command buffer.
    func run(_ name: String, _ tensors: [Tensor], _ push: [UInt32], groups: (Int, Int, Int)) {
        record(kernels[name]!, tensors, PushWords(push), groups: groups)
    }

    func record<Push>(_ kernel: VulkanKernel, _ tensors: [Tensor], _ push: Push, groups: (Int, Int, Int)) {
        if pendingDispatches == Self.dispatchesPerSubmission { flush() }
        if pending == nil {
            pending = try! VulkanSequence(device: device, maxDispatches: Self.dispatchesPerSubmission, maxBindings: Self.maxBindings)
        }
        let buffers = tensors.map { $0.buffer as! VulkanBuffer }
        try! pending!.dispatch(kernel, buffers: buffers, push: push, groups: groups)
        keepAlive += buffers
        pendingDispatches += 1
    }

    /// Submits what is recorded and waits for it.
    func flush() {
        guard let sequence = pending else { return }
        try! sequence.run()
        pending = nil
        pendingDispatches = 0
        keepAlive.removeAll()
    }

    static func groups(_ threads: Int, _ size: Int = 256) -> (Int, Int, Int) { (max(1, (threads + size - 1) / size), 1, 1) }

    func u(_ v: Int) -> UInt32 { UInt32(v) }
    func f(_ v: Float) -> UInt32 { v.bitPattern }

    /// `count` floats of work space, valid until the next op that asks for scratch.
    func scratch(_ count: Int) -> Tensor {
        if let b = scratchBuffer, b.count >= count { return Tensor(buffer: b, offset: 0, count: count) }
        let b = try! VulkanBuffer(device: device, count: max(count, 4096))
        scratchBuffer = b
        return Tensor(buffer: b, offset: 0, count: count)
    }

    /// A small uint buffer (indices) as a tensor view, for the next dispatch.
    func indices(_ values: [UInt32]) -> Tensor {
        let b = try! VulkanBuffer(device: device, count: values.count)
        UnsafeMutableRawPointer(b.mapped).bindMemory(to: UInt32.self, capacity: values.count).update(from: values, count: values.count)
        return Tensor(buffer: b)
    }

    public func allocate(_ count: Int) -> Tensor { Tensor(buffer: try! VulkanBuffer(device: device, count: count)) }

    /// Host-visible memory: written in place, after the recorded work that may still read it.
    public func upload(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor) {
        flush()
        ((tensor.buffer as! VulkanBuffer).mapped + tensor.offset).update(from: values.baseAddress!, count: values.count)
    }

    public func download(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>) {
        flush()
        values.baseAddress!.update(from: (tensor.buffer as! VulkanBuffer).mapped + tensor.offset, count: tensor.count)
    }

    public func synchronize() { flush() }

    func gather(_ table: Tensor, _ index: [UInt32], out: Tensor, dim: Int) {
        run("gather_rows", [table, indices(index), out], [u(index.count), u(dim), u(table.offset), u(out.offset)],
            groups: Self.groups(index.count * dim))
    }

    public func embed(ids: [Int32], table: Tensor, out: Tensor, dim: Int) { gather(table, ids.map { UInt32($0) }, out: out, dim: dim) }

    public func repeatRows(_ x: Tensor, times: Int, out: Tensor) {
        gather(x, [UInt32](repeating: 0, count: times), out: out, dim: x.count)
    }

    public func copy(_ src: Tensor, to dst: Tensor) { gather(src, [0], out: dst, dim: src.count) }

    public func gatherRows(_ x: Tensor, rowIndices: [Int32], out: Tensor, dim: Int) {
        gather(x, rowIndices.map { UInt32($0) }, out: out, dim: dim)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, out: Tensor, rows: Int, dim: Int, eps: Float) {
        run("rms_norm", [x, weight, out], [u(rows), u(dim), u(x.offset), u(weight.offset), u(out.offset), f(eps)], groups: (rows, 1, 1))
    }

    /// out[m, n] (+)= sum_k a[m, k] b[k, n] (+ bias[n]), a[m, k] at a.offset + m*aStrides.row + k*aStrides.column.
    func matmul(
        _ a: Tensor, _ aStrides: (row: Int, column: Int), _ b: Tensor, _ bStrides: (row: Int, column: Int), bias: Tensor?,
        out: Tensor, m: Int, n: Int, k: Int, accumulate: Bool
    ) {
        let push = LinearPush(
            m: u(m), n: u(n), k: u(k), aOffset: u(a.offset), bOffset: u(b.offset), outOffset: u(out.offset),
            biasOffset: u(bias?.offset ?? 0), flags: (accumulate ? 1 : 0) | (bias != nil ? 2 : 0),
            aRowStride: u(aStrides.row), aColumnStride: u(aStrides.column), bRowStride: u(bStrides.row),
            bColumnStride: u(bStrides.column))
        record(kernels["linear"]!, [a, b, out, bias ?? out], push, groups: ((n + 31) / 32, (m + 31) / 32, 1))
    }

    /// out = x W^T (NT): b[k, n] = W[n, k].
    public func linear(
        _ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor, rows: Int, inDim: Int, outDim: Int, accumulate: Bool
    ) {
        matmul(x, (inDim, 1), weight, (1, inDim), bias: bias, out: out, m: rows, n: outDim, k: inDim, accumulate: accumulate)
    }

    public func rope(qkv: Tensor, shape s: AttentionShape, theta: Float) {
        let threads = s.rows * s.newTokens * (s.heads + s.kvHeads) * s.headDim / 2
        run("rope", [qkv], [u(s.rows), u(s.newTokens), u(s.startPosition), u(s.heads + s.kvHeads), u(s.headDim),
                            u(s.qkvStride), u(qkv.offset), f(theta), f(1)], groups: Self.groups(threads))
    }

    public func fillPrefix(prefix: Tensor, cache: Tensor, streams: Int, batch: Int, shape s: AttentionShape) {
        let threads = streams * batch * s.kvHeads * s.prefixTokens * s.headDim
        run("fill_prefix", [prefix, cache], [u(streams), u(batch), u(s.kvHeads), u(s.prefixTokens), u(s.headDim),
                                             u(s.cacheCapacity), u(prefix.offset), u(cache.offset)], groups: Self.groups(threads))
    }

    func shapeWords(_ s: AttentionShape) -> [UInt32] {
        [u(s.rows), u(s.newTokens), u(s.startPosition), u(s.heads), u(s.kvHeads), u(s.headDim), u(s.prefixTokens), u(s.cacheCapacity)]
    }

    public func storeKV(qkv: Tensor, keys: Tensor, values: Tensor, shape s: AttentionShape) {
        run("store_kv", [qkv, keys, values], shapeWords(s) + [u(qkv.offset), u(keys.offset), u(values.offset)],
            groups: Self.groups(s.rows * s.newTokens * s.kvHeads * s.headDim))
    }

    public func attention(qkv: Tensor, keys: Tensor, values: Tensor, out: Tensor, logSumExp: Tensor?, shape s: AttentionShape) {
        precondition(s.headDim <= 128, "Vulkan attention: head_dim <= 128")
        run("attention", [qkv, keys, values, out, logSumExp ?? out],
            shapeWords(s) + [u(qkv.offset), u(keys.offset), u(values.offset), u(out.offset), u(logSumExp?.offset ?? 0),
                             logSumExp != nil ? 1 : 0],
            groups: Self.groups(s.rows * s.heads * s.newTokens, 64))
    }

    public func swiglu(_ gateUp: Tensor, out: Tensor, rows: Int, dim: Int) {
        run("swiglu", [gateUp, out], [u(rows), u(dim), u(gateUp.offset), u(out.offset)], groups: Self.groups(rows * dim))
    }

    public func silu(_ x: Tensor, out: Tensor) {
        run("silu", [x, out], [u(x.count), u(x.offset), u(out.offset)], groups: Self.groups(x.count))
    }

    public func interleaveStreams(_ y: Tensor, out: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        run("interleave", [y, out], [u(streams), u(rowsPerStream), u(dim), u(y.offset), u(out.offset)],
            groups: Self.groups(streams * rowsPerStream * dim))
    }

    public func mixStreams(
        _ y: Tensor, logits: Tensor, weights: Tensor, out: Tensor, streams: Int, rowsPerStream: Int, dim: Int, smoothing: Float
    ) {
        run("mix_streams", [y, logits, weights, out],
            [u(streams), u(rowsPerStream), u(dim), u(y.offset), u(logits.offset), u(weights.offset), u(out.offset), f(smoothing)],
            groups: Self.groups(rowsPerStream * dim))
    }
}

/// Push constants as 32-bit words (every field of the shaders' Push blocks is a uint or a float).
/// 16 words: 64 of the 128 bytes every Vulkan device offers.
struct PushWords {
    var words: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
                UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    init(_ values: [UInt32]) {
        precondition(values.count <= 16)
        withUnsafeMutableBytes(of: &words) { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v, toByteOffset: i * 4, as: UInt32.self) }
        }
    }
}
