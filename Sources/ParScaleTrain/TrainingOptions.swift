import Foundation
import ParScale

/// How a run trains: batch and sequence, steps, evaluation and checkpoint intervals, data,
/// optimizer, recipe choices and checkpoint storage; saved in its `TrainerState`.
public struct TrainingOptions: Codable, Equatable, Sendable {
    public var batch = 8
    public var sequence = 128
    public var steps = 1000
    public var accumulate = 1
    public var evalEvery = 100
    public var checkpointEvery = 100
    public var evalWindows = 32
    public var taskExamples = 50
    public var seed: UInt64 = 0
    public var data = DataSpec.synthetic(seed: 0)
    public var optimizer = OptimizerOptions()
    /// Train only the prefixes and the aggregation head (recycling onto a frozen backbone).
    public var freezeBackbone = false
    /// Hidden width of the prefix reparameterisation MLP (`PrefixReparam`); 0: plain prefixes.
    public var prefixReparam = 0
    /// Weight λ of the stream decorrelation penalty (`StreamDecorrelationOps`, a training term only); 0: off.
    public var streamDecorrelation = 0.0
    /// How checkpoints store the model (`checkpoint/model.safetensors` or its shards): F32, BF16 or
    /// F16. Training state stays F32 (`Trainer.masterFileName` holds the exact weights otherwise).
    public var checkpointDType = SafeTensorsDType.F32
    /// Shard the checkpoint's weights past this many bytes (`Checkpoint.save`).
    public var maxShardBytes = Checkpoint.defaultMaxShardBytes
    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batch = try c.decode(Int.self, forKey: .batch)
        sequence = try c.decode(Int.self, forKey: .sequence)
        steps = try c.decode(Int.self, forKey: .steps)
        accumulate = try c.decode(Int.self, forKey: .accumulate)
        evalEvery = try c.decode(Int.self, forKey: .evalEvery)
        checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery)
        evalWindows = try c.decode(Int.self, forKey: .evalWindows)
        taskExamples = try c.decode(Int.self, forKey: .taskExamples)
        seed = try c.decode(UInt64.self, forKey: .seed)
        data = try c.decode(DataSpec.self, forKey: .data)
        optimizer = try c.decode(OptimizerOptions.self, forKey: .optimizer)
        freezeBackbone = try c.decodeIfPresent(Bool.self, forKey: .freezeBackbone) ?? false
        prefixReparam = try c.decodeIfPresent(Int.self, forKey: .prefixReparam) ?? 0  // runs from before it existed
        streamDecorrelation = try c.decodeIfPresent(Double.self, forKey: .streamDecorrelation) ?? 0
        checkpointDType = try c.decodeIfPresent(SafeTensorsDType.self, forKey: .checkpointDType) ?? .F32
        maxShardBytes = try c.decodeIfPresent(Int.self, forKey: .maxShardBytes) ?? Checkpoint.defaultMaxShardBytes
    }
    public var tokensPerStep: Int { batch * sequence * accumulate }
}
