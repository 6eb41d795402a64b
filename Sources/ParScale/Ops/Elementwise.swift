import Foundation

/// SiLU and the SwiGLU product of the MLP.
enum ElementwiseOps {
    @inline(__always) static func silu(_ v: Float) -> Float { v / (1 + expf(-v)) }

    static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumPerChunk: 16384) { range in
            for i in range { x[i] = silu(x[i]) }
        }
    }

    /// out[r, i] = silu(gateUp[r, i]) * gateUp[r, dim + i]
    static func swiglu(
        gateUp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, dim: Int
    ) {
        parallelFor(rows, minimumPerChunk: max(1, 16384 / dim)) { range in
            for r in range {
                let g = gateUp + r * 2 * dim, o = out + r * dim
                for i in 0..<dim { o[i] = silu(g[i]) * g[dim + i] }
            }
        }
    }
}
