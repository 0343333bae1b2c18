"""This process's child processes (Lava's workers, DataLoader workers), ended at once: what
an interrupted or finished command, and an interrupted Lava run, do before they leave."""

from __future__ import annotations

import multiprocessing as mp


def kill_children(spare_managers: bool = False) -> None:
    """SIGKILL every live child; ``spare_managers`` leaves multiprocessing's managers
    (Lava's shared-memory manager) to be shut down in order first."""
    for proc in mp.active_children():
        if spare_managers and "Manager" in (proc.name or ""):
            continue
        try:
            proc.kill()
        except Exception:  # already gone
            pass
