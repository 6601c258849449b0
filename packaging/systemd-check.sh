#!/usr/bin/env bash
# Runs the packaged custosd under a real systemd: boots a throwaway Debian 12
# container (debootstrap + systemd-nspawn) with the unit, the sysusers and
# tmpfiles files and the binaries of BUILD installed as docs/operations.md
# ("Running under systemd") says, then checks what the unit promises.
# Not part of ctest: it needs root, the packages debootstrap and
# systemd-container, and a Debian mirror (MIRROR) the first time.
#
#   packaging/systemd-check.sh [BUILD] [MACHINE_DIR]
#     BUILD        a build directory (default build/release)
#     MACHINE_DIR  the container's root (default /var/lib/machines/custos-check;
#                  made by debootstrap when it holds no systemd, kept after)
#
# Prints one "ok"/"FAIL" line per check; exits 1 if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build/release}
M=${2:-/var/lib/machines/custos-check}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CUSTOSD=$BUILD/server/custosd
TOOL=$BUILD/tools/custos
[ "$(id -u)" -eq 0 ] || { echo "systemd-check: run as root" >&2; exit 2; }
for b in "$CUSTOSD" "$TOOL"; do
  [ -x "$b" ] || { echo "systemd-check: no $b (build first)" >&2; exit 2; }
done
for c in debootstrap systemd-nspawn nsenter; do
  command -v "$c" >/dev/null || {
    echo "systemd-check: $c missing (apt-get install debootstrap systemd-container)" >&2
    exit 2
  }
done

# The Debian packages that hold the binaries' shared libraries.
runtime_packages() {
  ldd "$CUSTOSD" "$TOOL" | awk '/=> \//{print $3}' | sort -u |
    while read -r lib; do
      dpkg -S "$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null || true
    done | cut -d: -f1 | sort -u | paste -sd, -
}

if [ ! -x "$M/usr/lib/systemd/systemd" ]; then
  echo "systemd-check: debootstrap into $M"
  mkdir -p "$M"
  debootstrap --variant=minbase \
    --include="systemd,systemd-sysv,dbus,procps,$(runtime_packages)" \
    bookworm "$M" "$MIRROR" >/dev/null
fi

# Install as a package would; a fresh store and key on every run.
rm -rf "$M/var/lib/custos" "$M/var/backups/custos" "$M/etc/custos" "$M/root/a.token"
install -m 0755 "$CUSTOSD" "$M/usr/bin/custosd"
install -m 0755 "$TOOL" "$M/usr/bin/custos"
install -m 0644 packaging/custosd.service "$M/etc/systemd/system/custosd.service"
install -m 0644 packaging/custos.sysusers "$M/usr/lib/sysusers.d/custos.conf"
install -m 0644 packaging/custos.tmpfiles "$M/usr/lib/tmpfiles.d/custos.conf"
echo custos-check > "$M/etc/hostname"
chroot "$M" systemd-sysusers custos.conf
# /var/backups/custos: made at boot by systemd-tmpfiles-setup.service.
chroot "$M" install -d -m 0750 -o root -g custos /etc/custos
chroot "$M" custosd --generate-master-key /etc/custos/master.key >/dev/null
chroot "$M" systemctl enable custosd.service 2>/dev/null

log=$(mktemp)
# --capability=CAP_IPC_LOCK: nspawn's own seccomp filter refuses mlock to a
# container without it (EPERM), whatever the unit allows; the service itself
# still has no capability (CapabilityBoundingSet= empty) and locks within
# its LimitMEMLOCK. --rlimit: the container's systemd may only lower the
# limit it starts with, so it starts unlimited and the unit sets 64 MiB.
# --private-network: its loopback ports are its own.
systemd-nspawn -D "$M" -b --register=no --keep-unit --console=passive \
  --capability=CAP_IPC_LOCK --rlimit=RLIMIT_MEMLOCK=infinity \
  --private-network >"$log" 2>&1 &
nspawn=$!
stop_container() {
  if [ -n "${init:-}" ]; then
    nsenter -t "$init" -a systemctl poweroff >/dev/null 2>&1 || true
  fi
  for _ in $(seq 60); do kill -0 "$nspawn" 2>/dev/null || break; sleep 1; done
  kill "$nspawn" 2>/dev/null || true
  rm -f "$log"
}
trap stop_container EXIT

# The container's PID 1, seen from here: the systemd below nspawn.
init=
for _ in $(seq 60); do
  init=$(ps -e -o pid=,ppid=,comm= | awk -v p="$nspawn" '
    { parent[$1] = $2; comm[$1] = $3 }
    END { for (q in comm) if (comm[q] == "systemd") {
            r = q; while (r in parent && r != p && r > 1) r = parent[r];
            if (r == p) { print q; exit } } }')
  [ -n "$init" ] && break
  sleep 1
done
[ -n "$init" ] || { cat "$log"; echo "systemd-check: the container did not boot" >&2; exit 1; }
in_box() { nsenter -t "$init" -a "$@"; }
in_box systemctl is-system-running --wait >/dev/null 2>&1 || true

failed=0
check() {  # check NAME COMMAND...: ok when COMMAND succeeds
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then echo "ok   $name"; else echo "FAIL $name"; failed=1; fi
}
main_pid() { in_box systemctl show -P MainPID custosd; }
for _ in $(seq 30); do
  in_box test -S /run/custos/custosd.sock && break
  sleep 1
done
check "custosd.service is active" in_box systemctl is-active custosd
check "it runs as user custos" \
  bash -c "[ \"\$(nsenter -t $init -a ps -o user= -p \$(nsenter -t $init -a systemctl show -P MainPID custosd))\" = custos ]"
check "the socket is 0660, group custos" \
  bash -c "[ \"\$(nsenter -t $init -a stat -c '%a %G' /run/custos/custosd.sock)\" = '660 custos' ]"
check "the master key came as a systemd credential" \
  bash -c "nsenter -t $init -a grep -qz '^CREDENTIALS_DIRECTORY=' /proc/$(main_pid)/environ &&
           ! nsenter -t $init -a find /var/lib/custos -name '*master*' | grep -q ."
check "its unit raises the locked-memory limit to 64 MiB" \
  bash -c "[ \"\$(nsenter -t $init -a systemctl show -P LimitMEMLOCK custosd)\" = 67108864 ]"
# Only a host whose own hard limit allows it (CAP_SYS_RESOURCE, or a limit
# of at least 64 MiB) can give the container's systemd room to raise it.
hard=$(ulimit -Hl)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then
  check "its locked-memory limit is 64 MiB" \
    bash -c "nsenter -t $init -a grep -E '^Max locked memory[[:space:]]+67108864' /proc/$(main_pid)/limits"
else
  echo "skip its locked-memory limit is 64 MiB (this host's hard limit is ${hard} KiB)"
fi
check "the first admin's credential is 0600, owner custos" \
  bash -c "[ \"\$(nsenter -t $init -a stat -c '%a %U' /var/lib/custos/admin.token)\" = '600 custos' ]"

CLI=(custos --addr unix:/run/custos/custosd.sock --token-file /var/lib/custos/admin.token)
check "the tool logs in as admin" bash -c "nsenter -t $init -a ${CLI[*]} whoami | grep -q admin"
check "a user principal is added" \
  in_box "${CLI[@]}" principal add authority-a --role user --out /root/a.token
A=(custos --addr unix:/run/custos/custosd.sock --principal authority-a --token-file /root/a.token)
check "a record is stored" \
  bash -c "printf 'anna@example.org\nAnna\n' | nsenter -t $init -a ${A[*]} record create --kind request --attr country=AT --field name | grep -qx 1"
check "a backup is written to /var/backups/custos" \
  in_box "${CLI[@]}" backup /var/backups/custos/first
check "the backup verifies" in_box "${CLI[@]}" backup verify /var/backups/custos/first
check "its locked memory is in use (keys in guarded memory)" \
  bash -c "nsenter -t $init -a grep -E '^VmLck:[[:space:]]+[1-9]' /proc/$(main_pid)/status"
check "systemctl restart (SIGTERM, then a new start)" in_box systemctl restart custosd
for _ in $(seq 30); do
  in_box test -S /run/custos/custosd.sock && break
  sleep 1
done
check "the record and its personal data are there after the restart" \
  bash -c "nsenter -t $init -a ${A[*]} record get 1 | grep -q 'name = Anna'"
check "systemctl stop ends it cleanly (exit status 0)" \
  bash -c "nsenter -t $init -a systemctl stop custosd &&
           [ \"\$(nsenter -t $init -a systemctl show -P ExecMainStatus custosd)\" = 0 ]"
if [ "$failed" -ne 0 ]; then
  echo "--- journal of custosd.service"
  in_box journalctl -u custosd --no-pager | tail -40
fi
exit "$failed"
