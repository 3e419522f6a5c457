"""``lbctl watch``, the daemon, and what only it uses: the controller's loop
(``controller``), the wiring of a session into it, signals and the status server
(``daemon``), metrics and ``/metrics``, ``/healthz``, ``/readyz`` (``metrics``),
the leader election (``election``) and its log lines (``logs``).  The one-shot
commands never import this package (tests/unit/test_cli_imports.py)."""
