import CKernels
import Dispatch

/// Buffers of a training step split over the cores by sequences: one `TrainingWorkspace` per
/// core for its B / cores sequences, a gradient buffer for every core but the first (the first
/// adds into the caller's), and the per-token losses of all of them in batch order.
final class DataParallelWorkspace {
    let batch: Int, sequence: Int
    let parts: [TrainingWorkspace]
    let gradients: [Tensor]
    let losses: Tensor

    init(model: ParScaleModel, batch B: Int, sequence S: Int, parts count: Int) throws {
        batch = B
        sequence = S
        parts = try (0..<count).map { _ in
            try TrainingWorkspace(model: model, backend: model.backend, batch: B / count, sequence: S)
        }
        gradients = try (1..<count).map { _ in
            try model.backend.allocate(model.parameters.count, for: "a training worker's gradients")
        }
        losses = try model.backend.allocate(B * S, for: "a training step's losses")
    }
}

extension ParScaleModel {
    /// `recordGradients` on the CPU with each core running forward and backward of its share of
    /// the sequences from start to end, its products single-threaded (`BLAS.workersHere`): no
    /// hand-off between cores inside the step, where the split of every op over the cores paid
    /// one per op (25-30 per layer, forward and backward). The cores' gradients are added into `g` in core order at
    /// the end, so the result is the same from run to run for a given core count; it differs from
    /// the one-workspace path only by the order of float sums (`DataParallelTests`).
    func recordGradientsDataParallel(
        inputs: [Int32], targets: [Int32], batch B: Int, sequence S: Int, gradients g: Tensor, gradScale: Float,
        streamDecorrelation: Float, parts: Int
    ) throws -> Tensor {
        let d: DataParallelWorkspace
        if let existing = dataParallel, existing.batch == B, existing.sequence == S, existing.parts.count == parts {
            d = existing
        } else {
            dataParallel = nil  // its memory is free for the new shape's
            training = nil
            d = try DataParallelWorkspace(model: self, batch: B, sequence: S, parts: parts)
            dataParallel = d
        }
        let n = B / parts * S
        for extra in d.gradients { backend.fill(extra, value: 0) }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            ps_set_this_thread_serial(1)
            defer { ps_set_this_thread_serial(0) }
            let range = (p * n)..<((p + 1) * n)
            // Each part's loss (and decorrelation penalty) is a mean over its n tokens; scaled by
            // 1/parts their sum is the gradient of the mean over all B*S.
            let losses = recordGradients(
                in: d.parts[p], inputs: Array(inputs[range]), targets: Array(targets[range]),
                gradients: p == 0 ? g : d.gradients[p - 1], gradScale: gradScale / Float(parts), trainBackbone: true,
                streamDecorrelation: streamDecorrelation)
            (d.losses.host + p * n).update(from: losses.host, count: n)
        }
        for extra in d.gradients {
            let sum = g.host, add = extra.host
            parallelFor(g.count, minimumPerChunk: 32768) { range in
                axpy(1, add + range.lowerBound, sum + range.lowerBound, range.count)
            }
        }
        return d.losses
    }
}
