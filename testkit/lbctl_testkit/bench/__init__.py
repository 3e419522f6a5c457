"""The benchmarks' harness (``bench/*.py`` are short scripts over it); lbctl never imports it.

- ``procs``: progress lines, durations, process groups stopped on every exit (``main``), polling;
- ``accounting``: percentiles and summaries, CPU and RSS from /proc, the JSON result line;
- ``haproxy``: HAProxy in master-worker mode, server states and reloads on its sockets;
- ``consul``: the Consul emulator in a child process, with its counters and request log;
- ``watch``: lbctl.yml and the inventory for a Consul-fed HAProxy, ``lbctl apply``/``watch``;
- ``changes``: the changes made in Consul and the time until HAProxy shows them;
- ``steps``: each step of one apply, timed with lbctl's own functions;
- ``backends``, ``load``: HTTP backends and load generators (child processes, bounded);
- ``election``: election hooks on the emulator, restartable controllers, the audit log;
- ``cluster``: the failover bench's controllers as a group (one leader, applies, stale writes);
- ``reload_target``: one HAProxy or nginx under ``lbctl apply``, and its old processes;
- ``dashboard_demo``: a small realistic set-up for the operator page's screenshot (``bench/ui.py --screenshot``);
- ``lbctl_api``: the lbctl internals the benches drive, imported in one place.
"""
