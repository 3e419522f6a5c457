"""lbctl's test kit: the Consul and BIG-IP emulators (``lbctl_testkit.emulators``) and the
test stack helpers (``lbctl_testkit.support``). Never shipped in lbctl's wheel; lbctl never
imports it (an import-linter contract)."""
