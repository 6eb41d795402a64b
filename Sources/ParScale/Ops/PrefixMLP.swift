import Foundation

/// One layer of the prefix reparameterisation's MLP (`PrefixReparam` in ParScaleTrain), a small
/// dense layer over the P stream vectors:
///
///     out[r, o] = residual[r, o] + act(bias[o] + sum_i W[o, i] x[r, i])    act: tanh or identity
///
/// Rows are few (P) and every sum runs in one fixed order (over i, then over rows r, or over o, in
/// index order), so the CPU result does not depend on a BLAS and the Vulkan shaders
/// (prefix_mlp.comp, prefix_mlp_backward.comp) follow the same order.
public struct PrefixMLPShape: Sendable, Equatable {
    public var rows: Int  // P
    public var inDim: Int
    public var outDim: Int
    public var tanh: Bool  // act = tanh (else identity)
    public init(rows: Int, inDim: Int, outDim: Int, tanh: Bool) {
        (self.rows, self.inDim, self.outDim, self.tanh) = (rows, inDim, outDim, tanh)
    }
}

enum PrefixMLPOps {
    /// out[r, o] = (residual[r, o] +) act(bias[o] + sum_i W[o, i] x[r, i]); x [rows, inDim],
    /// W [outDim, inDim], residual and out [rows, outDim].
    static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?,
        out: UnsafeMutablePointer<Float>, shape s: PrefixMLPShape
    ) {
        for r in 0..<s.rows {
            for o in 0..<s.outDim {
                var z = bias[o]
                for i in 0..<s.inDim { z += weight[o * s.inDim + i] * x[r * s.inDim + i] }
                if s.tanh { z = Foundation.tanh(z) }
                out[r * s.outDim + o] = residual.map { $0[r * s.outDim + o] + z } ?? z
            }
        }
    }

    /// The gradient of `forward` (the residual's is dOut itself), ADDED to dX, dWeight and dBias:
    /// with dz = dOut * act'(.) (tanh: 1 - y^2, y the layer's output before the residual),
    /// dWeight[o, i] += sum_r dz[r, o] x[r, i], dBias[o] += sum_r dz[r, o], dX[r, i] += sum_o dz[r, o] W[o, i].
    static func backward(
        dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafePointer<Float>,
        dX: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>,
        shape s: PrefixMLPShape
    ) {
        for r in 0..<s.rows {
            for o in 0..<s.outDim {
                let d = dOut[r * s.outDim + o], yo = y[r * s.outDim + o]
                let dz = s.tanh ? d * (1 - yo * yo) : d
                dBias[o] += dz
                for i in 0..<s.inDim {
                    dWeight[o * s.inDim + i] += dz * x[r * s.inDim + i]
                    dX[r * s.inDim + i] += dz * weight[o * s.inDim + i]
                }
            }
        }
    }
}
