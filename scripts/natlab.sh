#!/usr/bin/env bash
# The NAT lab, dual-stack: network namespaces joined by veth pairs, routed, with nftables NAT. See docs/nat.md.
#
#   scripts/natlab.sh up ID      build lab ID (namespaces tk-ID-*); prints its addresses
#   scripts/natlab.sh down ID    kill every process in lab ID and remove its namespaces
#   scripts/natlab.sh sweep      remove labs whose owner process is gone (left by a crashed run)
#   scripts/natlab.sh orphans    list those labs without removing them
#   scripts/natlab.sh list       the labs that exist
#   scripts/natlab.sh demo       build a lab, show a call through coturn and the direct attempt, remove it
#
# Every address is in a documentation or benchmarking range and exists only inside the lab:
#   "public" 203.0.113.0/24 and 2001:db8:113::/64 on a bridge in tk-ID-pub
#     tk-ID-hs     203.0.113.20   Synapse; 2001:db8:113::20
#     tk-ID-turn   203.0.113.10   coturn, second address 203.0.113.11 for RFC 5780; 2001:db8:113::10, ::11
#     tk-ID-nata   203.0.113.101  NAT A: masquerade, endpoint-independent mapping; 2001:db8:113::101
#     tk-ID-natb   203.0.113.102  NAT B: masquerade fully-random, address-and-port-dependent (symmetric)
#     tk-ID-natc   203.0.113.103  NAT C: the same as NAT B, so that both parties of a call can be symmetric
#     tk-ID-natt   203.0.113.30   a port-forwarding NAT in front of a TURN host with a private address
#   tk-ID-alice  192.0.2.10     behind NAT A; dual-stack: also 2001:db8:a::10, routed by nata without NAT
#                               through a stateful firewall (replies only; nothing new gets in)
#   tk-ID-bob    198.51.100.10  behind NAT B; IPv4-only (IPv6 disabled in its namespace)
#   tk-ID-carol  198.19.0.10    behind NAT C; IPv4-only (IPv6 disabled in its namespace)
#   tk-ID-turnp  198.18.0.10    behind NAT T: 3478 (UDP, TCP) and the relay ports 49152-49407 forwarded
# hs and turn route 2001:db8:a::/64 through nata; nothing in the lab accepts router advertisements.
# The owner (OWNER_PID, default the caller's parent) is recorded so that `sweep` can clean up after it.
set -euo pipefail

registry=/run/turnkeeper-natlab
relay_min=49152
relay_max=49407

ns() { echo "tk-$id-$1"; }
in_ns() { local name="$1"; shift; ip netns exec "$(ns "$name")" "$@"; }

# A namespace with lo up. Its interfaces, all made after this, accept no router advertisement: no address
# or route in the lab comes from autoconfiguration. With `v4only`, IPv6 is off in it altogether (lo
# included, and every interface made later): an IPv4-only host, with not even a link-local address.
new_ns() {
    local name="$1" v4only="${2:-}"
    ip netns add "$(ns "$name")"
    if [ "$v4only" = v4only ]; then
        in_ns "$name" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    else
        in_ns "$name" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    fi
    in_ns "$name" ip link set lo up
}

# A host namespace with one interface, eth0, on the public bridge; with an IPv6 address if one is given
# (public /64, nodad: usable at once, no tentative state).
public_host() {
    local name="$1" address="$2" address6="${3:-}"
    new_ns "$name"
    ip -n "$(ns pub)" link add "p-$name" type veth peer name eth0 netns "$(ns "$name")"
    ip -n "$(ns pub)" link set "p-$name" master br0 up
    in_ns "$name" ip addr add "$address/24" dev eth0
    [ -z "$address6" ] || in_ns "$name" ip -6 addr add "$address6/64" dev eth0 nodad
    in_ns "$name" ip link set eth0 up
}

# A host behind router `router` on its own /24: router's lan0 is .1, the host's eth0 is .10.
# `v4only` turns IPv6 off in the host's namespace (see new_ns).
private_host() {
    local name="$1" router="$2" prefix="$3" v4only="${4:-}"
    new_ns "$name" "$v4only"
    ip -n "$(ns "$router")" link add lan0 type veth peer name eth0 netns "$(ns "$name")"
    in_ns "$router" ip addr add "$prefix.1/24" dev lan0
    in_ns "$router" ip link set lan0 up
    in_ns "$name" ip addr add "$prefix.10/24" dev eth0
    in_ns "$name" ip link set eth0 up
    in_ns "$name" ip route add default via "$prefix.1"
    in_ns "$router" sysctl -qw net.ipv4.ip_forward=1
}

up() {
    [ -z "$(ip netns list | grep -E "^tk-$id-" || true)" ] || { echo "natlab: lab $id exists" >&2; exit 2; }
    mkdir -p "$registry"
    echo "${OWNER_PID:-$PPID}" >"$registry/$id"
    # Half-built labs are removed, so a failure here leaves nothing behind.
    trap 'down >/dev/null 2>&1 || true' ERR

    new_ns pub
    in_ns pub ip link add br0 type bridge
    in_ns pub ip link set br0 up

    public_host hs 203.0.113.20 2001:db8:113::20
    public_host turn 203.0.113.10 2001:db8:113::10
    in_ns turn ip addr add 203.0.113.11/24 dev eth0
    in_ns turn ip -6 addr add 2001:db8:113::11/64 dev eth0 nodad
    # A TURN server on the Internet has a default route: a packet to an address nobody routes vanishes
    # instead of failing the send. Here the route ends in a veth pair inside the namespace, whose far end
    # has no address: nothing answers its ARP, so every such packet is dropped there.
    in_ns turn ip link add sink0 type veth peer name sink1
    # No IPv6 there (router and neighbour solicitations): its counter then counts only what was sent out.
    in_ns turn sysctl -qw net.ipv6.conf.sink0.disable_ipv6=1 net.ipv6.conf.sink1.disable_ipv6=1
    in_ns turn ip link set sink0 up
    in_ns turn ip link set sink1 up
    in_ns turn ip route add default dev sink0
    # The same for IPv6, on a pair of its own so that sink0's counter stays IPv4's. sink6a needs IPv6 to
    # carry a route; the default route has no gateway, so each destination is its own neighbour, as on
    # sink0, and sink6b (IPv6 off) answers no solicitation: the packet is dropped and the send succeeds.
    # Not `blackhole default`: that fails the send (EINVAL), the very error this route is here to avoid.
    in_ns turn ip link add sink6a type veth peer name sink6b
    in_ns turn sysctl -qw net.ipv6.conf.sink6b.disable_ipv6=1
    in_ns turn ip link set sink6a up
    in_ns turn ip link set sink6b up
    in_ns turn ip -6 route add default dev sink6a
    public_host nata 203.0.113.101 2001:db8:113::101
    public_host natb 203.0.113.102
    public_host natc 203.0.113.103
    public_host natt 203.0.113.30

    private_host alice nata 192.0.2
    private_host bob natb 198.51.100 v4only
    private_host carol natc 198.19.0 v4only
    private_host turnp natt 198.18.0

    # alice is dual-stack: her IPv6 address is public (no NAT), routed by nata, whose firewall lets in only
    # replies. The public hosts that talk to her route her /64 through nata.
    in_ns nata ip -6 addr add 2001:db8:a::1/64 dev lan0 nodad
    in_ns alice ip -6 addr add 2001:db8:a::10/64 dev eth0 nodad
    in_ns alice ip -6 route add default via 2001:db8:a::1 dev eth0
    in_ns nata sysctl -qw net.ipv6.conf.all.forwarding=1
    for host in hs turn; do
        in_ns "$host" ip -6 route add 2001:db8:a::/64 via 2001:db8:113::101 dev eth0
    done

    # NAT A keeps a private socket's port and mapping whatever the destination: endpoint-independent.
    in_ns nata nft -f - <<NFT
table ip nat {
    chain post { type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }
}
NFT
    # On IPv6, nata routes without NAT and filters instead: a home router's stateful firewall. Only the
    # forward hook, and only IPv6 (ip6, not inet: IPv4 forwarding stays as it was). Replies to what alice
    # sent get in; a new flow from outside, a ping included, is dropped, and counted. The ICMPv6 errors
    # that PMTU discovery and error reporting need pass even when conntrack does not relate them (RFC 4890);
    # echo-request is not among them. Neighbour discovery never crosses this chain (link-local, hop limit
    # 255): it ends at nata's input, which is left open.
    in_ns nata nft -f - <<NFT
table ip6 filter {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept
        ct state invalid drop
        iifname "lan0" oifname "eth0" accept
        iifname "eth0" counter drop comment "new inbound"
    }
}
NFT
    # NAT B draws a new random port for every destination: address-and-port-dependent mapping.
    for router in natb natc; do
        in_ns "$router" nft -f - <<NFT
table ip nat {
    chain post { type nat hook postrouting priority srcnat; oifname "eth0" masquerade fully-random; }
}
NFT
    done
    # NAT T forwards TURN's ports to the private TURN host and keeps ports on the way out, as a
    # hosting provider's 1:1 NAT does. It also hairpins: the TURN host reaching its own public address
    # (one relay sending to another) comes back to it from that public address.
    in_ns natt nft -f - <<NFT
table ip nat {
    chain pre {
        type nat hook prerouting priority dstnat;
        iifname "eth0" udp dport { 3478, $relay_min-$relay_max } dnat to 198.18.0.10
        iifname "eth0" tcp dport 3478 dnat to 198.18.0.10
        iifname "lan0" ip daddr 203.0.113.30 udp dport $relay_min-$relay_max dnat to 198.18.0.10
    }
    chain post {
        type nat hook postrouting priority srcnat;
        oifname "eth0" snat to 203.0.113.30
        oifname "lan0" ip saddr 198.18.0.10 ip daddr 198.18.0.10 snat to 203.0.113.30
    }
}
NFT
    trap - ERR
    cat <<EOF
lab $id
synapse   $(ns hs)     203.0.113.20 2001:db8:113::20
turn      $(ns turn)   203.0.113.10 203.0.113.11 2001:db8:113::10 2001:db8:113::11
alice     $(ns alice)  192.0.2.10 behind $(ns nata) 203.0.113.101 (endpoint-independent mapping)
          $(ns alice)  2001:db8:a::10 routed by $(ns nata) 2001:db8:113::101 (no NAT, stateful firewall)
bob       $(ns bob)    198.51.100.10 behind $(ns natb) 203.0.113.102 (symmetric), IPv4-only
carol     $(ns carol)  198.19.0.10 behind $(ns natc) 203.0.113.103 (symmetric), IPv4-only
turnp     $(ns turnp)  198.18.0.10 behind $(ns natt) 203.0.113.30 (3478 and $relay_min-$relay_max forwarded)
EOF
}

down() {
    local name
    for name in $(ip netns list | awk '{print $1}' | grep -E "^tk-$id-" || true); do
        # ip netns pids lists every process whose network namespace this is.
        ip netns pids "$name" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    done
    for name in $(ip netns list | awk '{print $1}' | grep -E "^tk-$id-" || true); do
        ip netns del "$name"
    done
    rm -f "$registry/$id"
}

# Labs whose owner process is gone: namespaces with no registry entry, or an entry naming a dead process.
orphans() {
    local lab owner
    for lab in $(ip netns list | awk '{print $1}' | grep -E '^tk-[a-z0-9]+-' | cut -d- -f2 | sort -u); do
        owner="$(cat "$registry/$lab" 2>/dev/null || true)"
        if [ -z "$owner" ] || ! kill -0 "$owner" 2>/dev/null; then echo "$lab"; fi
    done
}

sweep() {
    local file owner
    for file in "$registry"/*; do
        [ -e "$file" ] || continue
        owner="$(cat "$file")"
        if ! kill -0 "$owner" 2>/dev/null; then
            id="$(basename "$file")"
            echo "natlab: removing lab $id (owner $owner is gone)"
            down
        fi
    done
}

# A lab that lives as long as this script: coturn on the public network, alice and bob calling through it,
# then the same pair without TURN. The EXIT trap removes every namespace and process, however it ends.
demo() {
    cd "$(dirname "$0")/.."
    swift build --product turnkeeper >/dev/null
    local tk
    tk="$(swift build --show-bin-path)/turnkeeper"
    id="d$((RANDOM % 100000))"
    work="$(mktemp -d /tmp/turnkeeper-natlab-XXXXXX)"
    trap 'down; rm -rf "$work"' EXIT
    OWNER_PID=$$ up
    "$tk" secret generate --out "$work/secret" >/dev/null
    umask 077
    {
        sed -e "s|@REALM@|lab.turnkeeper.test|" -e "s|@DIR@|$work|" coturn/natlab.conf.in
        printf '%s\n' listening-ip=203.0.113.10 listening-ip=203.0.113.11 relay-ip=203.0.113.10
        printf 'static-auth-secret=%s\n' "$(<"$work/secret")"
    } >"$work/turnserver.conf"
    in_ns turn turnserver -c "$work/turnserver.conf" >"$work/turnserver.log" 2>&1 &
    for _ in $(seq 1 50); do
        in_ns alice timeout 1 turnutils_stunclient 203.0.113.10 >/dev/null 2>&1 && break
        sleep 0.1
    done
    local uri="turn:203.0.113.10?transport=udp" side
    for mode in relayed direct; do
        echo "== alice (behind NAT A) and bob (behind symmetric NAT B): $mode"
        mkdir -p "$work/$mode"
        local extra=(--secret-file "$work/secret" --uri "$uri")
        [ "$mode" = direct ] && extra=(--direct --uri stun:203.0.113.10)
        in_ns alice "$tk" call --name alice --peer bob --rendezvous "$work/$mode" --duration 3s "${extra[@]}" \
            >"$work/alice.txt" 2>&1 &
        in_ns bob "$tk" call --name bob --peer alice --rendezvous "$work/$mode" --duration 3s "${extra[@]}" \
            >"$work/bob.txt" 2>&1 || true
        wait $! || true
        for side in alice bob; do sed 's/^/   /' "$work/$side.txt"; done
    done
    echo "== turnkeeper probe stun:203.0.113.10, run on bob"
    in_ns bob "$tk" probe stun:203.0.113.10 | sed 's/^/   /'
    echo "== removing lab $id"
}

command="${1:-}"
case "$command" in
    up|down)
        id="${2:?usage: natlab.sh $command ID}"
        [[ "$id" =~ ^[a-z0-9]{1,8}$ ]] || { echo "natlab: ID must be 1-8 of [a-z0-9]" >&2; exit 2; }
        "$command"
        ;;
    sweep) sweep; for id in $(orphans); do echo "natlab: removing lab $id (no owner)"; down; done ;;
    orphans) orphans ;;
    list) ip netns list | awk '{print $1}' | grep -E '^tk-[a-z0-9]+-' | cut -d- -f2 | sort -u ;;
    demo) demo ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
esac
