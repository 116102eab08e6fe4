import XCTest

/// Fixture domains get the same MAC in every process: the byte is FNV-1a of the name (values computed with an
/// independent Python implementation), not the per-process seeded `hashValue`.
final class FixtureTests: XCTestCase {
    func testMACByteIsStableAcrossProcesses() {
        XCTAssertEqual(Fixture.stableByte("web1"), 80)
        XCTAssertEqual(Fixture.stableByte("vm-a"), 6)
        XCTAssertEqual(Fixture.stableByte(""), 61)
    }
}
