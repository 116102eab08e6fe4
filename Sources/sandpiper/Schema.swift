import ArgumentParser
import SandpiperModel

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the JSON Schema of cluster.yaml or of a policy file.",
        discussion: """
        Generated from the decoder's own key tables, so it accepts exactly the keys `validate` accepts, with \
        their value forms (units, enums, ranges). For editors: the checked-in copies are docs/schema/\
        cluster.schema.json and docs/schema/policy.schema.json. Cross-references (SLA, host and VM names, \
        files) are checked by `validate` only.
        """)

    @Argument(help: "cluster or policy.")
    var document: SpecSchema.Document

    func run() { print(SpecSchema.json(document), terminator: "") }
}

extension SpecSchema.Document: ExpressibleByArgument {}
