import ArgumentParser
import Foundation
import ParScaleLaw

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write DIR/report.html (self-contained, SVG plots) and DIR/report.md from a sweep folder.",
        discussion: "Plots: loss against N for each P with the fitted curves; loss against P; measured cost ratios against batch size beside the paper's; accuracy against FLOPs and latency when the folder has a frontier (`parscale frontier --out DIR`). Tables: runs, loss by size and P, fit, N_eq, cost, and the frontier's.")

    @Argument(help: "Sweep folder.") var dir: String

    func run() throws {
        let path = try Report.write(dir: dir)
        print("wrote \(path) and \((dir as NSString).appendingPathComponent("report.md"))")
    }
}
