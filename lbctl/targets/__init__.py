"""Targets: the load balancers lbctl drives, and the low-level I/O they share."""
