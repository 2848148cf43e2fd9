#!/bin/sh
# install-cargo-tools.sh - the Rust side of what `make test` needs on a fresh machine:
# the pinned toolchain name, cargo-nextest (the test runner) and cargo-deb (`make deb`).
# Idempotent and quick when all is there. Used by `make deps` (so `make test` and
# `make lab` work on a fresh Debian 12 machine) and therefore by .ci/run.
set -eu

# rust-toolchain.toml pins 1.95.0, the machine's one toolchain (no other can be fetched):
# when rustup does not know it under that name, link the installed stable to it.
if command -v rustup >/dev/null 2>&1 && ! rustup toolchain list | grep -q '^1\.95\.0'; then
    sysroot=$(rustup run stable rustc --print sysroot)
    echo "install-cargo-tools: linking the installed stable toolchain as 1.95.0"
    rustup toolchain link 1.95.0 "$sysroot"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "install-cargo-tools: installing cargo-nextest (about 3 min)"
    cargo install cargo-nextest --locked
fi
# `make deb` (part of `make test`) builds the .debs with cargo-deb
if ! cargo deb --version >/dev/null 2>&1; then
    echo "install-cargo-tools: installing cargo-deb (about 5 min)"
    cargo install cargo-deb --locked
fi
