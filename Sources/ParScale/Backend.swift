/// Storage owned by a backend. The CPU backend's is host memory; a GPU backend subclasses it.
open class DeviceBuffer: @unchecked Sendable {
    public let count: Int
    public init(count: Int) { self.count = count }
}

/// A view of `count` floats at `offset` into a backend buffer: what every op reads and writes.
public struct Tensor: @unchecked Sendable {
    public let buffer: DeviceBuffer
    public let offset: Int
    public let count: Int

    public init(buffer: DeviceBuffer, offset: Int = 0, count: Int? = nil) {
        self.buffer = buffer
        self.offset = offset
        self.count = count ?? buffer.count - offset
        precondition(offset >= 0 && offset + self.count <= buffer.count, "tensor view out of range")
    }

    public func slice(_ start: Int, _ length: Int) -> Tensor {
        precondition(start >= 0 && start + length <= count, "slice out of range")
        return Tensor(buffer: buffer, offset: offset + start, count: length)
    }
}

/// Shapes of one attention call. Rows are `streams*batch` sequences of `newTokens` queries each;
/// queries of row `r` attend to `prefixTokens` prefix slots then real slots 0 ... startPosition+t.
public struct AttentionShape: Sendable, Equatable {
    public var rows: Int  // R = P*B
    public var newTokens: Int  // S of this call
    public var startPosition: Int  // tokens already in the cache
    public var heads: Int  // NH
    public var kvHeads: Int  // KVH
    public var headDim: Int
    public var prefixTokens: Int  // T (0 when P = 1)
    public var cacheCapacity: Int  // slots per (row, kv head): T + max real tokens
    public var qkvStride: Int { (heads + 2 * kvHeads) * headDim }
}

/// The ops the model is written in, one implementation per backend (CPU, Vulkan): the forward
/// ops, each one's backward, and the optimizer's. The model's forward is a sequence of these calls
/// over flat float buffers, its backward the same calls in reverse.
public protocol Backend: AnyObject {
    var name: String { get }
    func allocate(_ count: Int) -> Tensor  // zero-filled
    func upload(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor)
    func download(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>)
    /// Waits until all recorded work has finished (a no-op on the CPU).
    func synchronize()
    /// The largest tensor one op can take, in bytes (a GPU's binding range), or nil for no limit.
    var maxTensorBytes: Int? { get }
    /// Checks, before work starts, that `count` more floats for `what` (a model's parameters, a
    /// trainer's state) fit in the backend's memory; throws a ModelError naming `what` and the size
    /// where they do not (`allocate` cannot fail). The CPU backend does not check.
    func reserve(_ count: Int, for what: String) throws
    /// `allocate`, checked: a ModelError naming `what` where the tensor does not fit (`reserve`) or
    /// the driver refuses it. The large buffers (a KV cache, activations, a training step's
    /// workspace) are made through this, so that running out of device memory is an error, not a crash.
    func allocate(_ count: Int, for what: String) throws -> Tensor

    // MARK: forward

    /// out[i, :] = table[ids[i], :]
    func embed(ids: [Int32], table: Tensor, out: Tensor, dim: Int)
    /// out = [x; x; ...] `times` copies, stacked (replica-major streams).
    func repeatRows(_ x: Tensor, times: Int, out: Tensor)
    func copy(_ src: Tensor, to dst: Tensor)
    /// out[i, :] = x[rowIndices[i], :]
    func gatherRows(_ x: Tensor, rowIndices: [Int32], out: Tensor, dim: Int)
    func rmsNorm(_ x: Tensor, weight: Tensor, out: Tensor, rows: Int, dim: Int, eps: Float)
    /// out = x W^T (+ bias) (+ out when accumulate). x [rows, inDim], W [outDim, inDim].
    func linear(
        _ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor, rows: Int, inDim: Int, outDim: Int,
        accumulate: Bool)
    /// Rotates the q and k heads (the first NH+KVH heads of each qkv row) by position startPosition + t.
    func rope(qkv: Tensor, shape: AttentionShape, theta: Float)
    /// Fills every row's first T cache slots with its stream's prefix ([P, KVH, T, hd]).
    func fillPrefix(prefix: Tensor, cache: Tensor, streams: Int, batch: Int, shape: AttentionShape)
    /// Copies the new k, v of each row into cache slots T + startPosition + t.
    func storeKV(qkv: Tensor, keys: Tensor, values: Tensor, shape: AttentionShape)
    /// Causal attention over [prefix | cached | new] keys; out [rows*newTokens, NH*hd].
    /// `logSumExp` ([rows, NH, newTokens]), when given, keeps what the backward pass needs.
    func attention(qkv: Tensor, keys: Tensor, values: Tensor, out: Tensor, logSumExp: Tensor?, shape: AttentionShape)
    /// out = silu(gateUp[:, :dim]) * gateUp[:, dim:]
    func swiglu(_ gateUp: Tensor, out: Tensor, rows: Int, dim: Int)
    func silu(_ x: Tensor, out: Tensor)
    /// feat[i, d*P + r] = y[r*rowsPerStream + i, d]  (einops "(n b) s h -> b s (h n)")
    func interleaveStreams(_ y: Tensor, out: Tensor, streams: Int, rowsPerStream: Int, dim: Int)
    /// w = softmax(logits)*(1-s) + s/P per row (written into `weights`), out[i] = sum_r w[i,r] y_r[i]
    func aggregation(
        _ y: Tensor, logits: Tensor, weights: Tensor, out: Tensor, streams: Int, rowsPerStream: Int,
        dim: Int, smoothing: Float)

    // MARK: backward (each the gradient of the forward op of the same name; parameter
    // gradients are ADDED to, llm.c style, so tied and shared tensors just work)

    /// dInput (=|+=) dOut W;  dWeight += dOut^T input;  dBias += column sums of dOut.
    /// A nil gradient is not computed (frozen parameters).
    func linearBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor?, accumulateInput: Bool,
        dWeight: Tensor?, dBias: Tensor?, rows: Int, inDim: Int, outDim: Int)
    func rmsNormBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, dInput: Tensor, accumulateInput: Bool,
        dWeight: Tensor?, rows: Int, dim: Int, eps: Float)
    func ropeBackward(dQKV: Tensor, shape: AttentionShape, theta: Float)
    /// dQ into dQKV's q part; dKeys / dValues (cache-shaped) overwritten.
    func attentionBackward(
        dOut: Tensor, out: Tensor, qkv: Tensor, keys: Tensor, values: Tensor, logSumExp: Tensor,
        dQKV: Tensor, dKeys: Tensor, dValues: Tensor, shape: AttentionShape)
    func storeKVBackward(dKeys: Tensor, dValues: Tensor, dQKV: Tensor, shape: AttentionShape)
    func fillPrefixBackward(dCache: Tensor, dPrefix: Tensor, streams: Int, batch: Int, shape: AttentionShape)
    func swigluBackward(dOut: Tensor, gateUp: Tensor, dGateUp: Tensor, rows: Int, dim: Int)
    func siluBackward(dOut: Tensor, input: Tensor, dInput: Tensor)
    func interleaveStreamsBackward(dFeat: Tensor, dY: Tensor, streams: Int, rowsPerStream: Int, dim: Int)
    /// dY overwritten with w_r * dOut; dLogits through the smoothed softmax.
    func aggregationBackward(
        dOut: Tensor, y: Tensor, weights: Tensor, dY: Tensor, dLogits: Tensor, streams: Int,
        rowsPerStream: Int, dim: Int, smoothing: Float)
    /// dX += scale times the gradient of the stream decorrelation penalty of x (both [streams,
    /// rowsPerStream, dim]; `StreamDecorrelationOps`); at most `StreamDecorrelationOps.maxStreams` streams.
    func streamDecorrelationBackward(x: Tensor, dX: Tensor, streams: Int, rowsPerStream: Int, dim: Int, scale: Float)
    /// out = sum of the `streams` stacked copies in x (the gradient of repeatRows).
    func sumStreams(_ x: Tensor, streams: Int, out: Tensor)
    func embedBackward(ids: [Int32], dOut: Tensor, dTable: Tensor, dim: Int)
    /// losses[i] = -log softmax(logits[i])[target]; logits overwritten by gradScale * dloss/dlogits.
    func crossEntropy(logits: Tensor, targets: [Int32], losses: Tensor, rows: Int, vocab: Int, gradScale: Float)
    /// sums[s] = sum of -log softmax(logits[i])[targets[i]] over rows i of sequence s
    /// (s*rowsPerSum ..< (s+1)*rowsPerSum), for the `sums.count` sequences: evaluation's loss
    /// without the gradient and without downloading the logits, which are left unchanged.
    func crossEntropySums(logits: Tensor, targets: [Int32], sums: Tensor, rowsPerSum: Int, vocab: Int)

    // MARK: prefix reparameterisation (training: the MLP of `PrefixReparam`, Ops/PrefixMLP.swift)

    /// One layer over P stream rows: out[r, o] = residual[r, o] + act(bias[o] + sum_i W[o, i] x[r, i]),
    /// act tanh or identity, each sum in index order. A tanh layer takes no residual.
    func prefixMLP(_ x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor?, out: Tensor, shape: PrefixMLPShape)
    /// Its gradient, ADDED to dInput, dWeight and dBias. `output`: the forward's out (tanh's
    /// derivative reads it; an identity layer ignores it).
    func prefixMLPBackward(
        dOut: Tensor, input: Tensor, weight: Tensor, output: Tensor, dInput: Tensor, dWeight: Tensor, dBias: Tensor,
        shape: PrefixMLPShape)

    // MARK: optimizer
    func fill(_ x: Tensor, value: Float)
    func sumOfSquares(_ x: Tensor) -> Double
    func adamw(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, settings: AdamWSettings)

    // MARK: step scalars (a training step's loss and squared gradient norm, kept where the backend
    // computes so that a whole step is recorded without waiting; defaults below: the CPU's)

    /// scalar += sum of x[i]^2.
    func sumOfSquares(_ x: Tensor, addingTo scalar: StepScalar)
    /// scalar += (sum of x[i] / x.count) / divisor: the mean loss of one of `divisor` micro-batches.
    func mean(_ x: Tensor, dividedBy divisor: Int, addingTo scalar: StepScalar)
    /// scalar = value.
    func setScalar(_ scalar: StepScalar, to value: Double)
    /// Every scalar's value: the one wait of a training step.
    func readScalars(_ scalars: StepScalars) -> [Double]
    /// AdamW whose clipping factor comes from the squared global gradient norm in `squaredNorm`, read
    /// where the backend computes: clipNorm / norm when clipNorm > 0 and norm > clipNorm, else 1
    /// (`settings.gradScale` is not used). A non-finite norm leaves everything untouched.
    func adamw(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, settings: AdamWSettings, clipNorm: Double, squaredNorm: StepScalar)
}

extension Backend {
    public var maxTensorBytes: Int? { nil }
    public func reserve(_ count: Int, for what: String) throws {}
    public func allocate(_ count: Int, for what: String) throws -> Tensor {
        try reserve(count, for: what)
        return allocate(count)
    }
}

/// One accumulator of a training step (its loss, its squared gradient norm) kept where the backend
/// computes: ops add to it without a round trip, and the host reads all of a step's scalars at once
/// when the step is recorded (`readScalars`). It is two floats of a backend tensor: the CPU backend
/// (these defaults) keeps a Double's bytes there, so its sums are exactly the host's; the Vulkan
/// backend keeps a float sum and its rounding error (a compensated sum). All zero bits is 0 in both.
public struct StepScalar: @unchecked Sendable {
    public let storage: Tensor  // 2 floats
}

/// `count` step scalars in one small tensor, zeroed by `backend.fill(storage, value: 0)`.
public struct StepScalars: @unchecked Sendable {
    public let storage: Tensor
    public var count: Int { storage.count / 2 }
    public init(backend: Backend, count: Int) { storage = backend.allocate(2 * count) }
    public subscript(i: Int) -> StepScalar { StepScalar(storage: storage.slice(2 * i, 2)) }
}

/// The step scalars on the host's terms: a Double in the scalar's 8 bytes, summed as the host does
/// (what the CPU backend uses; a GPU backend keeps them on the device instead).
extension Backend {
    func scalarValue(_ scalar: StepScalar) -> Double {
        var pair: [Float] = [0, 0]
        pair.withUnsafeMutableBufferPointer { download(scalar.storage, into: $0) }
        return pair.withUnsafeBytes { $0.loadUnaligned(as: Double.self) }
    }

    func storeScalar(_ scalar: StepScalar, _ value: Double) {
        var pair: [Float] = [0, 0]
        pair.withUnsafeMutableBytes { $0.storeBytes(of: value, as: Double.self) }
        pair.withUnsafeBufferPointer { upload($0, to: scalar.storage) }
    }

    public func sumOfSquares(_ x: Tensor, addingTo scalar: StepScalar) {
        storeScalar(scalar, scalarValue(scalar) + sumOfSquares(x))
    }

    public func mean(_ x: Tensor, dividedBy divisor: Int, addingTo scalar: StepScalar) {
        var values = [Float](repeating: 0, count: x.count)
        values.withUnsafeMutableBufferPointer { download(x, into: $0) }
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(x.count)
        storeScalar(scalar, scalarValue(scalar) + mean / Double(divisor))
    }

    public func setScalar(_ scalar: StepScalar, to value: Double) { storeScalar(scalar, value) }

    public func readScalars(_ scalars: StepScalars) -> [Double] { (0..<scalars.count).map { scalarValue(scalars[$0]) } }

    public func adamw(
        params: Tensor, grads: Tensor, m: Tensor, v: Tensor, settings: AdamWSettings, clipNorm: Double, squaredNorm: StepScalar
    ) {
        let norm = scalarValue(squaredNorm).squareRoot()
        guard norm.isFinite else { return }
        var s = settings
        s.gradScale = Float(clipNorm > 0 && norm > clipNorm ? clipNorm / norm : 1)
        adamw(params: params, grads: grads, m: m, v: v, settings: s)
    }
}

/// A byte count for messages: B, KiB, MiB or GiB.
public func formatBytes(_ bytes: Int) -> String {
    let b = Double(bytes)
    if bytes >= 1 << 30 { return String(format: "%.2f GiB", b / 1_073_741_824) }
    if bytes >= 1 << 20 { return String(format: "%.2f MiB", b / 1_048_576) }
    if bytes >= 1 << 10 { return String(format: "%.1f KiB", b / 1024) }
    return "\(bytes) B"
}
