import ParScaleTrain

/// Options of a short test run: `steps` optimizer steps of `batch` x `sequence` tokens, evaluated
/// and checkpointed at the end on `evalWindows` validation windows, without task prompts.
public func shortRunOptions(
    steps: Int, batch: Int, sequence: Int, evalWindows: Int, learningRate: Double? = nil
) -> TrainingOptions {
    var o = TrainingOptions()
    o.batch = batch
    o.sequence = sequence
    o.steps = steps
    o.evalEvery = steps
    o.checkpointEvery = steps
    o.evalWindows = evalWindows
    o.taskExamples = 0
    if let learningRate { o.optimizer.learningRate = learningRate }
    return o
}
