"""ComfyUI's stdout and stderr, passed through unchanged while an observer reads along.

Each stream gets a pipe and one thread that copies every chunk to comfy-init's own stream at once
(no line buffering: progress bars that redraw with \\r stay live) and then hands it to the
observer. The observer must be cheap and must not raise; it is how comfy-init sees lines like
`ASSETS_STARTUP_FAILED: in_use` that ComfyUI prints just before it exits.

The copy never stops early: if comfy-init's own stream is gone (a closed pipe), chunks are still
drained, or ComfyUI would block on a full pipe.
"""

import os
import threading

CHUNK = 65536


class OutputCopier:
    """Pipes for the child's fds 1 and 2, and the threads that copy them to ours."""

    def __init__(self, observer):
        self.observer = observer
        self.child_fds = {}   # target fd (1, 2) -> write end, handed to the child
        self.threads = []

    def open(self):
        """Make the pipes; return the write ends as (stdout, stderr) for Popen."""
        for target in (1, 2):
            read_end, write_end = os.pipe()
            self.child_fds[target] = write_end
            thread = threading.Thread(target=self._copy, args=(read_end, target),
                                      name=f"comfyui-output-{target}", daemon=True)
            self.threads.append(thread)
        return self.child_fds[1], self.child_fds[2]

    def started(self):
        """The child has its copies: close ours (EOF comes when the child's side closes) and copy."""
        for write_end in self.child_fds.values():
            os.close(write_end)
        self.child_fds = {}
        for thread in self.threads:
            thread.start()

    def abandon(self):
        """The child could not be started: close every end."""
        for write_end in self.child_fds.values():
            os.close(write_end)
        self.child_fds = {}

    def finish(self, timeout):
        """Wait up to `timeout` s for the last bytes: a grandchild that kept the pipe open must
        not hold comfy-init's exit (the threads are daemons)."""
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout)

    def _copy(self, read_end, target):
        writable = True
        try:
            while True:
                try:
                    chunk = os.read(read_end, CHUNK)
                except InterruptedError:
                    continue
                if not chunk:
                    return
                if writable:
                    writable = _write_all(target, chunk)
                try:
                    self.observer(target, chunk)
                except Exception:  # an observer bug must never stop the copy
                    pass
        finally:
            os.close(read_end)


def _write_all(fd, data):
    try:
        while data:
            written = os.write(fd, data)
            data = data[written:]
        return True
    except OSError:
        return False
