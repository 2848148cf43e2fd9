# Triad: the two commands that matter are `make lab` and `make test`.
CARGO ?= cargo
# The lab tool as `make build` built it: `cargo run -p triad-tests` (and a `cargo build -p`
# of the daemons) unify features over fewer packages and compiled ring, rustls, tonic and the
# Triad crates a second time. Every target and every triad-lab command reuses this one build
# (`triad::cargo_build` runs the same command). It builds the tests too: with them, the
# dev-dependencies' features (tokio's test-util) apply to every crate, so the binaries and
# the tests share one compilation of tokio, tonic and the Triad crates, and `nextest run`
# builds nothing more (without --tests CI built them twice: 187 s + 163 s; with it, 274 s).
BUILD_ARGS = build --workspace --bins --tests
LAB = $(or $(CARGO_TARGET_DIR),target)/debug/triad-lab

.PHONY: all deps build lab lab-down test check fmt lint unit fuzz bench-gossip bench-lab bench-volume bench-recovery bench-autoscale bench-partition bench-app bench-scaleout bench-backup bench-dashboard deb

all: build

## Host packages and cargo tools the lab and the tests need (idempotent, quick when all is there).
deps:
	scripts/install-host-deps.sh
	scripts/install-cargo-tools.sh

build:
	$(CARGO) $(BUILD_ARGS)

## A three-node Debian cluster in systemd-nspawn containers behind HAProxy on 127.0.0.1:8080.
lab: deps build
	$(LAB) up

lab-down: build
	$(LAB) down

## Every test: formatting, lints (warnings denied), unit, in-process, loopback and testbed tests.
## The build goes before the lints: clippy re-checks only the workspace's own crates and
## reuses the dependencies the build compiled (77 s after the build against 189 s before it,
## on CI's 2 cores), so the order saves about two minutes and changes nothing checked.
test: deps build check deb
	$(LAB) image
	$(CARGO) nextest run --workspace --no-tests=pass

check: fmt lint

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Debian packages in target/debian/: triad-agent, triad-coordinator, triadctl (+ -dbgsym .ddebs).
## Release build, man pages and completions from the clap definitions, then cargo-deb.
## The testbed installs target/debian/triad-agent_*.deb into its nodes when it exists; the
## testbed_packaging tests lint, install, upgrade and purge them. See packaging/README.md.
## The man pages and completions come from the debug build's triad-gen-assets (the same clap
## definitions): built in release it was one more fat-LTO link of every Triad crate.
deb: build
	$(CARGO) build --release --locked -p triad-agent -p triad-coordinator -p triadctl --bins
	rm -rf target/release/assets
	$(or $(CARGO_TARGET_DIR),target)/debug/triad-gen-assets target/release/assets
	gzip -9nfk target/release/assets/man/*.[158]
	$(CARGO) deb -p triad-agent --no-build --dbgsym
	$(CARGO) deb -p triad-coordinator --no-build --dbgsym
	$(CARGO) deb -p triadctl --no-build --dbgsym

## Fast tests only (no containers): pure, in-process and loopback tiers.
unit: build
	$(CARGO) nextest run --workspace -E 'not test(/^testbed_/)'

## Property tests of the parsers of outside input (proptest; no cargo-fuzz on stable) with
## FUZZ_CASES cases each instead of the default 256. They are the tests whose names contain
## never_panic or round_trip (plus the election's); new ones follow that naming.
FUZZ_CASES ?= 20000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) nextest run --workspace --lib --no-fail-fast \
		-E 'test(/never_panic|round_trip|never_behind_a_reporting_member/)'

## Benchmarks, run on demand; they print figures.
bench-gossip:
	$(CARGO) bench -p triad-coordinator --bench gossip -- 3 10 100

bench-lab: build
	$(LAB) bench

## Volume formation, dead-mount recovery, agent CPU/RSS vs node_exporter (issue 5).
bench-volume: deps build deb
	$(LAB) bench-volume

## Full-outage recovery, both crash shapes: Pacemaker + ocf:heartbeat:galera, Galera's own pc.recovery, Triad (issue 4).
bench-recovery: deps build
	$(LAB) bench-recovery --pacemaker

## The web dashboard on the lab: crash to red tile in headless Chromium; coordinator CPU/RSS with and without it (issue 21).
bench-dashboard: deps build
	$(LAB) bench-dashboard

## Autoscaling on the lab: decision and serving times under load, scale-in time, failed requests (issue 8).
bench-autoscale: deps build
	$(LAB) bench-autoscale --rounds 2

bench-partition: deps build
	$(LAB) bench-partition --rounds 1

## The app (WordPress) through the balancer: latency idle and at 100 req/s, node and writer deaths.
bench-app: deps build
	$(LAB) bench-app --rounds 1

## Scale-out with a 2 GiB app database: a Galera-member web node (state transfer) vs a stateless one.
bench-scaleout: deps build
	$(LAB) bench-scaleout --db-mib 2048

## Backups: a Triad backup beside mariadb-backup | zstd and tar | zstd on the same node, app latency during it (issue 19).
bench-backup: deps build deb
	$(LAB) bench-backup --db-mib 2048 --files-mib 1024
