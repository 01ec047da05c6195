"""CPU and memory of each running instance's ComfyUI process tree, for `comfy-init status`.

An instance's tree is every process below the comfy-init that holds its lock (ComfyUI and what it
started: workers, a Manager restart's new ComfyUI), found with ONE scan of the process table per
look. CPU is a share of one core (100% = one core busy) over the time between two samples: the
previous look's (`--watch`), or one taken at least MIN_WINDOW seconds earlier. Memory is the sum
of the processes' resident sets.

psutil is imported here only: never by `comfy-init run` or `health`.
"""

import time

import psutil

MIN_WINDOW = 0.1


class ProcessSampler:
    def __init__(self, min_window=MIN_WINDOW):
        self.min_window = min_window
        self._previous = None  # (monotonic time, {(pid, create time): CPU seconds})
        self._trees = {}

    def begin(self, holders):
        """Find the tree of each instance, {instance id: pid of its comfy-init or None}; take the
        first CPU sample unless the previous look left one."""
        below = _children_map()
        self._trees = {i: _descendants(pid, below) for i, pid in holders.items() if pid is not None}
        if self._previous is None:
            self._previous = (time.monotonic(), self._cpu_sample())

    def end(self):
        """{instance id: {"cpu_percent", "memory_bytes", "processes"}} since `begin`'s sample."""
        wait = self.min_window - (time.monotonic() - self._previous[0])
        if wait > 0:
            time.sleep(wait)
        now, cpu = time.monotonic(), self._cpu_sample()
        before_at, before = self._previous
        self._previous = (now, cpu)
        figures = {}
        for instance_id, processes in self._trees.items():
            keys = [key for key in (_key(p) for p in processes) if key in cpu]
            used = sum(cpu[key] - before.get(key, cpu[key]) for key in keys)
            figures[instance_id] = {"cpu_percent": round(100.0 * used / max(now - before_at, 1e-6), 1),
                                    "memory_bytes": sum(_rss(p) for p in processes),
                                    "processes": len(keys)}
        return figures

    def _cpu_sample(self):
        sample = {}
        for processes in self._trees.values():
            for process in processes:
                try:
                    with process.oneshot():
                        times = process.cpu_times()
                        sample[_key(process)] = times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
        return sample


def _children_map():
    below = {}
    for process in psutil.process_iter(["ppid"]):
        below.setdefault(process.info["ppid"], []).append(process)
    return below


def _descendants(pid, below):
    found, todo = [], list(below.get(pid, []))
    while todo:
        process = todo.pop()
        found.append(process)
        todo.extend(below.get(process.pid, []))
    return found


def _key(process):
    try:
        return process.pid, process.create_time()
    except psutil.Error:
        return process.pid, None


def _rss(process):
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0
