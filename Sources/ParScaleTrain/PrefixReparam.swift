import Foundation
import ParScale

/// Prefix reparameterisation while training (the authors trained with one, QwenLM/ParScale#1; the
/// form is #10's): stream r's prefixes, every layer's keys and values, are
///
///     prefixes[r] = base[r] + W2 tanh(W1 e[r] + b1) + b2
///
/// with a learned vector e[r] per stream and a small MLP shared by the streams. `base` is the
/// prefixes the run started with (normal draws, or from data when recycling), kept fixed; W2 starts
/// at zero, so the model starts exactly where the plain recipe starts and the MLP learns the change.
/// The MLP exists only while training: after every update its output is folded into the model's
/// plain `prefix_k` / `prefix_v` tensors, so checkpoints stay in the official layout. Its own
/// tensors and moments go to `reparam.safetensors` beside the checkpoint, for --resume.
///
/// It runs on the model's backend, in backend ops (`prefixMLP` / `prefixMLPBackward`, one call per
/// layer and prefix block): the forward writes each block straight into the model's prefix tensor,
/// the backward reads the prefix gradients where the model's backward left them, and the update is
/// the backend's AdamW, so a training step moves no prefixes between host and device (only saving
/// and restoring download or upload). On the CPU the results are bit for bit those of the host
/// loops this replaced: every sum runs in the same order.
public final class PrefixReparam {
    public let streams: Int
    public let vectorSize: Int  // d: length of e[r]
    public let hiddenSize: Int  // m: the MLP's hidden width
    public let outputSize: Int  // O: one stream's prefixes over all layers, keys then values per layer
    /// The model's prefix tensors [P, KVH, T, hd] in output order (layer 0 keys, layer 0 values,
    /// layer 1 keys, ...); `block[r]` is stream r's part of one. All have `blockSize` values per stream.
    let blocks: [ParameterTensor]
    let blockSize: Int  // n: KVH * T * hd

    /// Everything lives on the model's backend, so a step moves no prefixes between host and device:
    /// the trainable tensors in one flat buffer, e [P, d], W1 [m, d], b1 [m], W2 [O, m], b2 [O], with
    /// their gradients and AdamW moments in the same layout; `base` block by block, [2L, P, n] (each
    /// block [P, n] like the model's prefix tensor it is added to); the hidden activations and their
    /// gradient [P, m].
    let backend: Backend
    let parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor
    let base: Tensor
    let hidden: Tensor, dHidden: Tensor
    var e: Int { 0 }
    var w1: Int { streams * vectorSize }
    var b1: Int { w1 + hiddenSize * vectorSize }
    var w2: Int { b1 + hiddenSize }
    var b2: Int { w2 + outputSize * hiddenSize }
    var count: Int { b2 + outputSize }

    /// A new reparameterisation of `model`'s current prefixes (they become `base`).
    public init(model: ParScaleModel, hiddenSize: Int, vectorSize: Int? = nil, seed: UInt64) throws {
        let layout = model.layout, c = model.config
        guard c.streams > 1 else { throw TrainingError("prefix reparameterisation needs P > 1 (this model has P = 1)") }
        guard hiddenSize > 0 else { throw TrainingError("--prefix-reparam must be positive, got \(hiddenSize)") }
        streams = c.streams
        self.hiddenSize = hiddenSize
        self.vectorSize = vectorSize ?? hiddenSize
        blocks = layout.layers.flatMap { [$0.prefixK, $0.prefixV].compactMap { $0 } }
        blockSize = blocks[0][0].count
        let (p, n) = (c.streams, blocks[0][0].count)
        precondition(blocks.allSatisfy { $0.count == p * n }, "prefix tensors of one shape")
        outputSize = blocks.count * blockSize
        backend = model.backend
        let total = streams * self.vectorSize + hiddenSize * (self.vectorSize + 1) + outputSize * (hiddenSize + 1)
        (parameters, gradients, m, v) = (backend.allocate(total), backend.allocate(total), backend.allocate(total), backend.allocate(total))
        (hidden, dHidden) = (backend.allocate(streams * hiddenSize), backend.allocate(streams * hiddenSize))
        base = backend.allocate(streams * outputSize)
        for (b, block) in blocks.enumerated() { backend.copy(model.parameters.slice(block), to: baseBlock(b)) }
        precondition(total == count)
        var rng = SeededGenerator(seed: seed ^ 0x7265_7061_7261_6D00)
        var values = [Float](repeating: 0, count: count)
        for i in 0..<(streams * self.vectorSize) { values[e + i] = Float(rng.nextNormal()) }
        let w1Std = 1 / Double(self.vectorSize).squareRoot()  // unit-variance pre-activations
        for i in 0..<(hiddenSize * self.vectorSize) { values[w1 + i] = Float(rng.nextNormal() * w1Std) }
        values.withUnsafeBufferPointer { backend.upload($0, to: parameters) }
    }

    // MARK: views of the flat buffers

    func baseBlock(_ b: Int) -> Tensor { base.slice(b * streams * blockSize, streams * blockSize) }
    var hiddenShape: PrefixMLPShape { PrefixMLPShape(rows: streams, inDim: vectorSize, outDim: hiddenSize, tanh: true) }
    var outputShape: PrefixMLPShape { PrefixMLPShape(rows: streams, inDim: hiddenSize, outDim: blockSize, tanh: false) }
    /// e, W1, b1 of `flat` (the parameters or their gradients).
    func firstLayer(_ flat: Tensor) -> (e: Tensor, w: Tensor, b: Tensor) {
        (flat.slice(e, streams * vectorSize), flat.slice(w1, hiddenSize * vectorSize), flat.slice(b1, hiddenSize))
    }
    /// Block b's rows of W2 and entries of b2 in `flat`.
    func secondLayer(_ flat: Tensor, block b: Int) -> (w: Tensor, b: Tensor) {
        (flat.slice(w2 + b * blockSize * hiddenSize, blockSize * hiddenSize), flat.slice(b2 + b * blockSize, blockSize))
    }

    // MARK: forward and backward (backend ops, Ops/PrefixMLP.swift)

    /// hidden = tanh(e W1^T + b1), then each block's prefixes = base + hidden W2^T + b2, written
    /// into `out(b)`.
    func forward(into out: (Int) -> Tensor) {
        let first = firstLayer(parameters)
        backend.prefixMLP(first.e, weight: first.w, bias: first.b, residual: nil, out: hidden, shape: hiddenShape)
        for b in blocks.indices {
            let second = secondLayer(parameters, block: b)
            backend.prefixMLP(hidden, weight: second.w, bias: second.b, residual: baseBlock(b), out: out(b), shape: outputShape)
        }
    }

    /// The prefixes [P, O] the current parameters give (downloaded: for tests and tools).
    public func prefixes() -> [Float] {
        let blockMajor = backend.allocate(streams * outputSize)
        forward { blockMajor.slice($0 * self.streams * self.blockSize, self.streams * self.blockSize) }
        return streamMajor(array(blockMajor))
    }

    /// Writes the current prefixes into the model's prefix tensors, on the model's backend.
    public func fold(into model: ParScaleModel) {
        precondition(model.backend === backend, "the reparameterisation lives on its model's backend")
        forward { model.parameters.slice(self.blocks[$0]) }
    }

    /// The MLP's gradients from the model's prefix gradients (in `modelGradients`, the model's
    /// layout, on the same backend), overwriting earlier ones (`gradientTensor`: they count in the
    /// global norm).
    public func backward(modelGradients: Tensor, backend: Backend) {
        precondition(backend === self.backend, "the reparameterisation lives on its model's backend")
        let first = firstLayer(parameters)
        backend.prefixMLP(first.e, weight: first.w, bias: first.b, residual: nil, out: hidden, shape: hiddenShape)
        backend.fill(gradients, value: 0)
        backend.fill(dHidden, value: 0)
        for (b, block) in blocks.enumerated() {
            let second = secondLayer(parameters, block: b), dSecond = secondLayer(gradients, block: b)
            let dOut = modelGradients.slice(block)
            backend.prefixMLPBackward(
                dOut: dOut, input: hidden, weight: second.w, output: dOut, dInput: dHidden, dWeight: dSecond.w,
                dBias: dSecond.b, shape: outputShape)
        }
        let dFirst = firstLayer(gradients)
        backend.prefixMLPBackward(
            dOut: dHidden, input: first.e, weight: first.w, output: hidden, dInput: dFirst.e, dWeight: dFirst.w,
            dBias: dFirst.b, shape: hiddenShape)
    }

    /// The MLP's gradients, on the model's backend (flat, the parameters' layout).
    public var gradientTensor: Tensor { gradients }

    /// One AdamW step (no weight decay: like the prefixes, these are the streams' identity) clipped
    /// by the global norm the model's update recorded in `squaredNorm`, on the model's backend,
    /// without waiting.
    public func update(learningRate: Double, step: Int, options: OptimizerOptions, squaredNorm: StepScalar) {
        backend.adamw(
            params: parameters, grads: gradients, m: m, v: v,
            settings: AdamWSettings(
                learningRate: Float(learningRate), beta1: Float(options.beta1), beta2: Float(options.beta2),
                epsilon: Float(options.epsilon), weightDecay: 0, step: step),
            clipNorm: options.clipNorm, squaredNorm: squaredNorm)
    }

    /// [P, O] (stream r's prefixes over all blocks in a row) from [2L, P, n] (block-major).
    func streamMajor(_ blockMajor: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: blockMajor.count)
        for b in blocks.indices {
            for r in 0..<streams {
                for k in 0..<blockSize { out[r * outputSize + b * blockSize + k] = blockMajor[(b * streams + r) * blockSize + k] }
            }
        }
        return out
    }

    /// [2L, P, n] from [P, O].
    func blockMajor(_ streamMajor: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: streamMajor.count)
        for b in blocks.indices {
            for r in 0..<streams {
                for k in 0..<blockSize { out[(b * streams + r) * blockSize + k] = streamMajor[r * outputSize + b * blockSize + k] }
            }
        }
        return out
    }

    // MARK: saving and resuming

    public static let fileName = "reparam.safetensors"

    public func save(to path: String, step: Int) throws {
        let tensors: [(String, [Float])] = [("base", streamMajor(array(base))), ("parameters", array(parameters)), ("m", array(m)), ("v", array(v))]
        let arrays = tensors.map { ($0.0, $0.1) }
        try withFloatBuffers(arrays.map(\.1)) { buffers in
            try SafeTensorsWriter.write(
                zip(arrays, buffers).map { .init(name: $0.0.0, dtype: .F32, shape: [$0.1.count], payload: .floats($0.1)) },
                metadata: [
                    "step": String(step), "streams": String(streams), "vector_size": String(vectorSize),
                    "hidden_size": String(hiddenSize), "output_size": String(outputSize),
                ], to: path)
        }
    }

    /// Restores a saved reparameterisation of the same shape.
    public func restore(from path: String, step: Int) throws {
        let file = try SafeTensorsFile(contentsOf: path)
        guard file.metadata["step"] == String(step) else {
            throw TrainingError("\(path): its step \(file.metadata["step"] ?? "?") does not match the checkpoint's \(step)")
        }
        let newBase = try file.floats("base"), values = try file.floats("parameters")
        let mValues = try file.floats("m"), vValues = try file.floats("v")
        guard newBase.count == base.count, values.count == count, mValues.count == count, vValues.count == count else {
            throw TrainingError("\(path): tensor sizes do not match --prefix-reparam \(hiddenSize) on this model")
        }
        for (tensor, array) in [(base, blockMajor(newBase)), (parameters, values), (m, mValues), (v, vValues)] {
            array.withUnsafeBufferPointer { backend.upload($0, to: tensor) }
        }
    }

    // MARK: helpers

    func array(_ t: Tensor) -> [Float] {
        var out = [Float](repeating: 0, count: t.count)
        out.withUnsafeMutableBufferPointer { backend.download(t, into: $0) }
        return out
    }

    /// A CPU tensor's values in place (tests).
    func pointer(_ t: Tensor) -> UnsafeMutablePointer<Float> { (t.buffer as! HostBuffer).pointer + t.offset }

    /// [P, O] from tensors in the model's layout (its parameters, or gradients).
    static func read(blocks: [ParameterTensor], streams: Int, from flat: Tensor, backend: Backend) -> [Float] {
        let outputSize = blocks.reduce(0) { $0 + $1[0].count }
        var out = [Float](repeating: 0, count: streams * outputSize)
        var column = 0
        for block in blocks {
            for r in 0..<streams {
                var part = [Float](repeating: 0, count: block[r].count)
                part.withUnsafeMutableBufferPointer { backend.download(flat.slice(block[r]), into: $0) }
                out.replaceSubrange(r * outputSize + column..<r * outputSize + column + part.count, with: part)
            }
            column += block[0].count
        }
        return out
    }
}

/// Calls `body` with buffer pointers to every array (for writers that take pointers).
func withFloatBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
    func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) throws -> R {
        if i == arrays.count { return try body(acc) }
        return try arrays[i].withUnsafeBufferPointer { try go(i + 1, acc + [$0]) }
    }
    return try go(0, [])
}
