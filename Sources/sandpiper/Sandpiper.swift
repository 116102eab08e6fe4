import ArgumentParser
import Foundation
import SandpiperModel

@main
struct Sandpiper: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandpiper",
        abstract: "Declarative reconciler for libvirt/KVM fleets: hotspot detection, placement, migration.",
        discussion: """
        Describe hosts, VMs, SLAs and resource controls in Clusters/<name>/cluster.yaml; Sandpiper observes \
        the fleet through libvirt, detects hotspots (k of n samples over threshold, confirmed by an AR \
        prediction) and plans migrations and swaps that converge the fleet to the spec.

        Exit codes: 0 success (or no changes), 1 error or invalid input, 2 changes present \
        (plan/reconcile --detailed-exitcode), 64 argument mistakes.
        """,
        version: SandpiperVersion.current,
        subcommands: [Validate.self, Observe.self, Plan.self, Show.self, Apply.self, Reconcile.self, Run.self,
                      Simulate.self, Import.self, Schema.self, ForceUnlock.self, Bench.self])

    /// SIGPIPE is ignored process-wide before anything runs: libvirt's ssh transport writes to a pipe whose
    /// reader (ssh) may already have exited (host unreachable, refused, wrong key). The write then fails with
    /// EPIPE and the host is reported unknown, instead of the signal killing the run with its lock held.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        main(nil)
    }
}

/// Exit codes shared by every command (docs/DESIGN.md section 4).
extension ExitCode {
    static let invalid = ExitCode(1)
    static let changesPresent = ExitCode(2)
}
