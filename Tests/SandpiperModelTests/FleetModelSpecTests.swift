import SandpiperModel
import XCTest

/// `capacity.reserved`, `allocationRatio` (policy and host), `schedulable` and per-VM `automation` decode to the
/// values written; their mistakes are in the bad-spec corpus (Fixtures/bad/fleet-model.yaml).
final class FleetModelSpecTests: XCTestCase {
    func testNewFieldsDecode() throws {
        let yaml = """
        apiVersion: sandpiper/v1
        kind: Cluster
        name: f
        hosts:
          - name: pm1
            uri: test:///pm1
            capacity: {cpus: 32, memory: 128GiB, reserved: {cpus: 2, memory: 4GiB}}
            allocationRatio: {cpu: 8}
            schedulable: false
          - {name: pm2, uri: "test:///pm2"}
        vms:
          - {name: a, vcpus: 2, memory: 1GiB, automation: disabled}
          - {name: b, vcpus: 2, memory: 1GiB}
        """
        let (spec, _) = try SpecDecoder.decodeCluster(yaml, file: "c.yaml")
        let pm1 = try XCTUnwrap(spec.host(named: "pm1"))
        XCTAssertEqual(pm1.capacity.reservedCPUs, 2)
        XCTAssertEqual(pm1.capacity.reservedMemoryMiB, 4096)
        XCTAssertEqual(pm1.allocationRatio, AllocationRatio(cpu: 8, memory: nil))
        XCTAssertFalse(pm1.schedulable)
        XCTAssertTrue(try XCTUnwrap(spec.host(named: "pm2")).schedulable, "schedulable by default")
        XCTAssertEqual(spec.vm(named: "a")?.automation, .disabled)
        XCTAssertNil(spec.vm(named: "b")?.automation)

        let policy = try SpecDecoder.decodePolicy("""
            apiVersion: sandpiper/v1
            kind: Policy
            allocationRatio: {cpu: 4.0, memory: 1.5}
            """, file: "p.yaml", name: "p")
        XCTAssertEqual(policy.allocationRatio, AllocationRatio(cpu: 4, memory: 1.5))
        // The host's set values win, the unset ones inherit.
        XCTAssertEqual(policy.allocationRatio.overridden(by: pm1.allocationRatio), AllocationRatio(cpu: 8, memory: 1.5))
        XCTAssertEqual(try SpecDecoder.decodePolicy("apiVersion: sandpiper/v1\nkind: Policy\n", file: "p.yaml",
                                                    name: "p").allocationRatio, AllocationRatio(), "unset: no limit")
    }
}
