import SandpiperLibvirt

/// What libvirt's test driver shows right after it opens a node file (`test:///…/hosts/pm1.xml`), read by
/// Sandpiper itself: the host's CPUs and memory, and its domains, all running.
///
/// Why: opening a test-driver connection makes libvirt parse the file and copy every domain's definition; at
/// 1,000 hosts / 20,000 domains that is seconds of CPU for every `plan`, while this reader takes milliseconds.
/// `FleetConnections` observes a host from its node file until something has to act on it, and only then opens
/// the libvirt connection (which starts from the same file), so what is observed is what libvirt would show.
///
/// Only a strict subset is read, and numbers exactly as libvirt takes them (units, rounding up to KiB,
/// `currentMemory` above `memory` clamped, `active` capping the CPU count). Anything else — another element or
/// attribute, entities, CDATA, namespaces, non-ASCII bytes, a duplicate name or UUID — gives nil, and the host is
/// opened through libvirt as before. `TestNodeReaderTests` compares both paths.
public enum TestNodeReader {
    public struct Contents: Sendable, Equatable {
        /// CPUs as `virNodeGetInfo` reports them.
        public var cpus: Int
        /// Memory as `virNodeGetInfo` reports it.
        public var memoryKiB: UInt64
        /// The domains as `LibvirtConnection.domains()` lists them (sorted by name). `uuid` is the file's, in
        /// lower case, or "" when the file has none (libvirt would make up a random one).
        public var domains: [DomainInfo]

        public var memoryMiB: UInt64 { memoryKiB / 1024 }
    }

    /// The contents, or nil when the file is outside what this reader vouches for.
    public static func read(_ bytes: [UInt8]) -> Contents? {
        guard bytes.count <= TestNodeFile.maxBytes else { return nil }
        let root: Element? = bytes.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer)
            return scanner.document()
        }
        guard let root, root.name == "node", root.attributes.isEmpty, !root.hasText else { return nil }
        var cpu: Element?, memory: Element?
        var domains: [DomainInfo] = []
        for child in root.children {
            switch child.name {
            case "cpu" where cpu == nil: cpu = child
            case "memory" where memory == nil: memory = child
            case "domain":
                guard let domain = Self.domain(child) else { return nil }
                domains.append(domain)
            default: return nil
            }
        }
        guard let cpu, let memory, memory.attributes.isEmpty, memory.children.isEmpty,
              let memoryKiB = whole(memory.text, max: UInt64(TestNodeFile.maxKiB)),
              let cpus = Self.cpus(cpu) else { return nil }
        // libvirt refuses a second domain with the same name, and one with the same UUID replaces the first.
        var names = Set<String>(), uuids = Set<String>()
        for d in domains {
            guard names.insert(d.name).inserted, d.uuid.isEmpty || uuids.insert(d.uuid).inserted else { return nil }
        }
        return Contents(cpus: cpus, memoryKiB: memoryKiB, domains: domains.sorted { $0.name < $1.name })
    }

    /// cores x threads x sockets x nodes, capped by `active` (libvirt's testParseNodeInfo). Every topology
    /// field is required: libvirt's defaults for missing ones are not reproduced here.
    private static func cpus(_ cpu: Element) -> Int? {
        guard cpu.attributes.isEmpty, !cpu.hasText else { return nil }
        var fields: [String: UInt64] = [:]
        for child in cpu.children {
            guard child.attributes.isEmpty, child.children.isEmpty, fields[child.name] == nil else { return nil }
            switch child.name {
            case "model":
                // Copied into a 32-byte buffer by libvirt; plain names only.
                guard child.text.utf8.count < 32, child.text.utf8.allSatisfy(isNameByte) else { return nil }
                fields["model"] = 0
            case "mhz":
                guard let value = whole(child.text, max: 1_000_000) else { return nil }
                fields["mhz"] = value
            case "nodes", "sockets", "cores", "threads", "active":
                guard let value = whole(child.text, max: UInt64(TestNodeFile.maxTopology)) else { return nil }
                fields[child.name] = value
            default: return nil
            }
        }
        guard let nodes = fields["nodes"], let sockets = fields["sockets"], let cores = fields["cores"],
              let threads = fields["threads"] else { return nil }
        // libvirt multiplies in 32 bits: stay far below where that wraps (each factor is at most 4096).
        let all = nodes * sockets * cores * threads
        guard all <= 1 << 20 else { return nil }
        if let active = fields["active"], active < all { return Int(active) }
        return Int(all)
    }

    private static func domain(_ element: Element) -> DomainInfo? {
        guard element.attributes.count == 1, element.attributes[0] == ("type", "test"), !element.hasText else {
            return nil
        }
        var name: String?, uuid: String?, memoryKiB: UInt64?, currentKiB: UInt64?, vcpu: (max: Int, current: Int)?
        var sawOS = false
        for child in element.children {
            switch child.name {
            case "name" where name == nil:
                guard child.attributes.isEmpty, child.children.isEmpty, !child.text.isEmpty, child.text.utf8.count <= 200,
                      child.text.utf8.allSatisfy(isNameByte) else { return nil }
                name = child.text
            case "uuid" where uuid == nil:
                guard child.attributes.isEmpty, child.children.isEmpty, let canonical = canonicalUUID(child.text) else {
                    return nil
                }
                uuid = canonical
            case "memory" where memoryKiB == nil:
                guard let kib = size(child) else { return nil }
                memoryKiB = kib
            case "currentMemory" where currentKiB == nil:
                guard let kib = size(child) else { return nil }
                currentKiB = kib
            case "vcpu" where vcpu == nil:
                guard child.children.isEmpty, let maximum = whole(child.text, max: UInt64(TestNodeFile.maxVcpus)) else {
                    return nil
                }
                var current = maximum
                for (key, value) in child.attributes {
                    guard key == "current", let c = whole(value, max: maximum) else { return nil }
                    current = c
                }
                vcpu = (Int(maximum), Int(current))
            case "os" where !sawOS:
                guard child.attributes.isEmpty, !child.hasText, child.children.count == 1 else { return nil }
                let type = child.children[0]
                guard type.name == "type", type.children.isEmpty, type.text == "hvm" else { return nil }
                for (key, value) in type.attributes {
                    guard key == "arch", value == "x86_64" || value == "i686" else { return nil }
                }
                sawOS = true
            default:
                return nil
            }
        }
        guard let name, let memoryKiB, let vcpu, sawOS else { return nil }
        // libvirt's post-parse: a balloon above the maximum (or none) is the maximum.
        let balloonKiB = min(currentKiB ?? memoryKiB, memoryKiB)
        return DomainInfo(name: name, uuid: uuid ?? "", state: .running, vcpus: vcpu.current, maxVcpus: vcpu.max,
                          memoryMiB: balloonKiB / 1024, maxMemoryMiB: memoryKiB / 1024, persistent: true,
                          autostart: false, cpuTune: CPUTune(weight: 50), memoryTune: MemoryTune())
    }

    /// Bytes per unit, for the units `TestNodeFile` admits (the same scale as libvirt's virScaleInteger).
    private static let unitBytes: [String: UInt64] = [
        "b": 1, "bytes": 1, "KB": 1000, "k": 1024, "KiB": 1024, "MB": 1_000_000, "M": 1 << 20, "MiB": 1 << 20,
        "GB": 1_000_000_000, "G": 1 << 30, "GiB": 1 << 30, "TB": 1_000_000_000_000, "T": 1 << 40, "TiB": 1 << 40,
    ]

    /// A domain memory size in KiB, rounded up as libvirt does; nil outside 1 KiB ... 1 PiB.
    private static func size(_ element: Element) -> UInt64? {
        guard element.children.isEmpty, let value = whole(element.text, max: UInt64(TestNodeFile.maxKiB) << 10) else {
            return nil
        }
        var scale: UInt64 = 1024  // KiB without a unit
        for (key, unit) in element.attributes {
            guard key == "unit", let s = unitBytes[unit] else { return nil }
            scale = s
        }
        let bytes = value.multipliedReportingOverflow(by: scale)
        // 1 KiB ... 1 PiB, the range TestNodeFile admits.
        guard !bytes.overflow, bytes.partialValue >= 1024, bytes.partialValue <= UInt64(TestNodeFile.maxKiB) << 10 else {
            return nil
        }
        return (bytes.partialValue + 1023) / 1024
    }

    /// Digits only (libvirt's parsers would accept a sign or leading blanks, and wrap a minus sign): 0...max.
    private static func whole(_ text: String, max: UInt64) -> UInt64? {
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let value = UInt64(text), value >= 1, value <= max else { return nil }
        return value
    }

    private static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
    }

    /// 8-4-4-4-12 hex digits, lower-cased as libvirt prints them.
    private static func canonicalUUID(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return nil }
        for (i, b) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(i) { guard b == UInt8(ascii: "-") else { return nil }; continue }
            guard (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66) else { return nil }
        }
        return text.lowercased()
    }

    // MARK: - A strict XML subset

    struct Element {
        var name: String
        var attributes: [(String, String)] = []
        var children: [Element] = []
        /// Character data of this element (comments removed), for leaves.
        var text = ""
        /// Non-blank character data next to child elements (libvirt would ignore it; this reader refuses it).
        var hasText: Bool { !children.isEmpty && text.utf8.contains { !isBlank($0) } }
    }

    /// Elements, attributes in single or double quotes, character data and comments, in ASCII; an XML declaration
    /// at the start. Everything else (entity or character references, CDATA, processing instructions, DOCTYPE,
    /// namespace prefixes, `>` in text) makes `document()` return nil, as does anything not well formed.
    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        private var atEnd: Bool { i >= bytes.count }
        private func peek(_ offset: Int = 0) -> UInt8? { i + offset < bytes.count ? bytes[i + offset] : nil }

        private mutating func skipBlanks() { while let b = peek(), isBlank(b) { i += 1 } }

        private mutating func expect(_ literal: StaticString) -> Bool {
            let n = literal.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            let p = literal.utf8Start
            for k in 0..<n where bytes[i + k] != p[k] { return false }
            i += n
            return true
        }

        private func starts(with literal: StaticString) -> Bool {
            let n = literal.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            let p = literal.utf8Start
            for k in 0..<n where bytes[i + k] != p[k] { return false }
            return true
        }

        mutating func document() -> Element? {
            guard bytes.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || isBlank($0) }) else { return nil }
            if starts(with: "<?xml") {
                guard declaration() else { return nil }
            }
            guard misc(), let root = element(depth: 0), misc(), atEnd else { return nil }
            return root
        }

        /// `<?xml version='1.0' encoding='UTF-8' standalone='yes'?>`, each after the first optional.
        private mutating func declaration() -> Bool {
            guard expect("<?xml") else { return false }
            var seen: [String] = []
            while true {
                let before = i
                skipBlanks()
                if expect("?>") { return seen.first == "version" }
                guard i > before, let (key, value) = attribute() else { return false }
                switch key {
                case "version" where seen.isEmpty && value == "1.0": break
                case "encoding" where seen == ["version"] && value.lowercased() == "utf-8": break
                case "standalone" where seen.last == "version" || seen.last == "encoding":
                    guard value == "yes" || value == "no" else { return false }
                default: return false
                }
                seen.append(key)
            }
        }

        /// Blanks and comments between top-level items.
        private mutating func misc() -> Bool {
            while true {
                skipBlanks()
                if starts(with: "<!--") { guard comment() else { return false } } else { return true }
            }
        }

        private mutating func comment() -> Bool {
            guard expect("<!--") else { return false }
            while !atEnd {
                if starts(with: "--") { return expect("-->") }
                i += 1
            }
            return false
        }

        private mutating func name() -> String? {
            let start = i
            guard let first = peek(), isNameStart(first) else { return nil }
            i += 1
            while let b = peek(), isNameStart(b) || (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") {
                i += 1
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }

        private func isNameStart(_ b: UInt8) -> Bool {
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "_")
        }

        private mutating func attribute() -> (String, String)? {
            guard let key = name() else { return nil }
            skipBlanks()
            guard expect("=") else { return nil }
            skipBlanks()
            guard let quote = peek(), quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else { return nil }
            i += 1
            let start = i
            while let b = peek(), b != quote {
                // References and markup in values, and blanks libxml2 would normalise: not in the subset.
                guard b != UInt8(ascii: "<"), b != UInt8(ascii: "&"), b >= 0x20 else { return nil }
                i += 1
            }
            guard !atEnd else { return nil }
            let value = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            i += 1
            return (key, value)
        }

        private mutating func element(depth: Int) -> Element? {
            guard depth < 8, expect("<"), let tag = name() else { return nil }
            var element = Element(name: tag)
            while true {
                let before = i
                skipBlanks()
                if expect("/>") { return element }
                if expect(">") { break }
                guard i > before, let (key, value) = attribute(),
                      !element.attributes.contains(where: { $0.0 == key }) else { return nil }
                element.attributes.append((key, value))
            }
            var text: [UInt8] = []
            while true {
                guard let b = peek() else { return nil }
                if b == UInt8(ascii: "<") {
                    if starts(with: "</") {
                        i += 2
                        guard name() == tag else { return nil }
                        skipBlanks()
                        guard expect(">") else { return nil }
                        element.text = String(decoding: text, as: UTF8.self)
                        return element
                    }
                    if starts(with: "<!--") { guard comment() else { return nil }; continue }
                    guard let child = self.element(depth: depth + 1) else { return nil }
                    element.children.append(child)
                    continue
                }
                guard b != UInt8(ascii: "&"), b != UInt8(ascii: ">") else { return nil }
                text.append(b)
                i += 1
            }
        }
    }
}

private func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
