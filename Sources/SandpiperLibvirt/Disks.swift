internal import CLibvirt
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// One `<disk device='disk'>` of a domain: where its image lives (domain XML) and how big it is
/// (`virDomainGetBlockInfo`). CD-ROMs and floppies are not disks a move copies and are left out.
public struct DomainDisk: Sendable, Equatable {
    /// `<disk type=...>`: file, block, volume, network (or whatever else libvirt says).
    public var type: String
    /// `<target dev=...>`, e.g. vda.
    public var target: String
    /// File or device path, `pool/volume`, or `protocol:name` of a network disk; "" when the disk has no source.
    public var source: String
    /// `<driver type=...>`: qcow2, raw...
    public var format: String?
    /// The first backing image (path) and its format, when the image is an overlay.
    public var backingSource: String?
    public var backingFormat: String?
    public var readOnly: Bool
    public var shareable: Bool
    /// Bytes: virtual size, allocated on the host, and the host-side size; nil when libvirt cannot tell.
    public var capacity: UInt64?
    public var allocation: UInt64?
    public var physical: UInt64?

    public init(type: String, target: String, source: String, format: String? = nil, backingSource: String? = nil,
                backingFormat: String? = nil, readOnly: Bool = false, shareable: Bool = false,
                capacity: UInt64? = nil, allocation: UInt64? = nil, physical: UInt64? = nil) {
        self.type = type; self.target = target; self.source = source; self.format = format
        self.backingSource = backingSource; self.backingFormat = backingFormat
        self.readOnly = readOnly; self.shareable = shareable
        self.capacity = capacity; self.allocation = allocation; self.physical = physical
    }

    /// The disks of a domain XML document, in document order (sizes unset). Malformed XML gives [].
    public static func parse(domainXML xml: String) -> [DomainDisk] {
        // Most test-driver domains have no disk: skip the XML parser (read for every domain on every observe).
        guard xml.utf8.firstRange(of: "<disk".utf8) != nil else { return [] }
        let reader = DiskXMLReader()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = reader
        guard parser.parse() else { return [] }
        return reader.disks
    }
}

/// Walks `<domain><devices><disk>`: the disk's own `<source>` and `<driver>`, and the first `<backingStore>`'s.
private final class DiskXMLReader: NSObject, XMLParserDelegate {
    var disks: [DomainDisk] = []
    private var stack: [String] = []
    private var current: DomainDisk?
    private var device = "disk"
    /// Depth of `<backingStore>` nesting inside the current disk (1 = the disk's first backing image).
    private var backingDepth = 0

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes a: [String: String] = [:]) {
        defer { stack.append(name) }
        if name == "disk", stack.suffix(2) == ["domain", "devices"] {
            current = DomainDisk(type: a["type"] ?? "file", target: "", source: "")
            device = a["device"] ?? "disk"
            backingDepth = 0
            return
        }
        guard current != nil else { return }
        switch name {
        case "backingStore": backingDepth += 1
        case "source":
            let path = a["file"] ?? a["dev"] ?? a["dir"]
                ?? a["volume"].map { v in a["pool"].map { "\($0)/\(v)" } ?? v }
                ?? a["name"].map { n in a["protocol"].map { "\($0):\(n)" } ?? n }
            guard let path else { return }
            if backingDepth == 0, stack.last == "disk" { current!.source = path }
            if backingDepth == 1, stack.last == "backingStore", current!.backingSource == nil {
                current!.backingSource = path
            }
        case "format" where backingDepth == 1 && stack.last == "backingStore":
            if current!.backingFormat == nil { current!.backingFormat = a["type"] }
        case "driver" where backingDepth == 0: current!.format = a["type"]
        case "target" where backingDepth == 0 && stack.last == "disk": current!.target = a["dev"] ?? ""
        case "readonly" where backingDepth == 0: current!.readOnly = true
        case "shareable" where backingDepth == 0: current!.shareable = true
        default: break
        }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        stack.removeLast()
        guard current != nil else { return }
        if name == "backingStore" { backingDepth -= 1 }
        if name == "disk", backingDepth == 0, stack.suffix(2) == ["domain", "devices"] {
            if (device == "disk" || device == "lun"), !current!.target.isEmpty { disks.append(current!) }
            current = nil
        }
    }
}

extension LibvirtConnection {
    /// The disks of `name` (live XML when it runs, so backing chains are filled in) with their sizes.
    public func disks(of name: String) throws(LibvirtError) -> [DomainDisk] {
        try withDomain(name) { (dom) throws(LibvirtError) in try disks(dom, "domain '\(name)' on \(redactedURI)") }
    }

    func disks(_ dom: OpaquePointer, _ ctx: String) throws(LibvirtError) -> [DomainDisk] {
        let ptr: UnsafeMutablePointer<CChar> = try libvirtCall("virDomainGetXMLDesc \(ctx)", scrub: scrub) {
            virDomainGetXMLDesc(dom, 0)
        }
        let xml = String(cString: ptr)
        free(ptr)
        var disks = DomainDisk.parse(domainXML: xml)
        for i in disks.indices where !disks[i].source.isEmpty {
            // Unsupported by some drivers (test) or for some sources (an inactive network disk): sizes stay unknown.
            var info = virDomainBlockInfo()
            if (try? libvirtCall("virDomainGetBlockInfo \(ctx)") { virDomainGetBlockInfo(dom, disks[i].target, &info, 0) }) != nil {
                disks[i].capacity = info.capacity
                disks[i].allocation = info.allocation
                disks[i].physical = info.physical
            }
        }
        return disks
    }

    /// Makes sure every image in `disks` exists on this host before a copy-storage migration: libvirt's mirror
    /// needs a destination image of the same virtual size (and, for an incremental copy, the same backing file)
    /// unless a storage pool there creates it. Images are created through this daemon's own storage API (the
    /// pool that holds the directory, or a transient `dir` pool for it), so they land in its file system even
    /// when the daemon runs in a mount namespace of its own. Returns the paths created.
    public func createMissingImages(_ disks: [DomainDisk], incremental: Bool) throws(LibvirtError) -> [String] {
        var created: [String] = []
        for d in disks where d.type == "file" && d.source.hasPrefix("/") {
            guard let capacity = d.capacity else {
                throw LibvirtError.local(LibvirtError.Code.operationInvalid,
                                         "cannot create \(d.source) on \(redactedURI): its size is unknown")
            }
            let url = URL(fileURLWithPath: d.source)
            let dir = url.deletingLastPathComponent().path, file = url.lastPathComponent
            if try withPool(coveringDirectory: dir, { (pool) throws(LibvirtError) -> Bool in
                if let existing = virStorageVolLookupByName(pool, file) {
                    virStorageVolFree(existing)
                    return false
                }
                virResetLastError()
                var xml = "<volume><name>\(Self.xmlEscape(file))</name><capacity unit='bytes'>\(capacity)</capacity>"
                    + "<target><format type='\(Self.xmlEscape(d.format ?? "raw"))'/></target>"
                if incremental, let b = d.backingSource {
                    xml += "<backingStore><path>\(Self.xmlEscape(b))</path>"
                        + "<format type='\(Self.xmlEscape(d.backingFormat ?? "raw"))'/></backingStore>"
                }
                xml += "</volume>"
                let vol: OpaquePointer = try libvirtCall("create \(d.source) on \(redactedURI)", scrub: scrub) {
                    virStorageVolCreateXML(pool, xml, 0)
                }
                virStorageVolFree(vol)
                return true
            }) { created.append(d.source) }
        }
        return created
    }

    /// Runs `body` with an active pool whose target is `dir`: the host's own one, or a transient `dir` pool
    /// (created with the directory if need be) that is destroyed afterwards.
    private func withPool<T>(coveringDirectory dir: String,
                             _ body: (OpaquePointer) throws(LibvirtError) -> T) throws(LibvirtError) -> T {
        try withHandle { (conn) throws(LibvirtError) -> T in
            if let pool = virStoragePoolLookupByTargetPath(conn, dir), virStoragePoolIsActive(pool) == 1 {
                defer { virStoragePoolFree(pool) }
                _ = virStoragePoolRefresh(pool, 0)
                return try body(pool)
            }
            virResetLastError()
            // Lookup by target path finds only active pools; a defined but stopped one on the directory would make
            // libvirt refuse a second pool there ("storage source conflict"): start it for the call, then stop it.
            if let pool = inactivePool(conn, target: dir) {
                defer { virStoragePoolFree(pool) }
                if virStoragePoolCreate(pool, 0) != 0 {
                    _ = try libvirtCall("start pool for \(dir) on \(redactedURI)", scrub: scrub) {
                        virStoragePoolCreate(pool, VIR_STORAGE_POOL_CREATE_WITH_BUILD.rawValue)
                    }
                }
                defer { _ = virStoragePoolDestroy(pool) }
                return try body(pool)
            }
            let name = "sandpiper-copy-\(UInt32.random(in: 0...UInt32.max))"
            let xml = "<pool type='dir'><name>\(name)</name><target><path>\(Self.xmlEscape(dir))</path></target></pool>"
            let pool: OpaquePointer = try libvirtCall("transient pool for \(dir) on \(redactedURI)", scrub: scrub) {
                virStoragePoolCreateXML(conn, xml, VIR_STORAGE_POOL_CREATE_WITH_BUILD.rawValue)
            }
            defer { _ = virStoragePoolDestroy(pool); virStoragePoolFree(pool) }
            return try body(pool)
        }
    }

    /// A defined, stopped pool whose target path is `dir` (the caller frees it), or nil.
    private func inactivePool(_ conn: OpaquePointer, target dir: String) -> OpaquePointer? {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let n = virConnectListAllStoragePools(conn, &list, VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE.rawValue)
        guard n > 0, let list else { virResetLastError(); return nil }
        defer { free(list) }
        var found: OpaquePointer?
        for i in 0..<Int(n) {
            guard let p = list[i] else { continue }
            if found == nil, let x = virStoragePoolGetXMLDesc(p, 0) {
                let path = Self.poolTargetPath(String(cString: x))
                free(x)
                if path == Self.xmlEscape(dir) || path == dir { found = p; continue }
            }
            virStoragePoolFree(p)
        }
        virResetLastError()
        return found
    }

    /// `<target><path>…</path>` of a pool's XML, as written there.
    static func poolTargetPath(_ xml: String) -> String? {
        guard let target = xml.range(of: "<target>"),
              let open = xml.range(of: "<path>", range: target.upperBound..<xml.endIndex),
              let close = xml.range(of: "</path>", range: open.upperBound..<xml.endIndex) else { return nil }
        return String(xml[open.upperBound..<close.lowerBound])
    }

    static func xmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "'", with: "&apos;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
