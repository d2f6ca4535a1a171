import AllocationLoop
import Foundation
import Glibc
import TurnkeeperExecution

// AllocationCost PORT SECRET_FILE COUNT [dispatch]: 50 allocations to warm up (NIO's threads and pools exist after them),
// then COUNT allocations one after another, and the process's own CPU (all threads, getrusage) over those
// COUNT alone. scripts/benchmark-probe.sh runs it beside `turnutils_uclient -Y alloc`, and under `strace -f -c`
// at two counts, so that start and warm-up cancel out of the system calls an allocation. Async work runs on NIO's
// event loops, as in the turnkeeper binary; `dispatch` leaves it on Swift's default pool, for comparison.
let arguments = CommandLine.arguments
guard (4...5).contains(arguments.count), let port = Int(arguments[1]), let count = Int(arguments[3]), count >= 0,
    arguments.count == 4 || arguments[4] == "dispatch"
else {
    FileHandle.standardError.write(Data("usage: AllocationCost PORT SECRET_FILE COUNT [dispatch]\n".utf8))
    exit(2)
}
if arguments.count == 4 && !NIOGlobalExecutor.install() {
    FileHandle.standardError.write(Data("AllocationCost: NIO's event loops could not run async work here\n".utf8))
    exit(2)
}
let loop = try await AllocationLoop(port: port, secretFile: arguments[2])
for _ in 0..<50 { _ = try await loop.once() }

func cpuMicroseconds() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Int(usage.ru_utime.tv_sec) * 1_000_000 + Int(usage.ru_utime.tv_usec)
    let system = Int(usage.ru_stime.tv_sec) * 1_000_000 + Int(usage.ru_stime.tv_usec)
    return user + system
}

let start = cpuMicroseconds()
let began = ContinuousClock.now
var retries = 0
for _ in 0..<count { retries += try await loop.once() }
let cpu = cpuMicroseconds() - start
let wall = ContinuousClock.now - began
let each = count > 0 ? Double(cpu) / Double(count) / 1000 : 0
print(
    "\(count) allocations in \(wall): CPU \(Double(cpu) / 1000) ms (user and system, every thread), "
        + "\(String(format: "%.3f", each)) ms an allocation; \(retries) retried after 437")
