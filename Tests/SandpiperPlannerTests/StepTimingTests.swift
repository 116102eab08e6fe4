import XCTest
import Foundation
import SandpiperModel
@testable import SandpiperPlanner
/// `SANDPIPER_BENCH=1 swift test -c release --filter StepTimingTests`: time of each planner step at 10k hosts / 200k VMs.
final class StepTimingTests: XCTestCase {
    func testSteps() throws {
        guard ProcessInfo.processInfo.environment["SANDPIPER_BENCH"] != nil else {
            throw XCTSkip("a benchmark: run with SANDPIPER_BENCH=1 swift test -c release")
        }
        let (spec, obs, policy) = FleetGenerator.generate(hosts: 10_000, vms: 200_000, seed: 1)
        let clock = ContinuousClock()
        var t = clock.now
        func lap(_ s: String) { let n = clock.now; print("step \(s): \(n - t)"); t = n }
        let fleet = Fleet(spec: spec, observation: obs, policy: policy); lap("fleet")
        var ctx = PlanningContext(fleet: fleet, options: PlanOptions()); lap("context")
        let d = HotspotScan.run(fleet: fleet, state: ctx.state); lap("detect")
        let before = ctx.hostUtilization(detected: d.hostHot); lap("before")
        ctx.reportDrift(); lap("drift")
        ctx.repairConstraints(); lap("repair")
        ctx.relieveHotspots(d); lap("relieve")
        ctx.placeAbsentVMs(); lap("initial")
        ctx.allocate(d); lap("allocate")
        let after = ctx.hostUtilization(detected: d.hostHot, before: before); lap("after")
        let actions = ctx.builder.build(); lap("build")
        let plan = Plan(actions: actions, hostsBefore: before, hostsAfter: after, hotspots: d.hotspots)
        _ = try! PlanDocument(plan: plan).encoded(); lap("encode")
    }
}
