import ArgumentParser
import ParScale
import ParScaleTrain
import ParScaleLaw

/// `--dtype`: how written model weights are stored.
enum WeightDType: String, ExpressibleByArgument, CaseIterable {
    case f32, bf16, f16

    var safetensors: SafeTensorsDType {
        switch self {
        case .f32: return .F32
        case .bf16: return .BF16
        case .f16: return .F16
        }
    }
}

/// How commands that write a model (init, pretrain, recycle, merge, and the runs of sweep,
/// ablate and study) store its weights.
struct ModelWriteFlags: ParsableArguments {
    @Option(help: "Storage type of the written model weights: f32, bf16 or f16 (rounded to nearest even; training state stays f32).")
    var dtype: WeightDType = .f32
    @Option(
        name: .customLong("max-shard-size"),
        help: "Write the weights as model-0000k-of-0000n.safetensors shards plus model.safetensors.index.json when they exceed this size, as transformers: 5GB (10^9), 500MB, 100KB, 2GiB (2^30), 512MiB, 64KiB, or plain bytes.")
    var maxShardSize: String = "5GB"

    func validate() throws { _ = try maxShardBytes() }

    /// `--max-shard-size` in bytes.
    func maxShardBytes() throws -> Int {
        guard let bytes = Checkpoint.parseFileSize(maxShardSize), bytes > 0 else {
            throw ValidationError(
                "--max-shard-size must be a positive size: an integer with a unit, 5GB, 500MB, 100KB (powers of 10), 2GiB, 512MiB, 64KiB (powers of 2), or plain bytes; got '\(maxShardSize)'")
        }
        return bytes
    }

    /// Saves `model` as these flags say.
    func save(_ model: ParScaleModel, to dir: String) throws {
        try Checkpoint.save(model, to: dir, dtype: dtype.safetensors, maxShardBytes: maxShardBytes())
    }

    /// Every checkpoint of the run stores its model as these flags say.
    func apply(to options: inout TrainingOptions) throws {
        options.checkpointDType = dtype.safetensors
        options.maxShardBytes = try maxShardBytes()
    }

    /// Every run of a sweep stores its checkpoints' models as these flags say.
    func apply(to plan: inout SweepPlan) throws {
        plan.checkpointDType = dtype == .f32 ? nil : dtype.safetensors
        plan.maxShardBytes = maxShardSize == "5GB" ? nil : try maxShardBytes()
    }
}
