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

    static func forward(
        qkv: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, shape s: AttentionShape
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
                for j in 0..<visible { axpy(scores[j] * inverse, values + kvBase + j * hd, o, hd) }
            }
        }
    }
}
