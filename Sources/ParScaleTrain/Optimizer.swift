import Foundation
import ParScale

/// AdamW hyper-parameters and the learning-rate schedule (linear warm-up, then cosine decay to
/// `minLRFraction` of the peak), as in the science probes and most small-LM recipes.
public struct OptimizerOptions: Codable, Equatable, Sendable {
    public var learningRate = 3e-3
    public var minLRFraction = 0.1
    public var warmupSteps = 0  // 0: 5% of the run
    public var beta1 = 0.9
    public var beta2 = 0.95
    public var epsilon = 1e-8
    public var weightDecay = 0.1
    public var clipNorm = 1.0  // 0: no clipping
    /// Learning-rate multiplier of the ParScale parameters (prefixes, aggregation head).
    public var parscaleLRScale = 1.0
    public init() {}

    /// The factor that scales gradients of global norm `norm` down to `clipNorm`.
    public func clipScale(norm: Double) -> Double { clipNorm > 0 && norm > clipNorm ? clipNorm / norm : 1 }

    public func warmup(totalSteps: Int) -> Int { warmupSteps > 0 ? warmupSteps : max(1, totalSteps / 20) }

    /// Learning rate of 1-based `step` out of `totalSteps`.
    public func learningRate(step: Int, totalSteps: Int) -> Double {
        let warm = warmup(totalSteps: totalSteps)
        if step <= warm { return learningRate * Double(step) / Double(warm) }
        let progress = Double(step - warm) / Double(max(1, totalSteps - warm))
        let cosine = 0.5 * (1 + cos(Double.pi * min(1, progress)))
        return learningRate * (minLRFraction + (1 - minLRFraction) * cosine)
    }
}

/// A run of parameters that share AdamW settings.
public struct ParameterGroup: Equatable, Sendable {
    /// The group's tensors, adjacent in the layout, as one view.
    public let tensors: ParameterTensor
    public var offset: Int { tensors.offset }
    public var count: Int { tensors.count }
    public let decay: Bool
    public let lrScale: Double
    public let trainable: Bool

    /// Weight decay on weight matrices (linear layers, embedding, aggregator), none on norms and
    /// biases (as usual), and none on the prefixes: they are each stream's only identity, and
    /// decay would pull every stream's prefix towards the same zero, making the streams alike.
    /// `freezeBackbone`: only the prefixes and the aggregation head are trainable.
    /// `freezePrefixes`: the prefixes are not updated here (a `PrefixReparam` writes them).
    public static func groups(
        _ layout: ParameterLayout, parscaleLRScale: Double, freezeBackbone: Bool = false, freezePrefixes: Bool = false
    ) -> [ParameterGroup] {
        // Runs of consecutive tensors (adjacent in the flat buffer) with the same settings.
        var runs: [(decay: Bool, lrScale: Double, trainable: Bool, tensors: [ParameterTensor])] = []
        for e in layout.entries {
            let isPrefix = e.name.hasSuffix("prefix_k") || e.name.hasSuffix("prefix_v")
            let parscale = ParameterLayout.isParScaleOnly(e.name)
            let decay = e.shape.count == 2 && !isPrefix
            let scale = parscale ? parscaleLRScale : 1
            let trainable = (parscale || !freezeBackbone) && !(isPrefix && freezePrefixes)
            if let last = runs.last, last.decay == decay, last.lrScale == scale, last.trainable == trainable {
                runs[runs.count - 1].tensors.append(e)
            } else {
                runs.append((decay, scale, trainable, [e]))
            }
        }
        return runs.map { run in
            let first = run.tensors[0].name, last = run.tensors[run.tensors.count - 1].name
            return ParameterGroup(
                tensors: .stacked(run.tensors, name: first == last ? first : "\(first) ... \(last)"),
                decay: run.decay, lrScale: run.lrScale, trainable: run.trainable)
        }
    }
}

/// AdamW over the model's flat parameter buffer: moments in the same layout, one op per group.
public final class AdamW {
    public let options: OptimizerOptions
    public let groups: [ParameterGroup]
    public let m: Tensor
    public let v: Tensor
    public private(set) var step = 0
    let backend: Backend

    public init(model: ParScaleModel, options: OptimizerOptions, freezeBackbone: Bool = false, freezePrefixes: Bool = false) {
        self.options = options
        backend = model.backend
        groups = ParameterGroup.groups(
            model.layout, parscaleLRScale: options.parscaleLRScale, freezeBackbone: freezeBackbone,
            freezePrefixes: freezePrefixes)
        m = model.backend.allocate(model.parameters.count)
        v = model.backend.allocate(model.parameters.count)
    }

    /// Global gradient norm (with `extraGradients`: gradients of tensors outside the model, such
    /// as a `PrefixReparam`'s), then one AdamW step at `learningRate` with clipping to `clipNorm`.
    /// Returns the norm before clipping; a non-finite norm leaves everything untouched.
    /// One wait: `record` then `finish` with the norm read back.
    @discardableResult
    public func update(model: ParScaleModel, gradients: Tensor, learningRate: Double, extraGradients: [Tensor] = []) -> Double {
        record(model: model, gradients: gradients, learningRate: learningRate, squaredNorm: ownScalar, extraGradients: extraGradients)
        return finish(squaredNorm: backend.readScalars(ownScalars!)[0])
    }

    /// `update`'s squared norm, made once.
    private var ownScalar: StepScalar {
        let scalars = ownScalars ?? StepScalars(backend: backend, count: 1)
        ownScalars = scalars
        return scalars[0]
    }
    private var ownScalars: StepScalars?

    /// Records one step without waiting: the squared global gradient norm into `squaredNorm`
    /// (the sums of squares of `extraGradients`, then of each trainable group, added on the device),
    /// then AdamW on every trainable group, clipping by that norm where the backend computes.
    /// Read the scalar after the step's work is recorded and pass it to `finish`.
    public func record(
        model: ParScaleModel, gradients: Tensor, learningRate: Double, squaredNorm: StepScalar, extraGradients: [Tensor] = []
    ) {
        backend.setScalar(squaredNorm, to: 0)
        for extra in extraGradients { backend.sumOfSquares(extra, addingTo: squaredNorm) }
        let trainable = groups.filter(\.trainable)
        for g in trainable { backend.sumOfSquares(gradients.slice(g.tensors), addingTo: squaredNorm) }
        step += 1
        for g in trainable {
            let settings = AdamWSettings(
                learningRate: Float(learningRate * g.lrScale), beta1: Float(options.beta1), beta2: Float(options.beta2),
                epsilon: Float(options.epsilon), weightDecay: g.decay ? Float(options.weightDecay) : 0, step: step)
            backend.adamw(
                params: model.parameters.slice(g.tensors), grads: gradients.slice(g.tensors),
                m: m.slice(g.tensors), v: v.slice(g.tensors), settings: settings, clipNorm: options.clipNorm,
                squaredNorm: squaredNorm)
        }
    }

    /// The norm of a recorded step, from its squared norm as read back. A non-finite norm (the
    /// backend left everything untouched) does not count as a step.
    public func finish(squaredNorm: Double) -> Double {
        let norm = squaredNorm.squareRoot()
        if !norm.isFinite { step -= 1 }
        return norm
    }

    /// Restores the moments and step count of a checkpoint.
    public func restore(m mValues: [Float], v vValues: [Float], step: Int, backend: Backend) {
        mValues.withUnsafeBufferPointer { backend.upload($0, to: m) }
        vValues.withUnsafeBufferPointer { backend.upload($0, to: v) }
        self.step = step
    }
}
