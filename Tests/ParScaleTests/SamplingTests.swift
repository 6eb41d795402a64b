import XCTest

@testable import ParScale

final class SamplingTests: XCTestCase {
    func sampleMany(_ logits: [Float], _ options: SamplingOptions, draws: Int = 4000) -> [Int: Int] {
        var sampler = Sampler(options)
        var counts: [Int: Int] = [:]
        logits.withUnsafeBufferPointer { p in
            for _ in 0..<draws { counts[Int(sampler.sample(p)), default: 0] += 1 }
        }
        return counts
    }

    func testGreedyTakesTheFirstMaximum() {
        [0.5, 2, 2, -1].map(Float.init).withUnsafeBufferPointer { XCTAssertEqual(Sampler.argmax($0), 1) }
    }

    func testTemperatureSamplingFollowsTheSoftmax() {
        // p = softmax([ln 1, ln 2, ln 3, ln 4]) = [0.1, 0.2, 0.3, 0.4]
        let logits = [1, 2, 3, 4].map { Float(log(Double($0))) }
        let counts = sampleMany(logits, SamplingOptions(temperature: 1, seed: 5), draws: 20000)
        for (i, p) in [0.1, 0.2, 0.3, 0.4].enumerated() {
            XCTAssertEqual(Double(counts[i, default: 0]) / 20000, p, accuracy: 0.015)
        }
    }

    func testTopKAndTopPCutTheCandidates() {
        let logits = [1, 2, 3, 4].map { Float(log(Double($0))) }
        XCTAssertEqual(Set(sampleMany(logits, SamplingOptions(temperature: 1, topK: 2)).keys), [2, 3])
        // top-p 0.65: 0.4 + 0.3 reaches it, so only tokens 3 and 2.
        XCTAssertEqual(Set(sampleMany(logits, SamplingOptions(temperature: 1, topP: 0.65)).keys), [2, 3])
        XCTAssertEqual(Set(sampleMany(logits, SamplingOptions(temperature: 1, topP: 0.3)).keys), [3])
    }

    func testSeededSamplingIsReproducible() {
        let logits = (0..<50).map { Float($0 % 7) * 0.3 }
        var a = Sampler(SamplingOptions(temperature: 0.8, seed: 9)), b = Sampler(SamplingOptions(temperature: 0.8, seed: 9))
        var c = Sampler(SamplingOptions(temperature: 0.8, seed: 10))
        let (x, y, z) = logits.withUnsafeBufferPointer { p in
            ((0..<40).map { _ in a.sample(p) }, (0..<40).map { _ in b.sample(p) }, (0..<40).map { _ in c.sample(p) })
        }
        XCTAssertEqual(x, y)
        XCTAssertNotEqual(x, z)
    }

    func testByteTokenizerRoundTripsUTF8() {
        let text = "naïve ∑ 🙂\n"
        XCTAssertEqual(ByteTokenizer.decode(ByteTokenizer.encode(text)), text)
        XCTAssertEqual(ByteTokenizer.decode([104, 105, 300]), "hi<300>")
    }
}
