"""Targets: the load balancers lbctl drives.  One package per kind (``haproxy``,
``nginx``, ``bigip``), found through lbctl.kinds; here, what the file kinds share
(docs/architecture.md#where-each-kind-lives)."""
