import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleLaw
@testable import ParScaleTrain
import TestSupport

final class FrontierTests: XCTestCase {
    /// hidden 8, 2/1 heads (head_dim 4), intermediate 16, vocabulary 10, T = 3 prefix tokens.
    func handConfig(P: Int, layers: Int = 1) -> ModelConfig {
        ModelConfig(
            vocabSize: 10, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: layers, numAttentionHeads: 2,
            numKeyValueHeads: 1, tieWordEmbeddings: true, parscaleN: P, parscaleNTokens: 3)
    }

    func testFLOPsMatchHandCounts() {
        // Multiply-adds per token and stream: q/k/v 8 x (2 + 2) x 4 = 128, o 8 x 8 = 64,
        // gate/up 8 x 32 = 256, down 16 x 8 = 128: 576. Attention: 2 x 4 = 8 for QK and 8 for AV per key.
        // Head: 8 x 10 = 80 per row. Aggregation (P = 2): 2 x 8 x 8 + 8 x 2 = 144 per token.
        let p2 = handConfig(P: 2)
        // Prefill of 2 tokens: linears 2 x 2 streams x 2 tokens x 576; keys per stream (3 + 1) + (3 + 2) = 9;
        // aggregation 2 tokens; head 1 row.
        let linears: Int = 2 * 2 * 2 * 576, attention: Int = 2 * 16 * (2 * 9), aggregation: Int = 2 * 2 * 144
        let prefill: Int = linears + attention + aggregation + 2 * 80
        XCTAssertEqual(prefill, 5920)
        XCTAssertEqual(FrontierFLOPs.forward(p2, tokens: 2, past: 0, headRows: 1), Double(prefill))
        // Decode after 2 and after 3 tokens: 6 and 7 keys per stream.
        let step0: Int = 2 * 2 * 576 + 2 * 16 * (2 * 6) + 2 * 144 + 2 * 80
        let step1: Int = 2 * 2 * 576 + 2 * 16 * (2 * 7) + 2 * 144 + 2 * 80
        XCTAssertEqual(FrontierFLOPs.forward(p2, tokens: 1, past: 2, headRows: 1), Double(step0))
        // 3 generated tokens: the first from the prefill, two decode forwards.
        XCTAssertEqual(FrontierFLOPs.perQuestion(p2, prompt: 2, generated: [3]), Double(prefill + step0 + step1))
        XCTAssertEqual(FrontierFLOPs.perQuestion(p2, prompt: 2, generated: [3]), 12256)
        // n samples share the prefill; a one-token answer needs no decode step.
        XCTAssertEqual(FrontierFLOPs.perQuestion(p2, prompt: 2, generated: [3, 3]), Double(prefill + 2 * (step0 + step1)))
        XCTAssertEqual(FrontierFLOPs.perQuestion(p2, prompt: 2, generated: [3, 1]), 12256)
        // P = 1: no prefix (T counts only with P > 1), no aggregation.
        let p1 = handConfig(P: 1)
        let p1Prefill: Int = 2 * 2 * 576 + 2 * 16 * 3 + 160, p1Step0: Int = 2 * 576 + 2 * 16 * 3 + 160, p1Step1: Int = 2 * 576 + 2 * 16 * 4 + 160
        XCTAssertEqual(FrontierFLOPs.perQuestion(p1, prompt: 2, generated: [3]), Double(p1Prefill + p1Step0 + p1Step1))
        XCTAssertEqual(FrontierFLOPs.perQuestion(p1, prompt: 2, generated: [3]), 5408)
        // Layers multiply the layer part only.
        let twoLayers: Int = 2 * (2 * 576 + 2 * 16 * 1) + 160
        XCTAssertEqual(FrontierFLOPs.perQuestion(handConfig(P: 1, layers: 2), prompt: 1, generated: [1]), Double(twoLayers))
        // P = 4, T = 3: the prefix slots are attended by every stream.
        let p4 = handConfig(P: 4)
        let p4Forward: Int = 2 * 4 * 576 + 2 * 16 * (4 * 4) + 2 * (4 * 64 + 8 * 4) + 160
        XCTAssertEqual(FrontierFLOPs.forward(p4, tokens: 1, past: 0, headRows: 1), Double(p4Forward))
        // KV cache: P x batch x layers x (K and V) x kv heads x (T + capacity) x head_dim x 4 bytes.
        let kvBytes: Int = 2 * 3 * 1 * 2 * 1 * 8 * 4 * 4
        XCTAssertEqual(FrontierFLOPs.kvCacheBytes(p2, batch: 3, capacity: 5), kvBytes)
    }

    func sample(_ answer: String, _ logProbability: Double, tokens: Int = 2) -> FrontierSample {
        FrontierSample(answer: answer, logProbability: logProbability, tokens: tokens)
    }

    func testMajorityVoteAndItsTieRule() {
        let never: (String) -> Bool = { _ in false }
        XCTAssertEqual(FrontierStrategy.vote.pick([sample("7", -9), sample("8", -1), sample("7", -9)], verify: never), 0)
        // 2 against 2: the answer whose samples have the larger total log-probability (-0.7 > -4).
        let tied = [sample("A", -1), sample("B", -0.5), sample("A", -3), sample("B", -0.2)]
        XCTAssertEqual(FrontierStrategy.vote.pick(tied, verify: never), 1)
        // Equal counts and equal totals: the answer drawn first.
        XCTAssertEqual(FrontierStrategy.vote.pick([sample("x", -1), sample("y", -1)], verify: never), 0)
        // Best-of-n by the MEAN token log-probability, not the total: -2 over 4 tokens beats -1.5 over 2.
        XCTAssertEqual(FrontierStrategy.likelihood.pick([sample("long", -1.5, tokens: 2), sample("short", -2, tokens: 4)], verify: never), 1)
    }

    /// The verifier asks TaskChecker, which works the answer out from the prompt: it finds the right
    /// sample even when the model likes it least, and falls back to the likelihood pick when none is right.
    func testVerifierUsesTheIndependentChecker() {
        let e = heldOutTasks(seed: 0, count: 5)[4]
        let verify = { TaskChecker.check(prompt: e.prompt, answer: $0) }
        let samples = [sample(e.answer + "1", -0.1), sample("", -0.2), sample(e.answer, -30)]
        XCTAssertEqual(FrontierStrategy.verifier.pick(samples, verify: verify), 2)
        XCTAssertEqual(FrontierStrategy.likelihood.pick(samples, verify: verify), 0)
        XCTAssertEqual(FrontierStrategy.verifier.pick(Array(samples.prefix(2)), verify: verify), 0)
    }

    func testWilsonIntervalsOnKnownCases() {
        // Wilson (1927) 95% intervals, z = 1.959964.
        let half = wilsonInterval(correct: 5, total: 10)
        XCTAssertEqual(half.low, 0.2366, accuracy: 1e-4)
        XCTAssertEqual(half.high, 0.7634, accuracy: 1e-4)
        // None right: [0, z^2 / (n + z^2)]; all right: [n / (n + z^2), 1].
        let none = wilsonInterval(correct: 0, total: 10), all = wilsonInterval(correct: 10, total: 10)
        XCTAssertEqual(none.low, 0)
        XCTAssertEqual(none.high, 3.841459 / 13.841459, accuracy: 1e-6)
        XCTAssertEqual(all.low, 10 / 13.841459, accuracy: 1e-6)
        XCTAssertEqual(all.high, 1)
        // About 1 / sqrt(n) narrower with more prompts: 40% of 1000 against 40% of 10.
        let small = wilsonInterval(correct: 4, total: 10), big = wilsonInterval(correct: 400, total: 1000)
        XCTAssertGreaterThan(small.high - small.low, 7 * (big.high - big.low))
        XCTAssertLessThan(small.high - small.low, 10 * (big.high - big.low))
    }

    func testParetoKeepsOnlyUnbeatenPoints() {
        func point(_ cost: Double, _ accuracy: Double) -> FrontierPoint {
            FrontierPoint(
                model: "m", hidden: 8, streams: 1, nonEmbeddingParameters: 1, dtype: "F32", strategy: .greedy, n: 1, correct: 0,
                prompts: 1, accuracy: accuracy, low: 0, high: 1, flopsPerQuestion: cost, latencyBatch1: cost, latencyBatched: cost,
                memoryCountedBytes: 0, memoryMeasuredBytes: 0, correctness: [])
        }
        let points = [point(2, 0.05), point(1, 0.1), point(2, 0.3), point(4, 0.3), point(8, 0.5), point(16, 0.4)]
        XCTAssertEqual(FrontierReport.pareto(points, cost: \.flopsPerQuestion), [1, 2, 4])
        let d = FrontierReport.pairedDifference([true, true, false, false], [true, false, true, true])
        XCTAssertEqual(d.mean, 0.25)
    }

    func testRoundingToBF16AndF16() {
        // 1 + 2^-8 is halfway between bfloat16 neighbours 1 and 1 + 2^-7: ties go to the even one.
        XCTAssertEqual(SafeTensorsDType.BF16.rounded(1 + 1.0 / 256), 1)
        XCTAssertEqual(SafeTensorsDType.BF16.rounded(1 + 3.0 / 256), 1 + 4.0 / 256)
        XCTAssertEqual(SafeTensorsDType.F16.rounded(1 + 1.0 / 2048), 1)
        XCTAssertEqual(SafeTensorsDType.F16.rounded(1 + 3.0 / 2048), 1 + 4.0 / 2048)
        XCTAssertEqual(SafeTensorsDType.F32.rounded(1 + 1.0 / 2048), 1 + 1.0 / 2048)
        let model = tinyModel(P: 2)
        let rounded = Frontier.rounded(model, to: .BF16)
        var a = [Float](repeating: 0, count: model.parameters.count), b = a
        a.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        b.withUnsafeMutableBufferPointer { rounded.backend.download(rounded.parameters, into: $0) }
        XCTAssertEqual(b, a.map { SafeTensorsDType.BF16.rounded($0) })
        XCTAssertNotEqual(a, b)
    }

    /// The log-probabilities the generator reports are log softmax of the logits a full forward of
    /// prompt + answer gives at each position.
    func testGeneratorLogProbabilitiesMatchAFullForward() throws {
        let model = tinyModel(P: 2)
        let prompt: [Int32] = [3, 1, 4, 1, 5]
        let result = try Generator.generate(model: model, prompts: [prompt], maxNewTokens: 4, sampling: SamplingOptions(temperature: 1, seed: 3))
        let tokens = result.tokens[0]
        XCTAssertEqual(tokens.count, 4)
        let full = prompt + tokens.dropLast()
        let logits = try model.forward(tokens: [full], cache: model.makeCache(batch: 1, capacity: full.count))
        for (k, token) in tokens.enumerated() {
            let row = Array(logits[(prompt.count - 1 + k) * 256..<(prompt.count + k) * 256])
            let top = row.max()!
            let expected = Double(row[Int(token)] - top) - log(row.reduce(0.0) { $0 + exp(Double($1 - top)) })
            XCTAssertEqual(Double(result.logProbabilities[0][k]), expected, accuracy: 1e-4)
        }
    }

    /// Points from a hand-made cell: accuracy, FLOPs and memory follow from the answers and the shape.
    func testPointsFromACell() {
        let plan = FrontierPlan(prompts: 3, samples: [1, 2], temperature: 0.7, dtypes: ["F32"], seed: 0, maxNewTokens: 8, latencyPrompts: 1)
        let examples = Frontier.prompts(plan)
        let c = handConfig(P: 1)
        func q(_ i: Int, greedy: String, samples: [String]) -> FrontierQuestion {
            FrontierQuestion(
                promptTokens: 4, greedy: sample(greedy, -1, tokens: 3),
                samples: samples.enumerated().map { sample($1, -Double($0 + 1), tokens: 2) })
        }
        var cell = FrontierCell(model: "m", dtype: "BF16", config: c)
        cell.questions = [
            q(0, greedy: examples[0].answer, samples: ["no", examples[0].answer]),  // greedy right; 2nd sample right
            q(1, greedy: "no", samples: [examples[1].answer, "no"]),  // 1st sample right
            q(2, greedy: "no", samples: ["no", "no"]),
        ]
        cell.latency = [FrontierLatency(n: 0, sequentialSeconds: 1, batchedSeconds: 1), FrontierLatency(n: 1, sequentialSeconds: 2, batchedSeconds: 2),
                        FrontierLatency(n: 2, sequentialSeconds: 4, batchedSeconds: 3)]
        cell.memory = [FrontierMemory(batch: 1, measuredBytes: 100), FrontierMemory(batch: 2, measuredBytes: 200)]
        let points = FrontierReport.points(cells: [cell], examples: examples, plan: plan)
        XCTAssertEqual(points.map(\.strategyLabel), ["greedy", "1 sample", "majority of 2", "best-of-2 log-prob", "pass@2 (checker)"])
        XCTAssertEqual(points.map(\.correct), [1, 1, 1, 1, 2])  // majority 1-1 ties go to the larger log-prob: the first sample
        XCTAssertEqual(points[0].flopsPerQuestion, FrontierFLOPs.perQuestion(c, prompt: 4, generated: [3]))
        XCTAssertEqual(points[4].flopsPerQuestion, FrontierFLOPs.perQuestion(c, prompt: 4, generated: [2, 2]))
        XCTAssertEqual(points[4].latencyBatched, 3)
        XCTAssertEqual(points[4].latencyBatch1, 4)
        XCTAssertEqual(points[4].memoryMeasuredBytes, 200)
        // BF16: 2 bytes per weight, float32 KV cache for 2 sequences of 4 + 8 tokens.
        XCTAssertEqual(points[4].memoryCountedBytes, ParameterLayout(c).totalCount * 2 + FrontierFLOPs.kvCacheBytes(c, batch: 2, capacity: 12))
        XCTAssertEqual(points[0].low, wilsonInterval(correct: 1, total: 3).low)
        let (plots, tables) = FrontierReport.build(points)
        XCTAssertEqual(Set(plots.keys), ["frontier-flops.svg", "frontier-latency.svg"])
        XCTAssertTrue(plots["frontier-flops.svg"]!.contains("pass@2 (checker)"))
        XCTAssertEqual(tables.last?.rows.count, 5)
        // The budget grid doubles from the cheapest point until one budget covers every point.
        let budgets = tables[0].rows.compactMap { Double($0[0]) }
        let costs = points.map(\.flopsPerQuestion)
        XCTAssertEqual(budgets.first ?? 0, costs.min()!, accuracy: costs.min()! * 1e-3)
        XCTAssertGreaterThanOrEqual(budgets.last ?? 0, costs.max()! * 0.999)
        XCTAssertLessThan(budgets.dropLast().last ?? 0, costs.max()!)
    }

    /// The frontier's prompts are held out: each is in the validation split, and none appears as a
    /// line of the training stream the trainer reads (the validation stream, as a control, has them).
    func testEvaluationPromptsNeverAppearInTraining() throws {
        let prompts = Frontier.prompts(FrontierPlan(prompts: 200, samples: [1], temperature: 1, dtypes: ["F32"], seed: 0, maxNewTokens: 8, latencyPrompts: 1))
        XCTAssertEqual(prompts.count, 200)
        XCTAssertTrue(prompts.allSatisfy { SyntheticTasks.split(of: $0.prompt) == .validation })
        func lines(_ split: DataSplit, batches: Int) throws -> Set<String> {
            let stream = try TokenStream(source: .synthetic(seed: 0), corpus: nil, split: split, seed: 0)
            var text: [UInt8] = []
            for _ in 0..<batches {
                let (inputs, _) = stream.nextBatch(batch: 1, sequence: 512)
                text += inputs.map { UInt8($0) }
            }
            return Set(String(decoding: text, as: UTF8.self).split(separator: "\n").map(String.init))
        }
        let trainLines = try lines(.train, batches: 1200)  // about 600k bytes, 20k lines
        XCTAssertGreaterThan(trainLines.count, 10000)
        XCTAssertTrue(prompts.allSatisfy { !trainLines.contains(String($0.text.dropLast())) })
        // Same prompt, any answer: the prompt itself never starts a training line.
        let trainPrompts = Set(trainLines.compactMap { line in prompts.first { line.hasPrefix($0.prompt) }?.prompt })
        XCTAssertEqual(trainPrompts, [])
        let validationLines = try lines(.validation, batches: 40)
        XCTAssertGreaterThan(prompts.filter { validationLines.contains(String($0.text.dropLast())) }.count, 100)
    }
}
