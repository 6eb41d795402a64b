import CKernels
import Foundation

/// Causal attention over a per-row KV cache laid out [R, KVH, capacity, hd], whose first T slots
/// hold the row's stream prefix (no RoPE, never masked) and slot T+p the key of position p.
/// Query head j reads kv head j / (NH/KVH). Softmax in float32 with the max subtracted.
enum AttentionOps {
    static func storeKV(
        qkv: UnsafePointer<Float>, keys: UnsafeMutablePointer<Float>,
        values: UnsafeMutablePointer<Float>, shape s: AttentionShape
    ) {
        let hd = s.headDim
        for row in 0..<s.rows {
            for t in 0..<s.newTokens {
                let src = qkv + (row * s.newTokens + t) * s.qkvStride
                for h in 0..<s.kvHeads {
                    let slot = ((row * s.kvHeads + h) * s.cacheCapacity + s.prefixTokens + s.startPosition + t) * hd
                    (keys + slot).update(from: src + (s.heads + h) * hd, count: hd)
                    (values + slot).update(from: src + (s.heads + s.kvHeads + h) * hd, count: hd)
                }
            }
        }
    }

    static func fillPrefix(
        prefix: UnsafePointer<Float>, cache: UnsafeMutablePointer<Float>, streams: Int, batch: Int,
        shape s: AttentionShape
    ) {
        let block = s.prefixTokens * s.headDim
        for r in 0..<streams {
            for b in 0..<batch {
                for h in 0..<s.kvHeads {
                    let dst = cache + (((r * batch + b) * s.kvHeads + h) * s.cacheCapacity) * s.headDim
                    dst.update(from: prefix + (r * s.kvHeads + h) * block, count: block)
                }
            }
        }
    }

    /// `logSumExp`, when given, receives each query's log-sum-exp of its scaled scores
    /// ([rows, heads, newTokens]) so the backward pass can recompute the probabilities.
    /// The plain statement of `forward` (one dot product per score), kept as its reference.
    static func forwardPlain(
        qkv: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>?, shape s: AttentionShape
    ) {
        let hd = s.headDim, group = s.heads / s.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        let items = s.rows * s.heads * s.newTokens
        let work = max(1, s.prefixTokens + s.startPosition + s.newTokens) * hd
        parallelFor(items, minimumPerChunk: max(1, 32768 / work)) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: s.cacheCapacity)
            defer { scores.deallocate() }
            for item in range {
                let t = item % s.newTokens
                let h = (item / s.newTokens) % s.heads
                let row = item / (s.newTokens * s.heads)
                let kvBase = ((row * s.kvHeads + h / group) * s.cacheCapacity) * hd
                let q = qkv + (row * s.newTokens + t) * s.qkvStride + h * hd
                let visible = s.prefixTokens + s.startPosition + t + 1
                var maxScore = -Float.infinity
                for j in 0..<visible {
                    let score = dot(q, keys + kvBase + j * hd, hd) * scale
                    scores[j] = score
                    maxScore = max(maxScore, score)
                }
                var total: Float = 0
                for j in 0..<visible {
                    let e = expf(scores[j] - maxScore)
                    scores[j] = e
                    total += e
                }
                let o = out + (row * s.newTokens + t) * s.heads * hd + h * hd
                o.update(repeating: 0, count: hd)
                let inverse = 1 / total
                logSumExp?[item] = maxScore + logf(total)
                for j in 0..<visible { axpy(scores[j] * inverse, values + kvBase + j * hd, o, hd) }
            }
        }
    }
}

extension AttentionOps {
    /// The plain statement of `backward`, kept as its reference.
    static func backwardPlain(
        dOut: UnsafePointer<Float>, out: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, logSumExp: UnsafePointer<Float>,
        dQKV: UnsafeMutablePointer<Float>, dKeys: UnsafeMutablePointer<Float>,
        dValues: UnsafeMutablePointer<Float>, shape s: AttentionShape
    ) {
        let hd = s.headDim, group = s.heads / s.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        let work = s.newTokens * (s.prefixTokens + s.startPosition + s.newTokens) * hd * group
        parallelFor(s.rows * s.kvHeads, minimumPerChunk: max(1, 65536 / max(work, 1))) { range in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: s.cacheCapacity)
            defer { p.deallocate() }
            for item in range {
                let row = item / s.kvHeads, kvh = item % s.kvHeads
                let kvBase = ((row * s.kvHeads + kvh) * s.cacheCapacity) * hd
                let dk = dKeys + kvBase, dv = dValues + kvBase
                dk.update(repeating: 0, count: s.cacheCapacity * hd)
                dv.update(repeating: 0, count: s.cacheCapacity * hd)
                for h in (kvh * group)..<((kvh + 1) * group) {
                    for t in 0..<s.newTokens {
                        let rowT = row * s.newTokens + t
                        let q = qkv + rowT * s.qkvStride + h * hd
                        let dq = dQKV + rowT * s.qkvStride + h * hd
                        let o = out + rowT * s.heads * hd + h * hd
                        let dO = dOut + rowT * s.heads * hd + h * hd
                        let lse = logSumExp[(row * s.heads + h) * s.newTokens + t]
                        let visible = s.prefixTokens + s.startPosition + t + 1
                        let D = dot(dO, o, hd)
                        dq.update(repeating: 0, count: hd)
                        for j in 0..<visible {
                            let k = keys + kvBase + j * hd
                            let prob = expf(dot(q, k, hd) * scale - lse)
                            let dp = dot(dO, values + kvBase + j * hd, hd)
                            let ds = prob * (dp - D) * scale
                            axpy(ds, k, dq, hd)
                            axpy(ds, q, dk + j * hd, hd)
                            axpy(prob, dO, dv + j * hd, hd)
                        }
                    }
                }
            }
        }
    }

    /// The gradient of `storeKV`: the real-token slots of dKeys / dValues into dQKV's k and v parts.
    static func storeKVBackward(
        dKeys: UnsafePointer<Float>, dValues: UnsafePointer<Float>, dQKV: UnsafeMutablePointer<Float>,
        shape s: AttentionShape
    ) {
        let hd = s.headDim
        for row in 0..<s.rows {
            for t in 0..<s.newTokens {
                let dst = dQKV + (row * s.newTokens + t) * s.qkvStride
                for h in 0..<s.kvHeads {
                    let slot = ((row * s.kvHeads + h) * s.cacheCapacity + s.prefixTokens + s.startPosition + t) * hd
                    (dst + (s.heads + h) * hd).update(from: dKeys + slot, count: hd)
                    (dst + (s.heads + s.kvHeads + h) * hd).update(from: dValues + slot, count: hd)
                }
            }
        }
    }

    /// The gradient of `fillPrefix`: dPrefix[r] += sum over the batch of the prefix slots' gradients.
    static func fillPrefixBackward(
        dCache: UnsafePointer<Float>, dPrefix: UnsafeMutablePointer<Float>, streams: Int, batch: Int,
        shape s: AttentionShape
    ) {
        let block = s.prefixTokens * s.headDim
        for r in 0..<streams {
            for b in 0..<batch {
                for h in 0..<s.kvHeads {
                    let src = dCache + (((r * batch + b) * s.kvHeads + h) * s.cacheCapacity) * s.headDim
                    axpy(1, src, dPrefix + (r * s.kvHeads + h) * block, block)
                }
            }
        }
    }
}

// The attention used by the backend: per (row, head), scores = Q K^T and out = P V as
// single-threaded sgemm calls, (row, head) pairs spread over the cores, at sgemm speed, about 10x
// the dot-product loops above. The queries go in blocks of `queryBlock`, each against the keys its
// last query sees, so of the masked upper triangle only the blocks' diagonal parts are computed:
// at S = 256, T = 48 the products cover 53,248 scores per head instead of 77,824 (the causal
// count is 45,184); at S = 128, 18,432 instead of 22,528 (14,400). One new token per row (decode)
// goes to a direct kernel instead.
extension AttentionOps {
    static let queryBlock = 64

    static func forward(
        qkv: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>?, shape s: AttentionShape
    ) {
        let hd = s.headDim, group = s.heads / s.kvHeads, S = s.newTokens
        let used = s.prefixTokens + s.startPosition + S  // key slots any query sees
        let scale = 1 / Float(hd).squareRoot()
        if S == 1 {
            decodeForward(qkv: qkv, keys: keys, values: values, out: out, logSumExp: logSumExp, shape: s)
            return
        }
        parallelFor(s.rows * s.heads, minimumPerChunk: max(1, 32768 / max(1, S * used * hd))) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: S * used)
            defer { scores.deallocate() }
            for item in range {
                let row = item / s.heads, h = item % s.heads
                let kvBase = ((row * s.kvHeads + h / group) * s.cacheCapacity) * hd
                var t0 = 0
                while t0 < S {
                    let count = min(queryBlock, S - t0)
                    let seen = s.prefixTokens + s.startPosition + t0 + count  // key slots the block's last query sees
                    let q = qkv + (row * S + t0) * s.qkvStride + h * hd
                    BLAS.single(false, true, count, seen, hd, scale, q, s.qkvStride, keys + kvBase, hd, 0, scores, seen)
                    for t in 0..<count {
                        let visible = s.prefixTokens + s.startPosition + t0 + t + 1
                        let lse = ps_softmax_row(scores + t * seen, Int32(visible), Int32(seen))
                        logSumExp?[(row * s.heads + h) * S + t0 + t] = lse
                    }
                    BLAS.single(
                        false, false, count, hd, seen, 1, scores, seen, values + kvBase, hd, 0,
                        out + (row * S + t0) * s.heads * hd + h * hd, s.heads * hd)
                    t0 += count
                }
            }
        }
    }

    /// One new token per row (decode): the direct kernel `ps_decode_attention`, (row, kv head)
    /// pairs spread over the cores, each pair's keys and values read once for its query heads.
    static func decodeForward(
        qkv: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>?, shape s: AttentionShape
    ) {
        let visible = s.prefixTokens + s.startPosition + 1, hd = s.headDim
        let scale = 1 / Float(hd).squareRoot()
        let work = visible * hd * s.heads / s.kvHeads
        parallelFor(s.rows * s.kvHeads, minimumPerChunk: max(1, 32768 / max(1, work))) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: min(4, s.heads / s.kvHeads) * visible)
            defer { scores.deallocate() }
            ps_decode_attention(
                qkv, keys, values, out, logSumExp, Int32(s.qkvStride), Int32(s.heads), Int32(s.kvHeads), Int32(hd),
                Int32(s.cacheCapacity), Int32(visible), scale, Int32(range.lowerBound), Int32(range.upperBound), scores)
        }
    }

    /// Gradients of `forward` (probabilities recomputed from q, k and the stored log-sum-exp).
    /// dQ goes into the q part of dQKV; dKeys / dValues are cache-shaped and overwritten.
    /// Work is split by (row, kv head), so the heads sharing a kv head never race.
    static func backward(
        dOut: UnsafePointer<Float>, out: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, logSumExp: UnsafePointer<Float>,
        dQKV: UnsafeMutablePointer<Float>, dKeys: UnsafeMutablePointer<Float>,
        dValues: UnsafeMutablePointer<Float>, shape s: AttentionShape
    ) {
        let hd = s.headDim, group = s.heads / s.kvHeads, S = s.newTokens
        let used = s.prefixTokens + s.startPosition + S
        let scale = 1 / Float(hd).squareRoot()
        let oStride = s.heads * hd
        // D = dO . O for every (row, token, head), first, in one pass down both matrices in memory
        // order: taken inside the loops below, one head's 32 floats at a time 512 bytes apart, it
        // waited on its loads (1.1% of a step at A, P = 4, issue #19). [rows * S, heads].
        let rowDots = UnsafeMutablePointer<Float>.allocate(capacity: s.rows * S * s.heads)
        defer { rowDots.deallocate() }
        parallelFor(s.rows * S, minimumPerChunk: max(1, 16384 / oStride)) { range in
            for rowT in range {
                for h in 0..<s.heads { rowDots[rowT * s.heads + h] = dot(dOut + rowT * oStride + h * hd, out + rowT * oStride + h * hd, hd) }
            }
        }
        parallelFor(s.rows * s.kvHeads, minimumPerChunk: max(1, 32768 / max(1, S * used * hd * group))) { range in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: S * used)
            let dp = UnsafeMutablePointer<Float>.allocate(capacity: S * used)
            defer {
                p.deallocate()
                dp.deallocate()
            }
            for item in range {
                let row = item / s.kvHeads, kvh = item % s.kvHeads
                let kvBase = ((row * s.kvHeads + kvh) * s.cacheCapacity) * hd
                let k = keys + kvBase, v = values + kvBase
                let dk = dKeys + kvBase, dv = dValues + kvBase
                // Every query block and head of the group adds into dK, dV.
                dk.update(repeating: 0, count: s.cacheCapacity * hd)
                dv.update(repeating: 0, count: s.cacheCapacity * hd)
                for h in (kvh * group)..<((kvh + 1) * group) {
                    var t0 = 0
                    while t0 < S {
                        let count = min(queryBlock, S - t0)
                        let seen = s.prefixTokens + s.startPosition + t0 + count
                        let q = qkv + (row * S + t0) * s.qkvStride + h * hd
                        let dq = dQKV + (row * S + t0) * s.qkvStride + h * hd
                        let dO = dOut + (row * S + t0) * oStride + h * hd
                        // P from the scores and the saved log-sum-exp; dP = dO V^T.
                        BLAS.single(false, true, count, seen, hd, scale, q, s.qkvStride, k, hd, 0, p, seen)
                        BLAS.single(false, true, count, seen, hd, 1, dO, oStride, v, hd, 0, dp, seen)
                        for t in 0..<count {
                            let visible = s.prefixTokens + s.startPosition + t0 + t + 1
                            let lse = logSumExp[(row * s.heads + h) * S + t0 + t]
                            let D = rowDots[(row * S + t0 + t) * s.heads + h]
                            // P, and dS scaled for the products below, in one pass.
                            ps_softmax_backward_row(p + t * seen, dp + t * seen, Int32(visible), Int32(seen), lse, D, scale)
                        }
                        BLAS.single(false, false, count, hd, seen, 1, dp, seen, k, hd, 0, dq, s.qkvStride)
                        BLAS.single(true, false, seen, hd, count, 1, dp, seen, q, s.qkvStride, 1, dk, hd)
                        BLAS.single(true, false, seen, hd, count, 1, p, seen, dO, oStride, 1, dv, hd)
                        t0 += count
                    }
                }
            }
        }
    }
}
