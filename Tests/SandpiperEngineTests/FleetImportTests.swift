import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import XCTest

/// `FleetImport.render`/`merge` on fleets a test driver cannot show (stopped and transient domains, one domain on
/// two hosts, hosts with the same hostname, names Sandpiper cannot hold): what is declared, and what is reported.
final class FleetImportTests: XCTestCase {
    func domain(_ name: String, _ state: DomainState = .running, vcpus: Int = 2, max: Int? = nil, mib: UInt64 = 1024,
                persistent: Bool = true, shares: UInt64? = nil) -> FleetImport.Domain {
        FleetImport.Domain(info: DomainInfo(name: name, uuid: "u-\(name)", state: state, vcpus: vcpus,
                                            maxVcpus: max ?? vcpus, memoryMiB: mib, maxMemoryMiB: mib,
                                            persistent: persistent, autostart: false,
                                            cpuTune: shares.map { CPUTune(shares: $0) }, memoryTune: nil),
                           xml: "<domain type='kvm'><name>\(name)</name></domain>")
    }

    func host(_ uri: String, hostname: String, _ domains: [FleetImport.Domain]) -> FleetImport.Host {
        FleetImport.Host(uri: uri, info: HostInfo(cpus: 16, memoryMiB: 65536, hostname: hostname,
                                                  libvirtVersion: "9.0.0", hypervisorVersion: "7.2.0",
                                                  hypervisorType: "QEMU"), domains: domains)
    }

    func testWhatIsDeclaredAndWhatIsReported() throws {
        let a = host("qemu+ssh://root:hunter2@a.example/system", hostname: "kvm.example.org",
                     [domain("web"), domain("db", .shutoff), domain("moving", .shutoff), domain("bad name"),
                      domain("batch", shares: 4096)])
        let b = host("qemu+ssh://b.example/system", hostname: "kvm.example.org",
                     [domain("moving", .running), domain("tmp", persistent: false)])
        let r = try FleetImport.render([a, b], name: "x", keepCredentials: false)
        XCTAssertEqual(r.hostNames, ["kvm", "kvm-2"], "same hostname: the second gets a suffix")
        XCTAssertEqual(r.vmNames, ["batch", "db", "moving", "tmp", "web"])
        XCTAssertFalse(r.clusterYAML.contains("hunter2"))
        let (spec, _) = try SpecDecoder.decodeCluster(r.clusterYAML, file: "cluster.yaml")
        XCTAssertEqual(spec.vm(named: "batch")?.resources.cpu.shares, .custom(4096), "observed shares kept")
        XCTAssertEqual(spec.vm(named: "web")?.resources.cpu.shares, .normal)
        XCTAssertEqual(spec.hosts.map(\.capacity.cpus), [16, 16])
        let notes = r.notes.joined(separator: "\n")
        XCTAssertTrue(notes.contains("db is shutoff on kvm"), notes)
        XCTAssertTrue(notes.contains("moving is defined on kvm and kvm-2; declared once, from kvm-2"), notes)
        XCTAssertTrue(notes.contains("\"bad name\" left out"), notes)
        XCTAssertTrue(notes.contains("tmp is transient"), notes)
        XCTAssertTrue(notes.contains("kvm: credentials in the URI are written as ***"), notes)

        // --add-to: names already declared are refused; host names get suffixes instead.
        XCTAssertThrowsError(try FleetImport.render([b], name: "x", keepCredentials: false, takenVMs: ["tmp"]))
        let more = try FleetImport.render([b], name: "x", keepCredentials: false, takenHosts: ["kvm"])
        XCTAssertEqual(more.hostNames, ["kvm-2"])
        // A flow-style hosts list cannot take items.
        XCTAssertThrowsError(try FleetImport.merge(more, into: "apiVersion: sandpiper/v1\nhosts: [{name: a, uri: x}]\n"))
        // A file without vms: gets one.
        let merged = try FleetImport.merge(more, into: "apiVersion: sandpiper/v1\nkind: Cluster\nname: x\nhosts:\n- name: a\n  uri: test:///a\n")
        let (m, _) = try SpecDecoder.decodeCluster(merged, file: "merged.yaml")
        XCTAssertEqual(m.hosts.map(\.name), ["a", "kvm-2"])
        XCTAssertEqual(m.vms.map(\.name), ["moving", "tmp"])
    }
}
