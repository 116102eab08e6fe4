import Foundation
import SandpiperEngine
import SandpiperModel
import SandpiperPlanner
import XCTest

/// One definition of a hotspot for `plan` and `simulate`, and each named by what triggered it.
final class HotspotTriggerTests: XCTestCase {
    func observation(cpu: Double, swap: Double?, guestFree: Double?) -> (ClusterSpec, Observation) {
        var spec = ClusterSpec(name: "t")
        spec.hosts = [HostSpec(name: "pm1", uri: "test:///pm1")]
        spec.vms = [VMSpec(name: "db", vcpus: 2, memoryMiB: 1024)]
        let samples = (0..<5).map { _ in Sample(cpu: cpu, netMbps: 0, memMiB: 1024, swapKbps: swap, guestFreeMiB: guestFree) }
        let vm = VMObservation(name: "db", host: "pm1", vcpus: 2, memoryMiB: 1024, samples: samples)
        let host = HostObservation(name: "pm1", status: .up, cpus: 8, memoryMiB: 16384, networkMbps: 1000)
        return (spec, Observation(intervalSeconds: 10, now: 1000, hosts: [host], vms: [vm]))
    }

    func document(cpu: Double, swap: Double? = nil, guestFree: Double? = nil, mode: Policy.Profiling.Mode) -> PlanDocument {
        let (spec, obs) = observation(cpu: cpu, swap: swap, guestFree: guestFree)
        var policy = Policy()
        policy.profiling.mode = mode
        return PlanDocument(plan: Planner.plan(spec: spec, observation: obs, policy: policy))
    }

    func testAVMAtItsCPUAllocationIsANoticeNotAHotspot() {
        let doc = document(cpu: 2, mode: .grayBox)
        XCTAssertEqual(doc.hotspots.map(\.trigger), ["at-allocation"])
        XCTAssertEqual(doc.summary.hotspots, 0, "plan counts what simulate counts")
        XCTAssertFalse(doc.hotspots[0].counts)
        let line = PlanRenderer().render(doc)
        XCTAssertTrue(line.contains("db on pm1 cpu at its allocation"), line)
        XCTAssertTrue(line.contains("0 hotspots"), line)
    }

    func testMemoryPressureIsNamedByItsTrigger() {
        let gray = document(cpu: 0.1, guestFree: 0, mode: .grayBox)
        XCTAssertEqual(gray.hotspots.map(\.trigger), ["guest-free"])
        XCTAssertEqual(gray.summary.hotspots, 1)
        let grayText = PlanRenderer().render(gray)
        XCTAssertTrue(grayText.contains("db on pm1 memory pressure: guest free memory under its target 32MiB in 5 of 5 samples"), grayText)
        XCTAssertFalse(grayText.contains("over 100"), grayText)

        let black = document(cpu: 0.1, swap: 40, mode: .blackBox)
        XCTAssertEqual(black.hotspots.map(\.trigger), ["swapping"])
        let blackText = PlanRenderer().render(black)
        XCTAssertTrue(blackText.contains("db on pm1 memory pressure: swapping in 5 of 5 samples"), blackText)
        XCTAssertFalse(blackText.contains("over 100"), blackText)
    }
}
