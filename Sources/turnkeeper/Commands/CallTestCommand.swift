import ArgumentParser
import TurnkeeperCallTest
import TurnkeeperConfiguration

/// A homeserver's address on the command line: http or https, a host, an optional port and path.
struct HomeserverArgument: ExpressibleByArgument {
    let url: HomeserverURL
    init?(argument: String) {
        guard let url = HomeserverURL(argument) else { return nil }
        self.url = url
    }
}

struct CallTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calltest",
        abstract: "Write the call test page, for users to test calls from their own network.",
        usage: "turnkeeper calltest --out <directory> [--homeserver <url>]",
        discussion: """
            "Calls fail for me at home" is about a network turnkeeper never sees.
            The call test page runs in the user's browser: it logs in to the
            homeserver, takes the TURN credentials Synapse hands out, calls
            itself through each TURN URI (relay only, over UDP, TCP and TLS),
            says what is wrong in the words of `turnkeeper probe`, offers a
            report to copy for the admin, and logs out. It stores nothing.

            This writes the page (index.html, calltest.js, calltest.css, and
            config.json with --homeserver) for the homeserver's web server, 0644.
            The directory must be new, empty, or hold only this page.
            `turnkeeper run` serves the same page at /calltest/ when
            daemon.calltest_homeserver is set. docs/calltest.md has an nginx
            snippet with the Content-Security-Policy to serve it with.

            Example:
              turnkeeper calltest --out /var/www/turnkeeper-calltest \\
                --homeserver https://matrix.example.org
            """
    )

    @Option(help: ArgumentHelp("The directory to write the page into.", valueName: "directory"))
    var out: String

    @Option(
        help: ArgumentHelp(
            "The homeserver users' Matrix apps use; the page is pre-filled with it.", valueName: "url"))
    var homeserver: HomeserverArgument?

    func run() throws {
        let written = try CallTestPage.write(to: out, homeserver: homeserver?.url.text)
        print("wrote \(written.joined(separator: ", ")) to \(out)")
        print(
            "Serve it with the Content-Security-Policy of docs/calltest.md, and let Synapse answer the page's "
                + "origin (it answers any origin by default).")
    }
}
