import XCTest
import SandpiperModel
@testable import SandpiperPlanner

/// A VM must not grow on a host before the moves that make room there have run (on KVM a balloon raised while the
/// host is still full swaps or OOM-kills); what shrinks runs first. Judged from the plan's actions and the
/// observation alone, never from the planner's own bookkeeping.
final class OrderingTests: XCTestCase {
    /// pm1 is CPU-hot (two busy VMs) and holds a swapping VM whose balloon must grow; one busy VM also has more
    /// vCPUs in the spec than it runs with, and another VM on pm1 is ballooned above its new limit (a shrink).
    func world() -> World {
        var w = World(hosts: 2)
        w.policy.profiling.mode = .blackBox
        w.addVM("busy1", on: "pm1", cpu: 3.5, vcpus: 4)
        w.addVM("busy2", on: "pm1", cpu: 3.5, vcpus: 4)
        w.updateSpec("busy1") { $0.vcpus = 6 }
        w.updateSpec("busy2") { $0.vcpus = 6 }
        w.addVM("db", on: "pm1", cpu: 0.2, vcpus: 1, memoryMiB: 2048, mem: 2040)
        w.update("db") {
            $0.maxMemoryMiB = 8192
            $0.samples = Fixture.samples(cpu: [0.2, 0.2, 0.2, 0.2, 0.2], mem: 2040, swap: [5, 5, 5, 5, 5])
        }
        w.updateSpec("db") { $0.memoryMiB = 8192; $0.vcpus = 1 }
        w.addVM("cache", on: "pm1", cpu: 0.2, vcpus: 1, memoryMiB: 4096, mem: 1000)
        w.update("cache") { $0.maxMemoryMiB = 4096 }
        w.updateSpec("cache") { $0.vcpus = 1; $0.resources.memory = ResourceControl(limit: 3072) }
        return w
    }

    func testGrowthWaitsForTheMovesThatMakeRoomAndShrinksGoFirst() throws {
        let w = world()
        let plan = w.plan()
        let observed = Dictionary(uniqueKeysWithValues: w.vms.map { ($0.name, $0) })
        let byID = Dictionary(uniqueKeysWithValues: plan.actions.map { ($0.id, $0) })
        func closure(_ a: PlannedAction) -> Set<String> {
            var seen = Set<String>(), todo = a.dependsOn
            while let d = todo.popLast() {
                if seen.insert(d).inserted { todo += byID[d]?.dependsOn ?? [] }
            }
            return seen
        }
        func grows(_ a: PlannedAction) -> Bool {
            guard a.kind == .tune || a.kind == .resize, let o = observed[a.vm] else { return false }
            let p = a.parameters
            return (p.balloonMiB.map { $0 > o.memoryMiB } ?? false) || (p.vcpus.map { $0 > o.vcpus } ?? false)
                || (p.memoryMiB.map { $0 > o.maxMemoryMiB } ?? false)
        }
        let moves = plan.actions.filter { $0.kind == .migrate }
        XCTAssertFalse(moves.isEmpty, "pm1 is hot: a VM must move")
        let growing = plan.actions.filter(grows)
        XCTAssertTrue(growing.contains { $0.vm == "db" && $0.parameters.balloonMiB != nil }, "db's balloon grows")
        let moved = Set(moves.map(\.vm))
        XCTAssertTrue(growing.contains { moved.contains($0.vm) }, "a VM that moves also grows")
        XCTAssertTrue(growing.contains { !moved.contains($0.vm) && $0.from == "pm1" }, "a VM that stays on pm1 grows")
        for a in growing {
            let ownMove = moves.last { $0.vm == a.vm }
            let host = ownMove?.to ?? observed[a.vm]!.host
            XCTAssertEqual(a.from, host, "\(a.kind) of \(a.vm) runs on its final host")
            let deps = closure(a)
            for m in moves where m.from == host || m.vm == a.vm {
                XCTAssertTrue(deps.contains(m.id), "\(a.kind) of \(a.vm) (action \(a.id)) must wait for move \(m.id)")
            }
        }
        let shrinking = plan.actions.filter {
            ($0.kind == .tune || $0.kind == .resize) && !grows($0)
        }
        XCTAssertTrue(shrinking.contains { $0.vm == "cache" && $0.parameters.balloonMiB == 3072 }, "cache shrinks")
        let firstMove = plan.actions.firstIndex { $0.kind == .migrate }!
        for a in shrinking {
            XCTAssertTrue(a.dependsOn.isEmpty)
            XCTAssertLessThan(plan.actions.firstIndex(of: a)!, firstMove, "shrinks run before any move")
        }
        // Execution order is a topological order.
        var seen = Set<String>()
        for a in plan.actions {
            for d in a.dependsOn { XCTAssertTrue(seen.contains(d), "action \(a.id) listed before its dependency \(d)") }
            seen.insert(a.id)
        }
    }
}
