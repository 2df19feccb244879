# SafeKit appliance VM lab, sourced by appliance-image/vmtest: real VMs (qemu, TCG: this machine's
# /dev/kvm cannot run a guest) on a bridge with no uplink inside a network namespace of its own
# (198.18.50.0/24 only; the client side is 198.18.50.1), each with a copy-on-write overlay of the
# image and a NoCloud-style seed volume. VM number I has MAC 52:54:00:5a:fe:0I and address
# 198.18.50.1I. Everything started here (qemu by PID, the namespace, its files) goes on exit.
# Needs: $root (the repository), $image (a qcow2). Sets: $tag, $work, $token, $admin_key.

# shellcheck source=appliance-image/checks.sh
. "$root/appliance-image/checks.sh"
elapsed() { echo "$(date +%s.%N) - $1" | bc | sed 's/^\./0./'; } # elapsed START: seconds since START (date +%s.%N)

tag=skvm$(head -c 3 /dev/urandom | xxd -p)
work=$(mktemp -d "/tmp/$tag.XXXXXX")
qemu_pids=()
declare -A vm_pid=()
stop_vm() { # stop_vm PID: asks qemu to quit, then kills it
  kill "$1" 2>/dev/null || return 0
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$1" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$1" 2>/dev/null
}
cleanup() {
  for pid in "${qemu_pids[@]}"; do stop_vm "$pid"; done
  ip netns delete "$tag" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$tag"
ip -n "$tag" link set lo up
ip -n "$tag" link add br0 type bridge
ip -n "$tag" addr add 198.18.50.1/24 dev br0
ip -n "$tag" link set br0 up

# What every seed shares: the administrator's SSH key, the API token, the cluster key.
admin_key=$work/admin_key
ssh-keygen -q -t ed25519 -N "" -f "$admin_key"
token=$(head -c 16 /dev/urandom | xxd -p)
head -c 32 /dev/urandom > "$work/cluster.key"

make_seed() { # make_seed INDEX [CLUSTER_YAML]: $work/seedINDEX.img; without CLUSTER_YAML the node stays "not configured"
  local i=$1 config=${2:-} dir=$work/seed$1
  mkdir -p "$dir/safekit"
  printf 'instance-id: vm%s\nlocal-hostname: vm%s\n' "$i" "$i" > "$dir/meta-data"
  printf '[Match]\nMACAddress=52:54:00:5a:fe:0%s\n\n[Network]\nAddress=198.18.50.1%s/24\n' "$i" "$i" > "$dir/safekit/network"
  cp "$admin_key.pub" "$dir/safekit/authorized_keys"
  if [ -n "$config" ]; then
    cp "$config" "$dir/safekit/cluster.yaml"
    cp "$work/cluster.key" "$dir/safekit/"
    printf 'admin %s\n' "$token" > "$dir/safekit/api-tokens"
  fi
  mkfs.vfat -C -n CIDATA "$work/seed$i.img" 4096 >/dev/null
  mcopy -s -i "$work/seed$i.img" "$dir/"* ::/
}

boot_vm() { # boot_vm INDEX [--no-seed]: VM INDEX on tapINDEX; its disk an overlay (the image is never written).
  # Booting it again (after a reboot or a power-off) keeps its disk and its EFI variables.
  local i=$1 seed=()
  [ "${2:-}" = "--no-seed" ] || seed=(-drive file="$work/seed$i.img",format=raw,if=virtio,readonly=on)
  if [ ! -f "$work/vm$i.qcow2" ]; then
    ip -n "$tag" tuntap add "tap$i" mode tap
    ip -n "$tag" link set "tap$i" master br0 up
    qemu-img create -q -f qcow2 -b "$image" -F qcow2 "$work/vm$i.qcow2"
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vm$i-vars.fd"
  fi
  ip netns exec "$tag" qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot \
    -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
    -drive if=pflash,format=raw,unit=1,file="$work/vm$i-vars.fd" \
    -drive file="$work/vm$i.qcow2",format=qcow2,if=virtio,detect-zeroes=on "${seed[@]}" \
    -netdev tap,id=n0,ifname="tap$i",script=no,downscript=no -device virtio-net-pci,netdev=n0,mac="52:54:00:5a:fe:0$i" \
    -serial file:"$work/vm$i-serial.log" -monitor none -display none >> "$work/vm$i-qemu.log" 2>&1 &
  vm_pid[$i]=$!
  qemu_pids+=("$!")
  disown "$!" # killed on purpose later: no "Killed" notice from the shell
}
power_off() { kill -9 "${vm_pid[$1]}"; } # power_off INDEX: a real power cut, no shutdown at all

safekit=$root/controlplane/SafeKit.Cli/bin/Release/net10.0/safekit
[ -x "$safekit" ] || dotnet build "$root/controlplane/SafeKit.Cli/SafeKit.Cli.csproj" -c Release --nologo -v quiet >/dev/null
status() { # status INDEX: the cluster as VM INDEX's API tells it (JSON)
  ip netns exec "$tag" "$safekit" status --json --node "https://198.18.50.1$1:9453" --insecure --token "$token" --timeout 3 2>/dev/null
}
vm() { # vm INDEX COMMAND: runs COMMAND on VM INDEX over SSH as root (the seed's administrator key)
  local i=$1
  shift
  ip netns exec "$tag" ssh -q -i "$admin_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o BatchMode=yes "root@198.18.50.1$i" "$@"
}
declare -A ready=()
wait_api() { # wait_api START INDEX...: until each VM's API answers for itself (≤ 400 s); ready[I] = seconds since START
  local started=$1
  shift
  for _ in $(seq 1 400); do
    local waiting=0
    for i in "$@"; do
      if [ -z "${ready[$i]:-}" ]; then
        if [[ "$(status "$i")" == *"\"answered_by\": \"vm$i\""* ]]; then ready[$i]=$(elapsed "$started"); else waiting=1; fi
      fi
    done
    [ "$waiting" -eq 0 ] && return 0
    sleep 1
  done
  return 1
}
console_tail() { for i in "$@"; do echo "--- last lines of vm$i's console:"; tail -n 25 "$work/vm$i-serial.log"; done; }
