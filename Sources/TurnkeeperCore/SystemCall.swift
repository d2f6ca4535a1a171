import Glibc

/// The text of an `errno` value, such as "Permission denied".
public func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// Retries a system call interrupted by a signal, as POSIX expects callers to.
@inline(__always)
func retryingOnInterrupt<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR {
            return result
        }
    }
}
