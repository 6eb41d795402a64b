import CKernels
import Foundation

/// SiLU (the aggregation head's activation) and, in SwiGLU.swift, the SwiGLU product of the MLP.
enum ElementwiseOps {
    @inline(__always) static func silu(_ v: Float) -> Float { v / (1 + expf(-v)) }

    static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumPerChunk: 16384) { range in
            for i in range { x[i] = silu(x[i]) }
        }
    }
}

extension ElementwiseOps {
    /// silu'(v) = s(v) * (1 + v * (1 - s(v))), s the logistic function.
    @inline(__always) static func siluGrad(_ v: Float) -> Float {
        let s = 1 / (1 + expf(-v))
        return s * (1 + v * (1 - s))
    }

    /// dx = dy * silu'(x), x the input before SiLU.
    static func siluBackward(dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumPerChunk: 16384) { range in
            for i in range { dX[i] = dOut[i] * siluGrad(x[i]) }
        }
    }
}
