#!/usr/bin/env bash
# The vm target end to end: real QEMU boots of Debian's kernel with corral's init (TCG here, KVM
# where it works). Each boot takes seconds under TCG, so one boot runs many probes.
#   vm_test.sh CORRAL SOURCE_DIR
set -uo pipefail
corral=$(realpath "$1")
src=$2
scratch=$(mktemp -d /tmp/corral-vm-test-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
. "$src/tests/e2e/checks.sh"

egress_policy() {  # egress_policy FILE PORT [MORE]: a vm policy that may reach localhost:PORT
  printf 'target = "vm"\n[filesystem]\nread_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]\n[network]\negress = ["localhost:%s"]\n%s\n' \
    "$2" "${3:-}" >"$1"
}

held_all() {  # held_all FILE NAME...: the probes printed "held NAME" for each, and none "OPEN"
  local file=$1 name
  shift
  for name in "$@"; do contains "fence $name" "$file" "held $name"; done
  if grep -q '^OPEN' "$scratch/$file"; then
    failed=$((failed + 1)); echo "FAIL: a climb succeeded:"; grep '^OPEN' "$scratch/$file"
  fi
}

ws=$scratch/ws
mkdir -p "$ws"
echo "do not touch" >"$ws/.env"
policy=$scratch/vm.toml
cat >"$policy" <<'EOF'
target = "vm"
[filesystem]
# /etc/mtab is a link inside a shared folder: the guest shows it once.
read_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc", "/etc/mtab"]
protect = [".env"]
[limits]
wall_time = "60s"
[syscalls]
deny = ["truncate"]
EOF
# A file outside everything the policy grants: the guest must not see it.
echo "host secret" >"$scratch/outside.txt"

# --- the command's output, status and files come back -----------------------------------------
check "exit status carried" 7 "$corral" exec --observe-exec --result "$scratch/result.json" \
  --policy "$policy" --cwd "$ws" -- \
  sh -c 'echo to-stdout; echo to-stderr >&2; echo made > made.txt; nproc > cpus.txt; exit 7'
contains "stdout comes back" out "to-stdout"
contains "stderr comes back apart" err "to-stderr"
if grep -q to-stderr "$scratch/out"; then
  failed=$((failed + 1)); echo "FAIL: stderr mixed into stdout"
else passed=$((passed + 1)); fi
if [ "$(cat "$ws/made.txt" 2>/dev/null)" = made ] && [ "$(stat -c %u "$ws/made.txt")" = "$(id -u)" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: made.txt missing or not the invoking user's"; ls -ln "$ws"
fi
# --observe-exec: init recorded what ran in the guest, at the guest's paths.
if python3 - "$scratch/result.json" "$ws" <<'PY'
import json, sys
execs = json.load(open(sys.argv[1]))["execs"]
shell = [e for e in execs if e["argv"][:2] == ["sh", "-c"] and e["end"] != "exec"]
nproc = [e for e in execs if e["argv"] == ["nproc"] and e["end"] != "exec"]
assert len(shell) == 1 and len(nproc) == 1, execs
assert nproc[0]["ppid"] == shell[0]["pid"] and nproc[0]["cwd"] == sys.argv[2], execs
assert nproc[0]["path"].endswith("/nproc"), execs
PY
then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: the guest's execs were not recorded"; fi
cpus=$(nproc)
[ "$cpus" -gt 8 ] && cpus=8
if [ "$(cat "$ws/cpus.txt" 2>/dev/null)" = "$cpus" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the guest has $(cat "$ws/cpus.txt" 2>/dev/null) vCPUs, not $cpus"
fi
head -c 300000 /dev/urandom >"$scratch/input"
check "stdin reaches the command, to its end" 0 "$corral" exec --policy "$policy" --cwd "$ws" -- \
  sh -c 'wc -c; echo after-eof' <"$scratch/input"
contains "every byte" out "300000"
contains "and the end of it" out "after-eof"
check "a missing program is 127" 127 "$corral" exec --policy "$policy" --cwd "$ws" -- no-such-program
contains "and says so" err "no-such-program"

# --- fences: each line is a climb that must fail -------------------------------------------------
cat >"$ws/climb.sh" <<EOF
try() { name=\$1; shift; if "\$@" >/dev/null 2>&1; then echo "OPEN \$name"; else echo "held \$name"; fi; }
try write-usr sh -c 'echo x > /usr/corral-vm-climb'
try write-etc sh -c 'echo x > /etc/corral-vm-climb'
try remount-usr-rw mount -o remount,rw /usr
try remount-then-write sh -c 'mount -o remount,rw /usr; echo x > /usr/corral-vm-climb'
try read-outside cat "$scratch/outside.txt"
try list-root-home ls /root/
try write-protected sh -c 'echo x > .env'
try unmount-protected umount .env
try mount-9p-anew sh -c 'mkdir -p /tmp/m && mount -t 9p -o trans=virtio s0 /tmp/m'
try mount-tmpfs sh -c 'mkdir -p /tmp/t && mount -t tmpfs t /tmp/t'
try load-module sh -c 'insmod /usr/lib/modules/x.ko'
try kill-init sh -c 'kill -9 1; sleep 1; test ! -d /proc/1'
try read-init-memory head -c1 /proc/1/mem
try forge-status sh -c 'ls /dev/vport* /sys/class/virtio-ports'
try see-disks sh -c 'ls /dev/vd* /dev/sd* /dev/mem /dev/ttyS0'
try network-out sh -c 'exec 3<>/dev/tcp/10.0.2.2/80' 
try python-network python3 -c 'import socket; socket.create_connection(("1.1.1.1", 80), 2)'
try chroot-escape chroot / true
try reboot-guest sh -c 'reboot -f'
try raw-socket python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'
try unshare-user unshare -U true
try write-proc-sys sh -c 'echo /tmp/x > /proc/sys/kernel/modprobe'
try write-sysrq sh -c 'echo h > /proc/sysrq-trigger'
try read-init-root cat /proc/1/root/corral/spec.json
try open-init-fds sh -c 'readlink /proc/1/fd/0 && cat /proc/1/fd/0 </dev/null'
try policy-denied-syscall python3 -c 'import os; open("t", "w").write("x"); os.truncate("t", 0)'
# controls: what the policy grants works
echo "control read-usr \$(test -r /usr/bin/env && echo ok)"
echo "control write-workspace \$(echo y > w.txt && cat w.txt)"
echo "control loopback \$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print("ok")')"
echo "control tmp \$(echo z > /tmp/z && cat /tmp/z)"
echo "control uid \$(id -u)"
echo "control inherited-fds \$(python3 -c 'import os; print(sorted(int(f) for f in os.listdir("/proc/self/fd")))')"
echo "control no-capabilities \$(grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status | awk '{print \$2}' | sort -u)"
EOF
check "climbs run" 0 "$corral" exec --policy "$policy" --cwd "$ws" -- sh climb.sh
cp "$scratch/out" "$scratch/climbs"
held_all climbs write-usr write-etc remount-usr-rw remount-then-write read-outside list-root-home \
  write-protected unmount-protected mount-9p-anew mount-tmpfs load-module kill-init \
  read-init-memory forge-status see-disks network-out python-network chroot-escape \
  reboot-guest raw-socket unshare-user policy-denied-syscall write-proc-sys write-sysrq \
  read-init-root open-init-fds
contains "control read-usr" climbs "control read-usr ok"
contains "control write-workspace" climbs "control write-workspace y"
contains "control loopback" climbs "control loopback ok"
contains "control tmp" climbs "control tmp z"
contains "the command runs as the invoking user" climbs "control uid $(id -u)"
contains "nothing of init's is open in the command" climbs "control inherited-fds [0, 1, 2, 3]"
contains "the command holds no capability" climbs "control no-capabilities 0000000000000000"
if [ "$(cat "$ws/.env")" = "do not touch" ] && [ ! -e /usr/corral-vm-climb ] && [ ! -e /etc/corral-vm-climb ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: a climb changed the host"
fi

# --- limits ---------------------------------------------------------------------------------------
short=$scratch/short.toml
sed 's/wall_time = "60s"/wall_time = "3s"/' "$policy" >"$short"
start=$SECONDS
check "wall time stops the VM" 124 "$corral" exec --policy "$short" --cwd "$ws" -- sleep 120
contains "and says so" err "wall-time"
[ $((SECONDS - start)) -lt 60 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: timeout took $((SECONDS - start)) s"; }

# A share that reaches the launch folder (here /tmp) gives no way to forge the status.
tmppol=$scratch/tmp.toml
sed 's|^protect = |read_write = ["/tmp"]\nprotect = |' "$policy" >"$tmppol"
check "the status cannot be forged through a share" 3 "$corral" exec --policy "$tmppol" --cwd "$ws" -- \
  sh -c 'for f in /tmp/corral-vm-*/*; do echo "exit 0" > "$f"; done 2>/dev/null; exit 3'

# A writable bind that is a link on the host: its target, at the link's path (local semantics).
mkdir -p "$scratch/rwdir"
ln -s rwdir "$scratch/rwlink"
linkpol=$scratch/link.toml
sed "s|^protect = |read_write = [\"$scratch/rwlink\"]\nprotect = |" "$policy" >"$linkpol"
check "a writable symlinked bind" 0 "$corral" exec --policy "$linkpol" --cwd "$ws" -- \
  sh -c "echo through-link > $scratch/rwlink/f"
[ "$(cat "$scratch/rwdir/f" 2>/dev/null)" = through-link ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: the write through the link did not land"; }

# A reader of the output that goes away stops the command, as SIGPIPE would.
start=$SECONDS
"$corral" exec --policy "$policy" --cwd "$ws" -- yes 2>"$scratch/err" | head -c 5 >"$scratch/out"
status=${PIPESTATUS[0]}
[ "$status" = 141 ] && [ $((SECONDS - start)) -lt 40 ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: yes | head: exit $status after $((SECONDS - start)) s"; }
contains "head got its bytes" out "y"

# cpu_time bounds the whole VM: QEMU's CPU, boot included.
cpupol=$scratch/cpu.toml
sed 's/wall_time = "60s"/wall_time = "120s"\ncpu_time = "15s"/' "$policy" >"$cpupol"
# (SIGKILL from the cgroup's count as root; SIGXCPU from the rlimit without a cgroup.)
"$corral" exec --policy "$cpupol" --cwd "$ws" -- sh -c 'while :; do :; done' 2>"$scratch/err"
status=$?
[ "$status" = 137 ] || [ "$status" = 152 ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: cpu_time: exit $status"; cat "$scratch/err"; }
contains "and says so" err "cpu-time limit: limits.cpu_time"

# limits.memory is the guest's RAM (plus its kernel's share), and bounds QEMU's cgroup.
mempol=$scratch/mem.toml
sed 's/wall_time = "60s"/wall_time = "60s"\nmemory = "256MiB"/' "$policy" >"$mempol"
bomb='awk "/MemTotal/ { print \"ram\", (\$2 < 360 * 1024) }" /proc/meminfo; python3 -c "x = bytearray(1 << 30)"'
"$corral" exec --policy "$mempol" --cwd "$ws" -- sh -c "$bomb" >"$scratch/out" 2>"$scratch/err"
status=$?
if [ "$status" = 125 ] && [ "$(id -u)" != 0 ] && grep -q "limits.memory needs a memory cgroup" "$scratch/err"; then
  passed=$((passed + 1))  # as in the local sandbox: this user may create no memory cgroup
else
  [ "$status" = 1 ] && passed=$((passed + 1)) ||
    { failed=$((failed + 1)); echo "FAIL: memory bomb: exit $status"; cat "$scratch/err"; }
  contains "the guest has the policy's memory" out "ram 1"
  contains "the allocation failed" err "MemoryError"
fi

# Ctrl-C: QEMU stops, and the command counts as ended by SIGINT, as in the local sandbox.
rm -f "$ws/started"
"$corral" exec --policy "$policy" --cwd "$ws" -- sh -c 'touch started; sleep 120' \
  >"$scratch/out" 2>"$scratch/err" &
vm=$!
for _ in $(seq 600); do [ -e "$ws/started" ] && break; sleep 0.1; done
kill -INT $vm
wait $vm
status=$?
[ "$status" = 130 ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: Ctrl-C gave exit $status, expected 130"; cat "$scratch/err"; }
contains "and says so" err "killed by SIGINT"

# --- an egress allow-list: the same proxy, reached through QEMU's restricted user network ---------
python3 -m http.server 0 --bind 127.0.0.1 --directory "$scratch" >"$scratch/http.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$scratch"' EXIT
port=
for _ in $(seq 50); do
  port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$scratch/http.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
netpol=$scratch/net.toml
egress_policy "$netpol" "$port"
cat >"$ws/net.py" <<'EOF'
import socket, sys, urllib.request
port = int(sys.argv[1])
def attempt(name, fn):
    try:
        fn()
        print("OPEN", name)
    except Exception as e:
        print("held", name, e)
print("allowed", urllib.request.urlopen("http://localhost:%d/outside.txt" % port).read().decode().strip())
attempt("denied-host", lambda: urllib.request.urlopen("http://example.com/"))
attempt("direct-gateway", lambda: socket.create_connection(("10.0.2.2", 80), 3))
attempt("direct-host-port", lambda: socket.create_connection(("10.0.2.2", port), 3))
attempt("direct-internet", lambda: socket.create_connection(("1.1.1.1", 443), 3))
attempt("proxy-address-other-port", lambda: socket.create_connection(("10.0.2.100", 22), 3))
attempt("dns", lambda: socket.getaddrinfo("example.com", 80))
EOF
check "egress allow-list in a VM" 0 "$corral" exec -v --policy "$netpol" --cwd "$ws" -- python3 net.py "$port"
cp "$scratch/out" "$scratch/net"
contains "the allowed host answers through the proxy" net "allowed host secret"
held_all net denied-host direct-gateway direct-host-port direct-internet proxy-address-other-port dns
contains "the refusal is the proxy's 403" net "held denied-host HTTP Error 403"
contains "the proxy recorded the allowed request" err "GET localhost:$port allowed"
contains "and the refused one" err "GET example.com:80 refused"

# --- secrets.inject in a VM: the guest holds a placeholder, the proxy swaps it for its host -------
site=$scratch/site
mkdir -p "$site"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -days 1 -keyout "$site/key.pem" -out "$site/cert.pem" >/dev/null 2>&1
python3 "$src/tests/sandbox/http_server.py" --root "$site" --port-file "$site/port" \
  --tls "$site/cert.pem" "$site/key.pem" >/dev/null 2>&1 &
tls_server=$!
trap 'kill $server $tls_server 2>/dev/null; rm -rf "$scratch"' EXIT
for _ in $(seq 50); do [ -s "$site/port" ] && break; sleep 0.1; done
tport=$(cat "$site/port")
injpol=$scratch/inject.toml
egress_policy "$injpol" "$tport" "[secrets]
inject = { API_KEY = [\"localhost:$tport\"] }"
value=inj-vm-5d0a9b27c1e5
check "secrets.inject in a VM" 0 env API_KEY=$value SSL_CERT_FILE="$site/cert.pem" \
  "$corral" exec --policy "$injpol" --cwd "$ws" -- sh -c "echo in=\$API_KEY; python3 -c \"
import os, urllib.request as u
print(u.urlopen(u.Request('https://localhost:$tport/echo', headers={'Authorization': os.environ['API_KEY']})).read().decode(), end='')\""
contains "the guest holds the placeholder" out "in=corral-inject-API_KEY-"
contains "the HTTPS request went through" out "echoed"
if grep -qF "$value" "$scratch/out" "$scratch/err"; then
  failed=$((failed + 1)); echo "FAIL: the guest saw the injected value"
else passed=$((passed + 1)); fi
contains "the server got the real value" site/headers.log "/echo $value"

# --- egress = "host": QEMU's user network, unrestricted; the host's loopback is its gateway -------
hostnet=$scratch/hostnet.toml
printf 'target = "vm"\n[filesystem]\nread_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]\n[network]\negress = "host"\n' >"$hostnet"
check "egress host in a VM" 0 "$corral" exec --policy "$hostnet" --cwd "$ws" -- sh -c "
  cat /etc/resolv.conf; echo routes=\$(grep -c '^eth0	00000000	0202000A' /proc/net/route)
  python3 -c \"import urllib.request as u; print('got', u.urlopen('http://10.0.2.2:$port/outside.txt').read().decode().strip())\""
contains "names resolve through QEMU's forwarder" out "nameserver 10.0.2.3"
contains "a default route through the gateway" out "routes=1"
contains "the host's loopback answers as 10.0.2.2" out "got host secret"

# --- tools.allow: Landlock in the guest, and init refuses the dynamic loader run as a program ----
toolspol=$scratch/vmtools.toml
printf 'target = "vm"\n[filesystem]\nread_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]\n[tools]\nallow = ["sh", "/usr/bin/python3"]\n' >"$toolspol"
ln -sf /lib64/ld-linux-x86-64.so.2 "$ws/ldso"
check "tools.allow in a VM" 0 "$corral" exec --policy "$toolspol" --cwd "$ws" -- sh -c '
  echo allowed; cat /etc/hostname; echo cat=$?
  /lib64/ld-linux-x86-64.so.2 /usr/bin/cat /etc/hostname; echo direct=$?
  (cd /lib64 && ./ld-linux-x86-64.so.2 /usr/bin/cat /etc/hostname); echo relative=$?
  ./ldso /usr/bin/cat /etc/hostname; echo link=$?
  exec 3</lib64/ld-linux-x86-64.so.2; /dev/fd/3 /usr/bin/cat /etc/hostname; echo devfd=$?
  /proc/self/fd/3 /usr/bin/cat /etc/hostname; echo procfd=$?
  no-such-program; echo missing=$?
  python3 -c "
import os
fd = os.open(\"/lib64/ld-linux-x86-64.so.2\", os.O_PATH)
try:
    os.execve(fd, [\"ld\", \"/usr/bin/cat\", \"/etc/hostname\"], {})
except OSError as e:
    print(\"descriptor\", e.errno)
"'
contains "an allowed program runs" out "allowed"
contains "one not allowed does not" out "cat=126"
contains "nor through the loader by its path" out "direct=126"
contains "nor by a relative path" out "relative=126"
contains "nor through a symlink" out "link=126"
contains "nor through /dev/fd" out "devfd=126"
contains "nor through /proc/self/fd" out "procfd=126"
contains "a missing program is still not found" out "missing=127"
contains "nor by execveat on a descriptor (EACCES)" out "descriptor 13"

# --- a granted file, not a folder: a read-only copy at its path, its siblings unseen --------------
mkdir -p "$scratch/files"
echo "granted content" >"$scratch/files/granted.txt"
echo "sibling content" >"$scratch/files/sibling.txt"
grantpol=$scratch/vmgrant.toml
printf 'target = "vm"\n[filesystem]\nread_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc", "%s"]\n' \
  "$scratch/files/granted.txt" >"$grantpol"
check "a granted read-only file" 0 "$corral" exec --policy "$grantpol" --cwd "$ws" -- sh -c "
  cat $scratch/files/granted.txt
  if echo x >> $scratch/files/granted.txt; then echo OPEN write; else echo held write; fi
  if cat $scratch/files/sibling.txt; then echo OPEN sibling; else echo held sibling; fi"
contains "it reads" out "granted content"
held_all out write sibling
[ "$(cat "$scratch/files/granted.txt")" = "granted content" ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: the granted file changed on the host"; }

# --- what the vm target refuses, before anything boots --------------------------------------------
filepol=$scratch/vmfile.toml
printf 'target = "vm"\n[filesystem]\nread_write = ["%s"]\n' "$scratch/files/granted.txt" >"$filepol"
check "a file granted read-write refused" 125 "$corral" exec --policy "$filepol" --cwd "$ws" -- true
contains "names the file and the key" err "corral: $filepol: filesystem: $scratch/files/granted.txt is a file granted read-write"
# In a plan, the same policy is a plan error: exit 2 at load, naming plan line and policy key.
refused=$scratch/refused
git init -q "$refused"
git -C "$refused" -c user.name=t -c user.email=t@t commit -q --allow-empty -m init
printf '[[task]]\nid = "a"\npolicy = "%s"\nrun = ["true"]\n' "$filepol" >"$scratch/refused.toml"
check "a plan with a vm policy it cannot honour" 2 "$corral" run "$scratch/refused.toml" --repo "$refused"
contains "names plan line, policy and key" err "refused.toml:3:"
contains "and the key" err "is a file granted read-write"
[ ! -e "$refused/.git/corral" ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: a refused plan left run state"; }
check "no guest kernel" 125 env CORRAL_VM_DIR="$scratch/none" "$corral" exec --policy "$policy" --cwd "$ws" -- true
contains "names what is missing" err "$scratch/none/vmlinuz"

# --- corral run with vm tasks: git inside the guest, outputs, auto-commit, merge -------------------
repo=$scratch/repo
git init -q "$repo"
git -C "$repo" config user.name t
git -C "$repo" config user.email t@t
git -C "$repo" commit -q --allow-empty -m init
cp "$policy" "$repo/vm.toml"
cat >"$repo/plan.toml" <<'EOF'
[[task]]
id = "a"
policy = "vm.toml"
run = ["sh", "-c", "echo one > one.txt && git add one.txt && git commit -qm 'agent commit' && echo '{\"n\": 1}' > $CORRAL_OUTPUT"]

[[task]]
id = "b"
policy = "vm.toml"
depends_on = ["a"]
run = ["sh", "-c", "cat one.txt $CORRAL_INPUTS/a.json; git update-ref refs/heads/main HEAD; echo two > two.txt"]
EOF
git -C "$repo" add -A
git -C "$repo" commit -q -m plan
main_before=$(git -C "$repo" rev-parse HEAD)
(cd "$repo" && check "run with vm tasks" 0 "$corral" run plan.toml --json)
run=$(cd "$repo" && ls .git/corral/runs | head -1)
merged=corral/$run/merged
if [ "$(git -C "$repo" show "$merged:one.txt")" = one ] && [ "$(git -C "$repo" show "$merged:two.txt")" = two ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the merge lacks the tasks' files"
fi
git -C "$repo" log --format=%s "corral/$run/a" | grep -x "agent commit" >/dev/null && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: the agent's own commit was not kept";
    git -C "$repo" log --format=%s "corral/$run/a"; cat "$repo/.git/corral/runs/$run/logs/a.log"; }
[ "$(git -C "$repo" rev-parse HEAD)" = "$main_before" ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: a guest moved the user's branch"; }
grep -q '"target":"vm"' "$repo/.git/corral/runs/$run/events.jsonl" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: the events do not say target vm"; }
grep '"type":"exec"' "$repo/.git/corral/runs/$run/events.jsonl" | grep '"task":"a"' |
  grep -q '"argv":\["git","commit"' && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: the run did not record the guest's git commit"; }
grep -q '{"n": 1}' "$repo/.git/corral/runs/$run/logs/b.log" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: b did not get a's output"; cat "$repo/.git/corral/runs/$run/logs/b.log"; }

finish
