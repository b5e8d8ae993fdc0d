import Foundation

/// Minimal SVG line charts for learning curves and result plots (no dependencies): axes with
/// ticks, one polyline per series, a legend.
public enum SVGPlot {
    /// One line of a chart.
    public struct Series: Sendable {
        public var name: String
        /// Its points, in drawing order (non-finite points are skipped).
        public var points: [(x: Double, y: Double)]
        /// A named line.
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

    /// An SVG document plotting `series` (points with non-finite coordinates are skipped).
    public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series],
                                 width: Double = 640, height: Double = 400) -> String {
        let finite = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        var (minX, maxX) = (finite.map(\.x).min() ?? 0, finite.map(\.x).max() ?? 1)
        var (minY, maxY) = (finite.map(\.y).min() ?? 0, finite.map(\.y).max() ?? 1)
        if minX == maxX { minX -= 1; maxX += 1 }
        if minY == maxY { minY -= 1; maxY += 1 }
        let pad = (maxY - minY) * 0.05
        minY -= pad; maxY += pad
        let (left, right, top, bottom) = (70.0, 20.0, 40.0, 50.0)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - minX) / (maxX - minX) * plotWidth }
        func py(_ y: Double) -> Double { top + (1 - (y - minY) / (maxY - minY)) * plotHeight }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        // Enough decimals that the six ticks of an axis differ (a span of 1.4 needs one).
        func label(_ v: Double, span: Double) -> String {
            if abs(v) >= 10_000 && span >= 5_000 { return String(format: "%.0fk", v / 1000) }
            let step = span / 5
            let decimals = step >= 1 ? 0 : Swift.min(6, Int((-Foundation.log10(step)).rounded(.up)))
            return String(format: "%.\(decimals)f", v)
        }
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        for k in 0...5 {
            let x = minX + (maxX - minX) * Double(k) / 5, y = minY + (maxY - minY) * Double(k) / 5
            svg += "<line x1=\"\(f(px(x)))\" y1=\"\(f(top))\" x2=\"\(f(px(x)))\" y2=\"\(f(top + plotHeight))\" stroke=\"#eee\"/>\n"
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(y)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(y)))\" stroke=\"#eee\"/>\n"
            svg += "<text x=\"\(f(px(x)))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(label(x, span: maxX - minX))</text>\n"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(label(y, span: maxY - minY))</text>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(16 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (index, entry) in series.enumerated() {
            let color = palette[index % palette.count]
            // After the palette's eight colours, the same colours dashed, then dotted.
            let dashes = ["", " stroke-dasharray=\"6 3\"", " stroke-dasharray=\"2 2\""][(index / palette.count) % 3]
            let points = entry.points.filter { $0.x.isFinite && $0.y.isFinite }.map { "\(f(px($0.x))),\(f(py($0.y)))" }
            if !points.isEmpty {
                svg += "<polyline fill=\"none\" stroke=\"\(color)\"\(dashes) stroke-width=\"1.8\" points=\"\(points.joined(separator: " "))\"/>\n"
            }
            // Markers where points are few enough to tell apart (a single point has no line).
            if points.count <= 20 {
                for point in entry.points where point.x.isFinite && point.y.isFinite {
                    svg += "<circle cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.y)))\" r=\"3\" fill=\"\(color)\"/>\n"
                }
            }
            let ly = top + 14 + Double(index) * 16
            svg += "<line x1=\"\(f(left + 10))\" y1=\"\(f(ly - 4))\" x2=\"\(f(left + 28))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\"\(dashes) stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(f(left + 34))\" y=\"\(f(ly))\">\(escape(entry.name))</text>\n"
        }
        return svg + "</svg>\n"
    }
}
