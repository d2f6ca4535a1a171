# Sourced by the demo, footprint and benchmark scripts: a throw-away coturn on loopback, from
# coturn/loopback.conf.in, never the system's service.
#
#   turnkeeper_loopback_coturn WORK SECRET_FILE REALM [RELAY_PORTS [RELAY_BASE]]
#
# RELAY_BASE below 32768 keeps the relay ports out of Linux's ephemeral range, where a load's own client
# sockets would otherwise take some of them.
# The secret goes into WORK/turnserver.conf through the shell's own printf, never a child's argv; call it
# under `umask 077`. Sets `port`, adds coturn's pid to the caller's `pids`, and returns 1 (with coturn's
# log) when it does not answer a STUN binding within about 50 tries.
turnkeeper_loopback_coturn() {
    local work=$1 secret=$2 realm=$3 relays=${4:-32}
    port=$((20000 + RANDOM % 10000))
    local relay=${5:-$((40000 + RANDOM % 20000))}
    {
        sed -e "s|@PORT@|$port|" -e "s|@RELAY_MIN@|$relay|" -e "s|@RELAY_MAX@|$((relay + relays - 1))|" \
            -e "s|@REALM@|$realm|" -e "s|@DIR@|$work|" coturn/loopback.conf.in
        printf 'static-auth-secret=%s\n' "$(<"$secret")"
    } >"$work/turnserver.conf"
    turnserver -c "$work/turnserver.conf" >"$work/turnserver.log" 2>&1 &
    pids+=($!)
    local _
    for _ in $(seq 1 50); do
        timeout 1 turnutils_stunclient -p "$port" 127.0.0.1 >/dev/null 2>&1 && return 0
    done
    cat "$work/turnserver.log" >&2
    echo "coturn did not answer on 127.0.0.1:$port (its log is above)" >&2
    return 1
}
