import XCTest

@testable import ParScale
@testable import ParScaleLaw
import ParScaleTrain

/// `ablate`'s comparison of each recipe with the default, on results made up with known
/// differences: the paired differences, their t's p against the closed form at 2 df, the average
/// over P, and the rule that proposes a new default only when it is ahead at every size.
final class AblationTests: XCTestCase {
    let config = ModelConfig(
        vocabSize: 256, hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4,
        numKeyValueHeads: 2, tieWordEmbeddings: true, parscaleN: 1, parscaleNTokens: 0)

    func result(_ recipe: String?, hidden: Int, streams: Int, seed: UInt64, loss: Double) -> SweepResult {
        SweepResult(
            name: "\(recipe.map { $0 + "-" } ?? "")h\(hidden)-p\(streams)-s\(seed)", hidden: hidden, layers: 2, streams: streams, seed: seed,
            nonEmbeddingParameters: hidden * hidden * 40, parscaleParameters: streams > 1 ? 1000 : 0, tokens: 1000, validationLoss: loss,
            validationLossSE: 0.01, taskAccuracy: nil, wallSeconds: 1, backend: "cpu", config: config, recipe: recipe)
    }

    /// Seeds 0-2; "better" is ahead of reparam at both sizes by clearly non-zero amounts, "mixed" only at 64.
    func results() -> [SweepResult] {
        var out: [SweepResult] = []
        let seedNoise = [0.010, -0.004, 0.007]
        for h in [64, 96] {
            let base = h == 64 ? 0.70 : 0.62
            for s in 0..<3 {
                out.append(result(nil, hidden: h, streams: 1, seed: UInt64(s), loss: base + seedNoise[s]))
                for p in [2, 4] {
                    let standard = base - 0.01 + seedNoise[s] + (p == 4 ? 0.002 : 0)
                    out.append(result("reparam", hidden: h, streams: p, seed: UInt64(s), loss: standard))
                    out.append(result("better", hidden: h, streams: p, seed: UInt64(s), loss: standard - 0.005 - 0.001 * Double(s + p)))
                    out.append(result("mixed", hidden: h, streams: p, seed: UInt64(s), loss: standard + (h == 64 ? -0.006 : 0.004) + 0.001 * Double(s)))
                }
            }
        }
        return out
    }

    func testEachRecipeAgainstTheDefaultPairedBySeed() throws {
        XCTAssertEqual(Recipe.standardName, "reparam")
        let table = AblationTable.build(results: results())
        let rows = try XCTUnwrap(table.againstDefault)
        XCTAssertEqual(rows.count, 2 * 2 * 3)  // 2 recipes x 2 sizes x (P = 2, P = 4, both)
        let better64p4 = try XCTUnwrap(rows.first { $0.recipe == "better" && $0.hidden == 64 && $0.streams == [4] })
        XCTAssertEqual(better64p4.seeds, [0, 1, 2])
        for (s, d) in better64p4.differences.enumerated() { XCTAssertEqual(d, -0.005 - 0.001 * Double(s + 4), accuracy: 1e-12) }
        // Differences -0.009, -0.010, -0.011: mean -0.010, SE 0.001 / sqrt(3), and at 2 df p = 1 - t / sqrt(2 + t^2).
        XCTAssertEqual(better64p4.difference, -0.010, accuracy: 1e-12)
        XCTAssertEqual(better64p4.differenceSE, 0.001 / 3.0.squareRoot(), accuracy: 1e-12)
        let t = abs(better64p4.difference / better64p4.differenceSE)
        XCTAssertEqual(try XCTUnwrap(better64p4.pValue), 1 - t / (2 + t * t).squareRoot(), accuracy: 1e-12)
        // The row over both P averages each seed's two differences.
        let pooled = try XCTUnwrap(rows.first { $0.recipe == "better" && $0.hidden == 96 && $0.streams == [2, 4] })
        for (s, d) in pooled.differences.enumerated() { XCTAssertEqual(d, -0.005 - 0.001 * Double(s) - 0.003, accuracy: 1e-12) }
        // "better" is ahead at both sizes with p < 0.05; "mixed" only at 64.
        XCTAssertEqual(table.recipesBeatingDefault, ["better"])
        XCTAssertTrue(table.defaultLine.contains("better is: the candidate"), table.defaultLine)
        XCTAssertTrue(table.defaultLine.contains("not a claim"), table.defaultLine)  // 3 seeds
        XCTAssertTrue(table.markdown.contains("| mixed | 96 | 2,4 (mean) | 3 |"), table.markdown)
    }

    /// A seed missing one P is left out of that size's rows over both P (so each row is balanced),
    /// and without runs of the default, or of any other recipe, there is nothing to compare with,
    /// and the line says which.
    func testUnbalancedSeedsAndNoDefault() throws {
        var all = results()
        all.removeAll { $0.recipe == "mixed" && $0.hidden == 96 && $0.streams == 4 && $0.seed == 2 }
        let rows = try XCTUnwrap(AblationTable.build(results: all).againstDefault)
        XCTAssertEqual(rows.first { $0.recipe == "mixed" && $0.hidden == 96 && $0.streams == [2, 4] }?.seeds, [0, 1])
        XCTAssertEqual(rows.first { $0.recipe == "mixed" && $0.hidden == 64 && $0.streams == [2, 4] }?.seeds, [0, 1, 2])
        let noDefault = AblationTable.build(results: results().filter { $0.recipe != "reparam" })
        XCTAssertNil(noDefault.againstDefault)
        XCTAssertTrue(noDefault.defaultLine.contains("no runs of it with P > 1"), noDefault.defaultLine)
        XCTAssertTrue(noDefault.markdown.contains(noDefault.defaultLine))
        let onlyDefault = AblationTable.build(results: results().filter { $0.recipe == "reparam" })
        XCTAssertEqual(onlyDefault.againstDefault?.count, 0)
        XCTAssertTrue(onlyDefault.defaultLine.contains("no other recipe"), onlyDefault.defaultLine)
        XCTAssertEqual(noDefault.recipesBeatingDefault, [])
    }
}
