import Foundation
import TensorCore
import Testing

@Suite("JSON configuration errors")
struct JSONSyntaxTests {
    struct Stage: Decodable { var samples: Int }
    struct Recipe: Decodable { var stages: [Stage]; var rate: Double? }

    func failure(_ json: String) -> String {
        let data = Data(json.utf8)
        do {
            _ = try JSONDecoder().decode(Recipe.self, from: data)
            return "decoded"
        } catch {
            return JSONSyntax.describe(error, of: data)
        }
    }

    @Test("every way a file can fail reads as what to fix: the parser's words, the key's path with array indices, a top level that is not an object")
    func describe() {
        #expect(failure(#"{"stages": [{"samples": 1},"#).hasPrefix("malformed JSON: "))
        #expect(!failure(#"{"stages": [{"samples": 1},"#).contains("The given data was not valid JSON"), "the parser's own words, not the decoder's")
        #expect(failure(#"{"stages": [{"samples": 1}, {}]}"#) == "missing 'stages[1].samples'")
        #expect(failure(#"{"stages": [{"samples": "many"}]}"#).hasPrefix("'stages[0].samples': "))
        #expect(failure(#"{"stages": [], "rate": null, "x": 1}"#) == "decoded")
        #expect(failure(#"{"stages": null}"#).hasPrefix("'stages': "))
        #expect(failure("[1, 2]").hasPrefix("the file must hold a JSON object ("))
        struct Refusal: Error, CustomStringConvertible { var description: String { "samples and steps disagree" } }
        #expect(JSONSyntax.describe(Refusal(), of: Data("{}".utf8)) == "samples and steps disagree")
    }
}
