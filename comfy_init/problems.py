"""Problems as data: what is wrong, where, and how to fix it, with a stable `kind` name.

Every check in comfy-init reports `Problem`s instead of prose, so that a person (text), a script
(`--json`) and a later `check --fix` all work from the same facts. The exit code comes from the
kind, never from the wording. `KINDS` is the one list of kinds; docs/troubleshooting-style tables
and the JSON envelope use these names, so a kind is never renamed, only added.
"""

from comfy_init import exitcodes as errors

# kind -> (exit code, what it means). Ordered by the part of comfy-init that reports it.
KINDS = {
    # configuration (environment variables, options)
    "bad-setting": (errors.CONFIG, "an environment variable or option has a bad value"),
    "settings-overlap": (errors.CONFIG, "two path settings resolve to overlapping trees"),
    "usage": (errors.USAGE, "a command was called with arguments it does not take"),
    "bad-option": (errors.BAD_OPTION, "an option of a CLI command is unknown or has a bad value"),
    # the data tree
    "invalid-data": (errors.DATAERR, "the data tree holds something comfy-init must not touch"),
    "not-a-directory": (errors.DATAERR, "something other than a directory stands where one belongs"),
    "link-expected": (errors.DATAERR, "a real directory holding files stands where a link belongs"),
    "wrong-link": (errors.DATAERR, "a link points somewhere other than where it must"),
    "escapes-root": (errors.DATAERR, "a link leads out of the data root"),
    "unreadable-link": (errors.IOERR, "the filesystem refuses to read back a symbolic link of the tree"),
    "broken-link": (errors.DATAERR, "a link leads nowhere, in a loop, or to a non-directory"),
    "shared-folder": (errors.DATAERR, "an instance folder resolves into another instance or shared/"),
    "changed-while-preparing": (errors.DATAERR, "the tree changed between planning and applying"),
    "not-writable": (errors.NOPERM, "ComfyUI or comfy-init must write a path and cannot"),
    "cannot-look": (errors.NOPERM, "a path cannot be looked at (permission denied)"),
    "cannot-create": (errors.CANTCREAT, "a directory, link or file cannot be created"),
    "missing-path": (errors.NOINPUT, "a required path is missing"),
    # the store: registry, claims, locks
    "registry-damaged": (errors.DATAERR, "the instance registry does not parse or breaks its schema"),
    "registry-newer": (errors.DATAERR, "the instance registry was written by a newer comfy-init"),
    "registry-invalid-write": (errors.DATAERR, "comfy-init refused to write a registry that breaks its schema"),
    "not-a-regular-file": (errors.DATAERR, "a file comfy-init reads or locks is a link, FIFO, directory or device"),
    "single-file-mount": (errors.CONFIG, "a registry file is a single-file bind mount"),
    "instance-held": (errors.TEMPFAIL, "another live process runs this instance"),
    "lock-timeout": (errors.TEMPFAIL, "a lock stayed held longer than the wait allowed"),
    "port-in-use": (errors.TEMPFAIL, "the port is already taken"),
    "claim-lost": (errors.TEMPFAIL, "this process's claim was taken over"),
    "io-error": (errors.IOERR, "reading or writing failed below comfy-init"),
    # instances (create, show, delete)
    "instance-exists": (errors.DATAERR, "an instance of that id is configured or its directory exists"),
    "unknown-instance": (errors.NOINPUT, "no instance of that id is configured or present"),
    "port-conflict": (errors.DATAERR, "the port is configured for another instance"),
    "gpu-conflict": (errors.DATAERR, "the GPU is given to another instance"),
    "no-free-port": (errors.TEMPFAIL, "every port of the range is configured or in use"),
    # templates (meta/shared-configs/<name>)
    "unknown-template": (errors.NOINPUT, "no template of that name exists"),
    "template-exists": (errors.DATAERR, "a template of that name already exists"),
    "template-damaged": (errors.DATAERR, "a template's template.json does not parse, breaks its schema or is newer"),
    "node-clone-failed": (errors.FAILED, "a custom node could not be cloned from its recorded remote"),
    # snapshots
    "unknown-snapshot": (errors.NOINPUT, "no snapshot of that name, path or instance"),
    "snapshot-damaged": (errors.DATAERR, "a snapshot archive is truncated, corrupt or disagrees with its manifest"),
    "unsafe-member": (errors.DATAERR, "a snapshot archive holds a member a restore must never write"),
    # migration (comfy-init migrate)
    "migration-unfinished": (errors.FAILED, "a migration journal records a migration that stopped before its end"),
    "migration-in-progress": (errors.TEMPFAIL, "an unfinished migration involves this instance: it must end first"),
    # check (comfy-init check): findings about a whole tree
    "link-missing": (errors.DATAERR, "a link an instance needs is missing, or an empty directory or absolute link stands there"),
    "unregistered-directory": (errors.DATAERR, "a directory under instances/ that the registry does not configure"),
    "missing-instance-directory": (errors.DATAERR, "the registry configures an instance whose directory is missing"),
    "shared-database": (errors.DATAERR, "two instances use one ComfyUI database file"),
    "checkout-database": (errors.DATAERR, "a ComfyUI database in the ComfyUI checkout, where old releases share it"),
    "stray-temporary": (errors.FAILED, "a temporary file or folder that a killed comfy-init left behind"),
    # shared models (models verify, check) and shared workflows
    "model-duplicate": (errors.FAILED, "an instance holds its own copy of a file that shared/models already has"),
    "model-incomplete": (errors.DATAERR, "a model file is empty or a download left over (.part, .tmp, .download)"),
    "model-damaged": (errors.DATAERR, "a safetensors file's header does not parse or disagrees with its size"),
    "model-growing": (errors.TEMPFAIL, "a model file is still being written (a download in progress)"),
    "model-concurrent-download": (errors.TEMPFAIL, "two downloads of the same model are in progress at once"),
    "model-path-unshared": (errors.DATAERR, "an instance resolves a model folder outside shared/models"),
    "unknown-workflow": (errors.NOINPUT, "no workflow of that name in the instance or in shared/workflows"),
    "workflow-exists": (errors.DATAERR, "a workflow of that name is already there (--force replaces it, keeping a backup)"),
    "workflow-invalid": (errors.DATAERR, "a file is not ComfyUI workflow JSON"),
    # instance Python environments (instances/<id>/venv)
    "venv-failed": (errors.CANTCREAT, "an instance's Python environment cannot be made or its requirements reinstalled"),
    # ComfyUI
    "unhealthy": (errors.FAILED, "ComfyUI does not answer"),
    "database-in-use": (errors.TEMPFAIL, "ComfyUI gave up waiting for its database: another process holds it (ASSETS_STARTUP_FAILED: in_use, locked)"),
    "database-unusable": (errors.DATAERR, "ComfyUI refused its database: corrupt or from a newer release (ASSETS_STARTUP_FAILED: corrupt, newer_revision)"),
    "comfyui-startup-failed": (errors.FAILED, "ComfyUI stopped its start with ASSETS_STARTUP_FAILED for another reason"),
    "release-lacks-feature": (errors.CONFIG, "a setting asks for something the ComfyUI release in the checkout does not have"),
    "failed": (errors.FAILED, "an operation or check failed"),
}

# When problems of several kinds are reported together, the exit code is the first of these that
# any of them has: what the user must fix first (a setting) wins over what follows from it.
EXIT_PRECEDENCE = (errors.CONFIG, errors.USAGE, errors.BAD_OPTION, errors.NOINPUT, errors.DATAERR, errors.NOPERM,
                   errors.CANTCREAT, errors.IOERR, errors.TEMPFAIL, errors.FAILED)


class Problem:
    """One finding. `path` is the path it is about (or None), `message` what is wrong there,
    `fix` what the user should do; `exit_code` follows from `kind`."""

    __slots__ = ("kind", "path", "message", "fix", "details")

    def __init__(self, kind, message, *, path=None, fix=None, details=()):
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        self.kind = kind
        self.path = path
        self.message = message
        self.fix = fix
        self.details = tuple(details)  # further lines (a schema error per line, ...)

    @property
    def exit_code(self):
        return KINDS[self.kind][0]

    def line(self):
        """The one line a person reads: `<path>: <message>; <fix>`. Control characters (a newline
        in a path) are shown escaped: one problem is one line, and no value can forge another."""
        text = f"{self.path}: {self.message}" if self.path else self.message
        return _one_line(f"{text}; {self.fix}" if self.fix else text)

    def lines(self):
        """`line()`, or, when there are details, the head, the details and `fix: ...` last."""
        if not self.details:
            return [self.line()]
        head = f"{self.path}: {self.message}" if self.path else self.message
        return [_one_line(line) for line in (head, *self.details, *([f"fix: {self.fix}"] if self.fix else []))]

    def as_dict(self):
        return {"kind": self.kind, "path": self.path, "message": self.message, "fix": self.fix,
                "details": list(self.details), "exit_code": self.exit_code}

    def __repr__(self):
        return f"Problem({self.kind!r}, {self.line()!r})"


def is_control(character):
    """C0 and C1 control characters and DEL: what can break a line or a terminal. (Bytes of a path
    that are not UTF-8, seen as surrogate escapes, are not: the renderer escapes those.)"""
    return ord(character) < 32 or 127 <= ord(character) < 160


def one_line(text):
    """`text` with control characters escaped (\\n ...): a path can never split a line."""
    return _one_line(text)


def _one_line(text):
    if not any(map(is_control, text)):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if is_control(c) else c for c in text)


def exit_code_of(problems):
    """The exit code for a set of problems reported together (0 for none)."""
    codes = {problem.exit_code for problem in problems}
    for code in EXIT_PRECEDENCE:
        if code in codes:
            return code
    return min(codes) if codes else errors.OK
