"""Stand-in ComfyUI for comfy-init's tests (standard library only).

It reproduces the ComfyUI behaviours that comfy-init depends on, and nothing else:
the command line (declared in comfy/cli_args.py), folder resolution, the temp wipe at start and at a
graceful exit, the SQLite database and its lock, SIGINT as the graceful stop and SIGTERM as an
instant death, the HTTP endpoints used for readiness and inspection, and ComfyUI-Manager's restart
request. Knobs for tests come from STANDIN_* environment variables (see _env_* below).

Which release it behaves as comes from comfyui_version.py (tests/support/standin.py writes it):
from 0.38 on, the database default is `<user dir>/comfyui.db` (an old `<checkout>/user/comfyui.db`
is moved to `.bak` and copied there), a second process on one database waits 5 s for the lock and
then exits 1 after `ASSETS_STARTUP_FAILED: <kind>`, `--disable-assets` leaves the database alone,
and files of input/output/user are checked with realpath (a link leading out is refused).
"""

import sys

# The checkout may be read-only for the user we run as, and must stay clean in the repository.
sys.dont_write_bytecode = True

import fcntl  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from urllib.parse import parse_qs, urlsplit  # noqa: E402

CHECKOUT = os.path.dirname(os.path.realpath(__file__))
if CHECKOUT not in sys.path:
    sys.path.insert(0, CHECKOUT)

import comfyui_version  # noqa: E402
import folder_paths  # noqa: E402
from comfy import cli_args  # noqa: E402

def _release():
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", comfyui_version.__version__)
    return tuple(int(part or 0) for part in found.groups()) if found else (0, 0, 0)


RELEASE = _release()
# 0.38: the assets system (its database lock and start-up failures) and realpath containment.
ASSETS_ERA = RELEASE >= (0, 38)
LEGACY_DATABASE = os.path.join(CHECKOUT, "user", "comfyui.db")

PT_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

# Model folders as ComfyUI's folder_paths.py names them: (paths relative to models/, extensions).
# An empty extension set means "every file".
MODEL_FOLDERS = {
    "checkpoints": (["checkpoints"], PT_EXTENSIONS),
    "configs": (["configs"], {".yaml"}),
    "loras": (["loras"], PT_EXTENSIONS),
    "vae": (["vae"], PT_EXTENSIONS),
    "text_encoders": (["text_encoders", "clip"], PT_EXTENSIONS),
    "diffusion_models": (["unet", "diffusion_models"], PT_EXTENSIONS),
    "clip_vision": (["clip_vision"], PT_EXTENSIONS),
    "style_models": (["style_models"], PT_EXTENSIONS),
    "embeddings": (["embeddings"], PT_EXTENSIONS),
    "diffusers": (["diffusers"], {"folder"}),
    "vae_approx": (["vae_approx"], PT_EXTENSIONS),
    "controlnet": (["controlnet", "t2i_adapter"], PT_EXTENSIONS),
    "gligen": (["gligen"], PT_EXTENSIONS),
    "upscale_models": (["upscale_models"], PT_EXTENSIONS),
    "custom_nodes": (None, set()),  # lives in the base directory, not under models/
    "hypernetworks": (["hypernetworks"], PT_EXTENSIONS),
    "photomaker": (["photomaker"], PT_EXTENSIONS),
    "classifiers": (["classifiers"], {""}),
    "model_patches": (["model_patches"], PT_EXTENSIONS),
    "audio_encoders": (["audio_encoders"], PT_EXTENSIONS),
}


def log(message):
    print(message, flush=True)


def log_error(message):
    print(message, file=sys.stderr, flush=True)


def record(event, **fields):
    """Append one JSON line per lifecycle event to $STANDIN_LOG_FILE, when it is set."""
    path = os.environ.get("STANDIN_LOG_FILE")
    if not path:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "time": time.time(), **fields})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class Folders:
    """Every folder the stand-in resolved, the way ComfyUI's folder_paths.py and main.py do it."""

    def __init__(self, args):
        base_directory = getattr(args, "base_directory", None)
        self.base = os.path.abspath(base_directory) if base_directory else CHECKOUT
        models_directory = getattr(args, "models_directory", None)
        models = os.path.abspath(models_directory) if models_directory else os.path.join(self.base, "models")
        self.table = {}
        self.extensions = {}
        for name, (subdirs, extensions) in MODEL_FOLDERS.items():
            if subdirs is None:
                paths = [os.path.join(self.base, name)]
            else:
                paths = [os.path.join(models, sub) for sub in subdirs]
            self.table[name] = paths
            self.extensions[name] = extensions
        self.output = os.path.join(self.base, "output")
        self.temp = os.path.join(self.base, "temp")
        self.input = os.path.join(self.base, "input")
        self.user = os.path.join(self.base, "user")
        if args.output_directory:
            self.output = os.path.abspath(args.output_directory)
        if args.input_directory:
            self.input = os.path.abspath(args.input_directory)
        if args.user_directory:
            self.user = os.path.abspath(args.user_directory)
        if args.temp_directory:
            # ComfyUI really uses <--temp-directory>/temp.
            self.temp = os.path.join(os.path.abspath(args.temp_directory), "temp")
        database_url = getattr(args, "database_url", None)
        default = os.path.join(self.user, "comfyui.db") if ASSETS_ERA else LEGACY_DATABASE
        self.database_url = database_url or "sqlite:///" + default
        self.database = sqlite_path(self.database_url)
        self.database_given = database_url is not None

    def as_json(self):
        data = {name: list(paths) for name, paths in self.table.items()}
        for key in ("output", "temp", "input", "user"):
            data[key] = [getattr(self, key)]
        data["database"] = [self.database if self.database is not None else self.database_url]
        return data

    def list_files(self, name):
        """Files of a model folder: relative, '/'-separated, filtered by extension, sorted."""
        extensions = self.extensions[name]
        found = set()
        for root_path in self.table[name]:
            if not os.path.isdir(root_path):
                continue
            for dirpath, dirnames, filenames in os.walk(root_path, followlinks=True):
                dirnames[:] = [d for d in dirnames if d != ".git"]
                for filename in filenames:
                    if extensions and os.path.splitext(filename)[1].lower() not in extensions:
                        continue
                    relative = os.path.relpath(os.path.join(dirpath, filename), root_path)
                    found.add(relative.replace(os.sep, "/"))
        return sorted(found)


def sqlite_path(url):
    """The file behind an sqlite:/// URL (None for :memory: or another scheme)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix):]
    if path in ("", ":memory:"):
        return None
    return os.path.abspath(path)


def apply_test_knobs():
    """STANDIN_EXIT_CODE, STANDIN_EXIT_SIGNAL and STANDIN_IGNORE_SIGINT: act at once."""
    code = os.environ.get("STANDIN_EXIT_CODE")
    if code:
        log(f"standin: exiting with STANDIN_EXIT_CODE={code}")
        record("exit_code", code=int(code))
        sys.exit(int(code))
    signum = os.environ.get("STANDIN_EXIT_SIGNAL")
    if signum:
        signum = int(signum)
        # Python catches SIGINT itself; the default disposition makes every signal really kill us.
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # their disposition cannot be changed
            signal.signal(signum, signal.SIG_DFL)
        record("exit_signal", signal=signum)
        os.kill(os.getpid(), signum)
        time.sleep(5)  # a signal whose default is to ignore it (SIGCHLD...) lands here
        sys.exit(0)
    if os.environ.get("STANDIN_IGNORE_SIGINT") == "1":
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_custom_nodes(args, folders):
    """ComfyUI lists custom_nodes during start-up and crashes with a traceback when it is missing."""
    if args.disable_all_custom_nodes:
        return  # ComfyUI skips the listing then
    for path in folders.table["custom_nodes"]:
        os.listdir(path)  # FileNotFoundError, uncaught on purpose: exit 1 with a traceback


def cleanup_temp(folders):
    if os.path.exists(folders.temp):
        shutil.rmtree(folders.temp, ignore_errors=True)


def prepare_temp(folders):
    cleanup_temp(folders)
    os.makedirs(folders.temp, exist_ok=True)
    marker = os.path.join(folders.temp, f"standin-{os.getpid()}.txt")
    with open(marker, "w", encoding="utf-8") as f:
        f.write(f"written by stand-in ComfyUI pid {os.getpid()}\n")


class Database:
    """The SQLite database plus an exclusive lock that makes a second process on it exit 1."""

    def __init__(self):
        self.lock_fd = None
        self.connection = None

    def open(self, folders):
        try:
            if folders.database is None:
                if not folders.database_url.startswith("sqlite:///"):
                    raise ValueError(f"unsupported database URL {folders.database_url!r}")
                self.connection = sqlite3.connect(":memory:")
            else:
                self._lock(folders.database)
                self.connection = sqlite3.connect(folders.database)
            self.connection.execute("create table if not exists standin(id integer)")
            self.connection.commit()
            log(f"Database: {folders.database or folders.database_url}")
        except (sqlite3.Error, OSError, ValueError) as e:
            log_error(
                "Failed to initialize database. Please ensure you have installed the latest "
                "requirements. If the error persists, please report this as in future the "
                f"database will be required: {e}"
            )

    def _lock(self, path):
        try:
            self.lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            raise sqlite3.OperationalError("unable to open database file") from None
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log_error(f"sqlite3.OperationalError: database is locked: {path}")
            sys.exit(1)

    def close(self):
        if self.connection is not None:
            self.connection.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)


WITHOUT_ASSETS = "Or start ComfyUI without the assets system: --disable-assets"


def stop_startup(kind, message):
    """What ComfyUI from 0.38 does when its asset database cannot open: one marker line a launcher
    can match, the message for the user, exit 1."""
    log_error(f"ASSETS_STARTUP_FAILED: {kind}\n{message}")
    sys.exit(1)


class AssetsDatabase(Database):
    """The 0.38 database: made in the user directory, locked with a 5 s wait, failures as kinds."""

    def open(self, folders):
        path = folders.database
        forced = os.environ.get("STANDIN_ASSETS_FAILURE")
        if forced:
            stop_startup(forced, f"The asset database '{path}' failed (STANDIN_ASSETS_FAILURE).\n{WITHOUT_ASSETS}")
        if path is None:
            if folders.database_url.startswith("sqlite:///"):
                self.connection = sqlite3.connect(":memory:")
                return
            stop_startup("unsupported_url", f"--database-url must start with sqlite:///.\n{WITHOUT_ASSETS}")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            stop_startup("path_blocked", f"A file is in the way of the folder for '{path}' ({e}).\n{WITHOUT_ASSETS}")
        except OSError as e:
            stop_startup("not_writable", f"ComfyUI can't create '{path}' ({e}).\n{WITHOUT_ASSETS}")
        self._wait_for_lock(path, folders.database_given)
        if not folders.database_given:
            copy_legacy_database(path)
        self._connect(path)

    def _wait_for_lock(self, path, given):
        try:
            self.lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            stop_startup("not_writable", f"ComfyUI can't create, open or write '{path}' ({e}).\n{WITHOUT_ASSETS}")
        wait = float(os.environ.get("STANDIN_LOCK_WAIT") or 5.0)
        deadline = time.monotonic() + wait
        waiting = False
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if not waiting:
                    waiting = True
                    log_error(f"Database lock is held; waiting up to {wait:g}s for it to be released")
            if time.monotonic() >= deadline:
                own = "" if given else "\nOr give this ComfyUI its own database: --database-url sqlite:///path/to/another.db"
                stop_startup("in_use", f"Another ComfyUI is already using this database: '{path}'.\n"
                                       f"Close the other ComfyUI and start this one again.{own}\n{WITHOUT_ASSETS}")
            time.sleep(0.1)

    def _connect(self, path):
        try:
            self.connection = sqlite3.connect(path)
            self.connection.execute("create table if not exists standin(id integer)")
            self.connection.commit()
        except sqlite3.DatabaseError as e:
            kind = "corrupt" if "not a database" in str(e) or "malformed" in str(e) else "not_writable"
            stop_startup(kind, f"The asset database '{path}' failed ({e}).\n{WITHOUT_ASSETS}")
        log(f"Database: {path}")


def copy_legacy_database(path):
    """0.38 without --database-url: an old <checkout>/user/comfyui.db is renamed .bak and copied."""
    backup = LEGACY_DATABASE + ".bak"
    if os.path.abspath(path) == LEGACY_DATABASE or os.path.exists(path) or not os.path.exists(LEGACY_DATABASE):
        return
    if os.path.exists(backup):
        return
    os.replace(LEGACY_DATABASE, backup)
    shutil.copy(backup, path)
    log(f"Renamed legacy database '{LEGACY_DATABASE}' to '{backup}' and copied it to '{path}'")


def open_database(app, args, folders):
    if not ASSETS_ERA:
        app.database.open(folders)
    elif getattr(args, "disable_assets", False):
        log("Assets system disabled: the database is left alone")  # no file, no lock
    else:
        app.database = AssetsDatabase()
        app.database.open(folders)


def within(directory, target):
    """0.38's containment: both sides resolved with realpath (a whole-folder link is fine, a link
    inside the folder leading out is not). Older releases joined the name without a check."""
    if not ASSETS_ERA:
        return True
    directory, target = os.path.realpath(directory), os.path.realpath(target)
    return os.path.commonpath((directory, target)) == directory


def annotated(folders, name, default):
    """ComfyUI's `name [output]` / `[input]` / `[temp]` annotations: (name, folder)."""
    for tag in ("output", "input", "temp"):
        if name.endswith(f" [{tag}]"):
            return name[: -len(tag) - 3], getattr(folders, tag)
    return name, default


def devices(args):
    # STANDIN_VRAM_TOTAL=<bytes>: report device memory as ComfyUI does (vram_total/vram_free; a
    # quarter in use); without it, only name, type and index.
    total = int(os.environ.get("STANDIN_VRAM_TOTAL") or 0)
    memory = {"vram_total": total, "vram_free": total * 3 // 4, "torch_vram_total": 0,
              "torch_vram_free": 0} if total else {}
    if args.cpu:
        return [{"name": "cpu", "type": "cpu", "index": None, **memory}]
    if isinstance(args.cuda_device, str):
        # 0.38: a list makes those GPUs visible as 0, 1, ...; "all" leaves every GPU visible.
        visible = ["0"] if args.cuda_device == "all" else args.cuda_device.split(",")
        return [{"name": f"cuda:{i} standin (CUDA_VISIBLE_DEVICES={args.cuda_device})", "type": "cuda",
                 "index": i, **memory} for i, _gpu in enumerate(visible)]
    index = args.cuda_device if args.cuda_device is not None else 0
    return [{"name": f"cuda:{index} standin", "type": "cuda", "index": index, **memory}]


def queue():
    """ComfyUI's GET /queue: STANDIN_QUEUE_PENDING=N lists N pending prompts (nothing runs)."""
    pending = int(os.environ.get("STANDIN_QUEUE_PENDING") or 0)
    return {"queue_running": [],
            "queue_pending": [[number, f"standin-{number}", {}, {}, []] for number in range(pending)]}


def next_output_name(directory, prefix):
    """ComfyUI's numbering: one more than the highest <prefix>_NNNNN_ found by listing the folder."""
    highest = 0
    for entry in os.listdir(directory):
        if not entry.startswith(prefix + "_"):
            continue
        digits = entry[len(prefix) + 1:].split("_")[0]
        if digits.isdigit():
            highest = max(highest, int(digits))
    return f"{prefix}_{highest + 1:05}_.png"


class Handler(BaseHTTPRequestHandler):
    server_version = "StandinComfyUI"

    def log_message(self, format, *args):  # quiet, like ComfyUI's default
        pass

    def send_json(self, data, status=200):
        body = json.dumps(data).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_file_info(self, status, data):
        self.send_json(data, status=status)

    def do_GET(self):
        app = self.server.app
        path = urlsplit(self.path).path
        if path == "/system_stats":
            self.send_json(app.system_stats())
        elif path == "/queue":
            self.send_json(queue())
        elif path == "/prompt":
            self.send_json({"exec_info": {"queue_remaining": len(queue()["queue_pending"])}})
        elif path == "/internal/folder_paths":
            self.send_json(app.folders.as_json())
        elif path == "/standin/load_image":
            self.send_file_info(*load_image(app.folders, parse_qs(urlsplit(self.path).query)))
        elif path == "/standin/userdata":
            self.send_file_info(*userdata(app.folders, parse_qs(urlsplit(self.path).query)))
        elif path == "/models":
            self.send_json(list(app.folders.table))
        elif path.startswith("/models/"):
            name = path[len("/models/"):]
            if name not in app.folders.table:
                self.send_json({"error": f"unknown folder {name!r}"}, status=404)
            else:
                self.send_json(app.folders.list_files(name))
        elif path == "/":
            body = b"<html><body>stand-in ComfyUI</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_json({"error": "not found"}, status=404)

    def do_POST(self):
        app = self.server.app
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if parts.path == "/upload/image":
            self.send_file_info(*upload_image(app.folders, parse_qs(parts.query), body))
            return
        name = parse_qs(parts.query).get("name", [""])[0]
        if parts.path not in ("/standin/output", "/standin/temp"):
            self.send_json({"error": "not found"}, status=404)
            return
        if not name or "/" in name or name in (".", ".."):
            self.send_json({"error": "name must be a plain file name"}, status=400)
            return
        try:
            if parts.path == "/standin/output":
                directory = app.folders.output
                os.makedirs(directory, exist_ok=True)
                target = os.path.join(directory, next_output_name(directory, name))
            else:
                directory = app.folders.temp
                os.makedirs(directory, exist_ok=True)
                target = os.path.join(directory, name)
            with open(target, "wb") as f:
                f.write(b"\x89PNG\r\n\x1a\n" + f"stand-in pid {os.getpid()}\n".encode())
        except OSError as e:
            self.send_json({"error": str(e)}, status=500)
            return
        self.send_json({"path": target})


def load_image(folders, query):
    """LoadImage's path check (folder_paths.get_annotated_filepath): (status, json)."""
    name, base = annotated(folders, query.get("name", [""])[0], folders.input)
    if not name:
        return 400, {"error": "no name"}
    path = os.path.abspath(os.path.join(base, name))
    if not within(base, path):
        return 400, {"error": f"Invalid file path: {name!r}"}
    if not os.path.isfile(path):
        return 404, {"error": f"no file {path}"}
    return 200, {"path": path, "size": os.path.getsize(path)}


def userdata(folders, query):
    """GET /userdata/<file> of the default user, with the release's containment check."""
    base = os.path.join(folders.user, "default")
    relative = query.get("file", [""])[0]
    path = os.path.abspath(os.path.join(base, relative))
    if os.path.commonpath((base, path)) != base or not within(base, path):
        return 403, {"error": f"outside the user directory: {relative!r}"}
    if not os.path.isfile(path):
        return 404, {"error": f"no file {path}"}
    return 200, {"path": path, "size": os.path.getsize(path)}


def upload_image(folders, query, body):
    """POST /upload/image (the body is the file itself here): the abspath check server.py makes."""
    name = query.get("name", [""])[0]
    subfolder = query.get("subfolder", [""])[0]
    if not name:
        return 400, {"error": "no name"}
    upload_dir = folders.input
    folder = os.path.join(upload_dir, os.path.normpath(subfolder))
    path = os.path.abspath(os.path.join(folder, name))
    if os.path.commonpath((upload_dir, path)) != upload_dir:
        return 400, {"error": "outside the input directory"}
    os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        f.write(body)
    return 200, {"name": name, "subfolder": subfolder, "type": "input", "path": path}


class Rebooted(Exception):
    """Raised out of serve_forever when a ComfyUI-Manager restart was requested."""


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, app):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, Handler)

    def service_actions(self):
        # Called by serve_forever in the main thread on every loop: "after serving has started".
        self.app.after_serving_started()


class App:
    def __init__(self, args, folders):
        self.args = args
        self.folders = folders
        self.database = Database()
        self.serving_actions_done = False
        self.reboot_due = None

    def system_stats(self):
        return {
            "system": {
                "os": os.name,
                "python_version": sys.version,
                "comfyui_version": comfyui_version.__version__,
                "embedded_python": False,
                "argv": sys.argv,
                "pid": os.getpid(),
                "uid": os.getuid(),
                "gid": os.getgid(),
            },
            "devices": devices(self.args),
        }

    def after_serving_started(self):
        if not self.serving_actions_done:
            self.serving_actions_done = True
            spawn_orphans(self)
            self.reboot_due = manager_reboot_due()
        if self.reboot_due is not None and time.monotonic() >= self.reboot_due:
            self.reboot_due = None
            request_manager_reboot()
            raise Rebooted()


def spawn_orphans(app):
    """STANDIN_ORPHANS=N: leave N grandchildren behind for PID 1 (or a subreaper) to reap."""
    count = int(os.environ.get("STANDIN_ORPHANS") or 0)
    if count <= 0:
        return
    sleep = float(os.environ.get("STANDIN_ORPHAN_SLEEP") or 0.3)
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() while request threads exist; the children only sleep.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        # Intermediate child. Drop every inherited descriptor: the listening socket and the
        # database lock must not outlive the stand-in in its orphans.
        try:
            os.closerange(3, 65536)
            for _ in range(count):
                if os.fork() == 0:
                    try:
                        signal.signal(signal.SIGINT, signal.SIG_DFL)
                        time.sleep(sleep)
                    finally:
                        os._exit(0)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)  # reap our own direct child; the grandchildren are someone else's job
    record("orphans_spawned", count=count, sleep=sleep)


def manager_reboot_due():
    """When to ask for a Manager restart (monotonic time), or None when not asked for."""
    marker = os.environ.get("STANDIN_MANAGER_REBOOT")
    session = os.environ.get("__COMFY_CLI_SESSION__")
    if not marker or not session or os.path.exists(marker):
        return None
    delay = float(os.environ.get("STANDIN_MANAGER_REBOOT_DELAY") or 0)
    return time.monotonic() + delay


def request_manager_reboot():
    """What ComfyUI-Manager does on restart under comfy-cli: write <session>.reboot and exit 0."""
    marker = os.environ["STANDIN_MANAGER_REBOOT"]
    session = os.environ["__COMFY_CLI_SESSION__"]
    with open(marker, "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    with open(session + ".reboot", "w", encoding="utf-8"):
        pass
    log("\nRestarting... [Legacy Mode]")
    record("reboot_requested", session=session)


def import_manager(args):
    """ComfyUI's main.py with --enable-manager: import the comfyui_manager package (the real one,
    from PyPI, when the interpreter has it), or warn and go on without it as ComfyUI does."""
    if not getattr(args, "enable_manager", False):
        return None
    import importlib.util

    if importlib.util.find_spec("comfyui_manager") is None:
        log_error("To use the `--enable-manager` feature, the `comfyui-manager` package must be installed first.")
        return None
    cli_args.args = args  # the package reads `from comfy.cli_args import args`, as in ComfyUI
    import comfyui_manager

    return comfyui_manager


def manager_prestartup(manager, folders):
    """main.py calls comfyui_manager.prestartup() once the folders are set, before the server.
    The package may end the process there (SystemExit 0 after a restart request): recorded."""
    folder_paths.configure(folders)
    record("manager_prestartup", manager=manager.__file__)
    try:
        manager.prestartup()
    except SystemExit as stop:
        record("manager_exit", code=stop.code)
        raise


def main():
    args = cli_args.parser.parse_args()
    record("started", argv=sys.argv)
    apply_test_knobs()
    log(f"Python version: {sys.version}")
    log(f"ComfyUI version: {comfyui_version.__version__}")
    manager = import_manager(args)

    folders = Folders(args)
    if manager is not None:
        manager_prestartup(manager, folders)
    check_custom_nodes(args, folders)
    prepare_temp(folders)
    app = App(args, folders)
    open_database(app, args, folders)

    delay = float(os.environ.get("STANDIN_STARTUP_DELAY") or 0)
    if delay > 0:
        time.sleep(delay)  # "loading models"; a SIGINT here ends us as it would end ComfyUI

    listen = args.listen.split(",")[0].strip() or "127.0.0.1"
    try:
        server = Server((listen, args.port), app)
    except OSError as e:
        log_error(f"OSError: [Errno {e.errno}] error while attempting to bind on address "
                  f"({listen!r}, {args.port}): {e.strerror.lower() if e.strerror else e}")
        sys.exit(1)

    shown = f"[{listen}]" if ":" in listen else listen
    try:
        log("Starting server\n")
        log(f"To see the GUI go to: http://{shown}:{args.port}")
        record("serving", url=f"http://{shown}:{args.port}")
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        log("\nStopped server")
        record("graceful_exit")
    except Rebooted:
        record("reboot_exit")
    finally:
        server.server_close()
    app.database.close()
    cleanup_temp(folders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
