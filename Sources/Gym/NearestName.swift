/// The name among `names` nearest to `typed` when it is near enough to be a typo (an edit distance
/// of at most 2, and less than half its length), else nil; ties go to the first in sorted order.
/// It is what an error about an unknown option, command, agent or pruner offers as "did you mean".
public func nearestName(to typed: String, among names: some Sequence<String>) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(diagonal + (a[i - 1] == b[j - 1] ? 0 : 1), above + 1, row[j - 1] + 1)
                diagonal = above
            }
        }
        return row[b.count]
    }
    let candidates = names.sorted().map { ($0, distance(Array(typed), Array($0))) }
    guard let best = candidates.min(by: { $0.1 < $1.1 }), best.1 <= 2, 2 * best.1 < max(typed.count, 1) else { return nil }
    return best.0
}
