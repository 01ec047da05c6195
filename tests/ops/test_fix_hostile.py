"""Hostile review of the commands that change data outside comfy-init's meta files (check --fix,
models verify --fix, workflows import/publish --force, instance purge). Each test fails on the
code as it stands and names what would be lost, overwritten or which traceback appears."""

import os

import pytest

from comfy_init.ops.models import duplicates
from comfy_init.ops.models.duplicates import find_duplicates, fix_duplicate
from tests.support.models import make_tree, safetensors_bytes, write

A = "core-a"


def _read(path):
    with open(path, "rb") as stream:
        return stream.read()


def test_shared_file_replaced_after_the_hash_is_not_swapped_in(tmp_path, monkeypatch):
    """fix_duplicate hashes both files, then os.link()s the shared file BY PATH: a shared file
    replaced (a re-download renamed into place) between the hash and the link is what the
    instance gets. The instance's model silently becomes other bytes, and its own bytes survive
    only in meta/trash, which `instance purge` deletes. Fix: link the shared file, then check
    the link's (dev, ino, size, mtime) against the lstat that was hashed (and refuse otherwise)."""
    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    (problem,) = find_duplicates(layout)
    real_hash = duplicates.hash_file
    calls = []

    def hash_then_replace_shared(path, info=None, progress=None):
        digest = real_hash(path, info, progress)
        calls.append(path)
        if path == shared:  # right after the shared file was verified: a writer renames a new one in
            other = write(shared + ".new", safetensors_bytes(3000, seed=7))
            os.replace(other, shared)
        return digest

    monkeypatch.setattr(duplicates, "hash_file", hash_then_replace_shared)
    outcome = fix_duplicate(layout, problem)
    assert _read(copy) == content, (
        f"the instance's model now holds other bytes (outcome {outcome}); its own copy is only in the trash")


def test_deeply_nested_workflow_json_is_one_clear_line_not_a_traceback(tmp_path):
    """parse_workflow catches UnicodeDecodeError and ValueError, but json.loads raises
    RecursionError on deeply nested input: `workflows publish` (and import, list) dies with a
    traceback instead of workflow-invalid (65). Fix: also catch RecursionError in parse_workflow."""
    from comfy_init.ops.workflows.commands import publish_workflows

    layout = make_tree(tmp_path / "data", A)
    write(layout.instance(A).workflow("deep"), b"[" * 200000 + b"]" * 200000)
    result = publish_workflows(layout, A, ["deep"])
    assert result.exit_code == 65 and "deep" in str(result.problems[0].path)


def test_after_the_fix_an_in_place_write_to_the_instance_copy_does_not_rewrite_the_shared_model(shm_tree):
    """The fix makes the instance's file a HARD LINK of the shared model. A custom node that
    re-downloads or updates the model of its own folder in place (open(path, "wb"), as many node
    downloaders do) now truncates and rewrites shared/models/... for every instance; before the
    fix it only touched its own copy. docs/models.md accepts this on the premise "model files
    are replaced, never written in place, by ComfyUI and its downloaders", which custom nodes
    (third-party code, the very folders walked here) do not promise. Fix: do not hard-link into folders a program writes
    (custom_nodes/*/models), or make the shared file read-only (chmod a-w) and say so, or use a
    reflink (FICLONE) where the filesystem has it; at least document the risk in docs/models.md.
    The fix chose chmod a-w; the writer here is the instance's own non-root user (uid 1000, PUID),
    because root bypasses file modes (docs/models.md says so plainly: a ComfyUI running as root
    can still write through the link)."""
    layout = shm_tree
    content = safetensors_bytes(3000)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    for path in (f"{layout.shared_models}/loras", shared, f"{layout.instance(A).custom_nodes}/n",
                 f"{layout.instance(A).custom_nodes}/n/models", copy):
        os.chown(path, 1000, 1000)  # both 0644 files of the PUID user (1000), who downloaded them and can write them
    (problem,) = find_duplicates(layout)
    assert fix_duplicate(layout, problem).problem is None

    def node_updater():  # the node's own updater, writing its own file, as the instance's user
        class Wrote:
            exit_code, lines = 0, ["wrote"]

        with open(copy, "wb") as stream:
            stream.write(b"half a download")
        return Wrote

    outcome = _as_uid_1000(node_updater)
    assert outcome.startswith("raised PermissionError"), outcome
    assert _read(shared) == content, "the shared model was overwritten through the instance's copy"


def test_the_fix_keeps_the_instance_copy_readable_by_its_owner(tmp_path):
    """The copy (uid 1000, 0644, what the instance's ComfyUI reads) is replaced by the shared
    file's inode with ITS owner and mode (root, 0600): the instance can no longer load the model
    it loaded before `--fix` ("keeps ComfyUI working"). Fix: refuse (and say why) when the shared
    file's mode/owner does not let the copy's owner read it."""
    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", content)
    os.chmod(shared, 0o600)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    os.chown(copy, 1000, 1000)
    os.chmod(copy, 0o644)
    (problem,) = find_duplicates(layout)
    outcome = fix_duplicate(layout, problem)
    after = os.stat(copy)
    readable = (after.st_uid == 1000 and after.st_mode & 0o400) or after.st_mode & 0o004
    assert outcome.problem is not None or readable, (
        f"uid 1000 cannot read its model any more: owner {after.st_uid}, mode {oct(after.st_mode)}")


def _ui_workflow(tag):
    import json

    return json.dumps({"nodes": [{"id": 1, "type": "Note", "widgets_values": [tag]}], "links": []}).encode()


def test_two_imports_with_force_at_once_do_not_overwrite_the_users_original_as_backup(tmp_path, monkeypatch):
    """`workflows import --force` takes no lock. Two at once (a script's --all beside a manual one)
    in the same second both pick `<name>.json.before-import-<UTC>` with unused_name (a look), and
    _keep_backup then os.replace()s its backup onto that name (an act): the second backup replaces
    the first, and the user's own workflow, the only thing the backup was for, is gone. Fix: take
    the instance's workflows lock (as publish takes shared/workflows'), and make the backup with
    link() (which never replaces) in a loop over unused names instead of rename()."""
    from comfy_init.ops.workflows import commands
    from comfy_init.ops.workflows.commands import import_workflows

    layout = make_tree(tmp_path / "data", A)
    write(layout.shared_workflow("wf"), _ui_workflow("shared"))
    target = write(layout.instance(A).workflow("wf"), _ui_workflow("the user's own, unique"))
    real_write_atomic = commands.write_atomic
    others = []

    def other_import_meanwhile(path, data, *, backup=None):
        if not others:  # the other `import --force`, a real process, starts between this one's look and its act
            import subprocess
            import sys

            others.append(subprocess.Popen(
                [sys.executable, "-m", "comfy_init", "workflows", "import", "wf", "--to", A, "--force",
                 "--data", layout.data], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        return real_write_atomic(path, data, backup=backup)

    monkeypatch.setattr(commands, "write_atomic", other_import_meanwhile)
    import_workflows(layout, ["wf"], to=A, force=True)
    output, _ = others[0].communicate(timeout=60)  # it waited for our lock, then did its own import
    assert others[0].returncode == 0, output
    folder = os.path.dirname(target)
    kept = [_read(os.path.join(folder, n)) for n in os.listdir(folder) if ".before-import-" in n]
    assert _ui_workflow("the user's own, unique") in kept, f"the original is gone; backups hold {kept}"


def test_a_fix_killed_before_its_rename_leaves_nothing_that_check_does_not_report(tmp_path):
    """kill -9 of `models verify --fix` between os.link(shared, temp) and the rename leaves
    `.<name>.dedupe-<hex>` (a hard link of the shared model) in the instance's model folder,
    and a second name of the copy in meta/trash. No checker knows the `.dedupe-` pattern: it is
    never reported nor removed (and a Ctrl-C there skips _undo too: it catches only OSError and
    Changed). Fix: add the pattern (under a lock the fixer holds) to check/temps.py, and undo in a
    `finally`/BaseException handler."""
    import signal

    from comfy_init.ops.check.run import check_data

    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    pid = os.fork()
    if pid == 0:  # the fixer, killed right after it made its temporary link
        try:
            duplicates._stat_key = lambda info: os.kill(os.getpid(), signal.SIGKILL)
            (problem,) = find_duplicates(layout)
            fix_duplicate(layout, problem)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    folder = os.path.dirname(copy)
    leftovers = [n for n in os.listdir(folder) if n != "a.safetensors"]
    result = check_data(layout, fix=True, stale_after=0)
    reported = {p.path for p in result.problems}
    left = [n for n in os.listdir(folder) if n in leftovers and os.path.join(folder, n) not in reported]
    assert not left, f"{left} left in {folder}, neither removed nor reported by `check --fix`"


def _as_uid_1000(function):
    """Run `function()` in a forked child as uid/gid 1000; its outcome as text ('raised <Type>: ...'
    or 'exit <code>: <first line>')."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(1000)
            os.setuid(1000)
            result = function()
            text = f"exit {result.exit_code}: {(result.lines or [''])[0]}"
        except BaseException as error:  # noqa: BLE001 - what the CLI would print as a traceback
            text = f"raised {type(error).__name__}: {error}"
        os.write(write_end, text.encode("utf-8", "replace"))
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.fixture
def shm_tree(tmp_path):
    import shutil
    import uuid

    root = f"/dev/shm/review2-{uuid.uuid4().hex[:8]}"
    os.makedirs(root)
    layout = make_tree(root + "/data", A)
    for directory, _, files in os.walk(root):
        for name in [directory, *(os.path.join(directory, f) for f in files)]:
            os.chown(name, 1000, 1000)
    yield layout
    shutil.rmtree(root, ignore_errors=True)


def test_purge_of_a_trash_entry_it_cannot_remove_is_one_line_not_a_traceback(shm_tree):
    """`instance purge` as the data tree's uid, with a trash entry holding a folder that user
    cannot empty (made by root, e.g. by a root `models verify --fix`): shutil.rmtree raises
    PermissionError, purge_trash does not catch it, the CLI prints a traceback (and the entries
    after it are left unreported). Fix: catch OSError per entry, report `cannot remove <path>:
    <strerror>` with the fix (`run it as root`, or chown), exit 74."""
    from comfy_init.ops.instances import purge_trash

    layout = shm_tree
    os.makedirs(layout.trash, exist_ok=True)
    os.chown(layout.trash, 1000, 1000)
    write(f"{layout.trash}/model-duplicates-20260101T000000Z/{A}/models/x.safetensors", b"x")  # root's
    outcome = _as_uid_1000(lambda: purge_trash(layout))
    assert outcome.startswith("exit "), outcome


def test_a_copy_rewritten_in_place_with_its_mtime_kept_is_not_swapped_out(tmp_path, monkeypatch):
    """The fix proves the copy unchanged since its hash by (dev, ino, size, mtime) only. A writer
    that rewrites it in place and keeps its time (`rsync --inplace --times`, `cp --preserve`,
    `touch -r`) passes that test: the instance's path then becomes the shared model while its
    new, unique bytes live only in meta/trash (gone at `instance purge`). Fix: add st_ctime_ns
    (which no one can set back) to _stat_key and to hash_file's before/after comparison."""
    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    write(f"{layout.shared_models}/loras/a.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    (problem,) = find_duplicates(layout)
    real_hash = duplicates.hash_file
    unique = safetensors_bytes(3000, seed=11)

    def hash_then_rewrite_copy(path, info=None, progress=None):
        digest = real_hash(path, info, progress)
        if path == copy:
            before = os.stat(copy)
            with open(copy, "r+b") as stream:
                stream.write(unique)
            os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
        return digest

    monkeypatch.setattr(duplicates, "hash_file", hash_then_rewrite_copy)
    outcome = fix_duplicate(layout, problem)
    assert _read(copy) == unique, f"the copy's own bytes were swapped out of the instance ({outcome})"


def _command_in(fix):
    import re

    return re.search(r"`([^`]+)`", fix).group(1)


def test_the_rm_a_stray_temporary_advice_is_shell_quoted(tmp_path):
    """A stale `.compose.instances.yml.tmp-*` in meta/ (its writer takes no lock) is reported with
    `rm -- <path>` to paste, the path not quoted. Under a data root with a space
    (`/srv/comfy data`) the pasted line removes `/srv/comfy` and the relative `data/meta/...`
    of the current directory: files that are not the temporary. Fix: shlex.quote every path put
    in a command (here, and `ln -f` of the model-duplicate refusal, and the others)."""
    import shlex
    import time

    from comfy_init.ops.check.run import check_data

    layout = make_tree(tmp_path / "comfy data", A)
    temp = write(f"{layout.meta}/.compose.instances.yml.tmp-4242-abcd", b"half")
    old = time.time() - 7200
    os.utime(temp, (old, old))
    (problem,) = [p for p in check_data(layout).problems if p.path == temp]
    assert shlex.split(_command_in(problem.fix)) == ["rm", "--", temp], problem.fix


def test_the_ln_advice_of_a_refused_duplicate_is_shell_quoted(tmp_path, monkeypatch):
    """Same for the model-duplicate refusal (another filesystem): `ln -f <shared> <copy>`
    unquoted; a copy named `my model.safetensors` makes `ln -f` link into the wrong place or
    fail. Fix: shlex.quote."""
    import errno
    import shlex

    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    shared = write(f"{layout.shared_models}/loras/my model.safetensors", content)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/my model.safetensors", content)
    (problem,) = find_duplicates(layout)

    def cross_device(source, target, **_):
        raise OSError(errno.EXDEV, "Invalid cross-device link", source)

    monkeypatch.setattr(os, "link", cross_device)
    outcome = fix_duplicate(layout, problem)
    assert shlex.split(_command_in(outcome.problem.fix)) == ["ln", "-f", shared, copy], outcome.problem.fix


def test_check_fix_puts_back_the_only_tree_a_killed_restore_left_in_its_replaced_name(tmp_path):
    """Where RENAME_EXCHANGE is missing, `snapshot restore` swaps with two renames; killed
    between them, instances/<id> is gone and `.restore-<id>-<hex>.replaced` holds the instance's
    live tree (restore.py calls it "the one window left"). `check --fix` then calls that tree a
    stray temporary and moves it into meta/trash, which `instance purge` empties: the instance's
    whole directory (output/ included, which no pre-restore snapshot holds) is one purge from gone,
    and the instance is left without a directory. Fix: when instances/<id> is missing, rename the
    `.replaced` folder back to instances/<id> (under the instance's lock), and say so."""
    import time

    from comfy_init.ops.check.run import check_data

    layout = make_tree(tmp_path / "data", A)
    root = layout.instance(A).root
    mine = write(f"{root}/output/my-render.png", b"only here")
    replaced = f"{layout.instances}/.restore-{A}-0123abcd.replaced"
    os.rename(root, replaced)  # the first rename of the two happened; the kill came before the second
    old = time.time() - 7200
    os.utime(replaced, (old, old))
    check_data(layout, fix=True)
    assert os.path.exists(mine), (
        f"the instance's tree is not back at {root}: {os.listdir(layout.trash) if os.path.isdir(layout.trash) else []} "
        "in meta/trash")



def test_purge_does_not_empty_another_filesystem_mounted_inside_a_trashed_instance(tmp_path):
    """An instance whose output/ is a mount (a NAS share, a tmpfs, a docker volume bind-mounted on
    the host) is deleted: `instance delete` renames instances/<id> into meta/trash, the mount
    goes along. `instance purge` then shutil.rmtree()s it; rmtree does not follow links but does
    descend into mount points: it empties the other filesystem, files that were never in the data
    root's own storage. Fix: walk with the entry's st_dev and refuse (one line naming the mount,
    exit 75 or 74) to descend into another filesystem; remove the rest."""
    import subprocess

    from comfy_init.ops.instances import delete_instance, purge_trash

    layout = make_tree(tmp_path / "data", A)
    output = layout.instance(A).output if hasattr(layout.instance(A), "output") else f"{layout.instance(A).root}/output"
    os.makedirs(output, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", output], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        precious = write(f"{output}/on-the-nas.png", b"not in the data root's storage")
        assert os.stat(precious).st_dev != os.stat(layout.data).st_dev
        deleted = delete_instance(layout, A)
        assert deleted.exit_code == 0, deleted.problems
        moved = deleted.data["trash"]
        share = os.path.join(moved, "output")
        try:
            said = purge_trash(layout).lines
        except OSError as error:  # and a traceback at the end: rmdir of the mount point is EBUSY
            said = f"raised {error!r}"
        assert os.path.exists(os.path.join(share, "on-the-nas.png")), f"purge emptied the mounted filesystem ({said})"
    finally:
        for place in (output, locals().get("share")):
            if place:
                subprocess.run(["umount", "-l", place], capture_output=True)


def test_a_fixed_line_names_a_path_with_a_newline_on_one_line(tmp_path):
    """`check --fix` prints each fix as `fixed: replaced <path> with ...`, the raw path inside:
    a model named with a newline (or invalid UTF-8) splits the report over two lines and prints
    the raw bytes, while the finding lines of the same run escape it (`\\n`, `\\udcff`). A log
    reader cannot tell which file was replaced. Fix: render paths in `fixed:`/`could not fix`
    lines as the finding lines do."""
    from comfy_init.ops.check.run import check_data

    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    write(f"{layout.shared_models}/loras/a.safetensors", content)
    write(f"{layout.instance(A).custom_nodes}/n/models/two\nlines.safetensors", content)
    result = check_data(layout, fix=True)
    fixed = [line for line in result.lines if line.startswith("fixed:")]
    assert fixed and all("\n" not in line for line in fixed), fixed


@pytest.mark.parametrize("second_line", [b'{"record":["x"]}', b"[" * 100000 + b"]" * 100000],
                         ids=["unhashable-record-kind", "deeply-nested"])
def test_a_damaged_migration_journal_is_a_finding_not_a_traceback(tmp_path, second_line):
    """meta/migration-journal.jsonl whose second line is `{"record": ["x"]}` (TypeError:
    unhashable type in Journal.state) or deeply nested JSON (RecursionError in json.loads, which
    catches only ValueError): `comfy-init check` (and --fix) dies with a traceback, and no other
    checker's findings are printed. Fix: Journal.read must accept only records whose `record` is
    a str, and catch RecursionError as a torn/damaged line (DataError naming the file and line)."""
    from comfy_init.ops.check.run import check_data

    layout = make_tree(tmp_path / "data", A)
    write(layout.migration_journal, b'{"record":"plan","plan":{}}\n' + second_line + b"\n")
    result = check_data(layout, fix=True)
    assert any(p.path == layout.migration_journal for p in result.problems), result.lines


def test_a_deeply_nested_hash_cache_is_rebuilt_not_a_traceback(tmp_path):
    """HashCache.load promises "never raises for content", but _decode's json.loads raises
    RecursionError on a deeply nested meta/model-hashes.json: `check`, `check --fix` and
    `models verify [--fix]` die with a traceback as soon as one copy has a shared file's size.
    Fix: catch RecursionError in _decode (treat as damaged: moved aside and rebuilt)."""
    from comfy_init.ops.check.run import check_data

    layout = make_tree(tmp_path / "data", A)
    content = safetensors_bytes(3000)
    write(f"{layout.shared_models}/loras/a.safetensors", content)
    write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    write(layout.model_hash_cache, b"[" * 100000 + b"]" * 100000)
    result = check_data(layout, fix=True)
    assert result.data["fixed"], result.lines


def test_a_model_whose_header_is_deeply_nested_json_is_reported_not_a_traceback(tmp_path):
    """A .safetensors whose 8-byte length is honest but whose header is `[[[[...]]]]` (a
    damaged or hostile download): safetensors_damage catches ValueError and UnicodeDecodeError,
    json.loads raises RecursionError: `models verify` (and --fix) dies with a traceback instead of
    reporting the file as model-damaged. Fix: catch RecursionError there too."""
    import struct

    from comfy_init.ops.models.verify import verify_models

    layout = make_tree(tmp_path / "data", A)
    header = b"[" * 100000 + b"]" * 100000
    path = write(f"{layout.shared_models}/checkpoints/hostile.safetensors", struct.pack("<Q", len(header)) + header)
    result = verify_models(layout, fix=True, settle=0, pause=lambda _s: None)
    assert any(p.path == path and p.kind == "model-damaged" for p in result.problems), result.lines


def test_import_all_is_all_or_nothing_when_one_instance_cannot_take_it(tmp_path):
    """commands.py: "A command is all or nothing: every name is checked (exists, valid, not in
    the way) before the first file is written". `import --all` checks the target FILES only: an
    instance whose user/default/workflows is a regular file (or unwritable) fails in
    os.makedirs after the earlier instances were written. Worse, makedirs' FileExistsError is
    taken by _write_owned for "a file appeared at the target" and turned into
    error_for(*_in_the_way(...)) of a target that does not exist: error_for() of NO problem, so
    the command exits 1 printing nothing at all (no line, no data, no problem), core-a written. Fix: check every target's
    folder (a directory or creatable, writable) in _in_the_way, before the first write."""
    from comfy_init.ops.workflows.commands import import_workflows

    layout = make_tree(tmp_path / "data", A, "core-b")
    write(layout.shared_workflow("wf"), _ui_workflow("shared"))
    workflows_b = os.path.dirname(layout.instance("core-b").workflow("wf"))
    os.makedirs(os.path.dirname(workflows_b), exist_ok=True)
    if os.path.isdir(workflows_b):
        os.rmdir(workflows_b)
    write(workflows_b, b"a file where the folder belongs")
    result = import_workflows(layout, ["wf"], all_instances=True)
    assert result.exit_code != 0
    assert not os.path.exists(layout.instance(A).workflow("wf")), (
        f"core-a was written before core-b failed: half an import ({result.problems})")


def test_a_fix_refused_for_a_shared_file_of_another_owner_says_why_and_leaves_no_litter(shm_tree):
    """`check --fix` as the tree's uid (1000) when the shared model belongs to root (a root
    `models` download): fs.protected_hardlinks forbids linking another user's file, and the line
    is `not replaced: [Errno 1] Operation not permitted: '<shared>' -> '<copy dir>/.<name>.dedupe-
    <hex>'` (a temporary name the user never heard of) with the fix `ln -f <shared> <copy> ...`,
    which fails the same way. And every refused attempt leaves an empty
    meta/trash/model-duplicates-<UTC>/<id>/... folder chain (one per run). Fix: on EPERM say that
    the shared file belongs to uid N and the link needs that owner (or root); remove the folders
    _trash_path made when nothing was kept."""
    layout = shm_tree
    content = safetensors_bytes(3000)
    shared = write(f"{layout.shared_models}/loras/a.safetensors", content)  # root's (written after the chown)
    copy = write(f"{layout.instance(A).custom_nodes}/n/models/a.safetensors", content)
    for path in (layout.shared_models, f"{layout.shared_models}/loras", f"{layout.instance(A).custom_nodes}/n",
                 f"{layout.instance(A).custom_nodes}/n/models", copy, layout.meta):
        os.chown(path, 1000, 1000)
    assert os.stat(shared).st_uid == 0

    def fix():
        from comfy_init.ops.check.run import check_data

        return check_data(layout, fix=True)

    outcome = _as_uid_1000(fix)
    assert "dedupe" not in outcome and ("owner" in outcome or "uid" in outcome), outcome
    empty = [d for d, dirs, files in os.walk(layout.trash) if not dirs and not files] if os.path.isdir(layout.trash) else []
    assert not empty, f"empty folders left in the trash: {empty}"
