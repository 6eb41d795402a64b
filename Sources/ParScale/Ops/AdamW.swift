import Foundation

/// AdamW with decoupled weight decay (Loshchilov & Hutter), bias-corrected moments.
enum AdamWOps {
    static func update(
        params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, count: Int, settings a: AdamWSettings
    ) {
        let correction1 = 1 - pow(a.beta1, Float(a.step)), correction2 = 1 - pow(a.beta2, Float(a.step))
        // Eight lanes at a time, then the scalar tail: the same operations in the same order (IEEE
        // division and square root are exact in both), so every element gets the same bits.
        let b1 = SIMD8<Float>(repeating: a.beta1), b2 = SIMD8<Float>(repeating: a.beta2)
        let c1 = SIMD8<Float>(repeating: correction1), c2 = SIMD8<Float>(repeating: correction2)
        let one1 = SIMD8<Float>(repeating: 1 - a.beta1), one2 = SIMD8<Float>(repeating: 1 - a.beta2)
        let scale = SIMD8<Float>(repeating: a.gradScale), epsilon = SIMD8<Float>(repeating: a.epsilon)
        let rate = SIMD8<Float>(repeating: a.learningRate), decay = SIMD8<Float>(repeating: a.weightDecay)
        parallelFor(count, minimumPerChunk: 32768) { range in
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let g = load8(grads + i) * scale
                let mi = b1 * load8(m + i) + one1 * g
                let vi = b2 * load8(v + i) + one2 * g * g
                let update = (mi / c1) / ((vi / c2).squareRoot() + epsilon)
                let p = load8(params + i)
                store8(mi, m + i)
                store8(vi, v + i)
                store8(p - rate * (update + decay * p), params + i)
                i += 8
            }
            for i in i..<range.upperBound {
                let g = grads[i] * a.gradScale
                m[i] = a.beta1 * m[i] + (1 - a.beta1) * g
                v[i] = a.beta2 * v[i] + (1 - a.beta2) * g * g
                let update = (m[i] / correction1) / ((v[i] / correction2).squareRoot() + a.epsilon)
                params[i] -= a.learningRate * (update + a.weightDecay * params[i])
            }
        }
    }

    /// Sum of squares in Double (the gradient norm must not lose small contributions).
    static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        let chunks = max(1, min(64, count / 65536))
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { p in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = count * c / chunks, hi = count * (c + 1) / chunks
                var i = lo
                var sum = 0.0
                while i < hi {
                    let n = min(4096, hi - i)
                    sum += Double(dot(x + i, x + i, n))
                    i += n
                }
                p[c] = sum
            }
        }
        return partial.reduce(0, +)
    }
}

/// One AdamW step's settings for a region of parameters.
public struct AdamWSettings: Sendable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public var step: Int  // 1-based, for bias correction
    public var gradScale: Float  // clipping factor applied to the gradients
    public init(
        learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.95, epsilon: Float = 1e-8,
        weightDecay: Float = 0, step: Int, gradScale: Float = 1
    ) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.step = step
        self.gradScale = gradScale
    }
}
