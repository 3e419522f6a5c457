#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0, like lbctl.
"""Ansible module: a one-shot ``lbctl apply`` whose result is lbctl's own."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lbctl_apply
short_description: Run a one-shot lbctl apply (lbctl plan in check mode)
description:
  - Runs C(lbctl apply -c CONFIG) and reports C(changed) from lbctl's own result
    (a target that is up to date is not a change).
  - On failure the task fails with lbctl's one-line message (C(lbctl: error: ...)).
  - In check mode runs C(lbctl plan -c CANDIDATE_CONFIG) instead, so nothing is written;
    C(changed) is plan's exit code 2. With C(--diff) the task shows plan's unified diff of
    every target's configuration file.
options:
  lbctl:
    description: The lbctl executable.
    type: path
    default: lbctl
  config:
    description: The lbctl.yml to apply.
    type: path
    required: true
  candidate_config:
    description:
      - The lbctl.yml to plan with in check mode, when the files in place were not written
        (the role stages the candidate lbctl.yml and inventory in a temporary directory).
      - Defaults to O(config).
    type: path
  target:
    description: Only this target (C(lbctl apply -t TARGET)); default all of them.
    type: str
  force:
    description:
      - Let through a change lbctl's removal guard refuses (C(lbctl apply --force)), an empty
        model included. Without it such a change fails the task with the guard's one line.
    type: bool
    default: false
  allow_removal:
    description: Pools and listeners whose removals the guard lets through (C(--allow-removal)).
    type: list
    elements: str
    default: []
author:
  - lbctl contributors
"""

EXAMPLES = r"""
- name: Apply the configuration
  lbctl_apply:
    lbctl: /opt/lbctl/venv/bin/lbctl
    config: /etc/lbctl/lbctl.yml
"""

RETURN = r"""
messages:
  description: lbctl apply's lines, one per target.
  returned: when not in check mode
  type: list
  elements: str
plan:
  description: lbctl plan's output (the unified diff, or "no changes" lines).
  returned: in check mode, or with --diff
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

PLAN_NO_CHANGES, PLAN_CHANGES = 0, 2


def lbctl_error(stderr, stdout):
    """lbctl's own words: its "lbctl: error: ..." line, else whatever it printed."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("lbctl: error:")]
    return "\n".join(errors or lines or [stdout.strip() or "lbctl failed without a message"])


def warn_all(module, stderr):
    for line in stderr.splitlines():
        if line.startswith("lbctl: warning:"):
            module.warn(line)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            lbctl=dict(type="path", default="lbctl"),
            config=dict(type="path", required=True),
            candidate_config=dict(type="path"),
            target=dict(type="str"),
            force=dict(type="bool", default=False),
            allow_removal=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    select = ["-t", p["target"]] if p["target"] else []
    result = dict(changed=False)

    def lbctl(*args):
        argv = [p["lbctl"], *args, *select]
        rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C.UTF-8"})
        warn_all(module, err)
        return argv, rc, out, err

    def fail(argv, rc, out, err):
        module.fail_json(msg=lbctl_error(err, out), rc=rc, cmd=argv, stdout=out, stderr=err, **result)

    if module.check_mode or module._diff:
        config = (p["candidate_config"] or p["config"]) if module.check_mode else p["config"]
        argv, rc, out, err = lbctl("plan", "-c", config)
        if rc not in (PLAN_NO_CHANGES, PLAN_CHANGES):
            fail(argv, rc, out, err)
        result["plan"] = out
        if rc == PLAN_CHANGES:
            result["diff"] = dict(prepared=out)
        if module.check_mode:
            result["changed"] = rc == PLAN_CHANGES
            module.exit_json(**result)

    guard = (["--force"] if p["force"] else []) + [a for name in p["allow_removal"] for a in ("--allow-removal", name)]
    argv, rc, out, err = lbctl("apply", "--json", "-c", p["config"], *guard)
    if rc != 0:
        fail(argv, rc, out, err)
    try:
        applied = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"lbctl apply --json printed no JSON: {out.strip()[:200]!r}", cmd=argv, **result)
    result["messages"] = [t["message"] for t in applied["targets"]]
    result["changed"] = applied["changed"]  # lbctl's own word: any target not "unchanged"
    if not result["changed"]:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
