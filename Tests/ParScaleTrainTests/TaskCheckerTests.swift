import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain

/// The frontier's verifier: it must accept exactly the generator's answers, from the prompt alone.
final class TaskCheckerTests: XCTestCase {
    func testCheckerWorksOutTheGeneratorsAnswerForEveryTask() {
        var perTask: [String: Int] = [:]
        for seed: UInt64 in [0, 3, 11] {
            for index in 0..<4000 {
                let e = SyntheticTasks.example(seed: seed, index: UInt64(index))
                XCTAssertEqual(TaskChecker.solve(prompt: e.prompt), e.answer, e.text)
                XCTAssertTrue(TaskChecker.check(prompt: e.prompt, answer: e.answer), e.text)
                perTask[e.task, default: 0] += 1
            }
        }
        for task in SyntheticTasks.taskNames { XCTAssertGreaterThan(perTask[task] ?? 0, 1000, task) }
    }

    func testCheckerRejectsWrongAnswers() {
        var rejected = 0
        for index in 0..<2000 {
            let e = SyntheticTasks.example(seed: 5, index: UInt64(index))
            var wrong = [e.answer + "0", String(e.answer.dropLast()), e.answer + " ", ""]
            // One character changed: a digit moved by one, or another letter.
            if let i = e.answer.indices.last(where: { e.answer[$0].isNumber || e.answer[$0].isLetter }) {
                let c = e.answer[i]
                let replacement: Character = c.isNumber ? Character(String((Int(String(c))! + 1) % 10)) : (c == "a" ? "b" : "a")
                var changed = e.answer
                changed.replaceSubrange(i...i, with: String(replacement))
                wrong.append(changed)
            }
            for answer in wrong where answer != e.answer {
                XCTAssertFalse(TaskChecker.check(prompt: e.prompt, answer: answer), "\(e.prompt) accepted '\(answer)'")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 9000)
        // Prompts of no task have no answer.
        XCTAssertNil(TaskChecker.solve(prompt: "hello -> "))
        XCTAssertNil(TaskChecker.solve(prompt: "12*3="))
        XCTAssertFalse(TaskChecker.check(prompt: "what -> ", answer: ""))
    }

    func testCheckerHandCases() {
        XCTAssertEqual(TaskChecker.solve(prompt: "347+85="), "7+5+0=12,4+8+1=13,3+0+1=4;432")
        XCTAssertEqual(TaskChecker.solve(prompt: "432-85="), "12-5-0=7,13-8-1=4,4-0-1=3;347")
        XCTAssertEqual(TaskChecker.solve(prompt: "a=3;b=a*2;a=b-1;print(a) -> "), "a=3,b=6,a=5;5")
        XCTAssertEqual(TaskChecker.solve(prompt: "s=1;for i=1..4:s=s*2;print(s) -> "), "2,4,8,16;16")
        XCTAssertEqual(TaskChecker.solve(prompt: "brackets ([]{()}) -> "), "yes depth 3")
        XCTAssertEqual(TaskChecker.solve(prompt: "brackets ([)] -> "), "no")
        XCTAssertEqual(TaskChecker.solve(prompt: "sort 5 27 9 1 -> "), "1 5 9 27")
        XCTAssertEqual(TaskChecker.solve(prompt: "sort d a c -> "), "a c d")
        XCTAssertEqual(TaskChecker.solve(prompt: "k3=7 k1=2 k9=4 ? k1 -> "), "2")
        XCTAssertEqual(TaskChecker.solve(prompt: "reverse hello -> "), "olleh")
        XCTAssertEqual(TaskChecker.solve(prompt: "count b in abbac -> "), "2")
    }
}
