"""The operator page: a read-only view of what lbctl knows and what the load balancers report
(``lbctl watch --listen`` and ``lbctl ui``); see docs/dashboard.md."""
