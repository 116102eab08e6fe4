import Foundation
import SandpiperModel
import XCTest

/// Every file in Fixtures/bad/*.yaml is an invalid cluster spec; the matching `.expected` file lists the
/// exact diagnostics (file:line:column: field: message) Sandpiper must report, all of them, in order.
final class BadSpecCorpusTests: XCTestCase {
    static var corpus: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures/bad") }

    /// Decode + validate the way `sandpiper validate` does, with every referenced file present.
    static func diagnostics(for file: URL) -> [String] {
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        let name = file.lastPathComponent
        return SpecDecoder.check(text, file: name) { _ in true }.diagnostics.map(\.description)
    }

    func testEveryBadSpecIsRejectedWithItsExactDiagnostics() throws {
        let files = try FileManager.default.contentsOfDirectory(at: Self.corpus, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "yaml" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        XCTAssertGreaterThanOrEqual(files.count, 12)
        for file in files {
            let expectedURL = file.deletingPathExtension().appendingPathExtension("expected")
            let actual = Self.diagnostics(for: file)
            if ProcessInfo.processInfo.environment["SANDPIPER_PRINT_CORPUS"] != nil {
                print("=== \(file.lastPathComponent)\n" + actual.joined(separator: "\n"))
                continue
            }
            let expected = try String(contentsOf: expectedURL, encoding: .utf8)
                .split(separator: "\n").map(String.init)
            XCTAssertFalse(actual.isEmpty, "\(file.lastPathComponent) was accepted")
            XCTAssertEqual(actual, expected, "diagnostics for \(file.lastPathComponent)")
        }
    }
}
