import Foundation

/// The ParScale aggregation: streams' final states, feature-interleaved, go through
/// Linear -> SiLU -> Linear (done by the model with `linear`/`silu`), then a smoothed softmax
/// over streams weights their sum.
enum AggregationOps {
    /// feat[i, d*P + r] = y[r*n + i, d]
    static func interleave(
        y: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, streams P: Int, rowsPerStream n: Int,
        dim: Int
    ) {
        parallelFor(n, minimumPerChunk: max(1, 8192 / (dim * P))) { range in
            for i in range {
                let f = out + i * dim * P
                for r in 0..<P {
                    let yr = y + (r * n + i) * dim
                    for d in 0..<dim { f[d * P + r] = yr[d] }
                }
            }
        }
    }

    static func aggregation(
        y: UnsafePointer<Float>, logits: UnsafePointer<Float>, weights: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, streams P: Int, rowsPerStream n: Int, dim: Int, smoothing: Float
    ) {
        parallelFor(n, minimumPerChunk: max(1, 8192 / (dim * P))) { range in
            for i in range {
                let l = logits + i * P, w = weights + i * P
                var maxLogit = -Float.infinity
                for r in 0..<P { maxLogit = max(maxLogit, l[r]) }
                var total: Float = 0
                for r in 0..<P {
                    w[r] = expf(l[r] - maxLogit)
                    total += w[r]
                }
                for r in 0..<P {
                    w[r] /= total
                    if smoothing != 0 { w[r] = w[r] * (1 - smoothing) + smoothing / Float(P) }
                }
                let o = out + i * dim
                o.update(repeating: 0, count: dim)
                for r in 0..<P { axpy(w[r], y + (r * n + i) * dim, o, dim) }
            }
        }
    }
}

extension AggregationOps {
    /// The gradient of `interleave`, added: dY[r*n + i, d] += dFeat[i, d*P + r].
    static func interleaveBackward(
        dFeat: UnsafePointer<Float>, dY: UnsafeMutablePointer<Float>, streams P: Int, rowsPerStream n: Int, dim: Int
    ) {
        parallelFor(n, minimumPerChunk: max(1, 8192 / (dim * P))) { range in
            for i in range {
                let f = dFeat + i * dim * P
                for r in 0..<P {
                    let dy = dY + (r * n + i) * dim
                    for d in 0..<dim { dy[d] += f[d * P + r] }
                }
            }
        }
    }

    /// Gradients of `mix`: dY_r = w_r * dOut (overwritten), dLogits through the smoothed softmax.
    static func aggregationBackward(
        dOut: UnsafePointer<Float>, y: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        dY: UnsafeMutablePointer<Float>, dLogits: UnsafeMutablePointer<Float>, streams P: Int,
        rowsPerStream n: Int, dim: Int, smoothing: Float
    ) {
        parallelFor(n, minimumPerChunk: max(1, 8192 / (dim * P))) { range in
            for i in range {
                let g = dOut + i * dim, w = weights + i * P, dl = dLogits + i * P
                // softmax p from the smoothed weights; dp = d(loss)/dw * (1 - s)
                var pDotDp: Float = 0
                for r in 0..<P {
                    let yr = y + (r * n + i) * dim, dyr = dY + (r * n + i) * dim
                    for d in 0..<dim { dyr[d] = w[r] * g[d] }
                    let p = smoothing != 0 ? (w[r] - smoothing / Float(P)) / (1 - smoothing) : w[r]
                    let dp = dot(g, yr, dim) * (1 - smoothing)
                    dl[r] = dp
                    pDotDp += p * dp
                }
                for r in 0..<P {
                    let p = smoothing != 0 ? (w[r] - smoothing / Float(P)) / (1 - smoothing) : w[r]
                    dl[r] = p * (dl[r] - pDotDp)
                }
            }
        }
    }
}
