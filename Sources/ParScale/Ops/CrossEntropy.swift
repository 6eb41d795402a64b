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
}
