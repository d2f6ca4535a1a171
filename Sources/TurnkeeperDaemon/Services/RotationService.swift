import Logging
import ServiceLifecycle
import Synchronization
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperRotation

/// Rotates on schedule. It sleeps until the next deadline that state.json implies (a new rotation, a
/// retirement, a rotation left half-way), acts, and retries failures with capped exponential backoff.
/// On shutdown a step in flight finishes and the rotation stops at that step's boundary; the next start
/// resumes it.
struct RotationService: Service {
    let state: DaemonState
    let metrics: DaemonMetrics
    let logger: Logger
    let alarm: Alarm
    /// Woken after each rotation, so the probe checks the new secret at once.
    let probeAlarm: Alarm
    /// Shared with the reconciliation: one of them at a time holds the state lock.
    let gate: StateGate
    let now: @Sendable () -> Int64

    private let stopRequested = StopFlag()

    init(
        state: DaemonState, metrics: DaemonMetrics, logger: Logger, alarm: Alarm, probeAlarm: Alarm,
        gate: StateGate = StateGate(), now: @escaping @Sendable () -> Int64 = WallClock.nowSeconds
    ) {
        self.gate = gate
        self.state = state
        self.metrics = metrics
        self.logger = logger
        self.alarm = alarm
        self.probeAlarm = probeAlarm
        self.now = now
    }

    func run() async {
        await withGracefulShutdownHandler {
            await loop()
        } onGracefulShutdown: {
            stopRequested.set()
            alarm.wake()
        }
    }

    private var stopping: Bool { stopRequested.isSet }

    private func loop() async {
        var syncedEpoch: Int64?
        // Cancelled (the group ends without a graceful shutdown, or its grace period ran out): every sleep
        // returns at once from then on, so the loop must end too.
        while !stopping && !Task.isCancelled {
            let host = state.host
            let configuration = host.configuration
            let rotation = makeRotation(host)
            let status: RotationStatus
            do {
                status = try await rotation.status()
            } catch {
                // Cancelled in flight: no state was unreadable.
                if Task.isCancelled { break }
                let what =
                    rotation.schedule == .epochs
                    ? "cannot read this epoch's status (root key, epochs.json, Synapse's configuration)"
                    : "cannot read the rotation state"
                failed("\(what): \(describe(error))", store: "state")
                settled()
                await alarm.sleep(for: .seconds(backoffDelay(configuration)))
                continue
            }
            switch rotation.schedule {
            case .epochs:
                syncedEpoch = await epochRound(rotation, status: status, syncedEpoch: syncedEpoch)
            case .interval:
                await intervalRound(rotation, status: status, configuration: configuration)
            }
        }
        logger.info("rotation service stopped")
    }

    /// Random secrets: rotate on the interval, finish what is in flight, retire what is due.
    private func intervalRound(_ rotation: any SecretRotation, status: RotationStatus, configuration: Configuration)
        async
    {
        let snapshot = state.current
        let schedule = RotationSchedule(
            interval: configuration.rotation.interval.seconds,
            backoff: Backoff(
                initial: configuration.daemon.retryInitial.seconds, maximum: configuration.daemon.retryMax.seconds)
        )
        let action = schedule.next(
            status: status, now: now(), failures: snapshot.failures, lastFailure: snapshot.lastFailure)
        state.update {
            $0.rotation = status
            $0.nextAction = action.at
        }
        metrics.record(state: state.current, now: now())
        let wait = action.at - now()
        if wait > 0 {
            settled()
            // Capped at an hour so that a step of the wall clock (NTP, a resumed VM) is noticed.
            await alarm.sleep(for: .seconds(min(wait, 3600)))
            return
        }
        await perform(action, rotation: rotation)
    }

    /// Two hosts, derived secrets: act once per epoch (at its start, on this host's clock), retrying with backoff.
    private func epochRound(_ rotation: any SecretRotation, status: RotationStatus, syncedEpoch: Int64?) async
        -> Int64?
    {
        let epoch = status.epoch ?? 0
        let next = status.nextRotationDue ?? now() + 3600
        if syncedEpoch == epoch {
            state.update {
                $0.rotation = status
                $0.nextAction = next
            }
            settled()
            metrics.record(state: state.current, now: now())
            await alarm.sleep(for: .seconds(max(1, min(next - now(), 3600))))
            return syncedEpoch
        }
        let snapshot = state.current
        if snapshot.failures > 0, let last = snapshot.lastFailure {
            let retry = last + backoffDelay(snapshot.configuration)
            if retry > now() {
                state.update { $0.nextAction = retry }
                settled()
                await alarm.sleep(for: .seconds(min(retry - now(), 3600)))
                return syncedEpoch
            }
        }
        state.update { $0.rotating = true }
        do {
            try await gate.run { try await rotation.rotate(.rotate) }
            succeeded(status: try? await rotation.status(), next: next)
            settled(acted: true)
            return epoch
        } catch {
            runFailed(error)
            settled()
            return syncedEpoch
        }
    }

    /// A round ended, or nothing was due: the probe, which waits for the first round (turnkeeper's own restarts
    /// of coturn or Synapse), runs now; after a round that acted, it checks the result at once.
    private func settled(acted: Bool = false) {
        if !state.current.firstRoundDone {
            state.update { $0.firstRoundDone = true }
            probeAlarm.wake()
        } else if acted {
            probeAlarm.wake()
        }
    }

    private func perform(_ action: RotationSchedule.Action, rotation: any SecretRotation) async {
        state.update { $0.rotating = true }
        logger.info(action.rotate ? "rotation due: starting" : "finishing a rotation or retiring what is due")
        var acted = false
        defer { settled(acted: acted) }
        do {
            try await gate.run { try await rotation.rotate(action.rotate ? .rotate : .resume) }
            succeeded(status: try? await rotation.status(), next: nil)
            acted = true
        } catch let stopped as RotationStopped {
            metrics.rotations(DaemonMetrics.RotationResult.stopped).increment()
            state.update { $0.rotating = false }
            logger.notice("rotation stopped at a step boundary (phase \(stopped.phase)); the next start resumes it")
        } catch {
            runFailed(error)
        }
    }

    private func succeeded(status: RotationStatus?, next: Int64?) {
        metrics.rotations(DaemonMetrics.RotationResult.ok).increment()
        state.update {
            $0.rotating = false
            $0.failures = 0
            $0.lastError = nil
            $0.rotation = status
            if let next { $0.nextAction = next }
        }
    }

    private func runFailed(_ error: any Error) {
        state.update { $0.rotating = false }
        metrics.rotations(DaemonMetrics.RotationResult.failed).increment()
        failed(describe(error), store: nil)
    }

    private func failed(_ reason: String, store: String?) {
        if let store { metrics.storeErrors(store).increment() }
        state.update {
            $0.failures += 1
            $0.lastFailure = now()
            $0.lastError = reason
        }
        let snapshot = state.current
        let delay = backoffDelay(snapshot.configuration)
        logger.error(
            "\(reason) (attempt \(snapshot.failures) failed; retrying in \(WallClock.spanString(seconds: delay)))")
    }

    private func backoffDelay(_ configuration: Configuration) -> Int64 {
        Backoff(initial: configuration.daemon.retryInitial.seconds, maximum: configuration.daemon.retryMax.seconds)
            .delay(afterFailures: max(1, state.current.failures))
    }

    private func makeRotation(_ host: Host) -> any SecretRotation {
        let logger = logger
        let stopRequested = stopRequested
        let metrics = metrics
        // Retries come by themselves: one failure must not restart Synapse again and again.
        return host.rotation(
            RotationEnvironment(
                now: now, say: { logger.info("\($0)") }, shouldStop: { stopRequested.isSet },
                observe: { event in
                    if case .storeRepaired(let result) = event { metrics.storeRepaired(result) }
                },
                synapseRestarts: .whenConfigurationChanged))
    }
}

/// Set once, by the graceful-shutdown handler; read between rotation steps.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    var isSet: Bool { flag.load(ordering: .acquiring) }

    func set() { flag.store(true, ordering: .releasing) }
}
