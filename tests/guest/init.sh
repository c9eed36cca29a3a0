#!/bin/busybox sh
# /init of tsvirt's test guest (busybox-static). Kernel command line switches:
#   ip=ADDR/PREFIX[,GATEWAY] or ip=CLIENT::GW:NETMASK[:...]  static address on eth0 (else udhcpc on eth0)
#   ip=off                                                  leave eth0 alone
#   tsvirt.heartbeat=1                                      print "TSVIRT-HEARTBEAT n" every 200 ms on the serial port
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

out=/dev/console
[ -c /dev/ttyS0 ] && out=/dev/ttyS0
say() { echo "$*" >"$out"; }

while read -r m; do
  insmod "/lib/modules/$m" 2>/dev/null
done </etc/modules-order

hostname tsvirt-guest
ip link set lo up
cmdline="$(cat /proc/cmdline)"
ipspec=""
for w in $cmdline; do
  case "$w" in ip=*) ipspec="${w#ip=}" ;; esac
done

# ACPI power button -> /etc/acpi/PWRF/00000080 (poweroff).
mkdir -p /var/log /var/run
acpid -c /etc/acpi -l /var/log/acpid.log

if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  case "$ipspec" in
    off | none) ;;
    "" | dhcp | on | any) udhcpc -b -q -i eth0 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 ;;
    *:*)
      addr="${ipspec%%:*}"
      rest="${ipspec#*:}"; rest="${rest#*:}"
      gw="${rest%%:*}"; rest="${rest#*:}"
      mask="${rest%%:*}"
      prefix=24
      if [ -n "$mask" ]; then prefix="$(ipcalc -p "$addr" "$mask" | sed 's/PREFIX=//')"; fi
      ip addr add "$addr/$prefix" dev eth0
      [ -n "$gw" ] && ip route add default via "$gw" dev eth0 ;;
    *)
      ip addr add "${ipspec%%,*}" dev eth0
      case "$ipspec" in *,*) ip route add default via "${ipspec#*,}" dev eth0 ;; esac ;;
  esac
fi

disks=""
for b in /sys/block/*; do
  n="${b##*/}"
  case "$n" in loop* | ram* | zram*) continue ;; esac
  disks="${disks:+$disks,}$n"
done
say "TSVIRT-GUEST-READY kernel=$(uname -r) disks=${disks:-none}"

case " $cmdline " in
  *" tsvirt.heartbeat=1 "*)
    (
      n=0
      while :; do
        echo "TSVIRT-HEARTBEAT $n" >"$out"
        n=$((n + 1))
        usleep 200000
      done
    ) &
    ;;
esac

tty="${out#/dev/}"
[ "$tty" = console ] && tty=console
printf '::respawn:-/bin/sh\n::ctrlaltdel:/sbin/poweroff -f\n' | sed "s|^::respawn|$tty::respawn|" >/etc/inittab
exec init
