import CLibYAML

/// Why a document was refused, and where. The reason is libyaml's own fixed wording or ours: never text
/// from the document, which may hold every secret of the host.
public struct YAMLError: Error, Sendable, Equatable {
    public let line: Int
    public let column: Int
    public let reason: String

    public init(line: Int, column: Int, reason: String) {
        self.line = line
        self.column = column
        self.reason = reason
    }

    /// "line 3, column 7: reason", or the reason alone when there is no position.
    public var located: String { line > 0 ? "line \(line), column \(column): \(reason)" : reason }
}

/// Reads one YAML document the way PyYAML's `safe_load` (Synapse's loader) accepts it, within bounds.
///
/// - A repeated key is kept; lookups see the last value, as PyYAML does. (Yams refuses the file and puts the
///   whole document into its error.)
/// - A UTF-8 byte order mark is skipped; invalid UTF-8 and a UTF-16 file are refused, as Python's UTF-8 text
///   mode refuses them.
/// - Aliases share the node they name, so a "billion laughs" costs nothing to compose, but every alias counts
///   the nodes it stands for, and the total is capped: no reader that walks the tree can be made to walk
///   without end. Keys must be scalars, as PyYAML can hash nothing else.
public enum YAMLReader {
    public struct Limits: Sendable {
        public var maximumBytes: Int
        public var maximumDepth: Int
        /// Nodes as a reader walking every alias would see them.
        public var maximumExpandedNodes: Int

        public init(maximumBytes: Int = 4 << 20, maximumDepth: Int = 64, maximumExpandedNodes: Int = 200_000) {
            self.maximumBytes = maximumBytes
            self.maximumDepth = maximumDepth
            self.maximumExpandedNodes = maximumExpandedNodes
        }
    }

    /// The document's root, or nil for an empty document.
    public static func parse(_ bytes: [UInt8], limits: Limits = Limits()) throws(YAMLError) -> YAMLNode? {
        guard bytes.count <= limits.maximumBytes else {
            throw YAMLError(line: 0, column: 0, reason: "larger than \(limits.maximumBytes) bytes")
        }
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        if let offset = invalidUTF8Offset(body) {
            let (line, column) = position(of: offset, in: body)
            throw YAMLError(line: line, column: column, reason: "not valid UTF-8")
        }
        // PyYAML skips a byte order mark only at the very start; elsewhere it becomes part of a key or value,
        // where libyaml would skip it. Rather than read a key Synapse would not, such a file is refused.
        if let offset = body.indices.first(where: { body[$0...].starts(with: [0xEF, 0xBB, 0xBF]) }) {
            let (line, column) = position(of: offset - body.startIndex, in: body)
            throw YAMLError(line: line, column: column, reason: "a byte order mark (U+FEFF) inside the file")
        }
        var composer = Composer(limits: limits)
        let root = try Array(body).withUnsafeBufferPointer { (buffer) throws(YAMLError) -> YAMLNode? in
            try composer.compose(buffer)
        }
        try refuseTabs(in: body, quoted: composer.quotedRanges)
        return root
    }

    /// PyYAML's scanner takes a tab only inside a quoted or block scalar or a comment; anywhere else (after a
    /// colon, before a comment, as indentation) Synapse fails to start, where libyaml would read on. So do we.
    static func refuseTabs(in body: ArraySlice<UInt8>, quoted: [(start: (Int, Int), end: (Int, Int))]) throws(YAMLError)
    {
        guard body.contains(0x09) else { return }
        let text = String(decoding: body, as: UTF8.self)
        var line = 1
        var column = 1
        var comment = false
        var previous: Unicode.Scalar = "\n"
        func inside(_ position: (Int, Int)) -> Bool {
            quoted.contains { $0.start <= position && position < $0.end }
        }
        for scalar in text.unicodeScalars {
            if scalar == "\n" {
                line += 1
                column = 1
                comment = false
                previous = scalar
                continue
            }
            let position = (line, column)
            if scalar == "#" && (previous == " " || previous == "\t" || column == 1) && !inside(position) {
                comment = true
            }
            if scalar == "\t" && !comment && !inside(position) {
                throw YAMLError(
                    line: line, column: column,
                    reason: "a tab outside quotes or a comment, which Synapse's YAML loader refuses; use spaces")
            }
            previous = scalar
            column += 1
        }
    }

    /// Where the first byte that is not UTF-8 stands, if any.
    static func invalidUTF8Offset(_ bytes: ArraySlice<UInt8>) -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
            case .emptyInput:
                return nil
            case .error:
                return offset
            }
        }
    }

    static func position(of offset: Int, in bytes: ArraySlice<UInt8>) -> (line: Int, column: Int) {
        let before = bytes.prefix(offset)
        let line = before.count { $0 == 0x0A } + 1
        let column = before.count - (before.lastIndex(of: 0x0A).map { $0 - before.startIndex + 1 } ?? 0) + 1
        return (line, column)
    }
}

/// Builds the tree from libyaml's events.
private struct Composer {
    let limits: YAMLReader.Limits
    var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    var expanded = 0
    /// Where quoted and block scalars stand (line, column; end exclusive): tabs are text there.
    var quotedRanges: [(start: (Int, Int), end: (Int, Int))] = []

    init(limits: YAMLReader.Limits) { self.limits = limits }

    mutating func compose(_ buffer: UnsafeBufferPointer<UInt8>) throws(YAMLError) -> YAMLNode? {
        // On the heap: libyaml's parser must not move while it works.
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        parser.initialize(to: yaml_parser_t())
        guard yaml_parser_initialize(parser) == 1 else {
            throw YAMLError(line: 0, column: 0, reason: "the YAML parser could not start (out of memory)")
        }
        defer { yaml_parser_delete(parser) }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
        let events = EventStream(parser: parser, input: buffer)

        try events.expect(YAML_STREAM_START_EVENT)
        let first = try events.next()
        if first.type == YAML_STREAM_END_EVENT { return nil }
        guard first.type == YAML_DOCUMENT_START_EVENT else { throw first.error("expected a document") }
        let root = try node(from: try events.next(), events: events, depth: 0).node
        try events.expect(YAML_DOCUMENT_END_EVENT)
        let end = try events.next()
        guard end.type == YAML_STREAM_END_EVENT else {
            throw end.error("expected a single document in the stream, but found another document")
        }
        return root
    }

    /// The node starting at `event`, and how many nodes it stands for.
    private mutating func node(from event: Event, events: EventStream, depth: Int) throws(YAMLError) -> (
        node: YAMLNode, size: Int
    ) {
        guard depth <= limits.maximumDepth else {
            throw event.error("nested deeper than \(limits.maximumDepth) levels")
        }
        let result: (node: YAMLNode, size: Int)
        switch event.type {
        case YAML_ALIAS_EVENT:
            guard let name = event.anchor, let target = anchors[name] else {
                throw event.error("found an alias to an undefined anchor")
            }
            try count(target.size, at: event)
            return target
        case YAML_SCALAR_EVENT:
            try count(1, at: event)
            if event.quotedOrBlock {
                quotedRanges.append(((event.line, event.column), (event.endLine, event.endColumn)))
            }
            result = (event.scalarNode, 1)
        case YAML_SEQUENCE_START_EVENT:
            try count(1, at: event)
            var items: [YAMLNode] = []
            var size = 1
            while true {
                let next = try events.next()
                if next.type == YAML_SEQUENCE_END_EVENT { break }
                let item = try node(from: next, events: events, depth: depth + 1)
                items.append(item.node)
                size += item.size
            }
            result = (YAMLNode(kind: .sequence(items), line: event.line, column: event.column), size)
        case YAML_MAPPING_START_EVENT:
            try count(1, at: event)
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            var size = 1
            while true {
                let next = try events.next()
                if next.type == YAML_MAPPING_END_EVENT { break }
                let key = try node(from: next, events: events, depth: depth + 1)
                guard key.node.scalar != nil else {
                    throw next.error("a mapping key must be a single value, not a list or a mapping")
                }
                let value = try node(from: try events.next(), events: events, depth: depth + 1)
                pairs.append((key.node, value.node))
                size += key.size + value.size
            }
            pairs = try Self.merging(pairs, at: event)
            result = (YAMLNode(kind: .mapping(pairs), line: event.line, column: event.column), size)
        default:
            throw event.error("unexpected YAML structure")
        }
        if let name = event.anchor { anchors[name] = result }
        return result
    }

    /// Merge keys (`<<: *base` or `<<: [*a, *b]`) as PyYAML's SafeLoader applies them: the merged pairs come first,
    /// so keys written in the mapping win. Where merged mappings bring the same key twice, PyYAML 6.0.4 keeps the
    /// first or the last depending on whether Python interned the key's string (it dedupes by object identity), so
    /// no reader can know what Synapse sees: such a file is refused. Nested mappings were composed, and so merged,
    /// before their parent.
    private static func merging(_ pairs: [(key: YAMLNode, value: YAMLNode)], at event: Event) throws(YAMLError)
        -> [(key: YAMLNode, value: YAMLNode)]
    {
        guard pairs.contains(where: { isMergeKey($0.key) }) else { return pairs }
        var merged: [(key: YAMLNode, value: YAMLNode)] = []
        var written: [(key: YAMLNode, value: YAMLNode)] = []
        for pair in pairs {
            guard isMergeKey(pair.key) else {
                written.append(pair)
                continue
            }
            switch pair.value.kind {
            case .mapping(let inner):
                merged += inner
            case .sequence(let items):
                for item in items {
                    guard let inner = item.mapping else {
                        throw YAMLError(
                            line: item.line, column: item.column,
                            reason: "a merge key (<<) lists something not a mapping")
                    }
                    merged += inner
                }
            default:
                throw YAMLError(
                    line: pair.value.line, column: pair.value.column,
                    reason: "a merge key (<<) needs a mapping or a list of mappings")
            }
        }
        var seen = Set<String>()
        for pair in merged {
            guard let name = pair.key.scalar?.text, seen.insert(name).inserted else {
                throw YAMLError(
                    line: event.line, column: event.column,
                    reason: "merge keys (<<) bring the same key twice, which PyYAML reads one way or the other; "
                        + "write that key out in the mapping")
            }
        }
        return merged + written
    }

    private static func isMergeKey(_ node: YAMLNode) -> Bool {
        guard let scalar = node.scalar else { return false }
        if let tag = scalar.tag { return tag == "tag:yaml.org,2002:merge" }
        return scalar.isPlain && scalar.text == "<<"
    }

    private mutating func count(_ nodes: Int, at event: Event) throws(YAMLError) {
        expanded += nodes
        guard expanded <= limits.maximumExpandedNodes else {
            throw event.error(
                "aliases expand to more than \(limits.maximumExpandedNodes) values; refusing to read further")
        }
    }
}

/// libyaml's event, copied out so that its memory is freed at once.
private struct Event {
    let type: yaml_event_type_t
    let line: Int
    let column: Int
    let anchor: String?
    let scalarNode: YAMLNode
    var endLine = 0
    var endColumn = 0
    /// A scalar written in quotes or as a block (`|`, `>`).
    var quotedOrBlock = false

    func error(_ reason: String) -> YAMLError { YAMLError(line: line, column: column, reason: reason) }
}

private struct EventStream {
    let parser: UnsafeMutablePointer<yaml_parser_t>
    let input: UnsafeBufferPointer<UInt8>

    func next() throws(YAMLError) -> Event {
        var raw = yaml_event_t()
        guard yaml_parser_parse(parser, &raw) == 1 else { throw parserError() }
        defer { yaml_event_delete(&raw) }
        let line = Int(raw.start_mark.line) + 1
        let column = Int(raw.start_mark.column) + 1
        var anchor: String?
        var scalar = YAMLNode(kind: .scalar(YAMLScalar(text: "", isPlain: true, tag: nil)), line: line, column: column)
        switch raw.type {
        case YAML_ALIAS_EVENT:
            anchor = text(raw.data.alias.anchor)
        case YAML_SCALAR_EVENT:
            anchor = text(raw.data.scalar.anchor)
            let value = raw.data.scalar
            let bytes = UnsafeBufferPointer(start: value.value, count: Int(value.length))
            // The non-specific tag `!` resolves as if there were none (PyYAML reads `! null` as null).
            let tag = text(value.tag).flatMap { $0 == "!" ? nil : $0 }
            let plain = value.style == YAML_PLAIN_SCALAR_STYLE && (value.plain_implicit == 1 || tag == nil)
            scalar = YAMLNode(
                kind: .scalar(YAMLScalar(text: String(decoding: bytes, as: UTF8.self), isPlain: plain, tag: tag)),
                line: line, column: column)
        case YAML_SEQUENCE_START_EVENT:
            anchor = text(raw.data.sequence_start.anchor)
        case YAML_MAPPING_START_EVENT:
            anchor = text(raw.data.mapping_start.anchor)
        default:
            break
        }
        var event = Event(type: raw.type, line: line, column: column, anchor: anchor, scalarNode: scalar)
        event.endLine = Int(raw.end_mark.line) + 1
        event.endColumn = Int(raw.end_mark.column) + 1
        event.quotedOrBlock = raw.type == YAML_SCALAR_EVENT && raw.data.scalar.style != YAML_PLAIN_SCALAR_STYLE
        return event
    }

    func expect(_ type: yaml_event_type_t) throws(YAMLError) {
        let event = try next()
        guard event.type == type else { throw event.error("unexpected YAML structure") }
    }

    /// libyaml's problem and context are fixed phrases in its source; the document's text never reaches them.
    private func parserError() -> YAMLError {
        let problem = parser.pointee.problem.map { String(cString: $0) } ?? "not valid YAML"
        let context = parser.pointee.context.map { String(cString: $0) }
        let reason = context.map { "\(problem) (\($0))" } ?? problem
        if parser.pointee.error == YAML_READER_ERROR {
            // The reader reports a byte offset, not a line.
            let offset = min(Int(parser.pointee.problem_offset), input.count)
            let (line, column) = YAMLReader.position(of: offset, in: Array(input)[...])
            return YAMLError(line: line, column: column, reason: reason)
        }
        let mark = parser.pointee.problem_mark
        return YAMLError(line: Int(mark.line) + 1, column: Int(mark.column) + 1, reason: reason)
    }

    private func text(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafePointer($0)) }
    }
}
