#!/usr/bin/env bash
# Build an md RAID0 array from NVMe devices, format it, mount it, and print the
# -o ext_path=... to give memcached-ts (or memcached) for its extstore tier.
#
# RAID0 because extstore's pages are a cache: nothing on them survives a restart, so
# redundancy buys nothing, and striping multiplies read IOPS. (memcached-ts can also stripe
# by itself: give one ext_path per device instead, each with its own filesystem.)
#
#   scripts/raid0-for-extstore.sh [options] DEVICE...
#     --dry-run            print every command instead of running it (no root needed)
#     --md DEV             md device to create (default /dev/md0)
#     --mount DIR          where to mount it (default /mnt/extstore)
#     --fs xfs|ext4        filesystem (default xfs, else ext4 when mkfs.xfs is missing)
#     --chunk SIZE         RAID chunk size for mdadm (default 512K)
#     --use-pct N          share of the filesystem to give extstore (default 90)
#     --file NAME          file name inside the mount (default extstore)
#     --force              allow devices that carry a filesystem or partition table
#
# Everything it does, in order:
#   mdadm --create DEV --level=0 --raid-devices=N --chunk=SIZE DEVICE... --run
#   mkfs.xfs -f DEV   (or mkfs.ext4 -F -E lazy_itable_init=1,lazy_journal_init=1 DEV)
#   mkdir -p DIR && mount -o noatime,nodiratime DEV DIR
# then prints the ext_path and the lines that would make it permanent (it never edits
# /etc/fstab or mdadm.conf itself).
set -euo pipefail

DRY_RUN=0
MD=/dev/md0
MOUNT=/mnt/extstore
FS=""
CHUNK=512K
USE_PCT=90
FILE=extstore
FORCE=0
DEVICES=()

die() { echo "raid0-for-extstore: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --md) MD="${2:?--md needs a device}"; shift ;;
    --mount) MOUNT="${2:?--mount needs a directory}"; shift ;;
    --fs) FS="${2:?--fs needs xfs or ext4}"; shift ;;
    --chunk) CHUNK="${2:?--chunk needs a size}"; shift ;;
    --use-pct) USE_PCT="${2:?--use-pct needs a number}"; shift ;;
    --file) FILE="${2:?--file needs a name}"; shift ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) die "unknown option $1" ;;
    *) DEVICES+=("$1") ;;
  esac
  shift
done

[ ${#DEVICES[@]} -ge 1 ] || die "give at least one device (e.g. /dev/nvme0n1 /dev/nvme1n1)"
case "$USE_PCT" in ''|*[!0-9]*) die "--use-pct takes a whole number" ;; esac
[ "$USE_PCT" -ge 1 ] && [ "$USE_PCT" -le 100 ] || die "--use-pct must be from 1 to 100"
case "$FILE" in */*|'') die "--file is a name, not a path" ;; esac
if [ -z "$FS" ]; then
  if command -v mkfs.xfs >/dev/null 2>&1; then FS=xfs; else FS=ext4; fi
fi
case "$FS" in xfs|ext4) ;; *) die "--fs must be xfs or ext4" ;; esac

# Print a command; run it unless --dry-run.
run() {
  echo "+ $*"
  if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

# Checks that must hold for real; in a dry run they only warn.
check() {
  if [ "$DRY_RUN" -eq 1 ]; then echo "# note: $*" >&2; else die "$*"; fi
}

if [ "$DRY_RUN" -eq 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "must run as root (or use --dry-run)"
  command -v mdadm >/dev/null 2>&1 || die "mdadm is not installed (apt-get install mdadm)"
  command -v "mkfs.$FS" >/dev/null 2>&1 || die "mkfs.$FS is not installed"
fi
[ -e "$MD" ] && check "$MD already exists"

total_bytes=0
for dev in "${DEVICES[@]}"; do
  if [ ! -b "$dev" ]; then
    check "$dev is not a block device"
    continue
  fi
  if grep -q "^$dev[p0-9]* " /proc/mounts 2>/dev/null; then check "$dev (or a partition of it) is mounted"; fi
  if [ "$FORCE" -eq 0 ] && command -v blkid >/dev/null 2>&1 && blkid -p "$dev" >/dev/null 2>&1; then
    check "$dev carries a filesystem or partition table (use --force to overwrite it)"
  fi
  size=$(blockdev --getsize64 "$dev" 2>/dev/null || echo 0)
  total_bytes=$((total_bytes + size))
done

run mdadm --create "$MD" --level=0 --raid-devices="${#DEVICES[@]}" --chunk="$CHUNK" "${DEVICES[@]}" --run
if [ "$FS" = xfs ]; then
  run mkfs.xfs -f "$MD"
else
  run mkfs.ext4 -F -E lazy_itable_init=1,lazy_journal_init=1 "$MD"
fi
run mkdir -p "$MOUNT"
run mount -o noatime,nodiratime "$MD" "$MOUNT"

# Size for ext_path: a share of what the filesystem offers (the array size in a dry run).
avail_bytes=0
if [ "$DRY_RUN" -eq 0 ]; then
  avail_bytes=$(df --output=avail -B1 "$MOUNT" | tail -n 1 | tr -d ' ')
else
  avail_bytes=$total_bytes
fi
GIB=$((1024 * 1024 * 1024))
if [ "$avail_bytes" -gt 0 ]; then
  size_g=$((avail_bytes / 100 * USE_PCT / GIB))
  [ "$size_g" -ge 1 ] || die "the filesystem is smaller than 1G"
  echo "ext_path=$MOUNT/$FILE:${size_g}G"
else
  echo "ext_path=$MOUNT/$FILE:<${USE_PCT}% of the array, in G>"
fi
echo "# e.g.: memcached-ts -m <MiB> -o ext_path=$MOUNT/$FILE:<size>G,ext_threads=<cores>"
echo "# to keep it across reboots (not done here):"
echo "#   mdadm --detail --scan >> /etc/mdadm/mdadm.conf && update-initramfs -u"
echo "#   echo '$MD $MOUNT $FS noatime,nodiratime,nofail 0 0' >> /etc/fstab"
