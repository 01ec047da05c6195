"""`comfy-init run` on a share whose flock does not reach across mounts: two sshfs mounts of one
directory (tests/support/sshfs.py), the stand-in for two hosts on one network share. Eight starts
at once, four per mount: eight ids all run and the registry lists eight claims; the same id from
both mounts runs once, and every other start exits 75 naming the holder."""

from __future__ import annotations

import os
from pathlib import Path

from comfy_init.layout import Layout
from comfy_init.store import claimfiles
from tests.support.ports import free_port
from tests.support.processes import ComfyInitProcess, instance_env, read_registry
from tests.support.sshfs import two_mounts  # noqa: F401 (a fixture)
from tests.support.standin import make_checkout
from tests.support.waiting import wait_until

ROUNDS = 3
BUSY = 75


class Share:
    """Starts of `comfy-init run` on mount a or b of the share, with their records."""

    def __init__(self, mounts, tmp_path: Path):
        self.mounts = mounts
        self.tmp_path = tmp_path
        self.app = make_checkout(tmp_path / "app")
        self.runs: list[ComfyInitProcess] = []

    def data(self, mount: str) -> Path:
        return Path(getattr(self.mounts, mount)) / "data"

    def start(self, mount: str, instance_id: str, port: int, name: str) -> ComfyInitProcess:
        env = instance_env(instance_id=instance_id, data=self.data(mount), app=self.app, port=port,
                           COMFY_CLAIM_LEASE=6, CLI_ARGS="--database-url sqlite:///:memory:")
        env["STANDIN_LOG_FILE"] = str(self.tmp_path / f"{name}.events.jsonl")
        run = ComfyInitProcess(env, self.tmp_path, name).start()
        self.runs.append(run)
        return run

    def live_claims(self) -> dict[str, dict]:
        """The claims by their claim files (the newest generation of each id, unless released)."""
        layout = Layout(str(self.data("a")))
        names = os.listdir(claimfiles.directory(layout))
        ids = {name.split(".")[0] for name in names if name.endswith(".claim")}
        newest = {i: claimfiles.newest(layout, i) for i in ids}
        return {i: found[1] for i, found in newest.items() if found and not found[1].get("released_at")}

    def stop_all(self, runs) -> list[int]:
        return [run.stop(timeout=30) for run in runs]

    def kill_all(self):
        for run in self.runs:
            run.kill(also=run.comfyui_pids())


def _answered(run: ComfyInitProcess) -> bool:
    run.wait_ready(timeout=60)
    return True


def test_eight_ids_four_per_mount_all_run_and_the_registry_lists_eight(two_mounts, tmp_path):  # noqa: F811
    share = Share(two_mounts, tmp_path)
    figures = []
    try:
        for round_ in range(ROUNDS):
            ids = [f"share-{round_}-{n}" for n in range(8)]
            ports = {i: free_port() for i in ids}
            runs = [share.start("a" if n < 4 else "b", i, ports[i], f"r{round_}-{i}") for n, i in enumerate(ids)]
            answered = sum(_answered(run) for run in runs)
            view = read_registry(share.data("b"))["claims"]
            files = share.live_claims()
            exits = share.stop_all(runs)
            figures.append((round_, answered, len(view), len(files), exits))
            assert answered == 8
            assert sorted(view) == ids, f"round {round_}: the registry lists {sorted(view)}"
            assert sorted(files) == ids and all(files[i]["token"] == view[i]["token"] for i in ids)
            assert {view[i]["pid"] for i in ids} == {run.pid for run in runs}
            assert exits == [0] * 8, [run.output() for run in runs if run.proc.returncode]
            assert not any("cannot write" in run.stderr() for run in runs)
        registry = read_registry(share.data("a"))
        assert registry["claims"] == {}, "every stop released its claim"
        assert len(registry["instances"]) == 8 * ROUNDS, "no instance record was lost to another mount's write"
    finally:
        share.kill_all()
        print("rounds (round, answered, registry claims, claim files, exits):", figures)


def test_the_same_id_from_both_mounts_runs_once_and_the_others_exit_75_naming_it(two_mounts, tmp_path):  # noqa: F811
    share = Share(two_mounts, tmp_path)
    figures = []
    try:
        for round_ in range(ROUNDS):
            # Fresh ids every round: a second start of one id on sshfs trips over its tree's
            # relative links (realpath gives EPERM there), which is not what this test is about.
            ids = [f"twice-{round_}-0", f"twice-{round_}-1"]
            ports = {i: free_port() for i in ids}
            runs = {i: [share.start(mount, i, ports[i], f"r{round_}-{i}-{mount}{k}")
                        for mount in ("a", "b") for k in range(2)] for i in ids}
            for i, contenders in runs.items():
                # The losers exit; the winner stays, and only it ever started a ComfyUI.
                wait_until(lambda: sum(run.proc.poll() is not None for run in contenders) >= 3, timeout=60)
                winners = [run for run in contenders if run.proc.poll() is None]
                assert len(winners) == 1, [run.output() for run in contenders]
                [winner] = winners
                winner.wait_ready(timeout=60)
                started = [run for run in contenders if run.events("started")]
                losers = [run for run in contenders if run is not winner]
                figures.append((round_, i, len(winners), len(started), sorted(run.proc.returncode for run in losers)))
                assert started == winners, [run.output() for run in contenders]
                for run in losers:
                    assert run.proc.returncode == BUSY, run.output()
                    assert f"instance '{i}' is already running: held by" in run.stderr(), run.output()
                    assert f"pid {winner.pid}," in run.stderr(), run.output()
                view = read_registry(share.data("a"))["claims"][i]
                assert view["pid"] == winner.pid and share.live_claims()[i]["token"] == view["token"]
            exits = share.stop_all([run for contenders in runs.values() for run in contenders
                                    if run.proc.poll() is None])
            assert exits == [0, 0]
        assert read_registry(share.data("b"))["claims"] == {}
    finally:
        share.kill_all()
        print("rounds (round, id, running, ComfyUIs started, loser exits):", figures)
