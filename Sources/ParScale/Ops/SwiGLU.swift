import CKernels
import Foundation

/// The SwiGLU product of the MLP: out = silu(gate) * up, gate and up the two halves of each row.
extension ElementwiseOps {
    /// out[r, i] = silu(gateUp[r, i]) * gateUp[r, dim + i]  (vectorised kernel in CKernels)
    static func swiglu(
        gateUp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, dim: Int
    ) {
        parallelFor(rows, minimumPerChunk: max(1, 16384 / dim)) { range in
            ps_swiglu_forward(gateUp + range.lowerBound * 2 * dim, out + range.lowerBound * dim, range.count, Int32(dim))
        }
    }

    /// The plain twin of `swiglu`.
    static func swigluPlain(
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

extension ElementwiseOps {
    /// Gradients of out = silu(g) * u into dGateUp = [dg | du] per row (vectorised kernel).
    static func swigluBackward(
        dOut: UnsafePointer<Float>, gateUp: UnsafePointer<Float>, dGateUp: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int
    ) {
        parallelFor(rows, minimumPerChunk: max(1, 16384 / dim)) { range in
            let lo = range.lowerBound
            ps_swiglu_backward(dOut + lo * dim, gateUp + lo * 2 * dim, dGateUp + lo * 2 * dim, range.count, Int32(dim))
        }
    }

    /// The plain twin of `swigluBackward`.
    static func swigluBackwardPlain(
        dOut: UnsafePointer<Float>, gateUp: UnsafePointer<Float>, dGateUp: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int
    ) {
        parallelFor(rows, minimumPerChunk: max(1, 16384 / dim)) { range in
            for r in range {
                let g = gateUp + r * 2 * dim, d = dGateUp + r * 2 * dim, dy = dOut + r * dim
                for i in 0..<dim {
                    let sigmoid = 1 / (1 + expf(-g[i]))  // one exp for both gradients
                    d[i] = dy[i] * g[dim + i] * sigmoid * (1 + g[i] * (1 - sigmoid))
                    d[dim + i] = dy[i] * g[i] * sigmoid
                }
            }
        }
    }
}
