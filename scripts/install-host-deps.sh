#!/bin/sh
# install-host-deps.sh - install what the Triad lab (triad-lab, the testbed_* tests) needs on a
# Debian 12 host, and check what the Rust build needs. Idempotent and quick when all is there:
# dpkg-query decides what is missing, and `apt-get update` runs only when something is.
#
# Used by the README, `make lab` and .ci/run. Needs root to install (it says so if not).
#
#   scripts/install-host-deps.sh            install what is missing
#   scripts/install-host-deps.sh --check    only report what is missing (exit 1 if anything is)
set -eu

# Host side of the lab:
#   systemd-container  systemd-nspawn (the nodes), systemd-id128 (per-node machine-id)
#   debootstrap        builds the Debian 12 node image from the host's own apt mirror
#   bridge-utils, iproute2  the private bridge triadbr0 and vb-* links
#   iptables           fault tooling (partitions) and bridge-nf visibility
#   haproxy            the balancer on 127.0.0.1:8080
#   apache2-utils      ab, for load while faults are injected
#   socat              HAProxy's admin socket
#   curl               HTTP checks through the balancer
#   mariadb-client     SQL from the host to the nodes in tests
#   openssl            s_client: the lab checks Galera's port speaks TLS with the cluster CA
#   util-linux         nsenter, mountpoint; procps: pgrep, free
#   ca-certificates    debootstrap/apt over https mirrors
#   systemd            systemd-analyze (unit checks in the packaging tests), systemd-id128
# Packaging (make deb, the testbed_packaging tests): make, dpkg-dev, binutils (objcopy for the
#   -dbgsym packages), xz-utils, lintian.
# OpenStack fake check (tests/openstack-fake): python3-venv, for a venv with the real
#   openstack CLI (python-openstackclient + python-octaviaclient from PyPI).
# cloud-init's own schema validator (`cloud-init schema`, the Nova provider's user-data test):
#   its Python dependencies here; cloud-init itself is unpacked, not installed, under
#   /opt/triad-ci/cloud-init (installed, its units would configure this host at boot).
# Metrics: prometheus (promtool checks the shipped alert rules and the coordinator's
#   /metrics; the lab's alert test runs its own prometheus on loopback; the package's
#   service does not start here).
# Benchmarks: prometheus-node-exporter, the footprint reference of `triad-lab bench-volume`
#   (run by the bench itself on 127.0.0.1:19100; the package's own service does not start here).
# Backups: age and zstd (the triad-backup test that reads sealed backups with the real
#   `age -d | zstd -d`, and restoring by hand; debootstrap only suggests zstd).
#   The S3 target's test runs a real S3 API: OpenStack Swift with its s3api middleware
#   (swift-proxy, swift-account, swift-container, swift-object, and memcached, which the
#   proxy's auth needs), started by the test on loopback; s3cmd is the real client that
#   checks it. Their packaged services are kept off (below): Swift's proxy would take :8080.
# The web dashboard (issue 21): chromium, headless, driven over its DevTools pipe by the
#   testbed_agents test and `triad-lab bench-dashboard` (a screenshot, a crashed node's tile
#   read as the page draws it); it trusts the coordinator's key by its hash (openssl, above),
#   so no NSS tools are needed.
# Rust side: a C toolchain for linking (gcc, libc6-dev), pkg-config, and libzstd-dev (zstd-sys
# links Debian's static libzstd instead of compiling zstd's C). protoc is NOT needed
# (the proto crate compiles .proto files in pure Rust).
PKGS="systemd-container debootstrap bridge-utils iproute2 iptables haproxy apache2-utils socat curl
mariadb-client openssl util-linux procps psmisc ca-certificates gcc libc6-dev pkg-config libzstd-dev
lintian dpkg-dev python3-venv prometheus-node-exporter prometheus age zstd
swift-proxy swift-account swift-container swift-object memcached s3cmd
python3-configobj python3-jinja2 python3-jsonpatch python3-jsonschema python3-netifaces
python3-oauthlib python3-requests python3-serial python3-yaml
chromium"

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
    echo "install-host-deps: all host packages present"
else
    echo "install-host-deps: missing:$missing"
    if [ "$check_only" = 1 ]; then
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "install-host-deps: need root to install:$missing" >&2
        exit 1
    fi
    echo "install-host-deps: apt-get update"
    apt-get update -q
    echo "install-host-deps: apt-get install$missing"
    # No packaged service may start during the install (Swift's proxy binds :8080, the lab's
    # balancer port): a policy-rc.d saying "no" (101), unless the host has its own.
    own_policy=1
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        own_policy=0
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing ||
        { [ "$own_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
    [ "$own_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
    # haproxy's package enables and (where systemd runs) starts a system haproxy on :80;
    # the lab runs its own instance, so keep the packaged one off where we can.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now haproxy >/dev/null 2>&1 || true
        # likewise node_exporter on :9100: the bench runs its own on loopback
        systemctl disable --now prometheus-node-exporter >/dev/null 2>&1 || true
        # and prometheus on :9090: the alert test runs its own
        systemctl disable --now prometheus >/dev/null 2>&1 || true
        # Swift (the proxy on :8080) and memcached on :11211: the S3 test runs its own
        for unit in $(systemctl list-unit-files --no-legend 'swift*' 'memcached*' | awk '{print $1}'); do
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        done
    fi
fi

# cloud-init, unpacked only (see above): /opt/triad-ci/cloud-init/usr/bin/cloud-init.
CLOUD_INIT_DIR=/opt/triad-ci/cloud-init
if [ ! -x "$CLOUD_INIT_DIR/usr/bin/cloud-init" ] && [ "$check_only" = 0 ] && [ "$(id -u)" = 0 ]; then
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    if ! (cd "$tmp" && apt-get download -q cloud-init >/dev/null 2>&1); then
        apt-get update -q
        (cd "$tmp" && apt-get download -q cloud-init)
    fi
    mkdir -p "$CLOUD_INIT_DIR"
    dpkg-deb -x "$tmp"/cloud-init_*.deb "$CLOUD_INIT_DIR"
    rm -rf "$tmp"
    echo "install-host-deps: cloud-init unpacked under $CLOUD_INIT_DIR"
fi

# The Rust toolchain itself (rustup, cargo, cargo-nextest) is installed by .ci/run or by hand;
# report clearly when it is not there rather than failing later in an obscure way.
rc=0
for tool in cargo rustc; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/$tool" ]; then
        echo "install-host-deps: $tool not found (install Rust with rustup; see rust-toolchain.toml)" >&2
        rc=1
    fi
done
if ! command -v cargo-nextest >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-nextest" ]; then
    echo "install-host-deps: note: cargo-nextest not found (make test uses it)" >&2
fi
exit $rc
