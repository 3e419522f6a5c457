"""Data files shipped with lbctl: F5's AS3 JSON schema (Apache-2.0, see docs/bigip.md)."""
