"""The `comfy-init` command.

`comfy-init run` is PID 1 of a container: its signal intake is installed before any other import,
and it never imports click. Every other subcommand goes through the click CLI in comfy_init.cli.
"""

import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        from comfy_init.pid1 import signals

        signals.install()  # first: a SIGTERM 100 ms after the container starts must not be lost
        from comfy_init.boot.main import run_main

        return run_main(argv[1:])
    if argv[:1] == ["health"]:
        # The HEALTHCHECK (every 10 s in the images): its plain forms skip click (cli/health_fast.py).
        from comfy_init.cli.health_fast import run_health_fast

        code = run_health_fast(argv[1:])
        if code is not None:
            return code
    from comfy_init.cli.main import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
