import Foundation

/// The fitted law saved by `parscale fit DIR` as DIR/fit.json, read by `cost --fit` and `report`.
public struct FitSummary: Codable, Sendable {
    public var E: Double
    public var A: Double
    public var alpha: Double
    public var k: Double
    public var r2: Double
    public var intervals: [String: [Double]]
    public var looError: Double
    public var points: Int
    /// Share of the bootstrap refits with k at its lower bound (nil in fits from before it was kept).
    public var kAtBoundShare: Double?
    /// The same fit with N counted as the paper's data count it: the ParScale parameters (prefixes,
    /// aggregator) included; k and its 95% interval (nil for a CSV, whose N is what it says).
    public var kWithParScaleInN: Double?
    public var kWithParScaleInNInterval: [Double]?

    public init(
        E: Double, A: Double, alpha: Double, k: Double, r2: Double, intervals: [String: [Double]], looError: Double, points: Int,
        kAtBoundShare: Double? = nil, kWithParScaleInN: Double? = nil, kWithParScaleInNInterval: [Double]? = nil
    ) {
        (self.E, self.A, self.alpha, self.k, self.r2) = (E, A, alpha, k, r2)
        (self.intervals, self.looError, self.points) = (intervals, looError, points)
        (self.kAtBoundShare, self.kWithParScaleInN, self.kWithParScaleInNInterval) = (kAtBoundShare, kWithParScaleInN, kWithParScaleInNInterval)
    }

    /// Whether the 95% interval of k lies above zero. The fit bounds k below at 1e-8, so an
    /// interval starting at that floor includes 0.
    public var kExcludesZero: Bool { (intervals["k"]?[0] ?? 0) > 1e-6 }

    public static func path(_ dir: String) -> String { (dir as NSString).appendingPathComponent("fit.json") }

    public static func load(_ dir: String) throws -> FitSummary {
        guard let data = FileManager.default.contents(atPath: path(dir)) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path(dir), NSLocalizedDescriptionKey: "\(path(dir)): no fit yet (run `parscale fit \(dir)`)"])
        }
        return try JSONDecoder().decode(FitSummary.self, from: data)
    }
}
