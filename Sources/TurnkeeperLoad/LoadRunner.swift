import Synchronization
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperProbe
public import TurnkeeperTURNClient

/// Two-party calls through one TURN server, each two allocations relaying to each other over channels as
/// calls do, with paced call-shaped traffic both ways (``MediaPacer``: one timer an event loop, nothing
/// allocated per packet). Calls refresh their allocations, permissions and channels as browsers do. The ramp
/// adds calls step by step and keeps the earlier ones running, as a server's load grows; each step is measured
/// over its own window once its new calls are up. Every allocation is released at the end (or on Ctrl-C). The
/// only peers are the run's own relays.
public enum LoadRunner {
    /// `measuring` is told when each step's window opens: the step's calls, and how many came up.
    public static func run(
        _ uri: TURNURI, endpoint: ServerEndpoint, options: LoadOptions,
        measuring: @Sendable (_ calls: Int, _ up: Int) -> Void = { _, _ in },
        shouldStop: @escaping @Sendable () -> Bool
    ) async -> LoadReport {
        let tally = LoadTally(calls: options.steps.max() ?? 1)
        let pacer = MediaPacer(shape: options.profile.shape, counter: tally)
        let finished = Atomic<Bool>(false)
        let interrupted: @Sendable () -> Bool = { shouldStop() || Task.isCancelled }
        let stop: @Sendable () -> Bool = { finished.load(ordering: .relaxed) || interrupted() }
        var steps: [LoadStep] = []
        var limit: Limit?
        await withTaskGroup(of: Void.self) { group in
            var started = 0
            for calls in options.steps {
                if interrupted() { break }
                tally.beginStep(calls: calls)
                for index in started..<calls {
                    group.addTask {
                        await LoadCall.run(
                            index, endpoint: endpoint, options: options, tally: tally, pacer: pacer, stop: stop)
                    }
                }
                started = calls
                // The window opens once every call has come up or been refused (an event, polled; each call's
                // setup is bounded by the timeout).
                let settle = ContinuousClock.now + options.setupTimeout + .seconds(1)
                while tally.settled < calls && ContinuousClock.now < settle && !interrupted() {
                    try? await Pause.for(.milliseconds(20))
                }
                tally.openWindow()
                measuring(calls, tally.callsUp)
                let cpuBefore = ProcessUsage.ownCPUSeconds()
                let coturnBefore = await options.coturnPID.asyncFlatMap(ProcessUsage.cpuSeconds)
                let windowStart = ContinuousClock.now
                // Sliced, so that Ctrl-C ends a long step at once.
                while ContinuousClock.now < windowStart + options.stepDuration && !interrupted() {
                    try? await Pause.until(min(windowStart + options.stepDuration, .now + .milliseconds(250)))
                }
                // Stopped: traffic ends before anything is measured, and what the pacer fell behind by is counted.
                if interrupted() { await pacer.stopAll() }
                tally.closeWindow()
                let wall = max((ContinuousClock.now - windowStart).seconds, 0.001)
                let clientCPU = (ProcessUsage.ownCPUSeconds() - cpuBefore) / wall * 100
                let coturnCPU = await options.coturnPID.asyncFlatMap(ProcessUsage.cpuSeconds).flatMap { after in
                    coturnBefore.map { (after - $0) / wall * 100 }
                }
                // The window's last packets get their grace to arrive.
                if !interrupted() { try? await Pause.for(options.grace) }
                var step = tally.measure(
                    calls: calls, seconds: wall, shape: options.profile.shape, clientCPUPercent: clientCPU,
                    coturnCPUPercent: coturnCPU,
                    coturnResidentBytes: await options.coturnPID.asyncFlatMap(ProcessUsage.residentBytes))
                step.interrupted = interrupted()
                steps.append(step)
                if step.interrupted { break }
                if let reached = LoadJudge.judge(
                    step, thresholds: options.thresholds, sharedCredentials: options.sharedCredentials,
                    cores: pacer.loopCount)
                {
                    limit = reached
                    break
                }
            }
            // Traffic stops at once; the calls then release their allocations.
            await pacer.stopAll()
            finished.store(true, ordering: .relaxed)
        }
        var notTested = [
            "calls spread over several TURN servers (only the server named is loaded)",
            "audio and video in one call (a profile is one or the other)",
            "DTLS and TCP relay allocations (RFC 6062): the relay is UDP, as browsers use it",
        ]
        if options.coturnPID == nil {
            notTested.append("coturn's CPU and memory (no --coturn-pid, and none found on this machine)")
        } else {
            notTested.append("coturn alone: this client shares its machine and its CPU")
        }
        return LoadReport(
            uri: uri.text, profile: options.profile.description, stepSeconds: options.stepDuration.seconds,
            steps: steps, limit: limit?.words, limitCheck: limit?.check, notTested: notTested,
            credentialsShared: options.sharedCredentials, releasesUnconfirmed: tally.releasesUnconfirmed,
            // Steps left unrun with no limit reached: only a stop does that.
            interrupted: steps.last?.interrupted == true || (limit == nil && steps.count < options.steps.count))
    }
}

extension LoadRunner {
    /// A process's command name, to check that a PID given as coturn's is a turnserver.
    public static func processName(_ pid: Int32) async -> String? { await ProcessUsage.command(pid) }

    /// coturn's PID when the server loaded is this machine (its address is one of ours) and exactly one
    /// turnserver runs here; otherwise nil, and `--coturn-pid` says which.
    public static func localCoturn(serving endpoint: ServerEndpoint) async -> Int32? {
        guard let address = endpoint.address.ipAddress,
            LocalRoute.sourceAddress(toward: endpoint.address) == address
        else { return nil }
        let found = await ProcessUsage.pids(of: "turnserver")
        return found.count == 1 ? found[0] : nil
    }
}

extension Optional {
    fileprivate func asyncFlatMap<Result>(_ transform: (Wrapped) async -> Result?) async -> Result? {
        guard let self else { return nil }
        return await transform(self)
    }
}

/// Where one stream's packets arrive: read in place, counted in the tally. Only the call's own channel counts.
final class StreamSink: MediaSink {
    let stream: Int
    let tally: LoadTally

    init(stream: Int, tally: LoadTally) {
        self.stream = stream
        self.tally = tally
    }

    func received(channel: UInt16, payload: UnsafeRawBufferPointer) {
        guard channel == LoadCall.channel else { return }
        tally.received(payload, stream: stream)
    }
}
