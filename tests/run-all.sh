#!/usr/bin/env bash
# Install everything the tests need and run the whole suite, integration tests
# included (a skipped one fails the run). Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# Debian's haproxy, nginx (plus nginx's stream module for tcp listeners), apache2, and BIND 9
# (named: the authoritative server the dns target's tests update), keepalived and iproute2
# (the VRRP pair tests in network namespaces), chromium and chromium-driver (the operator
# page's tests drive the headless browser through selenium and Debian's chromedriver).
# policy-rc.d keeps the packages from starting them as system services.
packages="haproxy nginx libnginx-mod-stream apache2 openssl ca-certificates bind9 keepalived iproute2 nftables chromium chromium-driver"
if ! dpkg -s $packages >/dev/null 2>&1; then
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
    [ -z "$guard" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi

# The Python package and its test extras, in a virtual environment of its own. The test
# extra requires lbctl-testkit (the emulators and test helpers, testkit/): one pip call
# takes it from the checkout.
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ./testkit '.[test]'

# Unused imports and names, the layering contract (pyproject.toml), then every test.
.venv/bin/ruff check --select F,E9 lbctl testkit tests bench ansible
.venv/bin/lint-imports --no-cache
LBCTL_REQUIRE_INTEGRATION=1 .venv/bin/python -m pytest -q -p no:cacheprovider "$@"

# Fidelity: py-consul's own API tests (pinned sdist, downloaded now) against the Consul emulator.
.venv/bin/python tests/pyconsul/run.py
