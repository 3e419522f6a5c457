"""keepalived: a file kind.  lbctl renders this node's keepalived.conf, checks it
with ``keepalived -t``, swaps it and reloads with SIGHUP, confirmed by keepalived's
``reload_file`` (ctl.py).  Its VRRP state comes from ``lbctl vrrp-notify``."""

from __future__ import annotations

import re

from lbctl import drift, guard, model
from lbctl.errors import ConfigError, ValidationError, VerifyError
from lbctl.targets import files, procfs
from lbctl.targets.base import Change
from lbctl.targets.filetarget import FileTarget
from lbctl.targets.keepalived import binary, ctl, tracked

# keepalived reads the first eight characters of a PASS password; lbctl renders it quoted.
AUTH_PASS = re.compile(r"[A-Za-z0-9_.,:;!?@#%&*+=/~^-]{1,8}", re.ASCII)
LISTENERS = re.compile(r"#\s*listeners:\s*(.*)")


class KeepalivedTarget(FileTarget):
    kind = "keepalived"
    live_note = "keepalived serves virtual IPs; its VRRP state is shown with the target"
    siblings: dict = {}  # name: config.Target of the other file targets (Session.target)

    make_target = None  # config.Target -> Target (Session.target)

    def load_balancer(self):
        """The ``check_target``'s Target (its runtime), or None."""
        lb = self.siblings.get(self.settings.options.check_target)
        return None if lb is None or self.make_target is None else self.make_target(lb)

    def configs(self) -> dict[str, str | None]:
        """The sha256 of each sibling's configuration in place (compared with the peers')."""
        return {name: files.sha256_file(t.config) for name, t in sorted(self.siblings.items())}

    def tracked(self) -> tuple[str, ...]:
        """What ``vrrp_track_process`` watches: ``track_process``, else the check target's process."""
        opts = self.settings.options
        lb = self.siblings.get(opts.check_target)
        if opts.track_process is not None or lb is None:
            return opts.track_process or ()
        return tracked.default(lb.kind, lb.binary, lb.config)

    def plan(self, desired: model.Desired) -> Change:
        return self.plan_text(self.render(desired, cache=self.local()))

    def local(self) -> dict:
        """This node's own inputs to the render (view.py): the target's name and the VRRP password."""
        opts = self.settings.options
        if opts.check_target and self.siblings and opts.check_target not in self.siblings:
            raise ConfigError(f"targets.{self.name}.check_target: no file target {opts.check_target!r} in this "
                              f"lbctl.yml (have: {', '.join(sorted(self.siblings))})")
        password = opts.auth_pass(f"targets.{self.name}.auth_pass") if opts.authenticated else None
        if password is not None and not AUTH_PASS.fullmatch(password):
            raise ConfigError(f"targets.{self.name}.auth_pass: must be 1 to 8 letters, digits or punctuation "
                              "without quotes or spaces (keepalived reads 8 characters of a PASS password)")
        return {"target": self.name, "auth_pass": password, "track": self.tracked()}

    def node_report(self) -> dict:
        """What this node says of itself to its peers (``/vrrp/<target>`` of lbctl watch)."""
        from lbctl.targets.keepalived import pair

        return pair.node_report(self, self.configs())

    def hand_over(self, client: str) -> tuple[int, dict]:
        """A peer's ``POST /vrrp/<target>/handover`` (lbctl watch): handover.py."""
        from lbctl.targets.keepalived import handover

        return handover.hand_over(self, client)

    def vrrp_states(self) -> dict[str, int]:
        """Each instance's last notified state as ``lbctl_vrrp_state``'s number."""
        return {name: ctl.STATES[e["state"]] for name, e in ctl.read_states(self.settings.state_dir).items()}

    def served(self, text: str | None) -> guard.Served:
        return served(text)

    def check(self, change: Change) -> None:
        interface = self.settings.options.interface
        if ":" not in self.settings.options.me.address and not ctl.arp_quiet(interface):  # IPv6: no ARP
            raise ValidationError(f"{self.name}: net.ipv4.conf.all.arp_ignore (and .{interface}) is 0: this node "
                                  "would answer ARP for the VIPs it keeps on lo; set it to 1 "
                                  "(docs/high-availability.md#listeners-bind-the-vip-on-both-nodes)")
        if self.settings.options.forward_orphans_ms:
            from lbctl.targets.keepalived import orphans

            orphans.check(self.name, self.settings.options, change.candidate)
        staged = self.staged(change)
        try:
            binary.check(staged, self.settings.binary, self.settings.check_timeout_ms / 1000)
        finally:
            staged.unlink(missing_ok=True)

    def endpoints(self) -> str:
        return f", pid file {self.settings.options.pid_file}"

    def reload(self, change: Change) -> None:
        ctl.reload(self.settings.options.pid_file, self.settings.reload_timeout_ms / 1000)
        self.forward_orphans(change.candidate)

    def forward_orphans(self, conf: str, changed: bool = True) -> str:
        """Install (``forward_orphans``; only re-arm if the file has not ``changed``) or remove
        the nft table of orphans.py; what was done.  :raises CommandError: nft or a sysctl refused."""
        from lbctl.targets.keepalived import orphans

        if self.settings.options.forward_orphans_ms:
            states = {name: e["state"] for name, e in ctl.read_states(self.settings.state_dir).items()}
            return (orphans.install if changed else orphans.arm)(self.name, self.settings.options, conf, states)
        if orphans.available():  # never installed without nft: nothing to remove
            orphans.remove(self.name)
        return ""

    def verify_process(self) -> None:
        if not self.running():
            raise VerifyError(f"{self.name}: keepalived is not running (pid file {self.settings.options.pid_file})")

    def process(self) -> drift.Process | None:
        pid = ctl.running(self.settings.options.pid_file)
        return None if pid is None else drift.Process((pid,), procfs.started(pid))

    def process_status(self) -> dict:
        pid = ctl.running(self.settings.options.pid_file)
        if pid is None:
            return {"running": False}
        from lbctl.targets.keepalived import pair

        report = self.node_report()
        peers = pair.peer_reports(self)
        return {**report, "pid": pid, "peers": peers, "mismatched": pair.mismatched(report["configs"], peers),
                "summary": f"running, pid {pid}, {pair.status_summary(self, report, peers)}"}


def served(text: str | None) -> guard.Served:
    """The listeners whose addresses a keepalived.conf lbctl rendered holds (its
    ``# listeners:`` comments), for the removal guard.  Pure."""
    names = set()
    for line in (text or "").splitlines():
        if m := LISTENERS.match(line.strip()):
            names.update(n.strip() for n in m.group(1).split(",") if n.strip())
    return guard.Served(frozenset(names))
