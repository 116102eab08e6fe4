import XCTest
import Foundation
import SandpiperModel
import SandpiperPlanner

/// The real `Planner.plan` reports its steps through the `onStep` observer; the test (never the planner) reads
/// the clock. `SANDPIPER_BENCH=1 swift test -c release --filter StepTimingTests` times each step at 10k hosts /
/// 200k VMs.
final class StepTimingTests: XCTestCase {
    /// Every step is reported once, in pipeline order; prune only when asked; observing does not change the plan.
    func testStepsAreReportedInPipelineOrder() throws {
        var o = FleetGenerator.Options()
        o.hotFraction = 0.3
        o.undeclaredFraction = 0.05
        let (spec, obs, policy) = FleetGenerator.generate(hosts: 20, vms: 300, seed: 3, options: o)
        for prune in [false, true] {
            var steps: [PlanStep] = []
            let options = PlanOptions(prune: prune)
            let observed = Planner.plan(spec: spec, observation: obs, policy: policy, options: options) { steps.append($0) }
            XCTAssertEqual(steps, PlanStep.allCases.filter { prune || $0 != .prune }, "prune \(prune)")
            let plain = Planner.plan(spec: spec, observation: obs, policy: policy, options: options)
            XCTAssertEqual(try PlanDocument(plan: observed).encoded(), try PlanDocument(plan: plain).encoded())
        }
    }

    /// A benchmark, not a check: prints how long each step took.
    func testStepTimes() throws {
        guard ProcessInfo.processInfo.environment["SANDPIPER_BENCH"] != nil else {
            throw XCTSkip("a benchmark: run with SANDPIPER_BENCH=1 swift test -c release")
        }
        let (spec, obs, policy) = FleetGenerator.generate(hosts: 10_000, vms: 200_000, seed: 1)
        let clock = ContinuousClock()
        var last = clock.now
        var steps: [PlanStep] = []
        _ = Planner.plan(spec: spec, observation: obs, policy: policy, options: PlanOptions()) { step in
            let now = clock.now
            print("step \(step.rawValue): \(now - last)")
            steps.append(step)
            last = now
        }
        XCTAssertEqual(steps, PlanStep.allCases.filter { $0 != .prune })
    }
}
