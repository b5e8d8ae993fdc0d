import Foundation

/// Progress of long work: a redrawn bar with rate and ETA on a terminal, plain periodic lines
/// otherwise (logs, CI).
public final class ProgressBar {
    /// The count that means done.
    public let total: Int
    /// Shown before the bar.
    public let label: String
    private let start = Date()
    private let interactive = isatty(STDERR_FILENO) == 1
    private var lastDraw = Date.distantPast
    private let plainInterval: TimeInterval
    /// Units already done when the bar started (a resumed run): excluded from the rate.
    private let startCount: Int
    /// The last `done` reported (drawn or not).
    private var lastDone = 0

    /// `plainInterval`: seconds between lines when stderr is not a terminal.
    public init(total: Int, label: String, plainInterval: TimeInterval = 5, start done: Int = 0) {
        self.startCount = done
        self.total = max(total, 1)
        self.label = label
        self.plainInterval = plainInterval
    }

    /// Reports that `done` units are complete, with a short status (e.g. the current loss).
    public func update(_ done: Int, status: String = "") {
        lastDone = done
        let now = Date()
        let finished = done >= total
        guard finished || now.timeIntervalSince(lastDraw) >= (interactive ? 0.1 : plainInterval) else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        // The first moments give no rate worth printing (one unit in microseconds reads as 46 000/s).
        let rate = elapsed >= 0.5 || finished ? Double(done - startCount) / max(elapsed, 1e-9) : nil
        let speed = rate.map { String(format: "%.1f/s ETA %@", $0, Self.format($0 > 0 ? Double(total - done) / $0 : 0)) } ?? "–/s ETA –"
        let fraction = Double(done) / Double(total)
        let text: String
        if interactive {
            let width = 28
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            text = "\r\(label) \(bar) \(done)/\(total) \(speed) \(status)\u{1B}[K"
        } else {
            text = "\(label): \(done)/\(total) (\(Int(fraction * 100))%) \(speed) \(status)\n"
        }
        FileHandle.standardError.write(Data(text.utf8))
        if finished && interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// Ends a bar whose work stopped before `total` (early stopping): a terminal's bar line is
    /// closed so that what is printed next starts on a line of its own.
    public func finish() {
        if interactive && lastDone < total { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// Seconds as `m:ss` or `h:mm:ss`.
    public static func format(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
