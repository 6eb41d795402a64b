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
public final class PrefixReparam {
    public let streams: Int
    public let vectorSize: Int  // d: length of e[r]
    public let hiddenSize: Int  // m: the MLP's hidden width
    public let outputSize: Int  // O: one stream's prefixes over all layers, keys then values per layer
    /// The model's prefix tensors [P, KVH, T, hd] in output order (layer 0 keys, layer 0 values,
    /// layer 1 keys, ...); `block[r]` is stream r's part of one.
    let blocks: [ParameterTensor]

    // All trainable tensors in one flat CPU buffer: e [P, d], W1 [m, d], b1 [m], W2 [O, m], b2 [O].
    let cpu = CPUBackend()
    let parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor
    var base: [Float]  // [P, O]
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
        outputSize = blocks.reduce(0) { $0 + $1[0].count }
        let total = streams * self.vectorSize + hiddenSize * (self.vectorSize + 1) + outputSize * (hiddenSize + 1)
        (parameters, gradients, m, v) = (cpu.allocate(total), cpu.allocate(total), cpu.allocate(total), cpu.allocate(total))
        base = Self.read(blocks: blocks, streams: streams, from: model.parameters, backend: model.backend)
        precondition(total == count)
        var rng = SeededGenerator(seed: seed ^ 0x7265_7061_7261_6D00)
        var values = [Float](repeating: 0, count: count)
        for i in 0..<(streams * self.vectorSize) { values[e + i] = Float(rng.nextNormal()) }
        let w1Std = 1 / Double(self.vectorSize).squareRoot()  // unit-variance pre-activations
        for i in 0..<(hiddenSize * self.vectorSize) { values[w1 + i] = Float(rng.nextNormal() * w1Std) }
        values.withUnsafeBufferPointer { cpu.upload($0, to: parameters) }
    }

    /// The prefixes [P, O] the current parameters give.
    public func prefixes() -> [Float] {
        let (_, out) = forward()
        return out
    }

    /// Hidden activations h [P, m] and prefixes [P, O].
    func forward() -> (hidden: [Float], prefixes: [Float]) {
        let p = pointer(parameters)
        var h = [Float](repeating: 0, count: streams * hiddenSize)
        var out = base
        for r in 0..<streams {
            for j in 0..<hiddenSize {
                var z = p[b1 + j]
                for i in 0..<vectorSize { z += p[w1 + j * vectorSize + i] * p[e + r * vectorSize + i] }
                h[r * hiddenSize + j] = tanh(z)
            }
            for o in 0..<outputSize {
                var y = p[b2 + o]
                for j in 0..<hiddenSize { y += p[w2 + o * hiddenSize + j] * h[r * hiddenSize + j] }
                out[r * outputSize + o] += y
            }
        }
        return (h, out)
    }

    /// Writes the current prefixes into the model's prefix tensors.
    public func fold(into model: ParScaleModel) {
        let values = prefixes()
        var column = 0
        for block in blocks {
            for r in 0..<streams {
                let part = block[r], start = r * outputSize + column
                values[start..<start + part.count].withUnsafeBufferPointer {
                    model.backend.upload($0, to: model.parameters.slice(part))
                }
            }
            column += block[0].count
        }
    }

    /// The MLP's gradients from the model's prefix gradients (in `modelGradients`, the model's
    /// layout), overwriting earlier ones. Returns their sum of squares, for the global norm.
    public func backward(modelGradients: Tensor, backend: Backend) -> Double {
        let dOut = Self.read(blocks: blocks, streams: streams, from: modelGradients, backend: backend)
        let (h, _) = forward()
        let p = pointer(parameters), g = pointer(gradients)
        g.update(repeating: 0, count: count)
        var dh = [Float](repeating: 0, count: hiddenSize)
        for r in 0..<streams {
            for j in 0..<hiddenSize { dh[j] = 0 }
            for o in 0..<outputSize {
                let d = dOut[r * outputSize + o]
                g[b2 + o] += d
                for j in 0..<hiddenSize {
                    g[w2 + o * hiddenSize + j] += d * h[r * hiddenSize + j]
                    dh[j] += d * p[w2 + o * hiddenSize + j]
                }
            }
            for j in 0..<hiddenSize {
                let hj = h[r * hiddenSize + j], dz = dh[j] * (1 - hj * hj)
                g[b1 + j] += dz
                for i in 0..<vectorSize {
                    g[w1 + j * vectorSize + i] += dz * p[e + r * vectorSize + i]
                    g[e + r * vectorSize + i] += dz * p[w1 + j * vectorSize + i]
                }
            }
        }
        return cpu.sumOfSquares(gradients)
    }

    /// One AdamW step (no weight decay: like the prefixes, these are the streams' identity) with the
    /// same clipping factor as the model's update.
    public func update(learningRate: Double, gradScale: Double, step: Int, options: OptimizerOptions) {
        cpu.adamw(
            params: parameters, grads: gradients, m: m, v: v,
            settings: AdamWSettings(
                learningRate: Float(learningRate), beta1: Float(options.beta1), beta2: Float(options.beta2),
                epsilon: Float(options.epsilon), weightDecay: 0, step: step, gradScale: Float(gradScale)))
    }

    // MARK: saving and resuming

    public static let fileName = "reparam.safetensors"

    public func save(to path: String, step: Int) throws {
        let tensors: [(String, [Float])] = [("base", base), ("parameters", array(parameters)), ("m", array(m)), ("v", array(v))]
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
        base = newBase
        for (tensor, array) in [(parameters, values), (m, mValues), (v, vValues)] {
            array.withUnsafeBufferPointer { cpu.upload($0, to: tensor) }
        }
    }

    // MARK: helpers

    func array(_ t: Tensor) -> [Float] {
        var out = [Float](repeating: 0, count: t.count)
        out.withUnsafeMutableBufferPointer { cpu.download(t, into: $0) }
        return out
    }

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
