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
    /// The rate over the last minute or so, which the ETA divides by.
    private var recent: RecentRate

    /// `plainInterval`: seconds between lines when stderr is not a terminal.
    public init(total: Int, label: String, plainInterval: TimeInterval = 5, start done: Int = 0) {
        self.startCount = done
        self.total = max(total, 1)
        self.label = label
        self.plainInterval = plainInterval
        recent = RecentRate(start: done)
    }

    /// Reports that `done` units are complete, with a short status (e.g. the current loss).
    public func update(_ done: Int, status: String = "") {
        lastDone = done
        let now = Date()
        let elapsed = now.timeIntervalSince(start)
        recent.record(done, at: elapsed)
        let finished = done >= total
        guard finished || now.timeIntervalSince(lastDraw) >= (interactive ? 0.1 : plainInterval) else { return }
        lastDraw = now
        // The first moments give no rate worth printing (one unit in microseconds reads as 46 000/s).
        // Finished, the bar shows the whole run's rate; before, the recent one, so that the ETA
        // follows a run whose pace changes (a fast first phase, a slower second).
        let rate = finished ? Double(done - startCount) / max(elapsed, 1e-9) : elapsed >= 0.5 ? recent.perSecond : nil
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

/// The rate of recent progress: units per second over about the last `window` seconds, from
/// checkpoints kept a few seconds apart. A cumulative average misleads when the pace changes —
/// `vlm train` runs its first 10k samples about three times as fast as the rest, and an ETA from the
/// average said 1:14 where 1:40 remained. Until `window` seconds have passed, the rate is the
/// average since the start.
public struct RecentRate: Sendable {
    /// Seconds of history the rate covers.
    public let window: Double
    /// (seconds since the start, units done) checkpoints, oldest first, at least `spacing` apart.
    private var marks: [(time: Double, done: Int)]
    private var latest: (time: Double, done: Int)
    private var spacing: Double { window / 12 }

    /// `start`: units already done at time 0 (a resumed run).
    public init(start: Int = 0, window: Double = 60) {
        precondition(window > 0, "RecentRate: the window must be positive, got \(window)")
        self.window = window
        marks = [(0, start)]
        latest = (0, start)
    }

    /// Records that `done` units are complete `time` seconds after the start.
    public mutating func record(_ done: Int, at time: Double) {
        latest = (time, done)
        if time - marks[marks.count - 1].time >= spacing { marks.append(latest) }
        // Keep the newest mark at least `window` old, so that the rate spans a whole window.
        while marks.count > 1 && time - marks[1].time >= window { marks.removeFirst() }
    }

    /// Units per second since the oldest mark kept (0 before any time has passed).
    public var perSecond: Double {
        let first = marks[0]
        let seconds = latest.time - first.time
        return seconds > 0 ? Double(latest.done - first.done) / seconds : 0
    }
}
