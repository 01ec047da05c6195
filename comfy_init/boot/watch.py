"""The running comfy-init's watch: every COMFY_WATCH_INTERVAL seconds (60) while ComfyUI runs, the
checks `comfy-init health` makes (tree.invariants: the isolation invariants, and that the claim is
still ours), in a thread beside the supervisor and the claim renewer.

A finding is logged as ONE WARNING line when it appears and one INFO line when it is gone; a
finding that stays is never logged again, and a changed one (a link replaced a second time) is a
new finding. The watch only warns: ComfyUI keeps running. A claim taken over is the renewer's to
act on (it stops ComfyUI); a record that vanished is written again at its next renewal.
"""

import threading

from comfy_init import log
from comfy_init.errors import ComfyInitError
from comfy_init.tree.invariants import claim_problems, isolation_problems


class TreeWatch:
    def __init__(self, config, registry, claim):
        self.config = config
        self.registry = registry
        self.claim = claim
        self._known = set()  # the lines of the findings logged and still there
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-watch", daemon=True)

    def start(self):
        if self.config.watch_interval > 0:
            self._thread.start()

    def stop(self):
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)  # a check stuck on a hung filesystem must not hold up the exit

    def _loop(self):
        while not self._stopping.wait(self.config.watch_interval):
            self.check()

    def check(self):
        """Look once; log what appeared (WARNING) and what went away (INFO)."""
        try:
            found = {problem.line() for problem in self.findings()}
        except Exception as error:  # a check that fails must not kill the watch, nor ComfyUI
            found = {f"the tree and claim check failed: {error}"}
        for line in sorted(found - self._known):
            log.warning(line)
        for line in sorted(self._known - found):
            log.info(f"no longer: {line}")
        self._known = found

    def findings(self):
        config = self.config
        try:
            claim = claim_problems(config.layout, config.instance_id, self.registry.load(),
                                   token=self.claim.record["token"])
        except ComfyInitError as error:  # a damaged registry is the finding
            claim = error.problems
        isolation = isolation_problems(config.layout, config.instance) if config.multi_instance else []
        return claim + isolation
