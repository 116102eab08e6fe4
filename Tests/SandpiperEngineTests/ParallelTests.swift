import Foundation
@testable import SandpiperEngine
import XCTest

final class ParallelObservationTests: XCTestCase {
    /// Two hung hosts must neither hold up the healthy ones nor be reported as answered.
    func testHungItemsTimeOutWithoutHoldingUpTheRest() {
        let start = Date()
        let results = FleetConnections.parallel((0..<8).map { "h\($0)" }, concurrency: 2, timeout: .seconds(1)) { i in
            if i == 0 || i == 1 { Thread.sleep(forTimeInterval: 6) }
            return i * 10
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertLessThan(elapsed, 4, "bounded by the per-item deadline, not by the hung items")
        XCTAssertNil(results[0])
        XCTAssertNil(results[1])
        XCTAssertEqual(results[2...].compactMap { $0 }, [20, 30, 40, 50, 60, 70])
    }
}
