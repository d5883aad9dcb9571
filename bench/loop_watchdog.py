"""Why is the event loop late? A watchdog thread that catches the loop in the act.

Bench-only diagnostics for bench/load_bot.py. The loop thread stamps a
heartbeat every BEAT seconds; a separate thread checks the stamp every SAMPLE
seconds and, while the loop is more than `threshold` late, samples the loop
thread's Python stack (`sys._current_frames()`) and every other thread's top
frame. When the loop catches up it files one `Stall`:

- how late the loop was, and when (wall clock, to line it up with the tick);
- the loop thread's CPU time during the stall, from /proc: near the stall's
  length means the loop itself was computing (the stack says what); near zero
  means it was *waiting* - for the GIL held by a worker thread (the other
  threads' frames say which) or for a CPU the OS gave to another process
  (the load average and runnable-process count say how busy the machine was);
- garbage collections that ran meanwhile, in any thread, and how long each took.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

STALL_MS = 50  # half the load target's 100 ms: anything this late is worth a look
BEAT = 0.01
SAMPLE = 0.005
PROCESS_SNAPSHOT = 1.0


@dataclass
class Stall:
    at: float  # wall clock of the last heartbeat before the stall
    late_ms: float  # how long past the expected heartbeat the loop was
    # Over a window from the last on-time check to the end of the stall:
    window_ms: float
    loop_cpu_ms: float  # CPU time the loop thread got (/proc schedstat)
    loop_runqueue_ms: float  # time the loop thread was runnable but waiting for a CPU
    process_cpu_ms: float  # CPU time all of this process's threads got
    loadavg: str
    procs_running: int  # runnable tasks on the machine when the stall ended
    loop_stacks: list[tuple[int, str]]  # (samples, stack), most frequent first
    other_threads: list[tuple[int, str]]  # (samples, "thread: file:line function")
    gc_ms: list[tuple[int, float]] = field(default_factory=list)  # (generation, ms)
    # The machine's busiest processes from up to PROCESS_SNAPSHOT s before to the end.
    busiest: list[str] = field(default_factory=list)
    cause: str = ""

    def __post_init__(self) -> None:
        self.cause = self._cause()

    def _cause(self) -> str:
        """Where most of the late time went (each counter is compared with how late the loop was)."""
        half = self.late_ms / 2
        if self.loop_runqueue_ms >= half:
            return "waiting for a CPU"  # runnable, but the OS ran other processes
        if self.loop_cpu_ms >= half:
            return "loop busy"  # the loop thread itself computed: see loop_stacks
        if sum(ms for generation, ms in self.gc_ms if generation == 2) >= half:
            return "full gc"
        if self.process_cpu_ms - self.loop_cpu_ms >= half:
            return "GIL held by another thread"  # see other_threads
        return "unclear"


def _schedstat(native_id: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a thread of this process."""
    on_cpu, waiting, _ = Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def _processes() -> dict[int, tuple[str, int]]:
    """pid -> (command, CPU ticks so far) for every process on the machine."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # the process just ended
            continue
        fields = text.rsplit(")", 1)[1].split()
        found[int(stat.parent.name)] = (cmdline[:80], int(fields[11]) + int(fields[12]))
    return found


def _busiest(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]) -> list[str]:
    used = {pid: ticks - before.get(pid, ("", 0))[1] for pid, (_, ticks) in after.items()}
    top = sorted((n, pid) for pid, n in used.items() if n > 0)[-6:]
    return [f"{1000 * n / CLOCK_TICKS:.0f} ms {pid} {after[pid][0]}" for n, pid in reversed(top)]


def _procs_running() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("procs_running"):
            return int(line.split()[1])
    return -1


def _stack(frame: Any, limit: int = 40) -> str:
    return "".join(traceback.format_stack(frame, limit=limit))


def _top(frame: Any) -> str:
    code = frame.f_code
    return f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}"


class LoopWatchdog:
    def __init__(self, threshold: float = STALL_MS / 1000) -> None:
        self.threshold = threshold
        self.stalls: list[Stall] = []
        self._beat = time.monotonic()
        self._loop_thread = threading.current_thread()
        self._stop = threading.Event()
        self._gc: list[tuple[float, int, float]] = []  # (monotonic end, generation, seconds)
        self._gc_started: dict[int, float] = {}
        # Every full (generation 2) collection: (wall clock, ms, thread), stall or not.
        self.full_collections: list[tuple[float, float, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Call on the loop thread, inside the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.current_thread()
        self._heartbeat()
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._watch, name="loop-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        assert self._loop is not None  # noqa: S101  (set in start)
        if not self._stop.is_set():
            self._loop.call_later(BEAT, self._heartbeat)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self._gc_started[ident] = time.monotonic()
        elif ident in self._gc_started:
            started = self._gc_started.pop(ident)
            seconds = time.monotonic() - started
            self._gc.append((time.monotonic(), info["generation"], seconds))
            if info["generation"] == 2:
                name = threading.current_thread().name
                self.full_collections.append((time.time(), 1000 * seconds, name))

    def _watch(self) -> None:
        loop_id = self._loop_thread.ident
        native = self._loop_thread.native_id
        assert loop_id is not None and native is not None  # noqa: S101  (the thread runs)
        # CPU counters as of the last check that found the loop on time: a stall's
        # counters run from there, since the watchdog may itself notice it late
        # (schedstat charges a wait when it ends, so it may reach back a little further).
        before = (time.monotonic(), *_schedstat(native), time.process_time())
        processes, processes_at = _processes(), time.monotonic()
        while not self._stop.wait(SAMPLE):
            beat = self._beat
            late = time.monotonic() - beat - BEAT
            if late < SAMPLE:  # truly on time: a stall's counters start from here
                before = (time.monotonic(), *_schedstat(native), time.process_time())
            if late < self.threshold:
                if time.monotonic() - processes_at > PROCESS_SNAPSHOT:
                    processes, processes_at = _processes(), time.monotonic()
                if len(self._gc) > 1000:  # keep only collections a stall could still claim
                    self._gc = [g for g in self._gc if g[0] > beat - 1]
                continue
            # The loop is late: sample until its next heartbeat.
            wall = time.time() - (time.monotonic() - beat)
            loop_stacks: Counter[str] = Counter()
            others: Counter[str] = Counter()
            while self._beat == beat and not self._stop.is_set():
                frames = sys._current_frames()
                for ident, frame in frames.items():
                    if ident == loop_id:
                        loop_stacks[_stack(frame)] += 1
                    elif ident != threading.get_ident():
                        name = next(
                            (t.name for t in threading.enumerate() if t.ident == ident), "?"
                        )
                        others[f"{name}: {_top(frame)}"] += 1
                time.sleep(SAMPLE)
            late = self._beat - beat - BEAT
            after = (time.monotonic(), *_schedstat(native), time.process_time())
            window, cpu, waiting, process = (
                1000 * (a - b) for a, b in zip(after, before, strict=True)
            )
            self.stalls.append(
                Stall(
                    at=wall,
                    late_ms=1000 * late,
                    window_ms=window,
                    loop_cpu_ms=cpu,
                    loop_runqueue_ms=waiting,
                    process_cpu_ms=process,
                    loadavg=Path("/proc/loadavg").read_text().strip(),
                    procs_running=_procs_running(),
                    loop_stacks=[(n, s) for s, n in loop_stacks.most_common(3)],
                    other_threads=[(n, s) for s, n in others.most_common(8)],
                    gc_ms=[
                        (generation, 1000 * seconds)
                        for end, generation, seconds in self._gc
                        if beat <= end <= self._beat + SAMPLE
                    ],
                    busiest=_busiest(processes, _processes()),
                )
            )

    def clear(self) -> None:
        self.stalls.clear()
        self.full_collections.clear()

    def report(self) -> list[dict[str, Any]]:
        return [asdict(stall) for stall in self.stalls]
