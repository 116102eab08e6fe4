import Foundation
import SandpiperModel
import XCTest

/// `migration:` in a policy: defaults, every key, and located errors.
final class MigrationPolicyTests: XCTestCase {
    let base = "apiVersion: sandpiper/v1\nkind: Policy\n"

    func testDefaultsAndEveryKey() throws {
        let plain = try SpecDecoder.decodePolicy(base, file: "p.yaml", name: "p").migration
        XCTAssertEqual(plain, Policy.Migration())
        XCTAssertNil(plain.bandwidthMbps)
        XCTAssertEqual(plain.timeoutSeconds(memoryMiB: 512), 300, "at least one GiB is counted")
        let m = try SpecDecoder.decodePolicy(base + """
        migration: {bandwidth: 500Mbit, maxDowntime: 300ms, autoConverge: true, postCopy: true, timeoutPerGiB: 60s,
                    compressed: true, tls: true}
        """, file: "p.yaml", name: "p").migration
        XCTAssertEqual(m.bandwidthMbps, 500)
        XCTAssertEqual(m.maxDowntimeMs, 300)
        XCTAssertTrue(m.autoConverge)
        XCTAssertTrue(m.postCopy)
        XCTAssertEqual(m.timeoutPerGiBSeconds, 60)
        XCTAssertTrue(m.compressed)
        XCTAssertTrue(m.tls)
        XCTAssertEqual(m.timeoutSeconds(memoryMiB: 4096), 240)
    }

    func testErrorsAreLocated() {
        let text = base + """
        migration:
          bandwidth: fast
          maxDowntime: 0s
          autoConverge: maybe
          timeoutPerGiB: 10
          speed: 1Gbit
        """
        XCTAssertThrowsError(try SpecDecoder.decodePolicy(text, file: "p.yaml", name: "p")) { error in
            let lines = (error as? SpecErrors)?.diagnostics.map(\.description) ?? []
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:4:14: migration.bandwidth:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:5:") && $0.contains("migration.maxDowntime: must be at least 1ms") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:6:17: migration.autoConverge:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:7:18: migration.timeoutPerGiB:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.contains("migration.speed: unknown field") }, "\(lines)")
        }
        XCTAssertThrowsError(try SpecDecoder.decodePolicy(base + "migration: {bandwidth: 4Mbit}\n", file: "p.yaml", name: "p")) {
            XCTAssertTrue("\($0)".contains("at least 8Mbit"), "\($0)")
        }
    }
}
