import Foundation
import SandpiperLibvirt

/// Real Linux guests for the integration tests: the Debian cloud kernel and a busybox initramfs with
/// virtio_balloon (Tests/Guest/linux-guest.sh, the verified lab recipe), booted under TCG. Their CPU and memory
/// load is set on the kernel command line or at run time through the serial console (`virDomainOpenConsole`).
/// The image is built once per test run and cached under .build/guest-image.
public enum LinuxGuest {
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    public static let script = repositoryRoot.appendingPathComponent("Tests/Guest/linux-guest.sh")
    static let imageDir = repositoryRoot.appendingPathComponent(".build/guest-image")
    static let kernelDir = repositoryRoot.appendingPathComponent(".build/guest-kernel")

    /// Why no guest can be built here, or nil (the QEMU lab's own prerequisites come first).
    public static func unavailableReason() -> String? {
        if let reason = QemuLab.unavailableReason() { return reason }
        for pkg in ["busybox-static", "cpio"] where (try? QemuLab.run("/usr/bin/dpkg-query", ["-W", "-f=${Status}", pkg]))?
            .contains("install ok installed") != true {
            return "\(pkg) is not installed: run .ci/install-deps"
        }
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/cpio") && !FileManager.default.isExecutableFile(atPath: "/bin/cpio") {
            return "cpio is missing: run .ci/install-deps"
        }
        if kernelDeb() == nil && ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? [])
            .contains(where: { $0.hasPrefix("vmlinuz-") && $0.hasSuffix("-cloud-amd64") }) == false {
            return "no guest kernel: run .ci/install-deps (it fetches linux-image-cloud-amd64 into .build/guest-kernel)"
        }
        return nil
    }

    static func kernelDeb() -> URL? {
        ((try? FileManager.default.contentsOfDirectory(atPath: kernelDir.path)) ?? [])
            .filter { $0.hasPrefix("linux-image-") && $0.hasSuffix(".deb") }.sorted().last
            .map { kernelDir.appendingPathComponent($0) }
    }

    private static let built: Result<URL, Error> = {
        let fm = FileManager.default
        let files = ["vmlinuz", "initrd.img", "kernel-version"].map { imageDir.appendingPathComponent($0).path }
        func modified(_ p: String) -> Date { ((try? fm.attributesOfItem(atPath: p))?[.modificationDate] as? Date) ?? .distantPast }
        let fresh = files.allSatisfy { fm.fileExists(atPath: $0) }
            && modified(files[1]) > modified(script.path) && modified(files[1]) > (kernelDeb().map { modified($0.path) } ?? .distantPast)
        if fresh { return .success(imageDir) }
        do {
            var env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
            if let deb = kernelDeb() { env.append("KERNEL_DEB=\(deb.path)") }
            try QemuLab.run("/usr/bin/env", env + ["/bin/bash", script.path, "build", imageDir.path])
            // The daemons run as another user (session mode): the image must be readable on the whole path.
            try QemuLab.run("/bin/chmod", ["755", imageDir.deletingLastPathComponent().path])
            return .success(imageDir)
        } catch { return .failure(error) }
    }()

    /// The image directory (vmlinuz, initrd.img), built on first use in this process.
    public static func image() throws -> URL { try built.get() }

    /// Domain XML for a guest: 1 vCPU and 512 MiB by default; `load` like the kernel's sp.load (cpu[:N[:PCT]]),
    /// `allocMiB` held in tmpfs from boot; `statsPeriod` 0 leaves the balloon without a stats period.
    /// `disk`: a qcow2 image path (as the daemon sees it) attached as the virtio disk vda.
    public static func xml(name: String, uuid: String, vcpus: Int = 1, memoryMiB: Int = 512, load: String? = nil,
                           allocMiB: Int? = nil, statsPeriod: Int = 2, disk: String? = nil) throws -> String {
        var args = [script.path, "xml", try image().path, name, "--uuid", uuid, "--vcpus", "\(vcpus)",
                    "--mem", "\(memoryMiB)", "--stats-period", "\(statsPeriod)"]
        if let load { args += ["--load", load] }
        if let disk { args += ["--disk", disk + ":qcow2"] }
        if let allocMiB { args += ["--alloc", "\(allocMiB)"] }
        return try QemuLab.run("/bin/bash", args)
    }

    /// Waits until the guest's /init answers on its console (boot takes ~3 s under TCG, longer on a busy box).
    public static func waitUntilReady(_ conn: LibvirtConnection, _ name: String, timeout: TimeInterval = 90) throws -> DomainConsole {
        let deadline = Date().addingTimeInterval(timeout)
        let console = try conn.openConsole(name)
        var lastError: Error?
        while Date() < deadline {
            do { _ = try console.command("stat", answerPrefix: "SP stat", timeout: 3); return console }
            catch { lastError = error }
        }
        console.close()
        throw lastError ?? NSError(domain: "LinuxGuest", code: 1)
    }

    /// Sends a console command (`cpu N [PCT]`, `mem MiB`, `stop`, `stat`) and returns the guest's answer line.
    @discardableResult
    public static func command(_ conn: LibvirtConnection, _ name: String, _ line: String,
                               timeout: TimeInterval = 60) throws -> String {
        let console = try conn.openConsole(name)
        defer { console.close() }
        let word = line.split(separator: " ").first.map(String.init) ?? line
        return try console.command(line, answerPrefix: "SP \(word)", timeout: timeout)
    }

    /// The guest's own view of its memory (from `stat`): MemTotal, MemFree, MemAvailable in MiB.
    public static func meminfo(_ conn: LibvirtConnection, _ name: String) throws -> (total: Double, free: Double, available: Double) {
        let line = try command(conn, name, "stat")
        func field(_ key: String) -> Double {
            guard let r = line.range(of: key + ": ") else { return .nan }
            return Double(line[r.upperBound...].prefix { $0.isNumber }).map { $0 / 1024 } ?? .nan
        }
        return (field("MemTotal"), field("MemFree"), field("MemAvailable"))
    }
}

/// One pair of daemons (A, B) per mode, shared by every test in this process that asks for it, stopped at exit.
/// Tests add guests with their own names and remove them (`removeGuests`) when done.
public final class SharedQemuLab: @unchecked Sendable {
    public let lab: QemuLab
    public let a: LibvirtConnection
    public let b: LibvirtConnection
    private static let lock = NSLock()
    nonisolated(unsafe) private static var labs: [QemuLab.Mode: SharedQemuLab] = [:]
    nonisolated(unsafe) private static var guests: Set<String> = []

    private init(mode: QemuLab.Mode) throws {
        lab = try QemuLab(mode: mode)
        let base = mode == .session ? 50100 : 50400
        (a, b) = try lab.startPair(
            hostUUIDs: mode == .session ? ("a1a1a1a1-0000-4000-8000-00000000000a", "b1b1b1b1-0000-4000-8000-00000000000b")
                                        : ("a2a2a2a2-0000-4000-8000-00000000000a", "b2b2b2b2-0000-4000-8000-00000000000b"),
            migrationPortMin: base)
    }

    /// The shared lab for `mode`, started on first use.
    public static func get(_ mode: QemuLab.Mode = .session) throws -> SharedQemuLab {
        lock.lock(); defer { lock.unlock() }
        if let l = labs[mode] { return l }
        let l = try SharedQemuLab(mode: mode)
        if labs.isEmpty { atexit { SharedQemuLab.stopAll() } }
        labs[mode] = l
        return l
    }

    public func connection(_ name: String) -> LibvirtConnection { name == "A" ? a : b }
    public func uri(_ name: String) -> String { lab.uri(name) }

    /// Defines and starts a Linux guest on daemon `on` and waits until it answers on its console.
    public func startGuest(_ name: String, on host: String, uuid: String, load: String? = nil, allocMiB: Int? = nil,
                           statsPeriod: Int = 2, memoryMiB: Int = 512, disk: String? = nil) throws {
        Self.lock.lock(); Self.guests.insert(name); Self.lock.unlock()
        let c = connection(host)
        _ = try c.define(xml: try LinuxGuest.xml(name: name, uuid: uuid, memoryMiB: memoryMiB, load: load,
                                                 allocMiB: allocMiB, statsPeriod: statsPeriod, disk: disk))
        try c.start(name)
        let t = Date()
        try LinuxGuest.waitUntilReady(c, name).close()
        lab.log(String(format: "guest %@ ready on %@ after %.1f s", name, host, Date().timeIntervalSince(t)))
    }

    /// Destroys and undefines `names` on both daemons (whatever state a test left them in).
    public func removeGuests(_ names: [String]) {
        for c in [a, b] {
            for n in names {
                try? c.destroy(n)
                try? c.undefine(n)
            }
        }
        lab.killGuests(names)
    }

    static func stopAll() {
        lock.lock(); let all = labs; let names = Array(guests); lock.unlock()
        for l in all.values {
            l.removeGuests(names)
            l.a.close(); l.b.close()
            l.lab.stopDaemons()
        }
    }
}
