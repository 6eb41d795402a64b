import CVulkan
import Foundation
import ParScale

/// The model on Vulkan compute shaders: forward, backward and optimizer ops, one shader (or two)
/// per op. Ops are recorded into one command buffer, a barrier after each, and submitted once
/// when the host needs a result (download, upload, synchronize, sumOfSquares): a whole forward
/// pass, decode step or optimizer step (Trainer.step: the loss and gradient norm stay on the device
/// until read once) is one submission with one fence.
public final class VulkanBackend: Backend {
    public let device: VulkanDevice
    /// The pipeline of every shader of the kernel table, in `ShaderTable.all` order.
    let kernels: [VulkanKernel]
    /// The one command buffer (with its descriptor pool and fence), reused by every submission.
    let sequence: VulkanSequence
    /// The command buffer while it is being recorded, and the buffers its dispatches use: kept
    /// alive until it has run, since a tensor may be released (a model or a temporary freed) first.
    var pending: VulkanSequence? { sequence.isRecording ? sequence : nil }
    var pendingDispatches = 0
    var keepAlive: [VulkanBuffer] = []
    /// Host-visible area the gathers' index lists are written to, one aligned slot after another
    /// (`indices`); the slots are recycled at `flush`, once the work that reads them has run.
    var indexArea: VulkanBuffer?
    var indexAreaUsed = 0
    static let initialIndexAreaBytes = 256 << 10
    /// Work space of ops that need one (per-row 1/rms, partial sums); grows, never shrinks.
    var scratchBuffer: VulkanBuffer?
    /// Where tensors live: mapped host-visible memory, or device-local memory behind staging.
    public let memory: VulkanMemoryMode
    var stagingBuffer: VulkanBuffer?
    static let stagingBytes = 16 << 20
    /// The largest window one binding may cover, and the alignment of a window's start: a tensor
    /// of a larger buffer is bound as a window around it, its offset passed relative to the window.
    public let maxBindingBytes: Int
    public let bindingAlignment: Int
    static let dispatchesPerSubmission = 4096
    static let maxBindings = 8
    /// Matrix products of at most this many rows (decode steps) use linear_rows.comp, one work
    /// group per output column, when `useFewRowsKernel` is on: by default on GPUs only, since on
    /// lavapipe its shared-memory reduction made decode 10x slower than the tiles (measured).
    static let fewRows = 8
    public var useFewRowsKernel: Bool
    /// The memory `reserve` lets tensors take: the device's device-local heaps, or less where the
    /// caller says so (tests stand for a small GPU with it).
    public let memoryLimitBytes: Int

    public var name: String { "vulkan (\(device.info.name))" }
    /// Driver calls and bus traffic since the device was opened (differences measure a step).
    public var counters: VulkanCounters { device.counters }

    /// Why `config` cannot run on `device`, or nil: the attention shader keeps one head in
    /// registers (head_dim <= 128), and each tensor must fit one binding (maxStorageBufferRange;
    /// the flat parameter buffer may be larger: it is bound in windows).
    public static func limitation(for config: ModelConfig, on device: VulkanDeviceInfo) -> String? {
        if config.headDim > 128 { return "head_dim \(config.headDim) > 128 is not supported by the attention shader yet" }
        let limit = device.maxStorageBufferRange - max(4, device.minStorageBufferOffsetAlignment) + 4
        let (name, count) = ParameterLayout(config).largestTensor
        if count * 4 > limit {
            return "the parameter \(name) (\(formatBytes(count * 4))) exceeds \(device.name)'s storage buffer range of \(formatBytes(limit))"
        }
        return nil
    }

    /// `sharedMemoryTiles`: whether matrix products stage their operands in shared memory (by
    /// default on GPUs, not on CPU devices such as lavapipe, where it is slower).
    /// `memory`: nil takes $PARSCALE_VULKAN_MEMORY (mapped or staging) or else staging exactly when
    /// the device has memory the host cannot map. `maxBindingBytes` and `bindingAlignment` lower
    /// the device's maxStorageBufferRange and raise its minStorageBufferOffsetAlignment (tests use
    /// them to exercise binding windows on small models). `memoryLimitBytes` lowers the memory
    /// `reserve` allows below the device's device-local heaps.
    public init(
        device: VulkanDevice, sharedMemoryTiles: Bool? = nil, memory: VulkanMemoryMode? = nil, maxBindingBytes: Int? = nil,
        bindingAlignment: Int? = nil, memoryLimitBytes: Int? = nil
    ) throws {
        self.device = device
        let heap = device.info.deviceLocalBytes > 0 ? device.info.deviceLocalBytes : Int.max
        self.memoryLimitBytes = min(memoryLimitBytes ?? heap, heap)
        let fromEnvironment = ProcessInfo.processInfo.environment["PARSCALE_VULKAN_MEMORY"]
        if let fromEnvironment, memory == nil, VulkanMemoryMode(rawValue: fromEnvironment) == nil {
            throw VulkanUnavailable("PARSCALE_VULKAN_MEMORY must be mapped or staging, not '\(fromEnvironment)'")
        }
        self.memory = memory ?? fromEnvironment.flatMap(VulkanMemoryMode.init) ?? (device.hasSeparateDeviceMemory ? .staging : .mapped)
        let alignment = max(4, bindingAlignment ?? 4, device.info.minStorageBufferOffsetAlignment)
        guard alignment & (alignment - 1) == 0 else { throw VulkanUnavailable("binding alignment \(alignment) is not a power of two") }
        self.bindingAlignment = alignment
        self.maxBindingBytes = min(maxBindingBytes ?? Int.max, device.info.maxStorageBufferRange) / 4 * 4
        guard self.maxBindingBytes >= 4 * alignment else { throw VulkanUnavailable("binding range \(self.maxBindingBytes) bytes is too small") }
        let tiles: UInt32 = (sharedMemoryTiles ?? device.info.isGPU) ? 1 : 0
        useFewRowsKernel = device.info.isGPU
        sequence = try VulkanSequence(device: device, maxDispatches: Self.dispatchesPerSubmission, maxBindings: Self.maxBindings)
        kernels = try ShaderTable.all.map { shader in
            try VulkanKernel(
                device: device, spirv: shader.spirv, bindings: shader.bindings, pushConstantBytes: shader.pushConstantBytes,
                specialization: shader.index == Shader.linear.index ? [tiles] : [])
        }
    }

    /// Records one dispatch of `shader` into the pending command buffer.
    func run<Push>(_ shader: Shader<Push>, _ tensors: [Tensor], _ push: Push, groups: (Int, Int, Int)) {
        let sequence = pendingSequence()
        try! sequence.dispatch(kernels[shader.index], bindings: tensors.map { window($0).binding }, push: push, groups: groups)
        keepAlive += tensors.map { $0.buffer as! VulkanBuffer }
        pendingDispatches += 1
    }

    /// The command buffer being recorded (submitted first when it is full, then begun afresh).
    func pendingSequence() -> VulkanSequence {
        if pendingDispatches == Self.dispatchesPerSubmission { flush() }
        if !sequence.isRecording { try! sequence.begin() }
        return sequence
    }

    /// Submits what is recorded and waits for it.
    func flush() {
        guard sequence.isRecording else { return }
        try! sequence.run()
        pendingDispatches = 0
        keepAlive.removeAll()
        indexAreaUsed = 0
    }

    /// The largest tensor every view is sure to fit in one binding, wherever it starts.
    public var maxTensorBytes: Int? { maxBindingBytes - bindingAlignment + 4 }

    /// What `tensor` is bound as: its whole buffer when that fits one binding, else a window that
    /// starts at an aligned byte at or below the tensor; and the tensor's offset in floats from
    /// the window's start (what the shaders get in push constants).
    func window(_ tensor: Tensor) -> (binding: VulkanBinding, offset: Int) {
        let buffer = tensor.buffer as! VulkanBuffer
        if buffer.isIndexArea {
            return (VulkanBinding(buffer: buffer, offset: tensor.offset * 4, range: max(tensor.count, 1) * 4), 0)
        }
        if buffer.bytes <= maxBindingBytes { return (VulkanBinding(buffer: buffer, offset: 0, range: nil), tensor.offset) }
        let start = tensor.offset * 4 / bindingAlignment * bindingAlignment
        let range = min(maxBindingBytes, buffer.bytes - start)
        precondition(
            tensor.offset * 4 + max(tensor.count, 1) * 4 <= start + range,
            "a tensor of \(tensor.count * 4) bytes exceeds \(device.info.name)'s binding range of \(maxBindingBytes) bytes")
        return (VulkanBinding(buffer: buffer, offset: start, range: range), tensor.offset - start / 4)
    }

    /// A tensor's offset as the shaders see it: relative to its binding's window.
    func o(_ tensor: Tensor) -> UInt32 { UInt32(window(tensor).offset) }

    /// [start, start + length) pieces of `count` elements, `step` at most (none when count is 0).
    static func pieces(_ count: Int, step: Int) -> [(start: Int, length: Int)] {
        stride(from: 0, to: count, by: step).map { ($0, min(step, count - $0)) }
    }

    /// Pieces small enough for one binding: elementwise ops over the flat parameter buffers run
    /// piece by piece.
    func pieces(_ count: Int) -> [(start: Int, length: Int)] {
        Self.pieces(count, step: max(256, (maxTensorBytes! / 4) / 256 * 256))
    }

    /// Work groups for `threads` threads in groups of `size`.
    static func groups(_ threads: Int, _ size: Int = 256) -> (Int, Int, Int) { grid((threads + size - 1) / size) }

    /// `count` work groups, as a 2-D grid past 65535 (the least maxComputeWorkGroupCount[0] Vulkan
    /// allows); the shaders flatten it back (common.glsl) and skip the overshoot.
    static func grid(_ count: Int) -> (Int, Int, Int) {
        let count = max(1, count)
        return count <= 65535 ? (count, 1, 1) : (65535, (count + 65534) / 65535, 1)
    }

    func u(_ v: Int) -> UInt32 { UInt32(v) }

    /// Throws a ModelError naming `what` where `count` more floats do not fit in `memoryLimitBytes`
    /// beside what tensors hold now: checked where models and trainers are made, so that running
    /// out of device memory is this error, not a failed allocation deep in an op.
    public func reserve(_ count: Int, for what: String) throws {
        let bytes = count * 4
        guard bytes > memoryLimitBytes - device.allocator.usedBytes else { return }
        // Buffers freed since the last submission are kept until it runs: run it, then look again.
        flush()
        let used = device.allocator.usedBytes
        guard bytes > memoryLimitBytes - used else { return }
        throw ModelError(
            "\(what) (\(formatBytes(bytes))) do not fit in \(device.info.name)'s memory: \(formatBytes(max(0, memoryLimitBytes - used))) "
                + "free of \(formatBytes(memoryLimitBytes)); use a smaller model or batch, or --backend cpu")
    }

    /// A new buffer in the backend's memory, zero-filled. For the small buffers of ops (scratch,
    /// temporaries); the large ones come through `allocate(_:for:)`, whose failure is an error.
    func makeBuffer(_ count: Int) -> VulkanBuffer {
        do { return try newBuffer(count) } catch {
            fatalError("could not allocate a tensor of \(formatBytes(count * 4)) on \(device.info.name): \(error)")
        }
    }

    /// A tensor for `what` where it fits in `memoryLimitBytes` and the driver gives the memory;
    /// otherwise a ModelError naming `what`, and the backend stays as it was.
    public func allocate(_ count: Int, for what: String) throws -> Tensor {
        try reserve(count, for: what)
        do { return Tensor(buffer: try newBuffer(count)) } catch {
            throw ModelError(
                "\(what) (\(formatBytes(count * 4))): \(device.info.name) could not allocate it (\(error)); "
                    + "use a smaller model or batch, or --backend cpu")
        }
    }

    func newBuffer(_ count: Int) throws -> VulkanBuffer {
        let buffer = try VulkanBuffer(device: device, count: count, mapped: memory == .mapped)
        if buffer.mapped == nil {
            pendingSequence().zero(buffer)
            keepAlive.append(buffer)
        }
        return buffer
    }

    /// `count` floats of work space, valid until the next op that asks for scratch.
    func scratch(_ count: Int) -> Tensor {
        if let b = scratchBuffer, b.count >= count { return Tensor(buffer: b, offset: 0, count: count) }
        let b = makeBuffer(max(count, 4096))
        scratchBuffer = b
        return Tensor(buffer: b, offset: 0, count: count)
    }

    /// A uint list (indices) for the next dispatch, as a slot of the index area: host-visible,
    /// written in place (a GPU reads it over the bus once), bound from the slot's start. The area
    /// grows by doubling when full (the old one kept until the flush); slots are reused after it.
    func indices(_ values: [UInt32]) -> Tensor {
        // Flushes now if the command buffer is full, so that no flush between here and the
        // dispatch recycles the slot.
        _ = pendingSequence()
        let bytes = max(values.count, 1) * 4
        var start = (indexAreaUsed + bindingAlignment - 1) / bindingAlignment * bindingAlignment
        if indexArea == nil || start + bytes > indexArea!.bytes {
            if let old = indexArea { keepAlive.append(old) }
            let capacity = max(Self.initialIndexAreaBytes, 2 * (indexArea?.bytes ?? 0), bytes)
            let area = try! VulkanBuffer(device: device, count: capacity / 4, mapped: true)
            area.isIndexArea = true
            indexArea = area
            start = 0
        }
        let area = indexArea!
        indexAreaUsed = start + bytes
        device.counters.bytesUploaded += values.count * 4
        UnsafeMutableRawPointer(area.mapped! + start / 4).bindMemory(to: UInt32.self, capacity: values.count)
            .update(from: values, count: values.count)
        return Tensor(buffer: area, offset: start / 4, count: values.count)
    }

    public func allocate(_ count: Int) -> Tensor { Tensor(buffer: makeBuffer(count)) }

    /// Written after the recorded work that may still read the tensor: in place when mapped, else
    /// through the staging buffer in pieces of at most `stagingBytes`.
    public func upload(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor) {
        flush()
        device.counters.bytesUploaded += values.count * 4
        let buffer = tensor.buffer as! VulkanBuffer
        if let mapped = buffer.mapped {
            (mapped + tensor.offset).update(from: values.baseAddress!, count: values.count)
            return
        }
        let staging = stagingArea()
        for piece in Self.pieces(values.count, step: Self.stagingBytes / 4) {
            staging.mapped!.update(from: values.baseAddress! + piece.start, count: piece.length)
            pendingSequence().copy(from: staging, offset: 0, to: buffer, offset: (tensor.offset + piece.start) * 4, bytes: piece.length * 4)
            flush()
        }
    }

    /// Through staging, the first piece's copy is recorded after the pending work and rides on its
    /// submission (a training step or decode step stays one submission on device-local memory).
    public func download(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>) {
        device.counters.bytesDownloaded += tensor.count * 4
        let buffer = tensor.buffer as! VulkanBuffer
        if let mapped = buffer.mapped {
            flush()
            values.baseAddress!.update(from: mapped + tensor.offset, count: tensor.count)
            return
        }
        let staging = stagingArea()
        for piece in Self.pieces(tensor.count, step: Self.stagingBytes / 4) {
            pendingSequence().copy(from: buffer, offset: (tensor.offset + piece.start) * 4, to: staging, offset: 0, bytes: piece.length * 4)
            flush()
            (values.baseAddress! + piece.start).update(from: staging.mapped!, count: piece.length)
        }
    }

    func stagingArea() -> VulkanBuffer {
        if let staging = stagingBuffer { return staging }
        let staging = try! VulkanBuffer(device: device, count: Self.stagingBytes / 4, mapped: true)
        stagingBuffer = staging
        return staging
    }

    public func synchronize() { flush() }

    func gather(_ table: Tensor, _ index: [UInt32], out: Tensor, dim: Int) {
        let push = EmbeddingPush(rows: u(index.count), dim: u(dim), tableOffset: o(table), outOffset: o(out))
        run(.embedding, [table, indices(index), out], push, groups: Self.groups(index.count * dim))
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
        let push = RMSNormPush(rows: u(rows), dim: u(dim), xOffset: o(x), wOffset: o(weight), outOffset: o(out), eps: eps)
        run(.rmsNorm, [x, weight, out], push, groups: Self.grid(rows))
    }

    /// out[m, n] (+)= sum_k a[m, k] b[k, n] (+ bias[n]), a[m, k] at a.offset + m*aStrides.row + k*aStrides.column.
    func matmul(
        _ a: Tensor, _ aStrides: (row: Int, column: Int), _ b: Tensor, _ bStrides: (row: Int, column: Int), bias: Tensor?,
        out: Tensor, m: Int, n: Int, k: Int, accumulate: Bool
    ) {
        let push = LinearPush(
            M: u(m), N: u(n), K: u(k), aOffset: o(a), bOffset: o(b), outOffset: o(out),
            biasOffset: bias.map(o) ?? 0, flags: (accumulate ? 1 : 0) | (bias != nil ? 2 : 0),
            aRowStride: u(aStrides.row), aColStride: u(aStrides.column), bRowStride: u(bStrides.row),
            bColStride: u(bStrides.column))
        if m <= Self.fewRows && useFewRowsKernel {
            run(.linearRows, [a, b, out, bias ?? out], push, groups: Self.grid(n))
        } else {
            run(.linear, [a, b, out, bias ?? out], push, groups: ((n + 31) / 32, (m + 31) / 32, 1))
        }
    }

    /// out = x W^T (NT): b[k, n] = W[n, k].
    public func linear(
        _ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor, rows: Int, inDim: Int, outDim: Int, accumulate: Bool
    ) {
        matmul(x, (inDim, 1), weight, (1, inDim), bias: bias, out: out, m: rows, n: outDim, k: inDim, accumulate: accumulate)
    }

    public func rope(qkv: Tensor, shape s: AttentionShape, theta: Float) {
        let threads = s.rows * s.newTokens * (s.heads + s.kvHeads) * s.headDim / 2
        run(.rope, [qkv], ropePush(qkv, s, theta: theta, sign: 1), groups: Self.groups(threads))
    }

    /// Rotates the first NH + KVH heads (q and k) of each row; `sign` -1: the inverse rotation.
    func ropePush(_ qkv: Tensor, _ s: AttentionShape, theta: Float, sign: Float) -> RoPEPush {
        RoPEPush(
            sequences: u(s.rows), newTokens: u(s.newTokens), startPosition: u(s.startPosition), heads: u(s.heads + s.kvHeads),
            headDim: u(s.headDim), rowStride: u(s.qkvStride), offset: o(qkv), theta: theta, sign: sign)
    }

    public func fillPrefix(prefix: Tensor, cache: Tensor, streams: Int, batch: Int, shape s: AttentionShape) {
        let threads = streams * batch * s.kvHeads * s.prefixTokens * s.headDim
        let push = FillPrefixPush(
            streams: u(streams), batch: u(batch), kvHeads: u(s.kvHeads), prefixTokens: u(s.prefixTokens), headDim: u(s.headDim),
            capacity: u(s.cacheCapacity), prefixOffset: o(prefix), cacheOffset: o(cache))
        run(.fillPrefix, [prefix, cache], push, groups: Self.groups(threads))
    }

    public func storeKV(qkv: Tensor, keys: Tensor, values: Tensor, shape s: AttentionShape) {
        let push = StoreKVPush(shape: AttentionHeader(s), qkvOffset: o(qkv), keysOffset: o(keys), valuesOffset: o(values))
        run(.storeKV, [qkv, keys, values], push, groups: Self.groups(s.rows * s.newTokens * s.kvHeads * s.headDim))
    }

    public func attention(qkv: Tensor, keys: Tensor, values: Tensor, out: Tensor, logSumExp: Tensor?, shape s: AttentionShape) {
        precondition(s.headDim <= 128, "Vulkan attention: head_dim <= 128")
        let push = AttentionPush(
            shape: AttentionHeader(s), qkvOffset: o(qkv), keysOffset: o(keys), valuesOffset: o(values), outOffset: o(out),
            lseOffset: logSumExp.map(o) ?? 0, keepLSE: logSumExp != nil ? 1 : 0)
        run(.attention, [qkv, keys, values, out, logSumExp ?? out], push, groups: Self.groups(s.rows * s.heads * s.newTokens, 64))
    }

    public func swiglu(_ gateUp: Tensor, out: Tensor, rows: Int, dim: Int) {
        let push = SwiGLUPush(rows: u(rows), dim: u(dim), inOffset: o(gateUp), outOffset: o(out))
        run(.swiglu, [gateUp, out], push, groups: Self.groups(rows * dim))
    }

    public func silu(_ x: Tensor, out: Tensor) {
        run(.silu, [x, out], SiLUPush(count: u(x.count), inOffset: o(x), outOffset: o(out)), groups: Self.groups(x.count))
    }

    public func interleaveStreams(_ y: Tensor, out: Tensor, streams: Int, rowsPerStream: Int, dim: Int) {
        let push = InterleavePush(streams: u(streams), rowsPerStream: u(rowsPerStream), dim: u(dim), yOffset: o(y), featOffset: o(out))
        run(.interleave, [y, out], push, groups: Self.groups(streams * rowsPerStream * dim))
    }

    public func aggregation(
        _ y: Tensor, logits: Tensor, weights: Tensor, out: Tensor, streams: Int, rowsPerStream: Int, dim: Int, smoothing: Float
    ) {
        let push = AggregationPush(
            streams: u(streams), rowsPerStream: u(rowsPerStream), dim: u(dim), yOffset: o(y), logitsOffset: o(logits),
            weightsOffset: o(weights), outOffset: o(out), smoothing: smoothing)
        run(.aggregation, [y, logits, weights, out], push, groups: Self.groups(rowsPerStream * dim))
    }
}

/// Where the Vulkan backend keeps tensors.
public enum VulkanMemoryMode: String, Sendable {
    /// Host-visible memory, mapped: uploads and downloads are copies in place (lavapipe,
    /// integrated GPUs, whose only memory is shared with the host).
    case mapped
    /// Device-local memory the host cannot see (a discrete GPU's VRAM), inputs and outputs moved
    /// through a host-visible staging buffer by transfer commands.
    case staging
}
