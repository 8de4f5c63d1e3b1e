#!/usr/bin/env bash
# The test command: unit, property, simulation and integration tests (real gRPC on
# 127.0.0.1:0 and the built binary). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --workspace --all-targets "$@"
