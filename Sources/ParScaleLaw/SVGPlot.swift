import Foundation

/// A small SVG line/scatter chart drawn by this project (no plotting library): axes with ticks
/// (linear or log x), series of points with optional error bars and/or lines, and a legend.
public struct SVGPlot {
    public struct Series {
        public var label: String
        public var points: [(x: Double, y: Double, error: Double)]
        public var line: Bool
        public var markers: Bool
        public var dashed = false
        /// Optional per point, in `points` order: a tooltip, and an asymmetric error bar (low, high)
        /// drawn instead of ± error.
        public var pointLabels: [String]?
        public var pointErrors: [(low: Double, high: Double)]?
        public init(
            label: String, points: [(x: Double, y: Double, error: Double)], line: Bool, markers: Bool, dashed: Bool = false,
            pointLabels: [String]? = nil, pointErrors: [(low: Double, high: Double)]? = nil
        ) {
            self.label = label
            self.points = points
            self.line = line
            self.markers = markers
            self.dashed = dashed
            self.pointLabels = pointLabels
            self.pointErrors = pointErrors
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX = false
    public var series: [Series] = []
    public var width = 640.0, height = 400.0

    public init(title: String, xLabel: String, yLabel: String, logX: Bool = false) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logX = logX
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]

    public func render() -> String {
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
        let left = 70.0, right = 170.0, top = 40.0, bottom = 55.0
        let plotW = width - left - right, plotH = height - top - bottom
        func tx(_ x: Double) -> Double { logX ? log10(x) : x }
        var x0 = all.map { tx($0.x) }.min() ?? 0, x1 = all.map { tx($0.x) }.max() ?? 1
        let bars = series.flatMap { $0.pointErrors ?? [] }
        var y0 = (all.map { $0.y - $0.error } + bars.map(\.low)).min() ?? 0
        var y1 = (all.map { $0.y + $0.error } + bars.map(\.high)).max() ?? 1
        if x1 - x0 < 1e-12 { x0 -= 0.5; x1 += 0.5 }
        if y1 - y0 < 1e-12 { y0 -= 0.5; y1 += 0.5 }
        let padX = (x1 - x0) * 0.05, padY = (y1 - y0) * 0.08
        x0 -= padX; x1 += padX; y0 -= padY; y1 += padY
        func px(_ x: Double) -> Double { left + (tx(x) - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <title>\(escape(title))</title>
            <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="white"/>
            <text x="\(f(left + plotW / 2))" y="22" text-anchor="middle" font-size="14" font-weight="bold">\(escape(title))</text>
            <rect x="\(f(left))" y="\(f(top))" width="\(f(plotW))" height="\(f(plotH))" fill="none" stroke="#444"/>

            """
        // Ticks: 5 on y; on x, decades (log) or 5 even steps.
        for i in 0...4 {
            let y = y0 + (y1 - y0) * Double(i) / 4
            svg += "<line x1=\"\(f(left - 4))\" y1=\"\(f(py(y)))\" x2=\"\(f(left))\" y2=\"\(f(py(y)))\" stroke=\"#444\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(String(format: "%.3g", y))</text>\n"
        }
        var xTicks: [Double] = []
        if logX {
            var d = floor(x0)
            while d <= x1 {
                for m in [1.0, 2, 5] where log10(m) + d >= x0 && log10(m) + d <= x1 { xTicks.append(m * pow(10, d)) }
                d += 1
            }
            if xTicks.count < 2 { xTicks = [pow(10, x0 + padX), pow(10, x1 - padX)] }
        } else {
            xTicks = (0...4).map { x0 + padX + (x1 - x0 - 2 * padX) * Double($0) / 4 }
        }
        for x in xTicks {
            svg += "<line x1=\"\(f(px(x)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px(x)))\" y2=\"\(f(top + plotH + 4))\" stroke=\"#444\"/>"
            svg += "<text x=\"\(f(px(x)))\" y=\"\(f(top + plotH + 17))\" text-anchor=\"middle\">\(String(format: "%.3g", x))</text>\n"
        }
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text x=\"16\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(f(top + plotH / 2)))\">\(escape(yLabel))</text>\n"
        for (index, s) in series.enumerated() {
            let color = Self.colors[index % Self.colors.count]
            let kept = s.points.indices.filter { s.points[$0].x.isFinite && s.points[$0].y.isFinite && (!logX || s.points[$0].x > 0) }
                .sorted { s.points[$0].x < s.points[$1].x }
            let points = kept.map { s.points[$0] }
            if s.line && points.count > 1 {
                let path = points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                svg += "<polyline class=\"series\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(path)\"/>\n"
            }
            if s.markers {
                for (p, i) in zip(points, kept) {
                    let bar: (low: Double, high: Double) = s.pointErrors?[i] ?? (p.y - p.error, p.y + p.error)
                    if bar.high > bar.low {
                        svg += "<line x1=\"\(f(px(p.x)))\" y1=\"\(f(py(bar.low)))\" x2=\"\(f(px(p.x)))\" y2=\"\(f(py(bar.high)))\" stroke=\"\(color)\" stroke-opacity=\"0.5\"/>"
                    }
                    let tip = s.pointLabels.map { "<title>\(escape($0[i]))</title>" } ?? ""
                    svg += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"4\" fill=\"\(color)\">\(tip)</circle>\n"
                }
            }
            let ly = top + 10 + Double(index) * 18
            svg += "<line x1=\"\(f(width - right + 12))\" y1=\"\(f(ly))\" x2=\"\(f(width - right + 32))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>"
            svg += "<text x=\"\(f(width - right + 38))\" y=\"\(f(ly + 4))\">\(escape(s.label))</text>\n"
        }
        return svg + "</svg>\n"
    }
}

func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
