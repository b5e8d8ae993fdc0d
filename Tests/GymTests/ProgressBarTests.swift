import Gym
import Testing

@Suite("Progress bar")
struct ProgressBarTests {
    @Test("the rate follows a change of pace within a window, where the average since the start lags")
    func recentRate() {
        var rate = RecentRate(window: 60)
        // 100 units a second for 100 s, then 10 a second for 120 s, one record a second.
        var done = 0
        for t in 1...100 { done += 100; rate.record(done, at: Double(t)) }
        #expect(abs(rate.perSecond - 100) < 1e-9)
        for t in 101...220 { done += 10; rate.record(done, at: Double(t)) }
        #expect(abs(rate.perSecond - 10) < 1e-9)
        // The average since the start would still say about 51.
        #expect(Double(done) / 220 > 50)
    }

    @Test("before a window has passed the rate is the average since the start; a resumed run's units do not count")
    func earlyAndResumed() {
        var rate = RecentRate(start: 5000, window: 60)
        #expect(rate.perSecond == 0)
        rate.record(5030, at: 0.5)
        rate.record(5090, at: 3)
        #expect(abs(rate.perSecond - 30) < 1e-9)
        // Just after the pace halves, the rate lies between the two paces.
        for t in 4...40 { rate.record(5090 + (t - 3) * 15, at: Double(t)) }
        #expect(rate.perSecond > 15 && rate.perSecond < 30)
    }

    @Test("records far apart or close together give the same rate over a steady pace")
    func spacing() {
        var sparse = RecentRate(window: 10), dense = RecentRate(window: 10)
        for t in stride(from: 7.0, through: 700, by: 7) { sparse.record(Int(t * 40), at: t) }
        for t in stride(from: 0.05, through: 700, by: 0.05) { dense.record(Int((t * 40).rounded()), at: t) }
        #expect(abs(sparse.perSecond - 40) < 1e-9)
        #expect(abs(dense.perSecond - 40) < 0.05)
    }

    @Test("ETA text: m:ss under an hour, h:mm:ss over")
    func format() {
        #expect(ProgressBar.format(59.4) == "0:59")
        #expect(ProgressBar.format(3599) == "59:59")
        #expect(ProgressBar.format(6000) == "1:40:00")
    }
}
