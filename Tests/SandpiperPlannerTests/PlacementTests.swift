import XCTest
import SandpiperModel
@testable import SandpiperPlanner

final class PlacementTests: XCTestCase {
    /// pm1 hot at 7/8 cores with a (4) and c (3); pm2 at 2 cores, pm3 at 1 core.
    private func hotWorld() -> World {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3)
        w.addVM("p", on: "pm2", cpu: 2)
        w.addVM("q", on: "pm3", cpu: 1)
        return w
    }

    func testHighestVSRMovesToLowestVolumeHost() {
        let plan = hotWorld().plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.from!)->\($0.to!)" }, ["a:pm1->pm3"])
        XCTAssertEqual(plan.moves[0].mode, .live)
        XCTAssertTrue(plan.moves[0].reason.contains("highest VSR"), plan.moves[0].reason)
        XCTAssertTrue(plan.moves[0].reason.contains("5 of 5"), plan.moves[0].reason)
        let d = try! XCTUnwrap(plan.decisions.first { $0.vm == "a" })
        XCTAssertEqual(d.chosen, "pm3")
        XCTAssertEqual(d.candidates.map(\.host), ["pm3", "pm2"])
        XCTAssertEqual(plan.host("pm1")?.cpu ?? 1, 3.0 / 8, accuracy: 1e-9)
        XCTAssertEqual(plan.host("pm1")?.hot, [])
        XCTAssertTrue(plan.unresolved.isEmpty)
    }

    func testVSRPrefersTheSmallerRAMAtEqualLoad() {
        var w = World(hosts: 2)
        w.addVM("big", on: "pm1", cpu: 3.5, memoryMiB: 16384)
        w.addVM("small", on: "pm1", cpu: 3.5, memoryMiB: 2048)
        XCTAssertEqual(w.plan().moves.map(\.vm), ["small"])
    }

    func testTargetMustStayUnderItsThreshold() {
        var w = hotWorld()
        w.policy.placement.swaps = false
        w.update("p") { $0.samples = Fixture.samples(cpu: [3.5, 3.5, 3.5, 3.5, 3.5]) }
        w.update("q") { $0.samples = Fixture.samples(cpu: [3.5, 3.5, 3.5, 3.5, 3.5]) }
        let plan = w.plan()
        XCTAssertTrue(plan.moves.isEmpty)
        let u = try! XCTUnwrap(plan.unresolved.first { $0.host == "pm1" })
        XCTAssertTrue(u.reason.contains("exhausted cpu"), u.reason)
        let d = try! XCTUnwrap(plan.decisions.first { $0.vm == "a" })
        XCTAssertNil(d.chosen)
        // No host has 4 cores of room: the scan is skipped and says so.
        XCTAssertEqual(d.hostsExamined, 0)
        XCTAssertEqual(d.filtered, [.init(reason: "exhausted cpu", count: 2)])
        XCTAssertEqual(d.examples, ["no host has 4.00 cores of cpu below its threshold; most room: 2.50 cores on pm2"])
    }

    func testRejectionsCarryNumbers() {
        var w = hotWorld()
        w.policy.placement.swaps = false
        w.update("p") {  // cpu room, no mem room
            $0.samples = Fixture.samples(cpu: [1, 1, 1, 1, 1], mem: 29000)
            $0.memoryMiB = 30000; $0.maxMemoryMiB = 30000
        }
        w.update("q") { $0.samples = Fixture.samples(cpu: [3.5, 3.5, 3.5, 3.5, 3.5]) }      // mem room, no cpu room
        let plan = w.plan()
        XCTAssertTrue(plan.moves.isEmpty)
        let d = try! XCTUnwrap(plan.decisions.first { $0.vm == "a" })
        XCTAssertEqual(d.hostsExamined, 2)
        XCTAssertEqual(d.filtered, [.init(reason: "cpu threshold", count: 1), .init(reason: "mem threshold", count: 1)])
        XCTAssertTrue(d.examples.contains("pm3: needs 4.00 cores; 3.50 of 8.00 cores used, threshold 75.0% = 6.00 cores"),
                      "\(d.examples)")
        XCTAssertTrue(d.examples.contains("pm2: needs 1056 MiB; 29032 of 32768 MiB used, threshold 90.0% = 29491 MiB"),
                      "\(d.examples)")
    }

    func testSwapWhenNoSingleMoveFits() {
        var w = World(hosts: 2)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3)
        w.addVM("b", on: "pm2", cpu: 1.5)
        w.addVM("d", on: "pm2", cpu: 2.5)
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.from!)->\($0.to!)" }, ["a:pm1->pm2", "d:pm2->pm1"])
        XCTAssertEqual(Set(plan.moves.compactMap(\.swapGroup)), ["swap-1"])
        XCTAssertEqual(plan.moves[1].dependsOn, [plan.moves[0].id])
        XCTAssertTrue(plan.unresolved.isEmpty, "\(plan.unresolved)")
        XCTAssertEqual(plan.host("pm1")?.hot, [])
        XCTAssertEqual(plan.host("pm2")?.hot, [])
        XCTAssertTrue(plan.decisions.contains { $0.purpose == .swap && $0.chosen == "pm2" })
        // Swaps off: unresolved.
        w.policy.placement.swaps = false
        XCTAssertTrue(w.plan().moves.isEmpty)
        XCTAssertEqual(w.plan().unresolved.map(\.host), ["pm1"])
    }

    func testSwapThroughAStagingHost() {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3, placement: PlacementRule(host: "pm1"))
        w.addVM("b", on: "pm2", cpu: 2)
        w.addVM("d", on: "pm2", cpu: 2.5)
        w.addVM("e", on: "pm3", cpu: 3.2, placement: PlacementRule(host: "pm3"))
        // Step 5's greedy swap (step 5b off): three moves through the staging host.
        let greedy = PlanOptions(improve: false)
        let plan = w.plan(greedy)
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.from!)->\($0.to!)" },
                       ["d:pm2->pm3", "a:pm1->pm2", "d:pm3->pm1"])
        XCTAssertEqual(plan.moves[1].dependsOn, [plan.moves[0].id])
        XCTAssertEqual(plan.moves[2].dependsOn, [plan.moves[0].id, plan.moves[1].id])
        XCTAssertTrue(plan.moves.first?.reason.contains("staging") ?? false, "\(plan.moves) \(plan.unresolved) \(plan.decisions)")
        XCTAssertTrue(plan.unresolved.isEmpty, "\(plan.unresolved)")
        // Step 5b: d need not come back; two moves (d makes room on pm2, a takes it).
        let improved = w.plan()
        XCTAssertEqual(improved.moves.map { "\($0.vm):\($0.from!)->\($0.to!)" }, ["d:pm2->pm3", "a:pm1->pm2"])
        XCTAssertEqual(improved.moves[1].dependsOn, [improved.moves[0].id])
        XCTAssertTrue(improved.unresolved.isEmpty, "\(improved.unresolved)")
        // A swap counts its moves against the budget; step 5b finds the two moves within it.
        w.policy.placement.maxMigrationsPerRun = 2
        XCTAssertTrue(w.plan(greedy).moves.isEmpty)
        XCTAssertTrue(w.plan(greedy).unresolved[0].reason.contains("no swap works"), w.plan(greedy).unresolved[0].reason)
        XCTAssertEqual(w.plan().moves.count, 2)
        w.policy.placement.maxMigrationsPerRun = 1
        XCTAssertTrue(w.plan().moves.isEmpty)
        XCTAssertEqual(w.plan().unresolved.map(\.host), ["pm1"])
    }

    func testTwoMoveSwapIsPreferredOverAStagedOne() {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3)
        w.addVM("b", on: "pm2", cpu: 2)
        w.addVM("d", on: "pm2", cpu: 2.5)
        w.addVM("e", on: "pm3", cpu: 3.2, placement: PlacementRule(host: "pm3"))
        // a<->d needs a staging host (3 moves); c<->b needs two.
        XCTAssertEqual(w.plan().moves.map { "\($0.vm):\($0.from!)->\($0.to!)" }, ["c:pm1->pm2", "b:pm2->pm1"])
    }

    func testNewVMsDoNotTakeTheRoomHotHostsNeedAndAreNeverSwapPartners() {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3, placement: PlacementRule(host: "pm1"))
        w.addVM("b", on: "pm2", cpu: 2)
        w.addVM("d", on: "pm2", cpu: 2.5)
        w.addVM("e", on: "pm3", cpu: 3.2, placement: PlacementRule(host: "pm3"))
        w.spec.vms.append(Fixture.vmSpec("new", vcpus: 1, memoryMiB: 1024))
        let plan = w.plan(PlanOptions(improve: false))  // step 5's staged swap
        XCTAssertEqual(plan.actions.map { "\($0.kind.rawValue):\($0.vm)" },
                       ["migrate:d", "migrate:a", "migrate:d", "define:new", "start:new"])
        let define = plan.actions[3]
        XCTAssertEqual(define.to, "pm3")
        XCTAssertTrue(define.dependsOn.contains(plan.actions[2].id), "waits for d to leave its staging host")
        XCTAssertFalse(plan.decisions.flatMap(\.examples).contains { $0.contains("<->new") })
    }

    func testAffinityMustKeepsTheGroupTogether() {
        var w = World(hosts: 3)
        w.addVM("app", on: "pm1", cpu: 1)
        w.addVM("db", on: "pm1", cpu: 1)
        w.addVM("cache", on: "pm2", cpu: 1)
        w.spec.groups = [GroupSpec(name: "stack", vms: ["app", "db", "cache"], rule: .affinity, enforcement: .must)]
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.to!)" }, ["cache:pm1"])
        XCTAssertTrue(plan.moves[0].reason.contains("affinity group stack runs on pm1"), plan.moves[0].reason)
        // Hot pm1 cannot shed a member of the group: it stays together, the hotspot is reported.
        w.update("cache") { $0.host = "pm1"; $0.samples = Fixture.samples(cpu: [5, 5, 5, 5, 5]) }
        let hot = w.plan()
        XCTAssertTrue(hot.moves.isEmpty)
        XCTAssertEqual(hot.unresolved.map(\.host), ["pm1"])
        XCTAssertTrue(hot.decisions.first?.filtered.contains(.init(reason: "affinity", count: 2)) ?? false,
                      "\(hot.decisions)")
    }

    func testScanLimitIsReported() {
        var w = World()
        w.addHost("pm1", labels: ["rack": "b"])
        for i in 2...5 { w.addHost("pm\(i)", labels: ["rack": "a"]) }
        w.addHost("pm6", labels: ["rack": "b"])
        w.addVM("a", on: "pm1", cpu: 4, placement: PlacementRule(labels: ["rack": "b"]))
        w.addVM("c", on: "pm1", cpu: 3, placement: PlacementRule(labels: ["rack": "b"]))
        w.addVM("x", on: "pm6", cpu: 1)
        XCTAssertEqual(w.plan().moves.map { "\($0.vm):\($0.to!)" }, ["a:pm6"])
        // The scan limit bounds step 5's scans; step 5b (off here) looks at every host of a small fleet.
        let plan = w.plan(PlanOptions(scanLimit: 2, improve: false))
        XCTAssertTrue(plan.moves.isEmpty)
        XCTAssertEqual(w.plan(PlanOptions(scanLimit: 2)).moves.map { "\($0.vm):\($0.to!)" }, ["a:pm6"])
        let d = try! XCTUnwrap(plan.decisions.first)
        // Two by Volume, then the host with the most CPU room (an empty rack-a host: still the wrong label).
        XCTAssertEqual(d.hostsExamined, 3)
        XCTAssertTrue(d.filtered.contains(.init(reason: "scan limit (not examined)", count: 2)), "\(d.filtered)")
    }

    func testLooseSLALetsAHostRunHotter() {
        var w = World(hosts: 2)
        w.spec.slas = [SLA(name: "bronze", thresholds: Thresholds(cpu: 0.90))]
        w.addVM("a", on: "pm1", cpu: 4, sla: "bronze")
        w.addVM("c", on: "pm1", cpu: 2.5, sla: "bronze")
        var plan = w.plan()
        XCTAssertTrue(plan.hotspots.isEmpty, "81% is under bronze's 90%")
        XCTAssertEqual(plan.host("pm1")?.thresholds.cpu, 0.90)
        // One VM without an SLA brings the policy's 75% back.
        w.updateSpec("c") { $0.sla = nil }
        plan = w.plan()
        XCTAssertEqual(plan.hotspots.map(\.host), ["pm1"])
    }

    func testPinnedVMIsNotMovedOffItsPin() {
        var w = hotWorld()
        w.updateSpec("a") { $0.placement = PlacementRule(host: "pm1") }
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map(\.vm), ["c"])
    }

    func testVMOffItsPinIsRepaired() {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 1, placement: PlacementRule(host: "pm2"))
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.to!)" }, ["a:pm2"])
        XCTAssertTrue(plan.moves[0].reason.contains("pinned to pm2"), plan.moves[0].reason)
    }

    func testLabelsRestrictTargets() {
        var w = World()
        w.addHost("pm1", labels: ["rack": "a"])
        w.addHost("pm2", labels: ["rack": "b"])
        w.addHost("pm3", labels: ["rack": "a"])
        w.addVM("a", on: "pm1", cpu: 4, placement: PlacementRule(labels: ["rack": "a"]))
        w.addVM("c", on: "pm1", cpu: 3, placement: PlacementRule(labels: ["rack": "a"]))
        w.addVM("x", on: "pm3", cpu: 1)
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.to!)" }, ["a:pm3"])
        XCTAssertTrue(plan.decisions[0].filtered.contains(.init(reason: "labels", count: 1)))
    }

    func testAntiAffinityMustAndShould() {
        var w = hotWorld()
        w.spec.groups = [GroupSpec(name: "spread", vms: ["a", "q"], rule: .antiAffinity, enforcement: .must)]
        var plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.to!)" }, ["a:pm2"])
        XCTAssertTrue(plan.decisions[0].filtered.contains(.init(reason: "anti-affinity", count: 1)))
        w.spec.groups[0].enforcement = .should
        plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.to!)" }, ["a:pm2"])
        let pm3 = try! XCTUnwrap(plan.decisions[0].candidates.first { $0.host == "pm3" })
        XCTAssertEqual(pm3.penalty, 1)
    }

    func testAntiAffinityMustViolationIsRepaired() {
        var w = World(hosts: 2)
        w.addVM("a", on: "pm1", cpu: 1)
        w.addVM("b", on: "pm1", cpu: 1)
        w.spec.groups = [GroupSpec(name: "spread", vms: ["a", "b"], rule: .antiAffinity, enforcement: .must)]
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.to!)" }, ["a:pm2"])
        XCTAssertTrue(plan.moves[0].reason.contains("anti-affinity group spread"), plan.moves[0].reason)
    }

    func testMaintenanceEvacuationAndMigrationNever() {
        var w = World()
        w.addHost("pm1", maintenance: true)
        w.addHost("pm2")
        w.spec.slas = [SLA(name: "frozen", migration: .never), SLA(name: "batch", migration: .cold)]
        w.addVM("a", on: "pm1", cpu: 1, sla: "batch")
        w.addVM("b", on: "pm1", cpu: 1, sla: "frozen")
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.to!)" }, ["a:pm2"])
        XCTAssertEqual(plan.moves[0].mode, .cold)
        XCTAssertTrue(plan.moves[0].reason.contains("maintenance"), plan.moves[0].reason)
        let u = try! XCTUnwrap(plan.unresolved.first { $0.vm == "b" })
        XCTAssertTrue(u.reason.contains("migration: never"), u.reason)
        XCTAssertEqual(plan.host("pm1")?.status, .maintenance)
    }

    func testMinimumResidencyHoldsARecentArrival() {
        var w = hotWorld()
        w.update("a") { $0.lastMovedAt = Fixture.now - 60 }
        XCTAssertEqual(w.plan().moves.map(\.vm), ["c"])
        w.update("a") { $0.lastMovedAt = Fixture.now - 600 }
        XCTAssertEqual(w.plan().moves.map(\.vm), ["a"])
    }

    func testMaxMigrationsPerRun() {
        var w = World(hosts: 4)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3)
        w.addVM("e", on: "pm2", cpu: 4)
        w.addVM("f", on: "pm2", cpu: 3.5)
        w.policy.placement.maxMigrationsPerRun = 1
        let plan = w.plan()
        XCTAssertEqual(plan.moves.count, 1)
        XCTAssertEqual(plan.moves[0].from, "pm2", "highest Volume first")
        let u = try! XCTUnwrap(plan.unresolved.first)
        XCTAssertEqual(u.host, "pm1")
        XCTAssertTrue(u.reason.contains("maxMigrationsPerRun (1) reached"), u.reason)
    }

    func testMinGain() {
        var w = hotWorld()
        w.policy.placement.minGain = 0.9
        let plan = w.plan()
        XCTAssertTrue(plan.moves.isEmpty)
        XCTAssertTrue(plan.unresolved[0].reason.contains("< minGain"), plan.unresolved[0].reason)
    }

    func testMaxConcurrentPerHostSerializesMigrations() {
        var w = World(hosts: 3)
        w.addHost("pm4", cpus: 64)
        w.policy.placement.maxConcurrentPerHost = 1
        w.addVM("a", on: "pm1", cpu: 4, placement: PlacementRule(host: "pm4"))
        w.addVM("b", on: "pm2", cpu: 4, placement: PlacementRule(host: "pm4"))
        let plan = w.plan()
        XCTAssertEqual(plan.moves.count, 2)
        XCTAssertEqual(plan.moves[1].dependsOn, [plan.moves[0].id])
    }
}

final class DriftTests: XCTestCase {
    func testInitialPlacementDefinesAndStarts() {
        var w = World(hosts: 2)
        w.addVM("old", on: "pm1", cpu: 2)
        var s = Fixture.vmSpec("new", vcpus: 2, memoryMiB: 2048)
        s.template = "templates/web.xml"
        w.spec.vms.append(s)
        let plan = w.plan()
        XCTAssertEqual(plan.actions.map { "\($0.kind.rawValue):\($0.vm)" }, ["define:new", "start:new"])
        XCTAssertEqual(plan.actions[0].to, "pm2")
        XCTAssertEqual(plan.actions[0].parameters.template, "templates/web.xml")
        XCTAssertEqual(plan.actions[0].parameters.vcpus, 2)
        XCTAssertEqual(plan.actions[1].dependsOn, [plan.actions[0].id])
        XCTAssertEqual(plan.drift.map(\.kind), [.absent])
        XCTAssertEqual(plan.host("pm2")?.vmCount, 1)

        // Without a template there is nothing to define it from: reported, not planned to fail.
        w.spec.vms[w.spec.vms.count - 1].template = nil
        let bare = w.plan()
        XCTAssertTrue(bare.actions.isEmpty)
        XCTAssertTrue(bare.unresolved.contains { $0.vm == "new" && $0.reason.contains("has no template") }, "\(bare.unresolved)")
    }

    func testUnknownHostBlocksInitialPlacement() {
        var w = World(hosts: 2)
        w.hosts[1].status = .unknown(reason: "connection refused")
        w.spec.vms.append(Fixture.vmSpec("ghost"))
        let plan = w.plan()
        XCTAssertTrue(plan.actions.isEmpty)
        let u = try! XCTUnwrap(plan.unresolved.first { $0.vm == "ghost" })
        XCTAssertTrue(u.reason.contains("host pm2 unknown; VM may be there"), u.reason)
        XCTAssertTrue(plan.drift.contains { $0.kind == .hostUnknown && $0.host == "pm2" })
        XCTAssertEqual(plan.host("pm2")?.status, .unknown)
    }

    func testUnknownHostIsNeverATarget() {
        var w = World(hosts: 3)
        w.hosts[2].status = .unknown(reason: "timeout")
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3)
        w.addVM("p", on: "pm2", cpu: 5)
        w.policy.placement.swaps = false
        let plan = w.plan()
        XCTAssertTrue(plan.moves.isEmpty)
        XCTAssertTrue(plan.decisions[0].filtered.contains(.init(reason: "host unknown", count: 1)))
    }

    func testUndeclaredVMIsReportedAndPrunedOnlyOnRequest() {
        var w = World(hosts: 1)
        w.addVM("keep", on: "pm1", cpu: 1)
        w.vms.append(Fixture.vm("stray", host: "pm1", cpu: 1))
        var plan = w.plan()
        XCTAssertTrue(plan.actions.isEmpty)
        XCTAssertEqual(plan.drift.map(\.kind), [.undeclared])
        plan = w.plan(PlanOptions(prune: true))
        XCTAssertEqual(plan.actions.map { "\($0.kind.rawValue):\($0.vm)" }, ["stop:stray", "undefine:stray"])
        XCTAssertEqual(plan.actions[1].dependsOn, [plan.actions[0].id])
    }
}

final class PlanDocumentTests: XCTestCase {
    func testDeterministicBytesAndLosslessRoundTrip() throws {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3)
        w.spec.vms.append(Fixture.vmSpec("new", vcpus: 1, memoryMiB: 1024))
        let based = PlanDocument.BasedOn(specDigest: "s", policyDigest: "p", stateSerial: 3, inventoryDigest: "i")
        let doc = PlanDocument(plan: w.plan(), basedOn: based)
        let bytes = try doc.encoded()
        XCTAssertEqual(bytes, try PlanDocument(plan: w.plan(), basedOn: based).encoded())
        let back = try PlanDocument.decode(bytes)
        XCTAssertEqual(back, doc)
        XCTAssertEqual(try back.encoded(), bytes)
        XCTAssertEqual(doc.formatVersion, 1)
        XCTAssertEqual(doc.summary.move, 1)
        XCTAssertEqual(doc.summary.add, 2)
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.contains("\"formatVersion\" : 1"), text)
    }

    func testRejectsOtherFormatVersions() throws {
        var doc = PlanDocument(plan: Plan())
        doc.formatVersion = 2
        XCTAssertThrowsError(try PlanDocument.decode(try doc.encoded()))
    }

    func testInventoryDigestInputIsCanonical() {
        let obs = Observation(vms: [Fixture.vm("b", host: "pm2", vcpus: 2, memoryMiB: 2048),
                                    Fixture.vm("a", host: "pm1", vcpus: 1, memoryMiB: 1536.5)])
        XCTAssertEqual(PlanDocument.inventoryDigestInput(obs), "a\tpm1\trunning\t1\t1536.5\nb\tpm2\trunning\t2\t2048")
    }
}
