"""Two sshfs mounts of one directory over loopback: the stand-in for two hosts on one network
share whose locks do not reach across mounts (FUSE keeps a flock in the mounting kernel).

Needs root, /dev/fuse, Debian's `sshfs` and `openssh-server` (.ci/run installs them); the sshd
is this fixture's own (a port of its own, a key of its own) and stops with it.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest

SSHD = "/usr/sbin/sshd"
# Attribute and entry caches off: each mount asks the server, as two hosts with no cache would.
MOUNT_OPTIONS = "StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,cache=no,attr_timeout=0,entry_timeout=0," \
                "negative_timeout=0,dir_cache=no"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _missing():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        return "needs root and /dev/fuse"
    for tool in ("sshfs", "ssh-keygen", "fusermount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install sshfs openssh-server)"
    return None if os.access(SSHD, os.X_OK) else "openssh-server is not installed"


def refuses_dotdot_links():
    """Debian 12's sshfs (3.7.3-1.2~deb12u1) refuses to read any link whose target holds `..`
    (its contain_symlinks default): the stand-in for a share whose links do not work."""
    shown = subprocess.run(["sshfs", "--help"], capture_output=True, text=True)
    return "contain_symlinks" in shown.stdout + shown.stderr


class TwoMounts:
    def __init__(self, base, links=False):
        """links=True: mount so that relative links read back (no_contain_symlinks, where the
        sshfs build has that default); False: the build's default."""
        self.base = base
        self.extra_options = ",no_contain_symlinks" if links and refuses_dotdot_links() else ""
        self.share, self.a, self.b = (os.path.join(base, name) for name in ("share", "mount-a", "mount-b"))
        self.port = _free_port()
        self.sshd = None

    def _config(self):
        keys = os.path.join(self.base, "keys")
        os.makedirs(keys)
        for name in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{keys}/{name}"], check=True)
        shutil.copy(f"{keys}/client.pub", f"{keys}/authorized_keys")
        config = os.path.join(self.base, "sshd_config")
        with open(config, "w") as file:
            file.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {keys}/host\n"
                       f"AuthorizedKeysFile {keys}/authorized_keys\nPermitRootLogin prohibit-password\n"
                       "PasswordAuthentication no\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
                       f"PidFile {self.base}/sshd.pid\n")
        return config, f"{keys}/client"

    def start(self):
        config, key = self._config()
        os.makedirs("/run/sshd", exist_ok=True)
        self.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", self.port)) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("sshd did not start")
            time.sleep(0.05)
        for path in (self.share, self.a, self.b):
            os.makedirs(path)
        for mount in (self.a, self.b):
            subprocess.run(["sshfs", "-p", str(self.port), "-o", f"IdentityFile={key},{MOUNT_OPTIONS}{self.extra_options}",
                            f"root@127.0.0.1:{self.share}", mount], check=True, timeout=30)

    def stop(self):
        for mount in (self.a, self.b):
            subprocess.run(["fusermount", "-u", "-z", mount], capture_output=True)
        if self.sshd is not None:
            self.sshd.terminate()
            self.sshd.wait(timeout=10)


def _mounted(tmp_path, links):
    missing = _missing()
    if missing:
        pytest.skip(missing)
    mounts = TwoMounts(str(tmp_path / "sshfs"), links=links)
    os.makedirs(mounts.base)
    try:
        mounts.start()
        yield mounts
    finally:
        mounts.stop()


@pytest.fixture
def two_mounts(tmp_path):
    yield from _mounted(tmp_path, links=False)


@pytest.fixture
def two_mounts_with_links(tmp_path):
    yield from _mounted(tmp_path, links=True)
