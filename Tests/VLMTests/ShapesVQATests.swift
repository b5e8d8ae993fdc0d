import Foundation
import TensorCore
import TestSupport
import Testing
import VLM

@Suite("ShapesVQA, tokenizer and PNG")
struct ShapesVQATests {
    @Test("samples are deterministic per split and index, and splits differ")
    func determinism() {
        let dataset = ShapesVQA()
        let a = dataset.sample(5, split: .train), b = dataset.sample(5, split: .train), c = dataset.sample(5, split: .test)
        #expect(a.pixels == b.pixels && a.question == b.question && a.answer == b.answer)
        #expect(a.pixels != c.pixels)
        #expect(a.pixels.count == 3 * 64 * 64 && a.pixels.allSatisfy { $0 >= -1 && $0 <= 1 })
        #expect((3...6).contains(a.objects.count))
        #expect(dataset.gridSize == 16)
    }

    @Test("every family occurs, answers are in the vocabulary, and the majority guess per family stays low")
    func balance() {
        let dataset = ShapesVQA()
        let baseline = dataset.majorityBaseline(split: .validation, count: 1500)
        #expect(Set(baseline.keys) == Set(ShapesVQA.Family.allCases))
        for (family, share) in baseline { #expect(share < 0.56, "\(family): majority answer \(share)") }
        let answers = Set(ShapesVQA.answers)
        for index in 0..<300 {
            let sample = dataset.sample(index, split: .train)
            #expect(answers.contains(sample.answer), "\(sample.question) → \(sample.answer)")
        }
    }

    @Test("answers are true of the scene")
    func answersAreCorrect() {
        let dataset = ShapesVQA()
        for index in 0..<400 {
            let s = dataset.sample(index, split: .train)
            if s.question.hasPrefix("how many"), s.question.hasSuffix("objects are there ?") {
                let word = s.question.split(separator: " ")[2]
                let count = s.objects.filter { ShapesVQA.colors[$0.color] == word || ShapesVQA.sizes[$0.size] == word }.count
                #expect("\(count)" == s.answer, "\(s.question)")
            }
            if s.question.hasPrefix("is there a ") {
                let words = s.question.split(separator: " ")
                let exists = s.objects.contains { ShapesVQA.colors[$0.color] == words[3] && ShapesVQA.shapes[$0.shape] == words[4] }
                #expect((exists ? "yes" : "no") == s.answer)
            }
        }
    }

    @Test("the tokenizer round-trips every question and its vocabulary file")
    func tokenizer() throws {
        let tokenizer = WordTokenizer.shapesVQA
        let dataset = ShapesVQA()
        for index in 0..<200 {
            let sample = dataset.sample(index, split: .train)
            let ids = tokenizer.encode(sample.question)
            #expect(!ids.contains(tokenizer.unknownID))
            #expect(tokenizer.decode(ids) == sample.question)
        }
        let url = try makeTemporaryDirectory().appendingPathComponent("vocab.txt")
        try tokenizer.write(to: url)
        #expect(try WordTokenizer.read(url) == tokenizer)
        try Data("hello\nworld\n".utf8).write(to: url)
        #expect(throws: VLMError.self) { try WordTokenizer.read(url) }
    }

    @Test("PNG output decodes: signature, chunk CRCs, dimensions, stored blocks with Adler-32")
    func png() throws {
        let (width, height) = (70, 1000)  // > 65 535 bytes of scanlines: several stored blocks
        var generator = testGenerator(2)
        let pixels = (0..<(3 * width * height)).map { _ in generator.nextFloat() }
        let bytes = PNG.encode(channelsFirst: pixels, width: width, height: height)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var offset = 8
        var idat: [UInt8] = []
        var types: [String] = []
        func be(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
        while offset < bytes.count {
            let length = be(offset)
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let body = Array(bytes[(offset + 8)..<(offset + 8 + length)])
            #expect(UInt32(be(offset + 8 + length)) == PNG.crc32(Array(bytes[(offset + 4)..<(offset + 8)]) + body), "CRC of \(type)")
            if type == "IHDR" { #expect(Int(body[0]) << 24 | Int(body[1]) << 16 | Int(body[2]) << 8 | Int(body[3]) == width && body[8] == 8 && body[9] == 2) }
            if type == "IHDR" { #expect(Int(body[4]) << 24 | Int(body[5]) << 16 | Int(body[6]) << 8 | Int(body[7]) == height) }
            if type == "IDAT" { idat += body }
            types.append(type)
            offset += 12 + length
        }
        #expect(types == ["IHDR", "IDAT", "IEND"])
        // Inflate the stored blocks by hand.
        var raw: [UInt8] = []
        var p = 2
        var final = false
        while !final {
            final = idat[p] & 1 == 1
            let length = Int(idat[p + 1]) | Int(idat[p + 2]) << 8
            #expect(length ^ 0xFFFF == Int(idat[p + 3]) | Int(idat[p + 4]) << 8)
            raw += idat[(p + 5)..<(p + 5 + length)]
            p += 5 + length
        }
        let adler = UInt32(idat[p]) << 24 | UInt32(idat[p + 1]) << 16 | UInt32(idat[p + 2]) << 8 | UInt32(idat[p + 3])
        #expect(adler == PNG.adler32(raw))
        #expect(raw.count == height * (1 + 3 * width))
        #expect(raw[1] == UInt8((pixels[0] * 255).rounded()))  // red of pixel (0, 0) after the filter byte
        #expect(PNG.crc32(Array("IEND".utf8)) == 0xAE42_6082)  // the CRC every PNG ends with
    }
}
