import Glibc
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization
import Testing

@testable import TurnkeeperDaemon

/// The health listener's handlers on `EmbeddedChannel`: events fed by hand, time advanced by hand, so nothing
/// here depends on a scheduler or on how busy the machine is.
@Suite("Health listener handlers, on EmbeddedChannel")
struct ChannelHandlerTests {
    /// The autoRead value the handler last set (EmbeddedChannel keeps one per option), nil if none.
    static func autoRead(_ channel: EmbeddedChannel) -> Bool? {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool
    }

    @Test("AcceptPause: out of descriptors, accepting stops for exactly a second; other errors change nothing")
    func acceptPause() throws {
        let channel = EmbeddedChannel(handler: AcceptPause())
        let loop = channel.embeddedEventLoop
        // A connection aborted before accept is nothing to pause for; the error goes on down the pipeline.
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNABORTED, reason: "accept"))
        #expect(Self.autoRead(channel) == nil)
        #expect(throws: IOError.self) { try channel.throwIfErrorCaught() }

        channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        #expect(Self.autoRead(channel) == false)
        #expect(throws: IOError.self) { try channel.throwIfErrorCaught() }
        // Another failure while paused schedules nothing more.
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ENFILE, reason: "accept"))
        _ = try? channel.throwIfErrorCaught()
        loop.advanceTime(by: .milliseconds(999))
        #expect(Self.autoRead(channel) == false)
        loop.advanceTime(by: .milliseconds(1))
        #expect(Self.autoRead(channel) == true)
        loop.advanceTime(by: .seconds(5))
        #expect(Self.autoRead(channel) == true)
        // Paused again by the next failure: the pause is per failure, not once per process.
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ENOMEM, reason: "accept"))
        _ = try? channel.throwIfErrorCaught()
        #expect(Self.autoRead(channel) == false)
        _ = try channel.finish()
    }

    @Test("At the limit the oldest connection still waiting gives way; one whose request arrived never does")
    func connectionLimit() throws {
        let limiter = ConnectionLimiter(capacity: 2)
        let first = EmbeddedChannel()
        let second = EmbeddedChannel()
        let firstTicket = try #require(limiter.admit(first))
        let secondTicket = try #require(limiter.admit(second))
        try first.pipeline.syncOperations.addHandler(RequestArrival(limiter: limiter, ticket: firstTicket))

        // The first connection's whole request arrives, and passes through unchanged.
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/healthz")
        try first.writeInbound(HTTPServerRequestPart.head(head))
        #expect(!limiter.isServing(firstTicket), "served before its request ended")
        try first.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(limiter.isServing(firstTicket))
        if case .head(let passed)? = try first.readInbound(as: HTTPServerRequestPart.self) {
            #expect(passed.uri == "/healthz")
        } else {
            Issue.record("the request head did not pass through")
        }

        // A third connection displaces the second (waiting), not the first (served).
        let third = EmbeddedChannel()
        let thirdTicket = try #require(limiter.admit(third))
        let closed = Mutex(false)
        second.closeFuture.whenComplete { _ in closed.withLock { $0 = true } }
        second.embeddedEventLoop.run()
        #expect(closed.withLock { $0 }, "the waiting connection was not closed")
        #expect(!limiter.beginServing(secondTicket), "a displaced connection was served")
        #expect(limiter.isServing(firstTicket))
        // With every slot answering a request, a newcomer is refused instead.
        #expect(limiter.beginServing(thirdTicket))
        #expect(limiter.admit(EmbeddedChannel()) == nil)
        limiter.release(firstTicket)
        #expect(limiter.admit(EmbeddedChannel()) != nil)
        _ = try first.finish()
    }
}
