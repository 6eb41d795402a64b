import Foundation

/// Rotary position embedding on halves (`[-x2, x1]`, not interleaved pairs), as Qwen2 does.
enum RoPEOps {
    /// cos/sin of position * inv_freq for `count` positions from `start`: [count, hd/2] each.
    /// inv_freq and the product are float32, as in the official code.
    static func table(start: Int, count: Int, headDim: Int, theta: Float) -> (cos: [Float], sin: [Float]) {
        let half = headDim / 2
        var cosT = [Float](repeating: 0, count: count * half)
        var sinT = cosT
        for i in 0..<half {
            let invFreq = Float(1.0 / pow(Double(theta), Double(2 * i) / Double(headDim)))
            for t in 0..<count {
                let angle = Float(start + t) * invFreq
                cosT[t * half + i] = Float(cos(Double(angle)))
                sinT[t * half + i] = Float(sin(Double(angle)))
            }
        }
        return (cosT, sinT)
    }

    /// Rotates `heads` heads at the start of each row. Row index = sequence * newTokens + t.
    /// `inverse` rotates by minus the angle: the backward pass (a rotation's gradient is its transpose).
    static func forward(
        x: UnsafeMutablePointer<Float>, sequences: Int, newTokens: Int, startPosition: Int,
        heads: Int, headDim: Int, rowStride: Int, theta: Float, inverse: Bool = false
    ) {
        let half = headDim / 2
        var (cosT, sinT) = table(start: startPosition, count: newTokens, headDim: headDim, theta: theta)
        if inverse { sinT = sinT.map { -$0 } }
        cosT.withUnsafeBufferPointer { cosP in
            sinT.withUnsafeBufferPointer { sinP in
                parallelFor(sequences * newTokens, minimumPerChunk: 64) { range in
                    for row in range {
                        let t = row % newTokens
                        let c = cosP.baseAddress! + t * half, s = sinP.baseAddress! + t * half
                        for h in 0..<heads {
                            let v = x + row * rowStride + h * headDim
                            for i in 0..<half {
                                let x1 = v[i], x2 = v[i + half]
                                v[i] = x1 * c[i] - x2 * s[i]
                                v[i + half] = x2 * c[i] + x1 * s[i]
                            }
                        }
                    }
                }
            }
        }
    }
}
