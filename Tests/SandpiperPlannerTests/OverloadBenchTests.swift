import XCTest
import Foundation
@testable import SandpiperPlanner
/// `SANDPIPER_BENCH=1 [HOT=0.6] swift test -c release --filter OverloadBenchTests`: 30% and 60% of 10k hosts hot.
/// A benchmark, not a check: it prints timings and counts and asserts nothing (PropertyTests covers overloaded
/// fleets with assertions).
final class OverloadBenchTests: XCTestCase {
    func testHeavy() throws {
        guard ProcessInfo.processInfo.environment["SANDPIPER_BENCH"] != nil else {
            throw XCTSkip("a benchmark: run with SANDPIPER_BENCH=1 swift test -c release")
        }
        for hot in (ProcessInfo.processInfo.environment["HOT"].flatMap(Double.init).map { [$0] } ?? [0.3, 0.6]) {
            let r = PlannerBenchmark.run(hosts: 10_000, vms: 200_000, seed: 1, hotFraction: hot)
            print("heavy hot=\(hot) plan=\(r.seconds)s migrations=\(r.migrations) swaps=\(r.swaps) hotHosts=\(r.hotHosts) resolved=\(r.hotspotsResolved) unresolved=\(r.unresolved)")
        }
    }
}
