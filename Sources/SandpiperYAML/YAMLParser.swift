internal import CYAML

/// Parses one YAML document into a `YAMLNode` tree using libyaml's event API.
///
/// Behaviour, in short:
/// - Input larger than `limits.maxBytes` is refused before libyaml sees it.
/// - An empty stream (nothing, or only comments/whitespace) and a bare `---` with no
///   content both yield `nil`.
/// - More than one document in the stream is an error.
/// - Anchors and aliases are expanded: an alias becomes a copy of the anchored node. The
///   copy's root takes the alias's mark (where the value appears); nodes inside it keep the
///   marks of the anchored text. Every node produced, including every node an alias expands
///   to, counts against `limits.maxNodes`; an alias whose anchored subtree would exceed the
///   budget is refused before it is copied. Expanded aliases also count against
///   `limits.maxDepth`.
/// - Mapping keys must be scalars (an alias to a scalar is fine). Two scalar keys with the
///   same text in one mapping are a duplicate, whatever their quoting style.
/// - Merge keys (a plain `<<` key) are not supported and are rejected with an error;
///   a quoted `"<<"` is an ordinary key.
/// - Explicit tags are kept; the standard `tag:yaml.org,2002:` prefix is shown as `!!`,
///   so `!!str` stays `!!str`.
/// - Marks are 1-based line and column.
public enum YAMLParser {
    public static func parse(_ text: String, limits: YAMLLimits = .default) throws -> YAMLNode? {
        // `utf8.count` is O(1) for native strings: a huge input is refused without copying it.
        try checkSize(text.utf8.count, limits: limits)
        var text = text
        return try text.withUTF8 { try parse(buffer: $0, limits: limits) }
    }

    public static func parse(bytes: [UInt8], limits: YAMLLimits = .default) throws -> YAMLNode? {
        try checkSize(bytes.count, limits: limits)
        return try bytes.withUnsafeBufferPointer { try parse(buffer: $0, limits: limits) }
    }

    private static func checkSize(_ count: Int, limits: YAMLLimits) throws {
        if count > limits.maxBytes {
            throw YAMLError("document is \(count) bytes; the limit is \(limits.maxBytes)")
        }
    }

    private static func parse(buffer: UnsafeBufferPointer<UInt8>, limits: YAMLLimits) throws -> YAMLNode? {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return nil }

        // The parser lives on the heap: libyaml's string reader keeps a pointer to the
        // parser struct itself, so its address must stay fixed across calls.
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            throw YAMLError("libyaml: cannot initialize the parser (out of memory)")
        }
        defer { yaml_parser_delete(parser) }
        yaml_parser_set_input_string(parser, base, buffer.count)

        let event = UnsafeMutablePointer<yaml_event_t>.allocate(capacity: 1)
        defer { event.deallocate() }

        var builder = TreeBuilder(limits: limits)
        while true {
            guard yaml_parser_parse(parser, event) == 1 else {
                throw libyamlError(parser.pointee)
            }
            defer { yaml_event_delete(event) }
            if event.pointee.type == YAML_STREAM_END_EVENT { break }
            try builder.handle(event.pointee)
        }
        return builder.result
    }

    private static func libyamlError(_ p: yaml_parser_t) -> YAMLError {
        let problem = p.problem.map { String(cString: $0) } ?? "unknown error"
        switch p.error {
        case YAML_MEMORY_ERROR:
            return YAMLError("libyaml: out of memory")
        case YAML_READER_ERROR:
            // The reader reports a byte offset rather than a line and column.
            var message = "\(problem) at byte \(p.problem_offset)"
            if p.problem_value != -1 {
                message += " (value 0x\(String(UInt32(bitPattern: p.problem_value), radix: 16)))"
            }
            return YAMLError(message)
        default:
            var message = problem
            if let context = p.context.map({ String(cString: $0) }) {
                message += " (\(context) at \(mark(p.context_mark)))"
            }
            return YAMLError(message, mark: mark(p.problem_mark))
        }
    }
}

/// libyaml marks are 0-based.
private func mark(_ m: yaml_mark_t) -> Mark {
    Mark(line: Int(m.line) + 1, column: Int(m.column) + 1)
}

private func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
    p.map { String(cString: $0) }
}

private func tagString(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
    guard let tag = string(p) else { return nil }
    let standard = "tag:yaml.org,2002:"
    if tag.hasPrefix(standard) { return "!!" + tag.dropFirst(standard.count) }
    return tag
}

/// Builds the node tree from the event stream with an explicit stack (no recursion), so a
/// hostile nesting depth cannot overflow the call stack: it is refused at `maxDepth`.
private struct TreeBuilder {
    struct Frame {
        var isMapping: Bool
        var mark: Mark
        var tag: String?
        var anchor: String?
        /// `nodeCount` when this collection started (itself included), to size the subtree.
        var startCount: Int
        /// Height of the tallest child (a scalar has height 0, a collection 1 + its children).
        var childHeight = 0
        var items: [YAMLNode] = []
        var pairs: [YAMLPair] = []
        var pendingKey: YAMLNode?
        /// Key text -> mark of its first occurrence; filled once the mapping grows past a few keys.
        var keyIndex: [String: Mark] = [:]
    }

    struct Anchored {
        var node: YAMLNode
        /// Nodes in the subtree, counting expanded aliases inside it.
        var size: Int
        var height: Int
    }

    let limits: YAMLLimits
    var stack: [Frame] = []
    var anchors: [String: Anchored] = [:]
    var nodeCount = 0
    var documents = 0
    var result: YAMLNode?

    init(limits: YAMLLimits) { self.limits = limits }

    mutating func handle(_ e: yaml_event_t) throws {
        switch e.type {
        case YAML_STREAM_START_EVENT, YAML_DOCUMENT_END_EVENT:
            break
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                throw YAMLError("only one YAML document is allowed", mark: mark(e.start_mark))
            }
        case YAML_SCALAR_EVENT:
            let s = e.data.scalar
            let at = mark(e.start_mark)
            try count(1, at: at)
            let value = s.value.map {
                String(decoding: UnsafeBufferPointer(start: $0, count: s.length), as: UTF8.self)
            } ?? ""
            let node = YAMLNode(kind: .scalar(value, plain: s.style == YAML_PLAIN_SCALAR_STYLE),
                                mark: at, tag: tagString(s.tag))
            if let anchor = string(s.anchor) {
                anchors[anchor] = Anchored(node: node, size: 1, height: 0)
            }
            try add(node, height: 0)
        case YAML_SEQUENCE_START_EVENT:
            let s = e.data.sequence_start
            try open(mapping: false, at: mark(e.start_mark), tag: tagString(s.tag), anchor: string(s.anchor))
        case YAML_MAPPING_START_EVENT:
            let s = e.data.mapping_start
            try open(mapping: true, at: mark(e.start_mark), tag: tagString(s.tag), anchor: string(s.anchor))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            try close()
        case YAML_ALIAS_EVENT:
            let at = mark(e.start_mark)
            let name = string(e.data.alias.anchor) ?? ""
            guard let anchored = anchors[name] else {
                if stack.contains(where: { $0.anchor == name }) {
                    throw YAMLError("alias *\(name) refers to a node that contains it (recursive alias)", mark: at)
                }
                throw YAMLError("alias *\(name) refers to an unknown anchor", mark: at)
            }
            // Refuse before copying: the budget check uses the cached subtree size.
            try count(anchored.size, at: at)
            if anchored.height > 0 && stack.count + anchored.height > limits.maxDepth {
                throw depthError(at)
            }
            var node = anchored.node
            node.mark = at
            try add(node, height: anchored.height)
        default:
            break
        }
    }

    private mutating func count(_ n: Int, at: Mark) throws {
        if n > limits.maxNodes - nodeCount {
            throw YAMLError("document expands to more than \(limits.maxNodes) nodes (alias bomb?)", mark: at)
        }
        nodeCount += n
    }

    private func depthError(_ at: Mark) -> YAMLError {
        YAMLError("document nests deeper than \(limits.maxDepth) levels", mark: at)
    }

    private mutating func open(mapping: Bool, at: Mark, tag: String?, anchor: String?) throws {
        if stack.count >= limits.maxDepth { throw depthError(at) }
        try count(1, at: at)
        stack.append(Frame(isMapping: mapping, mark: at, tag: tag, anchor: anchor, startCount: nodeCount - 1))
    }

    private mutating func close() throws {
        guard let frame = stack.popLast() else { return }
        let node = YAMLNode(kind: frame.isMapping ? .mapping(frame.pairs) : .sequence(frame.items),
                            mark: frame.mark, tag: frame.tag)
        let height = frame.childHeight + 1
        if let anchor = frame.anchor {
            anchors[anchor] = Anchored(node: node, size: nodeCount - frame.startCount, height: height)
        }
        try add(node, height: height)
    }

    private mutating func add(_ node: YAMLNode, height: Int) throws {
        guard !stack.isEmpty else {
            // The root. A bare `---` yields an empty, untagged plain scalar: an empty document.
            if case .scalar("", plain: true) = node.kind, node.tag == nil {
                result = nil
            } else {
                result = node
            }
            return
        }
        let top = stack.count - 1
        stack[top].childHeight = max(stack[top].childHeight, height)
        guard stack[top].isMapping else {
            stack[top].items.append(node)
            return
        }
        if let key = stack[top].pendingKey {
            stack[top].pairs.append(YAMLPair(key: key, value: node))
            stack[top].pendingKey = nil
            return
        }
        guard case .scalar(let text, let plain) = node.kind else {
            let what = if case .sequence = node.kind { "a sequence" } else { "a mapping" }
            throw YAMLError("mapping keys must be scalars, found \(what)", mark: node.mark)
        }
        if plain && text == "<<" && node.tag == nil {
            throw YAMLError("merge keys (<<) are not supported; write the keys out", mark: node.mark)
        }
        if let first = firstOccurrence(of: text, in: top) {
            throw YAMLError("duplicate key \"\(text)\" (first at \(first))", mark: node.mark)
        }
        stack[top].pendingKey = node
    }

    /// Linear scan for small mappings; past a few keys, a dictionary keeps this O(1).
    private mutating func firstOccurrence(of text: String, in top: Int) -> Mark? {
        let smallLimit = 8
        let pairCount = stack[top].pairs.count
        if pairCount < smallLimit {
            for pair in stack[top].pairs {
                if case .scalar(text, _) = pair.key.kind { return pair.key.mark }
            }
            return nil
        }
        if stack[top].keyIndex.isEmpty {
            for pair in stack[top].pairs {
                if case .scalar(let t, _) = pair.key.kind, stack[top].keyIndex[t] == nil {
                    stack[top].keyIndex[t] = pair.key.mark
                }
            }
        } else if let last = stack[top].pairs.last, case .scalar(let t, _) = last.key.kind {
            // Index the key added since the previous lookup.
            if stack[top].keyIndex[t] == nil { stack[top].keyIndex[t] = last.key.mark }
        }
        return stack[top].keyIndex[text]
    }
}
