import Logging
import ServiceLifecycle
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperRotation

/// Keeps coturn's store in line with turnkeeper's state between rotations: every daemon.probe_interval it
/// adds back what the store lost and removes what a rollback brought back (``Reconciliation``). While the
/// store does not answer it tries every few seconds, so a store that comes back is repaired at once.
struct ReconcileService: Service {
    let state: DaemonState
    let metrics: DaemonMetrics
    let logger: Logger
    let alarm: Alarm
    /// Woken after a repair, so the probe confirms it at once.
    let probeAlarm: Alarm
    /// Shared with the rotation service: one of them at a time holds the state lock.
    let gate: StateGate

    /// How often to try while the store does not answer.
    static let retryWhileDown: Int64 = 5

    func run() async {
        await cancelWhenGracefulShutdown {
            var storeDown = false
            while !Task.isCancelled {
                storeDown = await reconcileOnce(storeWasDown: storeDown)
                let interval = state.configuration.daemon.probeInterval.seconds
                await alarm.sleep(for: .seconds(storeDown ? min(Self.retryWhileDown, interval) : interval))
            }
        }
    }

    /// One reconciliation; returns whether the store was down.
    func reconcileOnce(storeWasDown: Bool) async -> Bool {
        let host = state.host
        guard host.managesCoturn else { return false }
        let rotation = host.rotation(RotationEnvironment(now: WallClock.nowSeconds, say: { _ in }))
        do {
            let result = try await gate.run { try await rotation.reconcile(repair: true) }
            metrics.reconciled(at: WallClock.nowSeconds())
            if storeWasDown { logger.notice("coturn's store answers again; it was checked against turnkeeper's state") }
            if let result, !result.isEmpty {
                metrics.storeRepaired(result)
                logger.error("\(result.summary)")
                probeAlarm.wake()
            }
            return false
        } catch let error as TurnkeeperError where error.code == .lockHeld {
            // An admin's `turnkeeper rotate` is running; it reconciles first by itself.
            return storeWasDown
        } catch {
            // A stop cancels the check in flight: that is no store failure.
            if Task.isCancelled || error is CancellationError { return storeWasDown }
            metrics.storeErrors("coturn").increment()
            if !storeWasDown {
                logger.error("cannot check coturn's store against turnkeeper's state: \(describe(error))")
            }
            return true
        }
    }
}
