import Foundation
import SandpiperLibvirt
import SandpiperTestSupport
import XCTest

/// A domain's disks from its XML and `virDomainGetBlockInfo` (issue 12, item 4).
final class DiskTests: XCTestCase {
    static let xml = """
        <domain type='kvm'>
          <name>d</name>
          <devices>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='/var/lib/libvirt/images/top.qcow2'/>
              <backingStore type='file'>
                <format type='qcow2'/>
                <source file='/var/lib/libvirt/images/base.qcow2'/>
                <backingStore type='file'>
                  <format type='raw'/>
                  <source file='/var/lib/libvirt/images/base0.raw'/>
                  <backingStore/>
                </backingStore>
              </backingStore>
              <target dev='vda' bus='virtio'/>
            </disk>
            <disk type='block' device='disk'>
              <driver name='qemu' type='raw'/>
              <source dev='/dev/vg0/data'/>
              <target dev='vdb' bus='virtio'/>
            </disk>
            <disk type='volume' device='disk'>
              <driver name='qemu' type='raw'/>
              <source pool='nfs-images' volume='vol1'/>
              <target dev='vdc' bus='virtio'/>
              <shareable/>
            </disk>
            <disk type='network' device='disk'>
              <driver name='qemu' type='raw'/>
              <source protocol='rbd' name='pool/image'><host name='mon1' port='6789'/></source>
              <target dev='vdd' bus='virtio'/>
            </disk>
            <disk type='file' device='cdrom'>
              <source file='/isos/install.iso'/>
              <target dev='sda' bus='sata'/>
              <readonly/>
            </disk>
            <disk type='file' device='disk'>
              <source file='/images/ro.img'/>
              <target dev='vde' bus='virtio'/>
              <readonly/>
            </disk>
          </devices>
        </domain>
        """

    func testDisksAreReadFromTheDomainXML() {
        let disks = DomainDisk.parse(domainXML: Self.xml)
        XCTAssertEqual(disks.map(\.target), ["vda", "vdb", "vdc", "vdd", "vde"], "the CD-ROM is not a disk a move copies")
        XCTAssertEqual(disks[0], DomainDisk(type: "file", target: "vda", source: "/var/lib/libvirt/images/top.qcow2",
                                            format: "qcow2", backingSource: "/var/lib/libvirt/images/base.qcow2",
                                            backingFormat: "qcow2"))
        XCTAssertEqual(disks[1], DomainDisk(type: "block", target: "vdb", source: "/dev/vg0/data", format: "raw"))
        XCTAssertEqual(disks[2], DomainDisk(type: "volume", target: "vdc", source: "nfs-images/vol1", format: "raw",
                                            shareable: true))
        XCTAssertEqual(disks[3], DomainDisk(type: "network", target: "vdd", source: "rbd:pool/image", format: "raw"))
        XCTAssertEqual(disks[4].readOnly, true)
        XCTAssertEqual(DomainDisk.parse(domainXML: "<domain><devices><disk"), [], "malformed XML: no disks, no crash")
    }

    /// The test driver's default domain has one file disk; its sizes are what `virsh domblkinfo` reports.
    func testSizesComeFromGetBlockInfo() throws {
        let conn = try LibvirtConnection(uri: "test:///default")
        defer { conn.close() }
        let disks = try conn.disks(of: "test")
        XCTAssertEqual(disks.map(\.target), ["vda"])
        XCTAssertEqual(disks[0].source, "/guest/diskimage1")
        let virsh = try VirshBlockInfo.read()
        func field(_ name: String) -> UInt64? { virsh[name] }
        XCTAssertNotNil(field("Capacity"), "\(virsh)")
        XCTAssertEqual(disks[0].capacity, field("Capacity"))
        XCTAssertEqual(disks[0].allocation, field("Allocation"))
        XCTAssertEqual(disks[0].physical, field("Physical"))
        XCTAssertEqual(try conn.domain(named: "test").disks, disks, "the inventory carries them too")
    }
}
