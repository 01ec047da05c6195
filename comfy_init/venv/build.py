"""Making one environment: `python -m venv --without-pip` from the image's interpreter (about 50 ms,
nothing copied), one .pth file that adds the image's site-packages AFTER the environment's own, the
constraints and a pip.conf that applies them to every pip install, then the recorded requirements,
and the tag last: an environment without a tag is an unfinished one.

Everything here is built under a temporary name and renamed into place by `rebuild`; what points at
the final place (pip.conf, the scripts pip writes) names the final path, not the temporary one.
"""

import json
import os
import subprocess

from comfy_init import log
from comfy_init.venv.packages import site_packages
from comfy_init.venv.tag import CONSTRAINTS_FILE, PTH_FILE, TAG_FILE, constraint_reference

_TAIL = 20  # pip output lines kept for the error message


class BuildFailed(Exception):
    """pip (or venv) failed: `line` is the one line that says why."""

    def __init__(self, line):
        super().__init__(line)
        self.line = line


def as_user(user):
    """subprocess keywords that run a command as ComfyUI's user (None: as ourselves)."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}


def _give(path, user):
    if user is not None:
        os.lchown(path, user.uid, user.gid)


def _write(path, text, user):
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    _give(path, user)


def create(path, final, base_python, build, user, environ):
    """An empty environment at `path` (an empty or missing folder) that will live at `final`."""
    os.makedirs(path, exist_ok=True)
    _give(path, user)
    # --prompt: else an activated shell's prompt names the temporary folder.
    prompt = os.path.basename(os.path.dirname(final))
    done = subprocess.run([base_python, "-m", "venv", "--without-pip", "--prompt", prompt, path],
                          capture_output=True, text=True,
                          env=dict(environ), timeout=300, check=False, **as_user(user))
    if done.returncode != 0:
        raise BuildFailed(f"{base_python} -m venv failed: {_last_line(done.stderr or done.stdout)}")
    own = site_packages(path)
    if not own:
        raise BuildFailed(f"{base_python} -m venv made no site-packages in {path}")
    # An import line, not a plain path line: site.addsitedir also reads the image's own .pth files
    # (editable installs, setuptools' distutils shim), and appends, so the environment's own
    # packages come first and shadow the image's.
    # One line, plain statements: site runs it with exec() in a scope a comprehension cannot see.
    adds = "".join(f"; site.addsitedir({d!r})" for d in build.get("site_packages") or [])
    _write(os.path.join(own[0], PTH_FILE), f"import site{adds}\n", user)
    _write(os.path.join(path, CONSTRAINTS_FILE), constraints_text(build), user)
    # pip reads <sys.prefix>/pip.conf ("site" configuration) for every install in this environment.
    _write(os.path.join(path, "pip.conf"), "# comfy-init: the image's torch and pins are never replaced\n"
           f"[install]\nconstraint = {constraint_reference(os.path.join(final, CONSTRAINTS_FILE))}\n", user)


def constraints_text(build):
    head = ("# comfy-init: what the image provides and an install into an instance environment must keep.\n"
            "# An install that would replace one of these is refused by pip (ResolutionImpossible).\n")
    return head + "".join(f"{name}=={version}\n" for name, version in (build.get("protected") or {}).items())


def install(path, pins, requirement_files, user, environ):
    """pip install the pins and requirement files into the environment at `path`, under its
    constraints, with pip's output as progress lines in the log. BuildFailed on failure."""
    if not pins and not requirement_files:
        return
    argv = [os.path.join(path, "bin", "python"), "-m", "pip", "install", "--no-input", *pins]
    for requirements in requirement_files:
        argv += ["-r", requirements]
    # The environment's pip.conf names the final place; while it is built here, the variable wins.
    env = dict(environ, PIP_CONSTRAINT=constraint_reference(os.path.join(path, CONSTRAINTS_FILE)),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    try:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 errors="replace", env=env, **as_user(user))
    except OSError as error:
        raise BuildFailed(f"cannot run pip: {error}") from None
    tail = []
    for line in child.stdout:
        line = line.rstrip()
        if line:
            log.info(f"pip: {line}")
            tail = (tail + [line])[-_TAIL:]
    if child.wait() != 0:
        raise BuildFailed(f"pip exited {child.returncode}: {_why(tail)}")


def _why(tail):
    errors = [line for line in tail if line.startswith("ERROR:")]
    return (errors[0] if errors else (tail[-1] if tail else "no output"))[:300]


def _last_line(text):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def point_scripts_at(path, final):
    """pip wrote the environment's scripts with `#!<path>/bin/python`, venv its activate scripts
    with `<path>`: make them name `final`."""
    bin_dir = os.path.join(path, "bin")
    old, new = f"#!{os.path.join(path, 'bin')}".encode(), f"#!{os.path.join(final, 'bin')}".encode()
    for name in os.listdir(bin_dir):
        script = os.path.join(bin_dir, name)
        if os.path.islink(script) or not os.path.isfile(script):
            continue
        with open(script, "rb") as file:
            data = file.read()
        if name.lower().startswith("activate"):
            # venv wrote VIRTUAL_ENV="<path>" into its activate scripts: after the swap that folder
            # is gone, and an activated shell's python and pip would be the image's.
            _rewrite(script, data.replace(os.fsencode(path), os.fsencode(final)))
        elif data.startswith(old):
            _rewrite(script, new + data[len(old):])


def _rewrite(path, data):
    with open(path, "r+b") as file:
        file.write(data)
        file.truncate()


def write_tag(path, build, user, reinstalled, final=None):
    """The tag, last: from now on the environment at `path` is complete. `final` (where it will
    live, which its files name) is compared at every start: a moved environment is rebuilt."""
    tag = {"format": 1, "build": build, "reinstalled": reinstalled}
    if final is not None:
        tag["path"] = final
    _write(os.path.join(path, TAG_FILE), json.dumps(tag, indent=2) + "\n", user)
