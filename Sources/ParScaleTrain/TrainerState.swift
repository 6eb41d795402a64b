import Foundation
import ParScale

/// Everything needed to continue a run exactly: saved with each checkpoint.
public struct TrainerState: Codable, Sendable {
    public var format = 1
    public var step = 0
    public var tokens = 0
    public var elapsedSeconds = 0.0
    public var options: TrainingOptions
    public var stream: StreamPosition?
    public var lastValidationLoss: Double?
    public var recipe: [String: String] = [:]
}

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
