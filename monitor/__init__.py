"""The watchdog: supervises one training run, restarts it from its checkpoint when it crashes,
is killed or hangs, and gives up with a reason when restarting does not help.

``supervise(runner, spec, policy)`` works through the runner interface only, so it behaves the
same for a local process and a container."""

from __future__ import annotations

from monitor.watchdog import RESTARTS_FILE, WatchPolicy, supervise

__all__ = ["RESTARTS_FILE", "WatchPolicy", "supervise"]
