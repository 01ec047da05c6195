"""Progress of a long snapshot command, drawn on stderr when it is a terminal (never in --json
output, never in a pipe or a log)."""

import sys
import time

import click


class Progress:
    """`Progress(verb)` is the `progress(files, bytes)` callback the operations take."""

    def __init__(self, verb, stream=None):
        self.verb = verb
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def __call__(self, files, total):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        rate = total / max(now - self.started, 1e-6) / 2**20
        click.echo(f"\r  {self.verb}: {files} files, {total / 2**20:.1f} MiB, {rate:.1f} MiB/s   ",
                   file=self.stream, nl=False)
        self._drawn = True

    def done(self):
        if self._drawn:
            click.echo("", file=self.stream)
