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
        // SIMD8 loops (Swift does not reassociate float sums, so plain loops would stay scalar);
        // the tail of a row that is not a multiple of 8 goes through the scalar loop.
        let whole = dim / 8 * 8
        rowsWithPartialSums(rows: rows, width: dim, minimumWork: 16384, into: dWeight) { range, dw in
            for r in range {
                let xr = x + r * dim, gr = dOut + r * dim, dxr = dX + r * dim
                let inverseRMS = 1 / (dot(xr, xr, dim) / Float(dim) + eps).squareRoot()
                var weightedLanes = SIMD8<Float>()  // sum of w*dy*x
                var i = 0
                while i < whole {
                    weightedLanes += load8(weight + i) * load8(gr + i) * load8(xr + i)
                    i += 8
                }
                var weighted = weightedLanes.sum()
                for j in whole..<dim { weighted += weight[j] * gr[j] * xr[j] }
                let k = weighted * inverseRMS * inverseRMS * inverseRMS / Float(dim)
                let inverse8 = SIMD8<Float>(repeating: inverseRMS), k8 = SIMD8<Float>(repeating: k)
                i = 0
                while i < whole {
                    let g8 = load8(gr + i), x8 = load8(xr + i)
                    let d = load8(weight + i) * g8 * inverse8 - x8 * k8
                    store8(accumulate ? load8(dxr + i) + d : d, dxr + i)
                    store8(load8(dw + i) + g8 * x8 * inverse8, dw + i)
                    i += 8
                }
                for j in whole..<dim {
                    let g = weight[j] * gr[j] * inverseRMS - xr[j] * k
                    dxr[j] = accumulate ? dxr[j] + g : g
                    dw[j] += gr[j] * xr[j] * inverseRMS
                }
            }
        }
    }
}
