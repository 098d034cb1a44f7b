#!/usr/bin/env bash
# System packages the tests need on a fresh Debian 12 machine (run as root).
# Real peers: OpenIPMI ipmi_sim BMCs, ipmitool / FreeIPMI for cross-checks and
# benchmarks, dnsmasq + DHCP clients (udhcpc, dhclient, perfdhcp from
# kea-admin) and Debian's iPXE binaries for netboot, QEMU with its iPXE NIC
# ROMs for real PXE boots, a Debian kernel + extlinux + mkfs/sfdisk for the
# lab's stand-in installer, clustershell for nodeset
# reference behaviour; mmdebstrap, squashfs-tools and zstd for fleet image
# build (a real Debian root filesystem from this machine's apt sources);
# GRUB for BIOS and UEFI, dosfstools, jq, curl, tar for the fleet boot
# environment (fleet bootenv build) and OVMF for UEFI VMs; gnupg (signs
# fleet's apt repository), dpkg-dev (dpkg-scanpackages, the reference for
# its Packages stanzas) and xz-utils (control.tar.xz of .debs); nginx and
# wrk for the boot-http benchmark (the bench starts its own nginx on
# loopback; the packaged service is never enabled by it); groff-base and
# man-db to render the generated man pages (test/unit/cli/man.test.ts);
# prometheus for its promtool (checks the example alert rules and a /metrics
# scrape; the packaged server is not used and is disabled); tcpdump (carried
# by the boot environment: it captures an LLDP frame while inspecting) and
# lldpd (the switch in the inspection VM test, run by the test inside its
# namespace; the packaged daemon is disabled: it would speak LLDP on this
# machine's own links); chromium for the dashboard's browser test (driven
# headless by puppeteer-core, which downloads no browser) and librsvg2-bin
# (rsvg-convert: fleet timeline -o FILE.png); a C++ toolchain
# because better-sqlite3 is built from source when no prebuilt
# binary can be downloaded; nfs-ganesha with its VFS back end (fleet's NFS
# server for diskless roots, started by fleet server or the tests inside
# their namespaces; the packaged service is disabled) and libnfs-utils (a
# user-space NFSv4 client: this machine's kernel has none); postgresql-15
# for the store's tests on PostgreSQL (the tests start their own temporary
# cluster with its initdb and pg_ctl, as nobody, on loopback:
# test/support/postgres-cluster.ts; Debian's own main cluster is not created).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential python3 protobuf-compiler
  openipmi ipmitool freeipmi-tools
  dnsmasq-base isc-dhcp-client udhcpc kea-admin ipxe busybox-static
  qemu-system-x86 ipxe-qemu
  linux-image-amd64 syslinux-common extlinux e2fsprogs fdisk kmod
  clustershell
  mmdebstrap squashfs-tools zstd util-linux file
  grub-pc-bin grub-efi-amd64-bin grub2-common dosfstools jq curl tar ovmf openssh-client
  openssl iproute2 procps
  gnupg gpgv dpkg-dev xz-utils
  nginx wrk
  groff-base man-db prometheus
  tcpdump lldpd
  chromium librsvg2-bin
  nfs-ganesha nfs-ganesha-vfs libnfs-utils
  postgresql-15
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # postgresql-common would create and start a cluster 15/main on :5432 when it installs the
  # server; the tests start their own (and remove it). Said before the install, in its conf.d.
  if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/fleet-tests.conf
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts the packaged nginx on :80 when it installs it; nothing here uses
  # that service (the boot-http benchmark runs its own nginx on loopback).
  # Best effort: where systemd is not PID 1 (containers) `--now` cannot stop
  # anything and fails, which must not fail CI; the unit is still disabled.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null && systemctl is-enabled --quiet nginx 2>/dev/null; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now nginx || echo "deps: could not stop the packaged nginx (not used by the tests)" >&2
    else
      systemctl disable nginx 2>/dev/null || true
    fi
  fi
  # Likewise the packaged Prometheus server: only its promtool is used. (--now needs a
  # running systemd; without one, as in a container, disabling is all there is to do.)
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus 2>/dev/null; then
    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus; else systemctl disable prometheus; fi
  fi
  # And the packaged NFS server: fleet runs its own ganesha on the management address only.
  if [[ " ${missing[*]} " == *" nfs-ganesha "* ]] && command -v systemctl >/dev/null; then
    for u in nfs-ganesha nfs-ganesha-lock; do
      if systemctl is-enabled --quiet "$u" 2>/dev/null; then
        if [ -d /run/systemd/system ]; then systemctl disable --now "$u" || true; else systemctl disable "$u" 2>/dev/null || true; fi
      fi
    done
  fi
  # And the packaged lldpd: it must not send LLDP on this machine's links (the test runs its own).
  if [[ " ${missing[*]} " == *" lldpd "* ]]; then
    if command -v systemctl >/dev/null && systemctl is-enabled --quiet lldpd 2>/dev/null; then
      if [ -d /run/systemd/system ]; then systemctl disable --now lldpd; else systemctl disable lldpd; fi
    fi
    # Without systemd the package's init script may have started it: stop that one (by its pid file).
    if [ -s /run/lldpd.pid ] && kill -0 "$(cat /run/lldpd.pid)" 2>/dev/null; then kill "$(cat /run/lldpd.pid)" || true; fi
  fi
fi
