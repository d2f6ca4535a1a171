import TurnkeeperYAML

/// Config files turnkeeper reads as root (its own, Synapse's): parsing must throw or return a tree, never trap or
/// run away, and walking the whole tree must stay within the expansion cap the reader enforces.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let limits = YAMLReader.Limits(maximumBytes: 1 << 16, maximumDepth: 32, maximumExpandedNodes: 5_000)
    guard let root = try? YAMLReader.parse(bytes, limits: limits) else { return 0 }
    var visited = 0
    walk(root, &visited)
    precondition(visited <= 5_000, "walked \(visited) nodes past the cap")
    _ = root["turn_shared_secret"]?.string
    return 0
}

private func walk(_ node: YAMLNode, _ visited: inout Int) {
    visited += 1
    guard visited <= 5_001 else { return }
    switch node.kind {
    case .scalar(let scalar):
        _ = scalar.isNull
        _ = scalar.bool
    case .sequence(let items):
        for item in items { walk(item, &visited) }
    case .mapping(let pairs):
        for pair in pairs {
            walk(pair.key, &visited)
            walk(pair.value, &visited)
        }
    }
}
