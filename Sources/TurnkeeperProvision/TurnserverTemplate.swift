/// coturn/turnserver.conf.in, embedded so that an installed binary needs no data files. A test checks the
/// two are identical: edit the file in coturn/, then paste it here.
enum TurnserverTemplate {
    static let text = #"""
        # coturn for @DOMAIN@, rendered by `turnkeeper provision` on @DATE@. Review it, then install it as
        # /etc/turnserver.conf (root:turnserver, mode 0640). See docs/separate-turn-host.md.
        # coturn has no inline comments: a "#" after a value becomes part of the value.

        # Where clients reach it.
        listening-port=3478
        tls-listening-port=5349
        # One listening and relay address per family, so that clients of either family get a relay of the peer's.
        @ADDRESSES@
        # The relay ports; the firewall opens exactly these (nftables-turn.nft).
        min-port=@MIN_PORT@
        max-port=@MAX_PORT@

        # TURN REST credentials signed with a secret Synapse shares. The secrets live in coturn's SQLite database,
        # which coturn reads on every login: turnkeeper rotates them without restarting coturn.
        use-auth-secret
        realm=@REALM@
        userdb=/var/lib/turn/turndb

        # TLS for turns: on 5349. SIGUSR2 makes coturn reload them (coturn-certificates.path does that on renewal).
        cert=@CERT@
        pkey=@KEY@
        @TLS_VERSIONS@

        # Quotas: allocations per user and in all.
        user-quota=@USER_QUOTA@
        total-quota=@TOTAL_QUOTA@

        # Hardening: no admin console, no multicast, no relaying into private, reserved or documentation networks
        # (Synapse's TURN guide). The host's own address is allowed again (an allow wins over a deny), so that two
        # parties who both use this server can reach each other's relays.
        @NO_CLI@
        no-multicast-peers
        fingerprint
        @NO_SOFTWARE@
        denied-peer-ip=10.0.0.0-10.255.255.255
        denied-peer-ip=192.168.0.0-192.168.255.255
        denied-peer-ip=172.16.0.0-172.31.255.255
        denied-peer-ip=0.0.0.0-0.255.255.255
        denied-peer-ip=100.64.0.0-100.127.255.255
        denied-peer-ip=127.0.0.0-127.255.255.255
        denied-peer-ip=169.254.0.0-169.254.255.255
        denied-peer-ip=192.0.0.0-192.0.0.255
        denied-peer-ip=192.0.2.0-192.0.2.255
        denied-peer-ip=192.88.99.0-192.88.99.255
        denied-peer-ip=198.18.0.0-198.19.255.255
        denied-peer-ip=198.51.100.0-198.51.100.255
        denied-peer-ip=203.0.113.0-203.0.113.255
        denied-peer-ip=240.0.0.0-255.255.255.255
        # IPv6: loopback, and every form that carries an IPv4 address (IPv4-compatible, from ::1: coturn reads a range
        # from :: as covering every IPv4 peer; IPv4-mapped: coturn before 4.9.0 lets it past the IPv4 ranges above,
        # CVE-2026-27624; NAT64; 6to4), then special-purpose ranges.
        denied-peer-ip=::1-::ffff:ffff
        denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255
        denied-peer-ip=64:ff9b::-64:ff9b::ffff:ffff
        denied-peer-ip=100::-100::ffff:ffff:ffff:ffff
        denied-peer-ip=2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff
        denied-peer-ip=2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff
        denied-peer-ip=2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff
        denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
        denied-peer-ip=fe80::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
        @ALLOWED_PEERS@

        # Logs to stdout, so the journal has them. Never `syslog`: under syslog, SIGHUP kills coturn 4.6.1.
        log-file=stdout
        simple-log
        """#
}
