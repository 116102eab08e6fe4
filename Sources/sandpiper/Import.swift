import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperModel

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Write a cluster.yaml for an existing libvirt fleet.",
        discussion: """
        Reads each host's capacity and its running and defined domains through libvirt (read-only) and writes \
        Clusters/<name>/cluster.yaml declaring them as they are: hosts (named from their hostname; edit freely), \
        VMs with vcpus and memory, each domain's XML as its template, no pins. Writes Policies/default.yaml \
        (automation: manual) when the repository has none. Prints what the spec could not express. \
        Credentials in the URIs are written as *** unless --keep-credentials. --add-to adds the hosts and their \
        VMs to an existing cluster, keeping the rest of its file as written. Nothing is written when any host \
        cannot be read or the result would not validate.
        """)

    @Argument(help: "libvirt URIs of the hosts (qemu+ssh://pm1/system, test:///abs/path/node.xml, ...).")
    var uris: [String]

    @Option(help: "Name of the new cluster.")
    var name: String?

    @Option(help: "Directory to write, as <repository>/Clusters/<name> (default: Clusters/<name> under the current repository); the policy goes to <repository>/Policies/, two levels up, where validate and plan look for it.")
    var out: String?

    @Option(help: "Add the hosts to this existing cluster directory instead of writing a new one.")
    var addTo: String?

    @Flag(help: "Write URIs with their passwords and key paths (default: replaced by ***).")
    var keepCredentials = false

    func validate() throws {
        if uris.isEmpty { throw ValidationError("give at least one libvirt URI") }
        if let out {
            let repository = URL(fileURLWithPath: out).standardizedFileURL.deletingLastPathComponent().deletingLastPathComponent()
            if repository.path == "/" {
                throw ValidationError("--out \(out): a cluster directory sits in a repository as <repository>/Clusters/<name>, "
                    + "and its policy two levels up in <repository>/Policies/ (here that would be /Policies); "
                    + "pass e.g. --out \(out)/Clusters/\(name ?? "NAME")")
            }
        }
        if addTo != nil && (name != nil || out != nil) {
            throw ValidationError("--add-to adds to an existing cluster: --name and --out do not apply")
        }
        if addTo == nil {
            guard let name else { throw ValidationError("--name is required (or --add-to DIR)") }
            guard FleetImportNames.valid(name) else {
                throw ValidationError("\"\(name)\" is not a valid cluster name (letters, digits, '-', '_' and '.')")
            }
        }
    }

    func run() throws {
        do {
            if let addTo { try add(to: addTo) } else { try create() }
        } catch let e as ImportError {
            Output.error("error: \(e)")
            throw ExitCode.invalid
        } catch let e as LoadError {
            Output.error("error: \(e)")
            throw ExitCode.invalid
        }
    }

    private func create() throws {
        let name = self.name!
        let dir = URL(fileURLWithPath: out ?? repositoryRoot().appendingPathComponent("Clusters/\(name)").path)
            .standardizedFileURL
        let specFile = dir.appendingPathComponent("cluster.yaml")
        if FileManager.default.fileExists(atPath: specFile.path) {
            throw ImportError("\(specFile.path) exists; use --add-to \(dir.path) to add hosts to it")
        }
        let result = try FleetImport.render(try FleetImport.read(uris: uris), name: name,
                                            keepCredentials: keepCredentials)
        try check(result.clusterYAML, file: specFile.path, directory: dir, templates: result.templates.map(\.path))
        try write(result, clusterYAML: result.clusterYAML, into: dir)
        try writePolicyIfMissing(clusterDirectory: dir)
        _ = try ClusterLoader.load(dir.path)
        report(result, file: specFile.path)
    }

    private func add(to path: String) throws {
        let loaded = try ClusterLoader.load(path)
        let existing = try String(contentsOf: loaded.specFile, encoding: .utf8)
        let result = try FleetImport.render(try FleetImport.read(uris: uris), name: loaded.spec.name,
                                            keepCredentials: keepCredentials,
                                            takenHosts: Set(loaded.spec.hosts.map(\.name)),
                                            takenVMs: Set(loaded.spec.vms.map(\.name)))
        for t in result.templates where FileManager.default.fileExists(atPath: loaded.resolve(t.path).path) {
            throw ImportError("\(loaded.resolve(t.path).path) exists; move it away or rename the domain")
        }
        let merged = try FleetImport.merge(result, into: existing)
        try check(merged, file: loaded.specFile.path, directory: loaded.directory,
                  templates: result.templates.map(\.path))
        try write(result, clusterYAML: merged, into: loaded.directory)
        _ = try ClusterLoader.load(path)
        report(result, file: loaded.specFile.path)
    }

    /// The spec must validate before anything is written (templates count as present).
    private func check(_ yaml: String, file: String, directory: URL, templates: [String]) throws {
        let pending = Set(templates)
        let (_, _, diagnostics) = SpecDecoder.check(yaml, file: file) { relative in
            pending.contains(relative)
                || FileManager.default.fileExists(atPath: directory.appendingPathComponent(relative).path)
        }
        if !diagnostics.isEmpty {
            for d in diagnostics { Output.error("error: \(d)") }
            throw ImportError("the imported spec would not validate; nothing written")
        }
    }

    private func write(_ result: FleetImport.Result, clusterYAML: String, into dir: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("templates"), withIntermediateDirectories: true)
        for t in result.templates {
            try Data(t.xml.utf8).write(to: dir.appendingPathComponent(t.path), options: .atomic)
        }
        try Data(clusterYAML.utf8).write(to: dir.appendingPathComponent("cluster.yaml"), options: .atomic)
    }

    /// Policies/default.yaml at the repository part that holds Clusters/ (the cluster directory's grandparent).
    private func writePolicyIfMissing(clusterDirectory dir: URL) throws {
        let policies = dir.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Policies")
        let file = policies.appendingPathComponent("default.yaml")
        guard !FileManager.default.fileExists(atPath: file.path) else { return }
        try FileManager.default.createDirectory(at: policies, withIntermediateDirectories: true)
        try Data(FleetImport.defaultPolicyYAML.utf8).write(to: file, options: .atomic)
        print("wrote \(file.path) (automation: manual)")
    }

    private func report(_ result: FleetImport.Result, file: String) {
        print("imported \(result.hostNames.count) host\(result.hostNames.count == 1 ? "" : "s") "
            + "(\(result.hostNames.joined(separator: ", "))) and \(result.vmNames.count) VM"
            + "\(result.vmNames.count == 1 ? "" : "s") into \(file)")
        if !result.notes.isEmpty {
            print("not expressed in the spec:")
            for n in result.notes { print("  - \(n)") }
        }
    }

    /// The enclosing git work tree (the directory holding `.git`), else the current directory.
    private func repositoryRoot() -> URL {
        var dir = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }
}

enum FleetImportNames {
    static func valid(_ s: String) -> Bool {
        s.first.map { $0.isLetter || $0.isNumber } == true && s.count <= 128
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }
}
