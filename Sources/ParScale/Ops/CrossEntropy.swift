import CKernels
import Foundation

/// Softmax cross-entropy of next-token prediction, fused with its gradient.
enum CrossEntropyOps {
    /// losses[i] = logsumexp(logits[i]) - logits[i, target]; logits[i] is overwritten by
    /// gradScale * (softmax(logits[i]) - onehot(target)), the gradient of gradScale * sum(losses).
    static func forwardBackward(
        logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, losses: UnsafeMutablePointer<Float>,
        rows: Int, vocab: Int, gradScale: Float
    ) {
        parallelFor(rows, minimumPerChunk: max(1, 16384 / vocab)) { range in
            for i in range {
                let l = logits + i * vocab
                var maxLogit = -Float.infinity
                for v in 0..<vocab { maxLogit = max(maxLogit, l[v]) }
                let target = Int(targets[i])
                let targetLogit = l[target]
                let total = ps_exp_shifted(l, Int32(vocab), maxLogit)
                losses[i] = maxLogit + logf(total) - targetLogit
                let factor = gradScale / total
                for v in 0..<vocab { l[v] *= factor }
                l[target] -= gradScale
            }
        }
    }

    /// sums[s] = sum over the rows of sequence s (rows s*rowsPerSum ..< (s+1)*rowsPerSum) of
    /// logsumexp(logits[i]) - logits[i, target], without the gradient (evaluation). Each row's
    /// loss and the sum are in Double, as `ParScaleModel.sequenceLosses` computes them on the host;
    /// only the stored sum is rounded to float32. Sequences are split over the cores.
    static func sums(
        logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, sums: UnsafeMutablePointer<Float>, count: Int,
        rowsPerSum: Int, vocab: Int
    ) {
        parallelFor(count, minimumPerChunk: 1) { range in
            for s in range {
                var total = 0.0
                for i in (s * rowsPerSum)..<((s + 1) * rowsPerSum) {
                    let row = logits + i * vocab
                    var maxLogit = -Float.infinity
                    for v in 0..<vocab { maxLogit = max(maxLogit, row[v]) }
                    var sum = 0.0
                    for v in 0..<vocab { sum += Double(expf(row[v] - maxLogit)) }
                    total += Double(maxLogit) + log(sum) - Double(row[Int(targets[i])])
                }
                sums[s] = Float(total)
            }
        }
    }
}
