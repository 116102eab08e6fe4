import XCTest
import SandpiperModel
@testable import SandpiperPlanner

/// Migration cost = memory + local disk bytes (issue 12, item 4): the planner's VSR divides by what a move copies.
final class DiskCostTests: XCTestCase {
    static let gib = 1_073_741_824.0

    static func disk(_ target: String, bytes: Double, storage: StorageMode = .local) -> VMDisk {
        VMDisk(target: target, kind: .file, source: "/var/lib/libvirt/images/\(target).qcow2", format: "qcow2",
               capacityBytes: bytes, allocationBytes: bytes, physicalBytes: bytes, storage: storage)
    }

    /// pm1 (8 cores, threshold 75% = 6) holds two VMs of 3.5 cores each: moving either one relieves it.
    /// `bigdisk` has less RAM (the paper's VSR picks it) but a 200 GiB local disk; `smalldisk` has 1 GiB.
    func world(disks: Bool) -> World {
        var w = World(hosts: 2)
        w.addVM("bigdisk", on: "pm1", cpu: 3.5, memoryMiB: 2048)
        w.addVM("smalldisk", on: "pm1", cpu: 3.5, memoryMiB: 4096)
        if disks {
            for (name, gib) in [("bigdisk", 200.0), ("smalldisk", 1.0)] {
                w.update(name) {
                    $0.disks = [Self.disk("vda", bytes: gib * Self.gib)]
                    $0.diskCopyBytes = StorageDefaults.copyBytes($0.disks!)
                }
            }
        }
        return w
    }

    /// VSR as NSDI'07 defines it, computed here from the samples: Volume / bytes copied (MiB).
    func oracleChoice(_ w: World, copyMiB: [String: Double]) -> String {
        func volume(_ vm: VMObservation) -> Double {
            let cpu = min(vm.samples.last!.cpu / 8, 0.99), mem = min(vm.samples.last!.memMiB / 32768, 0.99)
            return 1 / ((1 - cpu) * (1 - mem))
        }
        return w.vms.max { a, b in volume(a) / copyMiB[a.name]! < volume(b) / copyMiB[b.name]! }!.name
    }

    func testPlannerMovesTheSmallDiskVMWhenDisksAreLocal() {
        let w = world(disks: true)
        let expected = oracleChoice(w, copyMiB: ["bigdisk": 2048 + 200 * 1024, "smalldisk": 4096 + 1024])
        XCTAssertEqual(expected, "smalldisk")
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map(\.vm), [expected])
        XCTAssertTrue(plan.moves[0].reason.contains("to copy with its local disks"), plan.moves[0].reason)
    }

    func testRAMOnlyCostWithoutLocalDisks() {
        // Control: the same fleet on shared storage moves the VM with less RAM, as the paper does.
        let w = world(disks: false)
        XCTAssertEqual(oracleChoice(w, copyMiB: ["bigdisk": 2048, "smalldisk": 4096]), "bigdisk")
        XCTAssertEqual(w.plan().moves.map(\.vm), ["bigdisk"])
    }

    func testSharedDisksKeepThePlanIdentical() {
        var shared = world(disks: false)
        for name in ["bigdisk", "smalldisk"] {
            shared.update(name) {
                $0.disks = [Self.disk("vda", bytes: 500 * Self.gib, storage: .shared)]
                $0.diskCopyBytes = StorageDefaults.copyBytes($0.disks!)
                XCTAssertNil($0.diskCopyBytes)
            }
        }
        XCTAssertEqual(shared.plan(), world(disks: false).plan())
    }

    func testColdSLAWithLocalDiskIsNotMoved() {
        var w = world(disks: true)
        w.spec.slas.append(SLA(name: "coldonly", migration: .cold))
        w.updateSpec("smalldisk") { $0.sla = "coldonly" }
        let plan = w.plan()
        // smalldisk would be the cheaper move, but moving it cold would leave its disk behind: bigdisk goes live.
        XCTAssertEqual(plan.moves.map(\.vm), ["bigdisk"])
        XCTAssertEqual(plan.moves.first?.mode, .live)
        XCTAssertFalse(plan.moves.contains { $0.mode == .cold })
    }

    func testStoppedVMWithLocalDiskOnMaintenanceHostIsRefusedWithTheReason() {
        var w = World(hosts: 2)
        w.addVM("idle", on: "pm1", cpu: 0)
        w.update("idle") {
            $0.state = .stopped
            $0.disks = [Self.disk("vda", bytes: 10 * Self.gib)]
            $0.diskCopyBytes = StorageDefaults.copyBytes($0.disks!)
        }
        w.spec.hosts[0].maintenance = true
        let plan = w.plan()
        XCTAssertTrue(plan.moves.isEmpty, "\(plan.moves)")
        let u = try! XCTUnwrap(plan.unresolved.first { $0.vm == "idle" })
        XCTAssertTrue(u.reason.contains("local disk(s) vda") && u.reason.contains("cold move"), u.reason)

        // Control: the same VM on shared storage is evacuated (cold: it does not run).
        w.update("idle") { $0.disks = nil; $0.diskCopyBytes = nil }
        XCTAssertEqual(w.plan().moves.map(\.vm), ["idle"])
    }
}

/// Step 5b (fewest moves) must not undo the disk-aware choice of step 5: one move that copies a 200 GiB local
/// disk is not "better" than two moves of small VMs that copy a few GiB.
final class DiskCostImprovementTests: XCTestCase {
    func testFewerMovesDoNotCopyMoreLocalDiskBytes() {
        // pm1: 8 cores, threshold 75% = 6 cores. big (5.8) + s1 (0.3) + s2 (0.3) = 6.4: either both small VMs
        // leave, or big alone does.
        var w = World(hosts: 2)
        w.addVM("big", on: "pm1", cpu: 5.8, memoryMiB: 2048)
        w.addVM("s1", on: "pm1", cpu: 0.3, memoryMiB: 1024)
        w.addVM("s2", on: "pm1", cpu: 0.3, memoryMiB: 1024)
        let diskGiB = ["big": 200.0, "s1": 1.0, "s2": 1.0]
        for (name, gib) in diskGiB {
            w.update(name) {
                $0.disks = [DiskCostTests.disk("vda", bytes: gib * DiskCostTests.gib)]
                $0.diskCopyBytes = StorageDefaults.copyBytes($0.disks!)
            }
        }
        // Oracle: what a plan's moves copy (memory + local disk, MiB), from the definitions above.
        let memory = ["big": 2048.0, "s1": 1024.0, "s2": 1024.0]
        func copied(_ plan: Plan) -> Double { plan.moves.reduce(0) { $0 + memory[$1.vm]! + diskGiB[$1.vm]! * 1024 } }

        let greedy = w.plan(PlanOptions(improve: false))
        XCTAssertEqual(greedy.moves.map(\.vm).sorted(), ["s1", "s2"], "VSR with disk bytes picks the small VMs")
        let improved = w.plan()
        XCTAssertFalse(improved.moves.isEmpty)
        XCTAssertLessThanOrEqual(copied(improved), copied(greedy),
                                 "step 5b copies more: \(improved.moves.map(\.vm)) vs the greedy's \(greedy.moves.map(\.vm))")
    }
}
