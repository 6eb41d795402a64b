import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleVulkan

/// Every backward and optimizer op, Vulkan (lavapipe) against the CPU backend: awkward sizes (not
/// multiples of the 32 x 32 matrix tiles), views at offsets into larger buffers, and gradients
/// that already hold values (parameter gradients are added to).
final class VulkanTrainingOpsTests: VulkanAgreementTestCase {

    func testLinearBackward() {
        for (rows, inDim, outDim) in [(1, 7, 5), (13, 37, 29), (45, 70, 33)] {
            for accumulate in [false, true] {
                let (dOut, dOutv) = pair(rows * outDim), (x, xv) = pair(rows * inDim), (w, wv) = pair(outDim * inDim)
                let (dx, dxv) = pair(rows * inDim), (dw, dwv) = pair(outDim * inDim), (db, dbv) = pair(outDim)
                cpu.linearBackward(
                    dOut: dOut, input: x, weight: w, dInput: dx, accumulateInput: accumulate, dWeight: dw, dBias: db,
                    rows: rows, inDim: inDim, outDim: outDim)
                vulkan.linearBackward(
                    dOut: dOutv, input: xv, weight: wv, dInput: dxv, accumulateInput: accumulate, dWeight: dwv, dBias: dbv,
                    rows: rows, inDim: inDim, outDim: outDim)
                let what = "linear backward \(rows)x\(inDim)x\(outDim) accumulate \(accumulate)"
                check(dx, dxv, "\(what): dInput")
                check(dw, dwv, "\(what): dWeight")
                check(db, dbv, "\(what): dBias")
            }
        }
        // Nil gradients are skipped: the given one is still right.
        let (dOut, dOutv) = pair(9 * 6), (x, xv) = pair(9 * 11), (w, wv) = pair(6 * 11), (dw, dwv) = pair(6 * 11)
        cpu.linearBackward(dOut: dOut, input: x, weight: w, dInput: nil, accumulateInput: false, dWeight: dw, dBias: nil, rows: 9, inDim: 11, outDim: 6)
        vulkan.linearBackward(dOut: dOutv, input: xv, weight: wv, dInput: nil, accumulateInput: false, dWeight: dwv, dBias: nil, rows: 9, inDim: 11, outDim: 6)
        check(dw, dwv, "linear backward, dWeight only")
    }

    /// The few-rows kernel GPUs use (dWeight of a 5-row product goes through it too), forced on.
    func testLinearBackwardWithTheFewRowsKernel() {
        vulkan.useFewRowsKernel = true
        testLinearBackward()
    }

    /// The shared-memory tiles GPUs use, forced on lavapipe.
    func testLinearBackwardWithSharedMemoryTiles() throws {
        vulkan = try VulkanBackend(device: vulkan.device, sharedMemoryTiles: true)
        testLinearBackward()
    }

    func testRMSNormBackward() {
        let (rows, dim) = (7, 45)
        for (accumulate, withWeight) in [(false, true), (true, true), (true, false)] {
            let (dOut, dOutv) = pair(rows * dim), (x, xv) = pair(rows * dim), (w, wv) = pair(dim)
            let (dx, dxv) = pair(rows * dim), (dw, dwv) = pair(dim)
            cpu.rmsNormBackward(
                dOut: dOut, input: x, weight: w, dInput: dx, accumulateInput: accumulate, dWeight: withWeight ? dw : nil,
                rows: rows, dim: dim, eps: 1e-6)
            vulkan.rmsNormBackward(
                dOut: dOutv, input: xv, weight: wv, dInput: dxv, accumulateInput: accumulate, dWeight: withWeight ? dwv : nil,
                rows: rows, dim: dim, eps: 1e-6)
            check(dx, dxv, "rms_norm backward dInput (accumulate \(accumulate))")
            check(dw, dwv, "rms_norm backward dWeight (given \(withWeight))")
        }
    }

    /// Forward with the log-sum-exp, then every attention gradient, as the model's backward calls them.
    func testAttentionBackwardWithPrefixGQAAndCache() {
        // P = 3 streams of B = 2, 5 new tokens after 2 cached, 6 heads over 2 kv heads, hd 10, T = 3, 2 spare slots.
        let (P, B) = (3, 2)
        for start in [0, 2] {
            let shape = AttentionShape(
                rows: P * B, newTokens: 5, startPosition: start, heads: 6, kvHeads: 2, headDim: 10, prefixTokens: 3,
                cacheCapacity: 3 + start + 5 + 2)
            let cacheCount = shape.rows * shape.kvHeads * shape.cacheCapacity * shape.headDim
            let prefixCount = P * shape.kvHeads * shape.prefixTokens * shape.headDim
            let (qkv, qkvv) = pair(shape.rows * shape.newTokens * shape.qkvStride)
            let (k, kv) = pair(cacheCount), (v, vv) = pair(cacheCount)
            let (prefix, prefixv) = pair(prefixCount)
            let outCount = shape.rows * shape.newTokens * shape.heads * shape.headDim
            let (o, ov) = pair(outCount), (lse, lsev) = pair(shape.rows * shape.heads * shape.newTokens)
            cpu.fillPrefix(prefix: prefix, cache: k, streams: P, batch: B, shape: shape)
            vulkan.fillPrefix(prefix: prefixv, cache: kv, streams: P, batch: B, shape: shape)
            cpu.storeKV(qkv: qkv, keys: k, values: v, shape: shape)
            vulkan.storeKV(qkv: qkvv, keys: kv, values: vv, shape: shape)
            cpu.attention(qkv: qkv, keys: k, values: v, out: o, logSumExp: lse, shape: shape)
            vulkan.attention(qkv: qkvv, keys: kv, values: vv, out: ov, logSumExp: lsev, shape: shape)
            check(o, ov, "attention (start \(start))")
            check(lse, lsev, "attention log-sum-exp (start \(start))")

            let (dOut, dOutv) = pair(outCount), (dqkv, dqkvv) = pair(qkv.count)
            let (dk, dkv) = pair(cacheCount), (dv, dvv) = pair(cacheCount), (dPrefix, dPrefixv) = pair(prefixCount)
            cpu.attentionBackward(dOut: dOut, out: o, qkv: qkv, keys: k, values: v, logSumExp: lse, dQKV: dqkv, dKeys: dk, dValues: dv, shape: shape)
            vulkan.attentionBackward(dOut: dOutv, out: ov, qkv: qkvv, keys: kv, values: vv, logSumExp: lsev, dQKV: dqkvv, dKeys: dkv, dValues: dvv, shape: shape)
            check(dk, dkv, "attention backward dKeys (start \(start))")
            check(dv, dvv, "attention backward dValues (start \(start))")
            cpu.storeKVBackward(dKeys: dk, dValues: dv, dQKV: dqkv, shape: shape)
            vulkan.storeKVBackward(dKeys: dkv, dValues: dvv, dQKV: dqkvv, shape: shape)
            check(dqkv, dqkvv, "attention + store_kv backward dQKV (start \(start))")
            cpu.fillPrefixBackward(dCache: dk, dPrefix: dPrefix, streams: P, batch: B, shape: shape)
            vulkan.fillPrefixBackward(dCache: dkv, dPrefix: dPrefixv, streams: P, batch: B, shape: shape)
            check(dPrefix, dPrefixv, "fill_prefix backward (start \(start))")
            cpu.ropeBackward(dQKV: dqkv, shape: shape, theta: 10000)
            vulkan.ropeBackward(dQKV: dqkvv, shape: shape, theta: 10000)
            check(dqkv, dqkvv, "rope backward (start \(start))")
        }
    }

    func testElementwiseAndAggregationBackward() {
        let (rows, dim) = (7, 45)
        let (dOut, dOutv) = pair(rows * dim), (gu, guv) = pair(rows * 2 * dim, scale: 4), (dgu, dguv) = pair(rows * 2 * dim)
        cpu.swigluBackward(dOut: dOut, gateUp: gu, dGateUp: dgu, rows: rows, dim: dim)
        vulkan.swigluBackward(dOut: dOutv, gateUp: guv, dGateUp: dguv, rows: rows, dim: dim)
        check(dgu, dguv, "swiglu backward")
        let (x, xv) = pair(rows * dim, scale: 4), (dx, dxv) = pair(rows * dim)
        cpu.siluBackward(dOut: dOut, input: x, dInput: dx)
        vulkan.siluBackward(dOut: dOutv, input: xv, dInput: dxv)
        check(dx, dxv, "silu backward")

        let (P, n, H) = (3, 5, 9)
        for smoothing: Float in [0, 0.1] {
            let (dFeat, dFeatv) = pair(n * P * H), (dY, dYv) = pair(P * n * H)
            let (y, yv) = pair(P * n * H), (g, gv) = pair(n * H), (dl, dlv) = pair(n * P)
            // Weights as the forward makes them (a smoothed softmax).
            let (logits, logitsv) = pair(n * P, scale: 3), (w, wv) = pair(n * P), (mixed, mixedv) = pair(n * H)
            cpu.aggregation(y, logits: logits, weights: w, out: mixed, streams: P, rowsPerStream: n, dim: H, smoothing: smoothing)
            vulkan.aggregation(yv, logits: logitsv, weights: wv, out: mixedv, streams: P, rowsPerStream: n, dim: H, smoothing: smoothing)
            cpu.aggregationBackward(dOut: g, y: y, weights: w, dY: dY, dLogits: dl, streams: P, rowsPerStream: n, dim: H, smoothing: smoothing)
            vulkan.aggregationBackward(dOut: gv, y: yv, weights: wv, dY: dYv, dLogits: dlv, streams: P, rowsPerStream: n, dim: H, smoothing: smoothing)
            check(dY, dYv, "mix_streams backward dY (smoothing \(smoothing))")
            check(dl, dlv, "mix_streams backward dLogits (smoothing \(smoothing))")
            cpu.interleaveStreamsBackward(dFeat: dFeat, dY: dY, streams: P, rowsPerStream: n, dim: H)
            vulkan.interleaveStreamsBackward(dFeat: dFeatv, dY: dYv, streams: P, rowsPerStream: n, dim: H)
            check(dY, dYv, "interleave backward (added)")
            let (sum, sumv) = pair(n * H)
            cpu.sumStreams(dY, streams: P, out: sum)
            vulkan.sumStreams(dYv, streams: P, out: sumv)
            check(sum, sumv, "sum_streams")
        }
    }

    /// The decorrelation penalty's gradient: P = 2 and 5 streams, a width past one 64-wide stride
    /// with a tail, into zeros (the gradient alone) and added to values already in dX.
    func testStreamDecorrelationBackwardMatchesCPU() {
        let (n, H) = (4, 130)
        for P in [2, 5] {
            let (x, xv) = pair(P * n * H, scale: 2)
            let (zeros, zerosv) = pair(P * n * H)
            cpu.fill(zeros, value: 0)
            vulkan.fill(zerosv, value: 0)
            cpu.streamDecorrelationBackward(x: x, dX: zeros, streams: P, rowsPerStream: n, dim: H, scale: 50)
            vulkan.streamDecorrelationBackward(x: xv, dX: zerosv, streams: P, rowsPerStream: n, dim: H, scale: 50)
            check(zeros, zerosv, "decorrelation gradient, P = \(P)")
            let (dx, dxv) = pair(P * n * H, scale: 0.01)
            cpu.streamDecorrelationBackward(x: x, dX: dx, streams: P, rowsPerStream: n, dim: H, scale: 50)
            vulkan.streamDecorrelationBackward(x: xv, dX: dxv, streams: P, rowsPerStream: n, dim: H, scale: 50)
            check(dx, dxv, "decorrelation gradient added to dX, P = \(P)")
        }
    }

    func testEmbedBackwardAndCrossEntropy() {
        let (vocab, dim) = (37, 9)
        let ids: [Int32] = [3, 0, 36, 3, 5, 3, 0, 17, 36, 2, 3]
        let (dOut, dOutv) = pair(ids.count * dim), (table, tablev) = pair(vocab * dim)
        cpu.embedBackward(ids: ids, dOut: dOut, dTable: table, dim: dim)
        vulkan.embedBackward(ids: ids, dOut: dOutv, dTable: tablev, dim: dim)
        check(table, tablev, "embed backward (repeated ids, added)")

        let rows = ids.count
        let (logits, logitsv) = pair(rows * vocab, scale: 6), (losses, lossesv) = pair(rows)
        let targets = ids.reversed().map { $0 }
        // Evaluation's sums per sequence (logits only read): 11 rows as 1 sequence and as 11 of 1 row.
        for (count, rowsPerSum) in [(1, rows), (rows, 1)] {
            let (sums, sumsv) = pair(count)
            cpu.crossEntropySums(logits: logits, targets: targets, sums: sums, rowsPerSum: rowsPerSum, vocab: vocab)
            vulkan.crossEntropySums(logits: logitsv, targets: targets, sums: sumsv, rowsPerSum: rowsPerSum, vocab: vocab)
            check(sums, sumsv, "cross-entropy sums of \(count) sequences")
        }
        check(logits, logitsv, "logits unchanged by cross-entropy sums")
        cpu.crossEntropy(logits: logits, targets: targets, losses: losses, rows: rows, vocab: vocab, gradScale: 0.3)
        vulkan.crossEntropy(logits: logitsv, targets: targets, losses: lossesv, rows: rows, vocab: vocab, gradScale: 0.3)
        check(losses, lossesv, "cross-entropy losses")
        check(logits, logitsv, "cross-entropy gradient")
    }

    func testOptimizerOps() {
        let count = 1000 + 7
        let (x, xv) = pair(count)
        // A reduction in a different order (float partial sums per work group): float32 rounding.
        XCTAssertEqual(vulkan.sumOfSquares(xv), cpu.sumOfSquares(x), accuracy: 1e-5 * cpu.sumOfSquares(x))
        XCTAssertEqual(vulkan.sumOfSquares(xv.slice(0, 1)), cpu.sumOfSquares(x.slice(0, 1)), accuracy: 1e-7)
        let (params, paramsv) = pair(count), (m, mv) = pair(count, scale: 0.1), (v, vv) = pair(count), (g, gv) = pair(count)
        cpu.fill(v, value: 0.01)  // second moments are non-negative
        vulkan.fill(vv, value: 0.01)
        check(v, vv, "fill")
        for (step, weightDecay, gradScale): (Int, Float, Float) in [(1, 0, 1), (2, 0.1, 1), (7, 0.1, 0.5)] {
            let settings = AdamWSettings(
                learningRate: 0.01, beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: weightDecay, step: step, gradScale: gradScale)
            cpu.adamw(params: params, grads: g, m: m, v: v, settings: settings)
            vulkan.adamw(params: paramsv, grads: gv, m: mv, v: vv, settings: settings)
            check(m, mv, "adamw m (step \(step))")
            check(v, vv, "adamw v (step \(step))")
            check(params, paramsv, "adamw parameters (step \(step))")
        }
    }
}

/// The prefix reparameterisation's layer op, forward and backward, Vulkan against the CPU.
final class VulkanPrefixMLPTests: VulkanAgreementTestCase {
    func testPrefixMLPForwardAndBackward() {
        for shape in [
            PrefixMLPShape(rows: 4, inDim: 64, outDim: 64, tanh: true), PrefixMLPShape(rows: 4, inDim: 64, outDim: 129, tanh: false),
            PrefixMLPShape(rows: 3, inDim: 5, outDim: 300, tanh: true), PrefixMLPShape(rows: 2, inDim: 7, outDim: 3, tanh: false),
        ] {
            let what = "prefix_mlp \(shape.rows)x\(shape.inDim)->\(shape.outDim) tanh \(shape.tanh)"
            let (x, xv) = pair(shape.rows * shape.inDim), (w, wv) = pair(shape.outDim * shape.inDim), (b, bv) = pair(shape.outDim)
            let residual = shape.tanh ? nil : pair(shape.rows * shape.outDim)
            let (out, outv) = pair(shape.rows * shape.outDim)
            cpu.prefixMLP(x, weight: w, bias: b, residual: residual?.0, out: out, shape: shape)
            vulkan.prefixMLP(xv, weight: wv, bias: bv, residual: residual?.1, out: outv, shape: shape)
            check(out, outv, "\(what): out")
            // Gradients that already hold values (the op adds to them).
            let (dOut, dOutv) = pair(shape.rows * shape.outDim), (dx, dxv) = pair(x.count), (dw, dwv) = pair(w.count)
            let (db, dbv) = pair(b.count)
            cpu.prefixMLPBackward(dOut: dOut, input: x, weight: w, output: out, dInput: dx, dWeight: dw, dBias: db, shape: shape)
            vulkan.prefixMLPBackward(
                dOut: dOutv, input: xv, weight: wv, output: outv, dInput: dxv, dWeight: dwv, dBias: dbv, shape: shape)
            check(dx, dxv, "\(what): dInput")
            check(dw, dwv, "\(what): dWeight")
            check(db, dbv, "\(what): dBias")
        }
    }
}
