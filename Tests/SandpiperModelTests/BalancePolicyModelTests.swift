import SandpiperModel
import XCTest

/// Decoding of `placement.migrationThreshold` and `balance:`: defaults, values, and located errors.
final class BalancePolicyModelTests: XCTestCase {
    let base = "apiVersion: sandpiper/v1\nkind: Policy\n"

    func testDefaultsLeaveBehaviourUnchanged() throws {
        let p = try SpecDecoder.decodePolicy(base, file: "p.yaml", name: "p")
        XCTAssertEqual(p.placement.migrationThreshold, 5)
        XCTAssertEqual(p.placement.requiredBenefitRatio, 0, "level 5 asks nothing of a relieving move")
        XCTAssertEqual(p.balance, Policy.Balance())
        XCTAssertFalse(p.balance.enabled)
    }

    func testKeysDecode() throws {
        let p = try SpecDecoder.decodePolicy(base + """
        placement: {migrationThreshold: 2}
        balance: {enabled: true, maxSpread: 15%, maxMoves: 3}
        """, file: "p.yaml", name: "p")
        XCTAssertEqual(p.placement.migrationThreshold, 2)
        XCTAssertEqual(p.placement.requiredBenefitRatio, 2)
        XCTAssertEqual(p.balance, Policy.Balance(enabled: true, maxSpread: 0.15, maxMoves: 3))
        XCTAssertEqual((1...5).map { Policy.Placement.requiredRatio(migrationThreshold: $0) }, [4, 2, 1, 0.5, 0],
                       "conservative to aggressive")
    }

    func testErrorsNameFileLineColumnAndField() {
        let text = base + """
        placement:
          migrationThreshold: 7
        balance:
          enabled: sometimes
          maxSpread: 1.5
          maxMoves: 0
          spread: 0.2
        """
        XCTAssertThrowsError(try SpecDecoder.decodePolicy(text, file: "p.yaml", name: "p")) { error in
            let lines = (error as? SpecErrors)?.diagnostics.map(\.description) ?? []
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:4:23: placement.migrationThreshold:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:6:12: balance.enabled:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:7:14: balance.maxSpread:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:8:13: balance.maxMoves:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.contains("balance.spread: unknown field") }, "\(lines)")
        }
    }
}
