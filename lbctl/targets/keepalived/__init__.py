"""The keepalived kind: VRRP pairs in front of HAProxy or nginx (docs/high-availability.md). Kept empty."""
