"""`comfy-init health` without click: Docker runs the HEALTHCHECK every 10 s in every container,
and importing click costs about as much as the whole check (measured in bench/status.py).

Only the plain forms are taken here: `health [--json] [--timeout S | --timeout=S]`. Anything else
(--help, an unknown option, a value that is not a positive number) goes to the click command in
cli/health.py, which parses it and says what is wrong as every other command does.
"""

import math


def run_health_fast(argv):
    """The exit code of `comfy-init health ARGV`, or None when click must parse ARGV."""
    options = _parse(argv)
    if options is None:
        return None
    from comfy_init.ops.health import check_health
    from comfy_init.results import render

    as_json, timeout = options
    return render(check_health(timeout=timeout), as_json=as_json)


def _parse(argv):
    as_json, timeout, index = False, 5.0, 0
    while index < len(argv):
        word = argv[index]
        if word == "--json":
            as_json = True
        elif word.startswith("--timeout="):
            timeout = _positive(word.partition("=")[2])
        elif word == "--timeout" and index + 1 < len(argv):
            index += 1
            timeout = _positive(argv[index])
        else:
            return None
        if timeout is None:
            return None
        index += 1
    return as_json, timeout


def _positive(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None
