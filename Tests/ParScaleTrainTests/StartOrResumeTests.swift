import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
import TestSupport

/// The one place a run starts or resumes, and the recipe's P = 1 rule.
extension TrainingTests {
    func testStartOrResumeStartsAnEmptyFolderAndResumesARun() throws {
        let run = temporaryFolder().path
        var starts = 0
        let first = try Trainer.startOrResume(runDirectory: run, backend: { _ in CPUBackend() }) {
            starts += 1
            return try Trainer.start(runDirectory: run, model: tinyModel(P: 2), options: options(steps: 4))
        }
        try first.run(stopAfter: 2)
        var lines: [String] = []
        let second = try Trainer.startOrResume(runDirectory: run, backend: { _ in CPUBackend() }, log: { lines.append($0) }) {
            XCTFail("a folder with a checkpoint is resumed, not started again")
            return first
        }
        XCTAssertEqual(starts, 1)
        XCTAssertEqual(second.state.step, 2)
        XCTAssertEqual(lines, ["resuming \(run) at step 2/4"])
        // --resume on a folder without a run is an error, not a new run.
        XCTAssertThrowsError(
            try Trainer.startOrResume(runDirectory: temporaryFolder().path, resume: true, backend: { _ in CPUBackend() }) { first })
    }

    func testRecipeTrainsNoReparameterisationAtPEqualsOne() {
        var o = TrainingOptions()
        Recipe.standard.apply(to: &o, streams: 1)
        XCTAssertEqual(o.prefixReparam, 0)
        Recipe.standard.apply(to: &o, streams: 2)
        XCTAssertEqual(o.prefixReparam, Recipe.standard.prefixReparam)
        XCTAssertGreaterThan(o.prefixReparam, 0)
    }
}
