import Foundation
import ParScale

extension Trainer {
    /// The one place a run starts or resumes (`pretrain`, `recycle`, and every run of a sweep):
    /// when `resume` is true (nil: when `runDirectory` holds a checkpoint), the run continues from
    /// its last checkpoint on the backend `backend` makes for the checkpoint's model; otherwise
    /// `start` makes the model and options and returns `Trainer.start(...)`. What a killed process
    /// left (`recoverInterruptedSave`) is tidied first.
    public static func startOrResume(
        runDirectory: String, resume: Bool? = nil, backend: (ModelConfig) throws -> Backend,
        acceptChangedData: Bool = false, log: (String) -> Void = { _ in }, start: () throws -> Trainer
    ) throws -> Trainer {
        recoverInterruptedSave(runDirectory)
        guard resume ?? FileManager.default.fileExists(atPath: checkpointDirectory(runDirectory)) else { return try start() }
        let config = try Checkpoint.loadConfig(checkpointDirectory(runDirectory))
        let trainer = try Trainer.resume(
            runDirectory: runDirectory, backend: backend(config), acceptChangedData: acceptChangedData)
        log("resuming \(runDirectory) at step \(trainer.state.step)/\(trainer.state.options.steps)")
        return trainer
    }
}
