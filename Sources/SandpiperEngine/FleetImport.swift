import Foundation
import SandpiperLibvirt
import SandpiperModel

/// `sandpiper import`: reads an existing libvirt fleet (each host's capacity, its running and defined domains and
/// their domain XML) and writes the cluster.yaml that declares it as it is, so `plan` finds nothing to converge.
/// What the spec cannot say is returned as notes for the operator, never dropped silently.
public enum FleetImport {
    public struct Domain: Sendable, Equatable {
        public var info: DomainInfo
        public var xml: String
        public init(info: DomainInfo, xml: String) { self.info = info; self.xml = xml }
    }

    public struct Host: Sendable, Equatable {
        /// The URI as the operator gave it (may carry credentials).
        public var uri: String
        public var info: SandpiperLibvirt.HostInfo
        public var domains: [Domain]
        public init(uri: String, info: SandpiperLibvirt.HostInfo, domains: [Domain]) {
            self.uri = uri; self.info = info; self.domains = domains
        }
    }

    /// The files an import writes: cluster.yaml text and templates (paths relative to the cluster directory).
    public struct Result: Sendable, Equatable {
        public var clusterYAML: String
        public var templates: [(path: String, xml: String)]
        public var notes: [String]
        public var hostNames: [String]
        public var vmNames: [String]

        public static func == (a: Result, b: Result) -> Bool {
            a.clusterYAML == b.clusterYAML && a.notes == b.notes && a.hostNames == b.hostNames
                && a.templates.map(\.path) == b.templates.map(\.path) && a.templates.map(\.xml) == b.templates.map(\.xml)
        }
    }

    /// Reads every URI (read-only connections, one at a time). Any host that cannot be read fails the import:
    /// a partial cluster.yaml would silently leave VMs out.
    public static func read(uris: [String]) throws(ImportError) -> [Host] {
        var hosts: [Host] = []
        for uri in uris {
            do throws(LibvirtError) {
                let c = try LibvirtConnection(uri: uri, readOnly: true, keepAlive: nil)
                defer { c.close() }
                let info = try c.hostInfo()
                var domains: [Domain] = []
                for d in try c.domains() {
                    domains.append(Domain(info: d, xml: try c.domainXML(d.name, inactive: true)))
                }
                hosts.append(Host(uri: uri, info: info, domains: domains))
            } catch {
                throw ImportError("cannot import \(LibvirtURI.redacted(uri)): \(error.message)")
            }
        }
        return hosts
    }

    /// The host's name in the spec: the file name for a test-driver node file (its hostname is this machine's),
    /// otherwise the short hostname; characters a name cannot hold become `-`. Editable afterwards.
    static func proposedName(_ host: Host) -> String {
        var base = host.info.hostname.split(separator: ".").first.map(String.init) ?? ""
        let path = host.uri.split(separator: "?", maxSplits: 1).first ?? ""
        if LibvirtURI.isTestDriver(host.uri), let file = path.split(separator: "/").last,
           !file.isEmpty, file != "default" {
            base = String(file.split(separator: ".").first ?? file)
        }
        var name = String(base.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "-" })
        while let f = name.first, !(f.isLetter || f.isNumber) { name.removeFirst() }
        return name.isEmpty ? "host" : String(name.prefix(120))
    }

    static func isValidName(_ s: String) -> Bool {
        s.first.map { $0.isLetter || $0.isNumber } == true && s.count <= 128
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    /// Builds the cluster.yaml (or, with `existing`, the hosts and VMs to add to it) from what was read.
    /// `takenHosts`/`takenVMs` are names already declared (`--add-to`); a clash is an error, never a rename of a VM.
    public static func render(_ hosts: [Host], name: String, keepCredentials: Bool,
                              takenHosts: Set<String> = [], takenVMs: Set<String> = []) throws(ImportError) -> Result {
        var notes: [String] = []
        var usedHosts = takenHosts
        var hostEntries: [(name: String, host: Host)] = []
        for h in hosts {
            var candidate = proposedName(h), n = 2
            while usedHosts.contains(candidate) { candidate = "\(proposedName(h))-\(n)"; n += 1 }
            usedHosts.insert(candidate)
            hostEntries.append((candidate, h))
        }
        // A domain defined on two hosts (an interrupted migration) is declared once: the running copy.
        var chosen: [String: (host: String, domain: Domain)] = [:]
        for (hostName, h) in hostEntries {
            for d in h.domains {
                guard isValidName(d.info.name) else {
                    notes.append("\(hostName): domain \"\(d.info.name)\" left out: not a valid Sandpiper name "
                        + "(letters, digits, '-', '_' and '.'); rename it in libvirt to manage it")
                    continue
                }
                if let other = chosen[d.info.name] {
                    let keepNew = d.info.state == .running && other.domain.info.state != .running
                    notes.append("\(d.info.name) is defined on \(other.host) and \(hostName); declared once, "
                        + "from \(keepNew ? hostName : other.host)")
                    if keepNew { chosen[d.info.name] = (hostName, d) }
                    continue
                }
                chosen[d.info.name] = (hostName, d)
            }
        }
        let clashes = chosen.keys.filter { takenVMs.contains($0) }.sorted()
        if !clashes.isEmpty {
            throw ImportError("already declared in the cluster: \(clashes.joined(separator: ", ")) (remove them there or "
                + "from the hosts to import; VMs are never renamed)")
        }

        var hostLines: [String] = []
        for (hostName, h) in hostEntries {
            let uri = keepCredentials ? h.uri : LibvirtURI.redacted(h.uri)
            if uri != h.uri {
                notes.append("\(hostName): credentials in the URI are written as *** (use --keep-credentials "
                    + "to keep them, or an ssh agent / libvirt auth file)")
            }
            hostLines.append("  - name: \(scalar(hostName))")
            hostLines.append("    uri: \(quoted(uri))")
            hostLines.append("    capacity: {cpus: \(h.info.cpus), memory: \(h.info.memoryMiB)MiB}")
            notes.append("\(hostName): network capacity cannot be read through libvirt; 1Gbit is assumed "
                + "(set hosts[].capacity.network)")
        }

        var vmLines: [String] = []
        var templates: [(String, String)] = []
        for vmName in chosen.keys.sorted() {
            let (hostName, d) = chosen[vmName]!
            let i = d.info
            let path = "templates/\(vmName).xml"
            templates.append((path, d.xml.hasSuffix("\n") ? d.xml : d.xml + "\n"))
            vmLines.append("  - name: \(scalar(vmName))    # on \(hostName)")
            vmLines.append("    vcpus: \(i.vcpus)")
            vmLines.append("    memory: \(i.maxMemoryMiB)MiB")
            vmLines.append("    template: \(quoted(path))")
            // Observed CPU shares kept as they are, so the first plan does not retune every VM.
            if let shares = i.cpuTune?.shares, shares > 0, shares <= 1_000_000,
               Int(shares) != Shares.normal.cpuShares(vcpus: i.vcpus) {
                vmLines.append("    resources: {cpu: {shares: \(shares)}}")
            }
            switch i.state {
            case .running: break
            case .paused:
                notes.append("\(vmName) is paused on \(hostName): declared; the spec has no paused state")
            case .shutoff, .other:
                notes.append("\(vmName) is \(i.state.rawValue) on \(hostName): declared, but the spec has no "
                    + "stopped state, so plan reports it as declared but not running")
            }
            if i.vcpus != i.maxVcpus {
                notes.append("\(vmName): \(i.vcpus) of \(i.maxVcpus) vCPUs online; declared \(i.vcpus)")
            }
            if i.memoryMiB != i.maxMemoryMiB {
                notes.append("\(vmName): balloon at \(i.memoryMiB) MiB of \(i.maxMemoryMiB) MiB; declared the maximum")
            }
            if !i.persistent {
                notes.append("\(vmName) is transient on \(hostName): its live XML is saved as its template")
            }
            if i.autostart { notes.append("\(vmName): autostart is set in libvirt; the spec does not manage it") }
            if let m = i.memoryTune, m.hardLimitMiB != nil || m.softLimitMiB != nil {
                notes.append("\(vmName): <memtune> limits are not imported (declare resources.memory.limit)")
            }
            if let q = i.cpuTune?.quota, q > 0 {
                notes.append("\(vmName): CPU quota \(q)us is not imported (declare resources.cpu.limit)")
            }
        }

        var yaml = """
        apiVersion: sandpiper/v1
        kind: Cluster
        name: \(scalar(name))
        policy: default                      # Policies/default.yaml at the repository root
        telemetry:
          source: libvirt
          interval: 10s
        hosts:                               # imported by `sandpiper import`; names are editable

        """
        yaml += hostLines.joined(separator: "\n") + "\n"
        if !vmLines.isEmpty { yaml += "vms:\n" + vmLines.joined(separator: "\n") + "\n" }
        return Result(clusterYAML: yaml, templates: templates, notes: notes,
                      hostNames: hostEntries.map(\.name), vmNames: chosen.keys.sorted())
    }

    /// The host and VM items of `result` inserted into an existing cluster.yaml's `hosts:` and `vms:` block
    /// sequences (comments and layout of the rest are kept). Throws when a block cannot be found.
    public static func merge(_ result: Result, into existing: String) throws(ImportError) -> String {
        let newHosts = items(of: "hosts", in: result.clusterYAML)
        let newVMs = items(of: "vms", in: result.clusterYAML)
        var lines = existing.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        func insert(_ key: String, _ items: [String]) throws(ImportError) {
            guard !items.isEmpty else { return }
            guard let start = lines.firstIndex(where: { topLevelKey($0) == key }) else {
                lines.append("\(key):")
                lines.append(contentsOf: items)
                return
            }
            let rest = lines[start].drop { $0 != ":" }.dropFirst().trimmingCharacters(in: .whitespaces)
            if !rest.isEmpty && !rest.hasPrefix("#") {
                throw ImportError("cannot add to \(key): it is not a block list (\"\(key): \(rest)\"); write it as one "
                    + "item per line")
            }
            let end = lines[(start + 1)...].firstIndex { topLevelKey($0) != nil || $0 == "---" || $0 == "..." }
                ?? lines.count
            // Keep the list's own indentation.
            let first = lines[(start + 1)..<end].first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- ") }
            let indent = first.map { String($0.prefix { $0 == " " }) } ?? "  "
            let body = items.map { $0.hasPrefix("  ") ? indent + $0.dropFirst(2) : $0 }
            var at = end
            while at > start + 1, lines[at - 1].trimmingCharacters(in: .whitespaces).isEmpty { at -= 1 }
            lines.insert(contentsOf: body, at: at)
        }
        try insert("hosts", newHosts)
        try insert("vms", newVMs)
        return lines.joined(separator: "\n") + "\n"
    }

    /// `key` when `line` starts a top-level mapping key (`hosts:`), nil otherwise.
    static func topLevelKey(_ line: String) -> String? {
        guard let f = line.first, f.isLetter, let colon = line.firstIndex(of: ":") else { return nil }
        let key = line[..<colon]
        return key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } ? String(key) : nil
    }

    /// The item lines under a top-level key of a document this file rendered.
    static func items(of key: String, in yaml: String) -> [String] {
        let lines = yaml.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { topLevelKey($0) == key }) else { return [] }
        let end = lines[(start + 1)...].firstIndex { topLevelKey($0) != nil } ?? lines.count
        return lines[(start + 1)..<end].filter { !$0.isEmpty }
    }

    /// A plain YAML scalar when unambiguous, a double-quoted one otherwise.
    static func scalar(_ s: String) -> String {
        let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"]
        let plain = s.first.map(\.isLetter) == true && !reserved.contains(s.lowercased())
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        return plain ? s : quoted(s)
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\x%02X", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// The policy written when the repository has none of that name: plan only.
    public static let defaultPolicyYAML = """
        apiVersion: sandpiper/v1
        kind: Policy
        automation: manual                   # written by `sandpiper import`: plan only, nothing applied by reconcile

        """
}

/// Why an import wrote nothing.
public struct ImportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
