import Gym
import TensorCore
import TestSupport
import Testing

@Suite("Spaces")
struct SpaceTests {
    @Test("Box contains respects bounds, shape and NaN")
    func boxContains() {
        let box = Box(low: [-1, 0], high: [1, .infinity])
        #expect(box.contains([0, 5]))
        #expect(box.contains([-1, 0]))
        #expect(!box.contains([1.5, 0]))
        #expect(!box.contains([0, -0.1]))
        #expect(!box.contains([0]))
        #expect(!box.contains([.nan, 0]))
        #expect(box.description == "Box([-1.0, 0.0], [1.0, inf], (2,), float32)")
    }

    @Test("Box samples follow Gymnasium's rules for bounded, half-bounded and unbounded entries")
    func boxSampling() {
        let box = Box(low: [-2, 0, -.infinity, -.infinity], high: [2, .infinity, 3, .infinity])
        var generator = testGenerator(1)
        var samples: [[Float]] = []
        for _ in 0..<2000 { samples.append(box.sample(using: &generator)) }
        #expect(samples.allSatisfy { box.contains($0) })
        let meanOf = { (k: Int) in samples.map { Double($0[k]) }.reduce(0, +) / Double(samples.count) }
        #expect(abs(meanOf(0)) < 0.15)  // uniform on [-2, 2]
        #expect(abs(meanOf(1) - 1) < 0.1)  // 0 + Exp(1)
        #expect(abs(meanOf(2) - 2) < 0.1)  // 3 - Exp(1)
        #expect(abs(meanOf(3)) < 0.1)  // N(0, 1)
    }

    @Test("the same seed gives the same samples; another seed does not")
    func seededSampling() {
        let spaces: [any Space] = [Box(low: -1, high: 1, shape: [3]), Discrete(5, start: 2), MultiBinary(6), MultiDiscrete([3, 4])]
        for space in spaces {
            var a = testGenerator(7), b = testGenerator(7), c = testGenerator(8)
            let first = (0..<10).map { _ in space.sampleValue(using: &a) }
            let second = (0..<10).map { _ in space.sampleValue(using: &b) }
            let third = (0..<10).map { _ in space.sampleValue(using: &c) }
            #expect(first == second, "\(space)")
            #expect(first != third, "\(space)")
            #expect(first.allSatisfy { space.containsValue($0) }, "\(space)")
        }
    }

    @Test("Discrete, MultiBinary and MultiDiscrete membership and masks")
    func discreteSpaces() {
        let discrete = Discrete(3, start: -1)
        #expect(discrete.contains(-1) && discrete.contains(1) && !discrete.contains(2) && !discrete.contains(-2))
        var generator = testGenerator(3)
        for _ in 0..<50 { #expect(discrete.sample(mask: [false, true, false], using: &generator) == 0) }
        #expect(discrete.sample(mask: [false, false, false], using: &generator) == -1)
        let binary = MultiBinary(4)
        #expect(binary.contains([true, false, true, true]) && !binary.contains([true]))
        #expect(binary.sample(mask: [true, false, nil, true], using: &generator)[0] == true)
        let multi = MultiDiscrete([2, 3], start: [0, 10])
        #expect(multi.contains([1, 12]) && !multi.contains([1, 13]) && !multi.contains([2, 10]))
        #expect(discrete.invalidExample.map { !discrete.contains($0) } == true)
        #expect(multi.invalidExample.map { !multi.contains($0) } == true)
    }

    @Test("Dict and Tuple spaces check each child, flatten in order and round-trip")
    func compositeSpaces() {
        let dict = DictSpace([("position", Box(low: -1, high: 1, shape: [2])), ("mode", Discrete(3)), ("mask", MultiBinary(2))])
        var generator = testGenerator(5)
        let value = dict.sample(using: &generator)
        #expect(dict.contains(value))
        #expect(dict.flatDimension == 5)
        let row = dict.flattened(value)
        #expect(row.count == 5)
        #expect(dict.unflatten(row[...]) == value)
        var broken = value
        broken["mode"] = .integer(7)
        #expect(!dict.contains(broken))
        #expect(dict.description == "Dict('position': Box(-1.0, 1.0, (2,), float32), 'mode': Discrete(3), 'mask': MultiBinary(2))")
        let tuple = TupleSpace([Discrete(2), Box(low: 0, high: 1, shape: [1])])
        let element = tuple.sample(using: &generator)
        #expect(tuple.contains(element) && !tuple.contains([.integer(0)]))
        #expect(tuple.unflatten(tuple.flattened(element)[...]) == element)
    }

    @Test("malformed spaces are reported")
    func malformedSpaces() {
        #expect(!Box(low: [1], high: [0]).descriptor.problems.isEmpty)
        #expect(!Discrete(0).descriptor.problems.isEmpty)
        #expect(!DictSpace([]).descriptor.problems.isEmpty)
        #expect(Box(low: -1, high: 1, shape: [3]).descriptor.problems.isEmpty)
    }
}
