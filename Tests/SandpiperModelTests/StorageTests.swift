import SandpiperModel
import XCTest

/// `storage: shared | local` (host and VM), `sharedPools`, and the defaults that decide a disk's storage mode when
/// nobody says (issue 12, item 4). Mistakes are in the bad-spec corpus (Fixtures/bad/storage.yaml).
final class StorageTests: XCTestCase {
    func testStorageKeysDecode() throws {
        let yaml = """
        apiVersion: sandpiper/v1
        kind: Cluster
        name: s
        hosts:
          - {name: pm1, uri: "test:///pm1", storage: local, sharedPools: [nfs-images, ceph]}
          - {name: pm2, uri: "test:///pm2"}
        vms:
          - {name: a, vcpus: 2, memory: 1GiB, storage: shared}
          - {name: b, vcpus: 2, memory: 1GiB}
        """
        let (spec, _) = try SpecDecoder.decodeCluster(yaml, file: "c.yaml")
        XCTAssertEqual(spec.host(named: "pm1")?.storage, .local)
        XCTAssertEqual(spec.host(named: "pm1")?.sharedPools, ["nfs-images", "ceph"])
        XCTAssertNil(spec.host(named: "pm2")?.storage)
        XCTAssertNil(spec.host(named: "pm2")?.sharedPools)
        XCTAssertEqual(spec.vm(named: "a")?.storage, .shared)
        XCTAssertNil(spec.vm(named: "b")?.storage)
    }

    func testDefaultsFollowWhatLibvirtShows() {
        func mode(_ kind: VMDisk.Kind, _ source: String = "/x", vm: StorageMode? = nil, host: StorageMode? = nil,
                  pools: [String] = [], test: Bool = false) -> StorageMode {
            StorageDefaults.mode(kind: kind, source: source, vm: vm, host: host, sharedPools: pools, testDriver: test)
        }
        XCTAssertEqual(mode(.file), .local)
        XCTAssertEqual(mode(.block), .local)
        XCTAssertEqual(mode(.network, "rbd:pool/img"), .shared)
        XCTAssertEqual(mode(.volume, "default/vm.qcow2"), .local)
        XCTAssertEqual(mode(.volume, "nfs-images/vm.qcow2", pools: ["nfs-images"]), .shared)
        XCTAssertEqual(mode(.volume, "nfs-images-2/vm.qcow2", pools: ["nfs-images"]), .local, "the pool name, not a prefix")
        XCTAssertEqual(mode(.file, test: true), .shared, "test-driver disks hold nothing: the demo clusters stay RAM-only")
        XCTAssertEqual(mode(.file, host: .shared), .shared, "the host's storage wins over the kind")
        XCTAssertEqual(mode(.network, host: .local), .local)
        XCTAssertEqual(mode(.file, vm: .shared, host: .local), .shared, "the VM's storage wins over its host's")
        XCTAssertEqual(mode(.network, vm: .local, test: true), .local)
    }

    func testCopyBytesCountOnlyLocalDisks() {
        let gib = 1_073_741_824.0
        let local = VMDisk(target: "vda", kind: .file, source: "/a", capacityBytes: 100 * gib, allocationBytes: 3 * gib,
                           storage: .local)
        let unknown = VMDisk(target: "vdb", kind: .block, source: "/dev/sdb", capacityBytes: 8 * gib, storage: .local)
        let shared = VMDisk(target: "vdc", kind: .network, source: "rbd:p/i", capacityBytes: 500 * gib,
                            allocationBytes: 500 * gib, storage: .shared)
        XCTAssertEqual(StorageDefaults.copyBytes([local, unknown, shared]), 11 * gib,
                       "allocated bytes, or the virtual size when the allocation is unknown; shared disks copy nothing")
        XCTAssertNil(StorageDefaults.copyBytes([shared]), "all shared: the paper's RAM-only cost")
        XCTAssertNil(StorageDefaults.copyBytes([]))
        let vm = VMObservation(name: "v", host: "h", vcpus: 1, memoryMiB: 1024, disks: [])
        XCTAssertNil(vm.disks, "no disks: the key is omitted, so old state and plans decode and encode the same")
    }
}
