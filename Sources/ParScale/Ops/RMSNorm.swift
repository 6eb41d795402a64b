import Dispatch
import Foundation

/// RMSNorm in float32: y = x / sqrt(mean(x^2) + eps) * weight  (Qwen2RMSNorm).
enum RMSNormOps {
    static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        parallelFor(rows, minimumPerChunk: max(1, 16384 / dim)) { range in
            for r in range {
                let xr = x + r * dim, yr = out + r * dim
                let inverseRMS = 1 / (dot(xr, xr, dim) / Float(dim) + eps).squareRoot()
                for i in 0..<dim { yr[i] = weight[i] * (xr[i] * inverseRMS) }
            }
        }
    }
}

extension RMSNormOps {
    /// dX (+)= w*dy/rms - x * mean(w*dy*x)/rms^3;  dWeight += sum over rows of dy * x/rms.
    static func backward(
        dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        dX: UnsafeMutablePointer<Float>, accumulate: Bool, dWeight: UnsafeMutablePointer<Float>?,
        rows: Int, dim: Int, eps: Float
    ) {
        rowsWithPartialSums(rows: rows, width: dim, minimumWork: 16384, into: dWeight) { range, dw in
            for r in range {
                let xr = x + r * dim, gr = dOut + r * dim, dxr = dX + r * dim
                let inverseRMS = 1 / (dot(xr, xr, dim) / Float(dim) + eps).squareRoot()
                var weighted: Float = 0  // sum of w*dy*x
                for i in 0..<dim { weighted += weight[i] * gr[i] * xr[i] }
                let k = weighted * inverseRMS * inverseRMS * inverseRMS / Float(dim)
                for i in 0..<dim {
                    let g = weight[i] * gr[i] * inverseRMS - xr[i] * k
                    dxr[i] = accumulate ? dxr[i] + g : g
                    dw[i] += gr[i] * xr[i] * inverseRMS
                }
            }
        }
    }
}
