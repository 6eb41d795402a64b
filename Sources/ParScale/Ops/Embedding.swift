import Foundation

/// Embedding and stream-copy gradients.
enum EmbeddingOps {
    /// out[i] = sum over r of x[r*n + i]: the gradient of copying n rows to P streams.
    static func sumStreams(_ x: UnsafePointer<Float>, streams: Int, out: UnsafeMutablePointer<Float>, count: Int) {
        out.update(from: x, count: count)
        for r in 1..<max(streams, 1) { axpy(1, x + r * count, out, count) }
    }

    /// dTable[ids[i]] += dOut[i] (sequential: ids repeat).
    static func backward(ids: [Int32], dOut: UnsafePointer<Float>, dTable: UnsafeMutablePointer<Float>, dim: Int) {
        for (i, id) in ids.enumerated() { axpy(1, dOut + i * dim, dTable + Int(id) * dim, dim) }
    }
}
