import Dispatch
import Synchronization

/// Runs blocking work on a Dispatch thread, so that it does not hold one of the two threads of Swift's
/// cooperative pool while async work in the same test needs them.
public func runOffPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// Set once, read from anywhere.
public final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { value.load(ordering: .acquiring) }
    public func set() { value.store(true, ordering: .releasing) }
}
