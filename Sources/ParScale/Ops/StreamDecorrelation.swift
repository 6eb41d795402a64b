import Foundation

/// The stream decorrelation penalty (issue #18, `--stream-decorrelation λ`), a training term only:
///
///     penalty = mean over the n token positions and the P(P-1)/2 pairs of streams (a < b) of cos(x_a, x_b)^2
///
/// where x_a is stream a's final hidden state at that position (after the final norm, before the
/// aggregation). Squared, so the optimum is orthogonal streams, not opposite ones (P > 2 streams cannot
/// all be opposite). Cosine per position rather than Barlow-Twins' cross-correlation of features over
/// the batch: it needs no batch statistics, so micro-batching leaves it unchanged, and it is O(P^2 n H).
/// Its gradient on Vulkan: Shaders/stream_decorrelation_backward.comp.
public enum StreamDecorrelationOps {
    /// The most streams the shader's shared memory holds (its `maxStreams`).
    public static let maxStreams = 32

    /// Why the penalty cannot train a model of `streams` streams (more than the shader holds), or nil.
    public static func unsupported(streams: Int) -> String? {
        streams > maxStreams
            ? "--stream-decorrelation supports at most \(maxStreams) streams (this model has \(streams)); leave it at 0" : nil
    }

    /// The penalty of x [P, n, H] (stream-major: stream a's position t is row a*n + t); ADDS
    /// `scale` times its gradient to dX when given. Sums in Double, in index order.
    static func penalty(
        x: UnsafePointer<Float>, streams P: Int, rowsPerStream n: Int, dim H: Int, dX: UnsafeMutablePointer<Float>?,
        scale: Float
    ) -> Double {
        precondition(P > 1, "the decorrelation penalty needs at least two streams")
        let pairs = Double(P * (P - 1) / 2)
        var total = 0.0
        var norms = [Double](repeating: 0, count: P)
        var cosines = [Double](repeating: 0, count: P * P)
        for t in 0..<n {
            func row(_ a: Int) -> UnsafePointer<Float> { x + (a * n + t) * H }
            for a in 0..<P {
                var s = 0.0
                for i in 0..<H { s += Double(row(a)[i]) * Double(row(a)[i]) }
                norms[a] = max(s.squareRoot(), 1e-12)
            }
            for a in 0..<P {
                for b in (a + 1)..<P {
                    var dot = 0.0
                    for i in 0..<H { dot += Double(row(a)[i]) * Double(row(b)[i]) }
                    let c = dot / (norms[a] * norms[b])
                    cosines[a * P + b] = c
                    cosines[b * P + a] = c
                    total += c * c
                }
            }
            guard let dX else { continue }
            // d cos(a, b) / d x_a = x_b / (|a| |b|) - cos(a, b) x_a / |a|^2; d c^2 = 2 c d c.
            let perTerm = Double(scale) / (Double(n) * pairs)
            for a in 0..<P {
                let out = dX + (a * n + t) * H
                for i in 0..<H {
                    var g = 0.0
                    for b in 0..<P where b != a {
                        let c = cosines[a * P + b]
                        g += 2 * c * (Double(row(b)[i]) / (norms[a] * norms[b]) - c * Double(row(a)[i]) / (norms[a] * norms[a]))
                    }
                    out[i] += Float(perTerm * g)
                }
            }
        }
        return total / (Double(n) * pairs)
    }
}
