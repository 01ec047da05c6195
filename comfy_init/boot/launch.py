"""The real start: make the tree, claim the instance, and supervise ComfyUI until it is gone.

Called by `run` with a Plan that was checked completely before anything was written. The port is
checked before the claim, so a start refused for a busy port writes nothing at all.
"""

import os
import threading

from comfy_init import log
from comfy_init.boot import privileges
from comfy_init.boot.config import cuda_devices
from comfy_init.boot.plan import RECOVER_VARIABLE, plan_steps, recover_advice
from comfy_init.boot.watch import TreeWatch
from comfy_init.comfyui.endpoint import port_in_use, system_stats_url
from comfy_init.comfyui.manager_data import migrate_legacy as migrate_manager_data
from comfy_init.comfyui.startup_failure import StartupFailureWatch
from comfy_init.errors import TEMPFAIL, BusyError, DataError, error_for
from comfy_init.pid1 import signals
from comfy_init.pid1.supervisor import ChildSpec, Supervisor, become_subreaper
from comfy_init.problems import Problem
from comfy_init.store import claims, conflicts
from comfy_init.store.registry import Registry, RegistryDamaged
from comfy_init.tree.apply import apply_steps

def launch(plan, environ):
    config = plan.config
    _warn_if_not_pid1()
    registry = Registry(config.layout)
    try:
        return _claim_and_supervise(plan, environ, registry)
    except RegistryDamaged as damaged:
        raise damaged.advise(recover_advice) from None


def _claim_and_supervise(plan, environ, registry):
    config = plan.config
    _recover_registry_if_asked(registry, config)
    _check_port_free(registry, config)
    try:
        claim = claims.acquire(registry, config.instance_id, port=config.port, listen=config.listen,
                               lease=config.claim_lease, stop_requested=signals.stop_pending)
    except claims.StopRequested:
        log.info("stop requested while waiting for the claim: not starting ComfyUI")
        return 0
    log.info(f"claimed instance {config.instance_id!r} (generation {claim.generation})")
    _warn_about_differences(registry, config)
    lost = threading.Event()
    # Renewed from the claim on, not from ComfyUI's start: an environment rebuild (pip) may take
    # longer than a lease, and a host on a share would then take a live instance over.
    renewer = _ClaimRenewer(claim, config.claim_renew_interval, lost)
    renewer.start()
    try:
        # Planned again now that the instance is ours: the claim may have waited a whole lease.
        steps = plan_steps(config, plan.checkout)
        apply_steps(steps, config.data_dir, link_anywhere=not config.multi_instance)
        user = privileges.prepare(config, steps)
        venv = _ensure_venv(config, user, environ)
        if plan.manager is not None and plan.manager.enabled:
            _migrate_manager_data(config, user)
        supervisor = None
        failure = StartupFailureWatch(armed=lambda: supervisor is None or not supervisor.ready)
        spec = ChildSpec(plan.command, _child_environment(environ, config, user, venv), config.app_dir,
                         user=user and user.uid, group=user and user.gid,
                         extra_groups=user and user.groups, output=failure.feed)
        supervisor = Supervisor(spec, stop_timeout=config.stop_timeout,
                                ready_url=system_stats_url(config.listen, config.port),
                                reboot_marker=config.instance.session_file + ".reboot", claim_lost=lost,
                                judge_exit=lambda code: _refusal_code(failure, code, plan))
        watch = TreeWatch(config, registry, claim)  # the invariants health checks, every COMFY_WATCH_INTERVAL s
        watch.start()
        try:
            status = TEMPFAIL if lost.is_set() else supervisor.run()  # lost while preparing: never start
        finally:
            watch.stop()
    finally:
        renewer.stop()
        if not lost.is_set():
            claim.release()
    if lost.is_set():
        log.error(f"exiting {TEMPFAIL}: the claim on {config.instance_id!r} was taken over by another holder")
        return TEMPFAIL
    log.info(f"released instance {config.instance_id!r}")
    refused = failure.problem(config.instance_id, plan.command)
    if refused is not None and status == refused.exit_code and supervisor.stop_reason is None:
        raise error_for(refused)  # rendered once, as every error of `run`, after the claim is released
    return status


def _migrate_manager_data(config, user):
    """Manager 4 reads <user>/__manager only: carry the custom-node Manager's folder of THIS
    instance over, as the Manager itself does (comfy_init.comfyui.manager_data)."""
    try:
        info, warnings = migrate_manager_data(config.instance.user, user and user.uid, user and user.gid)
    except OSError as error:  # ComfyUI still starts; the Manager then starts with its defaults
        info, warnings = [], [f"ComfyUI-Manager: could not migrate the old folder of this instance: {error}"]
    for line in info:
        log.info(line)
    for line in warnings:
        log.warning(line)


def _refusal_code(failure, code, plan):
    """The exit code for ComfyUI's own exit `code`: that of the problem its ASSETS_STARTUP_FAILED
    line stands for when it exited 1 after printing one, else None (its code stands). comfy-init
    never starts it again on such an exit: the same start would fail the same way."""
    if code != 1:
        return None
    refused = failure.problem(plan.config.instance_id, plan.command)
    return None if refused is None else refused.exit_code


def _warn_about_differences(registry, config):
    gpus = cuda_devices(config.cuda_device)
    for line in conflicts.differences(registry.load(), config.instance_id, port=config.port, gpus=gpus):
        log.warning(f"{line}: starting as configured by the environment")


def _warn_if_not_pid1():
    if os.getpid() == 1:
        return
    if become_subreaper():
        return
    log.warning("not PID 1 and cannot become a child subreaper: orphans of ComfyUI are reaped by "
                "whoever is PID 1 here, and may stay zombies")


def _recover_registry_if_asked(registry, config):
    if config.registry_recover is None:
        return
    try:
        registry.load()
        return  # a healthy registry is never reset, even when the variable stays set
    except DataError:
        pass  # damaged, or not a regular file at all: recover() keeps what stands there and refuses a newer one
    log.warning(registry.recover(config.registry_recover) + f"; unset {RECOVER_VARIABLE} once the start works")


def _check_port_free(registry, config):
    """Before anything is written: is the port free? When it is held by this very instance's claim,
    the claim decides (and names the holder)."""
    if not port_in_use(config.listen, config.port):
        return
    holder = claims.port_holder(registry, config.port, None)
    if holder == config.instance_id:
        return
    by = f" by instance {holder!r}" if holder else ""
    raise BusyError(Problem(
        "port-in-use", f"COMFY_PORT={config.port}: port {config.port} is already in use{by}",
        fix="give this instance another COMFY_PORT, or stop what listens there"))


def _ensure_venv(config, user, environ):
    """The instance environment, made or rebuilt if needed (assessed again: the claim may have
    waited); None when COMFY_VENV is off."""
    from comfy_init.boot.plan import plan_venv

    assessment = plan_venv(config)
    if assessment is None:
        return None
    from comfy_init.venv.environment import ensure

    # pip as ComfyUI's user gets that user's HOME (its cache, its config), as ComfyUI will.
    ensure(assessment, user, dict(environ, HOME=user.home) if user is not None else environ)
    return assessment.instance


def _child_environment(environ, config, user, venv=None):
    env = dict(environ)
    env["__COMFY_CLI_SESSION__"] = config.instance.session_file
    if venv is not None:
        # ComfyUI, the Manager and nodes install with sys.executable -m pip (pip.conf applies the
        # constraints) or uv (which reads no pip.conf: the variable); both land in the environment.
        env["VIRTUAL_ENV"] = venv.venv
        env["PATH"] = os.path.join(venv.venv, "bin") + os.pathsep + env.get("PATH", os.defpath)
        from comfy_init.venv.tag import constraint_reference

        own = constraint_reference(venv.venv_constraints)
        env["PIP_CONSTRAINT"] = " ".join(filter(None, (environ.get("PIP_CONSTRAINT"), own)))
        env["UV_CONSTRAINT"] = " ".join(filter(None, (environ.get("UV_CONSTRAINT"), venv.venv_constraints)))
        env.pop("PYTHONHOME", None)
    # ComfyUI writes into a pipe (pid1.output): without this, Python would hold its prints in a
    # buffer where a terminal got them at once. The images set it already.
    env.setdefault("PYTHONUNBUFFERED", "1")
    if user is not None:
        env["HOME"] = user.home
        env["USER"] = env["LOGNAME"] = user.name
    return env


class _ClaimRenewer:
    """Renews the claim in a thread; a lost claim wakes the supervisor, which stops ComfyUI."""

    def __init__(self, claim, interval, lost):
        self.claim = claim
        self.interval = interval
        self.lost = lost
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="claim-renewer", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._thread.join()

    def _loop(self):
        while not self._stopping.wait(self.interval):
            try:
                self.claim.renew()
            except claims.LostClaim as error:
                log.error(str(error))
                self.lost.set()
                signals.wake()
                return
            except Exception as error:  # a slow lock or a bad registry must not kill ComfyUI
                log.warning(f"could not renew the claim, will retry: {error}")
