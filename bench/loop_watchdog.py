"""Why is the event loop late? A heartbeat that measures each gap, and a thread that samples it.

Bench-only diagnostics for bench/load_bot.py. A callback on the loop thread
beats every BEAT seconds and reads, each time, the loop thread's and the whole
process's CPU and run-queue counters (/proc schedstat). When a beat comes more
than `threshold` late, the counters over the gap say exactly where the time
went, and a `Stall` is filed:

- *loop busy*: the loop thread itself was on a CPU (its stack says doing what);
- *full gc*: a generation-2 garbage collection ran meanwhile, in any thread,
  holding the GIL (every collection is timed through `gc.callbacks`);
- *GIL held by another thread*: other threads of the process computed;
- *waiting for a CPU*: the loop thread, or the thread holding the GIL, was
  runnable but the OS ran other processes (the machine's busiest processes
  over the last second, the load average and the runnable count are kept).

Meanwhile a watchdog thread checks the heartbeat every SAMPLE seconds and,
while the loop is late, samples the loop thread's Python stack
(`sys._current_frames()`) and the other threads' top frames. It cannot see
stalls in which it could not run either (a collection holds the GIL), so the
heartbeat, not the sampler, decides what is a stall.
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
BEAT = 0.02  # each beat reads /proc for every thread (~0.15 ms): 0.7% of the loop
SAMPLE = 0.005
PROCESS_SNAPSHOT = 1.0


@dataclass
class Counters:
    """One heartbeat's reading; a stall is the difference of two."""

    at: float  # monotonic
    loop_cpu: float  # seconds the loop thread has been on a CPU
    loop_waiting: float  # seconds the loop thread has been runnable without a CPU
    process_cpu: float
    process_waiting: float  # summed over every thread of the process

    @classmethod
    def now(cls, loop_thread: int) -> Counters:
        process_cpu = process_waiting = 0.0
        loop_cpu = loop_waiting = 0.0
        for task in Path("/proc/self/task").iterdir():
            try:
                on_cpu, waiting, _ = (task / "schedstat").read_text().split()
            except OSError:  # the thread just ended
                continue
            process_cpu += int(on_cpu) / 1e9
            process_waiting += int(waiting) / 1e9
            if task.name == str(loop_thread):
                loop_cpu, loop_waiting = int(on_cpu) / 1e9, int(waiting) / 1e9
        return cls(time.monotonic(), loop_cpu, loop_waiting, process_cpu, process_waiting)


@dataclass
class Stall:
    at: float  # wall clock of the beat before the stall
    late_ms: float  # how long past the expected beat the loop was
    # Over the gap between the two beats (BEAT + late):
    loop_cpu_ms: float  # CPU time the loop thread got
    loop_runqueue_ms: float  # time the loop thread was runnable but waiting for a CPU
    other_threads_cpu_ms: float  # CPU time the process's other threads got
    other_threads_runqueue_ms: float
    full_gc_ms: float  # generation-2 collections that ended in the gap, any thread
    loadavg: str = ""
    procs_running: int = 0  # runnable tasks on the machine when the stall was filed
    loop_stacks: list[tuple[int, str]] = field(default_factory=list)  # (samples, stack)
    other_threads: list[tuple[int, str]] = field(default_factory=list)  # "thread: file:line fn"
    busiest: list[str] = field(default_factory=list)  # the machine's, over about a second
    cause: str = ""  # the largest part of the late time
    breakdown: str = ""  # every part over a quarter of it

    def classify(self) -> None:
        """Where the late time went: the loop thread's own CPU and run-queue time
        first, then what held the GIL (a full collection, other threads) or kept
        its holder from running. Off-CPU, not runnable and nobody computing: the
        loop thread was blocked (sync I/O, a lock, a sleep)."""
        parts = {
            "full gc": self.full_gc_ms,
            "loop busy": self.loop_cpu_ms,
            "waiting for a CPU": self.loop_runqueue_ms,
            # the GIL's holder, when the loop thread waited for it:
            "GIL held by another thread": max(0.0, self.other_threads_cpu_ms - self.full_gc_ms),
            "waiting for a CPU (the GIL's holder)": self.other_threads_runqueue_ms,
        }
        ranked = sorted(parts.items(), key=lambda part: -part[1])
        big = [(label, ms) for label, ms in ranked if ms >= self.late_ms / 4]
        self.cause = big[0][0] if big else "loop blocked (I/O or a lock)"
        self.breakdown = ", ".join(f"{label} {ms:.0f} ms" for label, ms in big)


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


def _top(frame: Any) -> str:
    code = frame.f_code
    return f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}"


class LoopWatchdog:
    def __init__(self, threshold: float = STALL_MS / 1000) -> None:
        self.threshold = threshold
        self.stalls: list[Stall] = []
        # Every full (generation 2) collection: (wall clock, ms, thread), stall or not.
        self.full_collections: list[tuple[float, float, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._native_id = 0
        self._last: Counters | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # (beat before, beat after, stall): filed by the heartbeat, completed by the thread
        self._filed: list[tuple[float, float, Stall]] = []
        self._samples: dict[float, tuple[Counter[str], Counter[str]]] = {}  # beat -> stacks
        self._gc_started: dict[int, float] = {}
        self._full_gc: list[tuple[float, float]] = []  # (monotonic start, end)

    def start(self) -> None:
        """Call on the loop thread, inside the running loop."""
        self._loop = asyncio.get_running_loop()
        self._native_id = threading.get_native_id()
        self._loop_ident = threading.get_ident()
        self._last = Counters.now(self._native_id)
        self._loop.call_later(BEAT, self._heartbeat)
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._watch, name="loop-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def clear(self) -> None:
        with self._lock:
            self.stalls.clear()
            self.full_collections.clear()

    def report(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(stall) for stall in self.stalls]

    # ------------------------------------------------------------ loop thread
    def _heartbeat(self) -> None:
        assert self._loop is not None and self._last is not None  # noqa: S101  (set in start)
        now = Counters.now(self._native_id)
        last, self._last = self._last, now
        late = now.at - last.at - BEAT
        if late > self.threshold:
            with self._lock:
                self._filed.append(
                    (
                        last.at,
                        now.at,
                        Stall(
                            at=time.time() - (now.at - last.at),
                            late_ms=1000 * late,
                            loop_cpu_ms=1000 * (now.loop_cpu - last.loop_cpu),
                            loop_runqueue_ms=1000 * (now.loop_waiting - last.loop_waiting),
                            other_threads_cpu_ms=1000
                            * (now.process_cpu - last.process_cpu - (now.loop_cpu - last.loop_cpu)),
                            other_threads_runqueue_ms=1000
                            * (
                                now.process_waiting
                                - last.process_waiting
                                - (now.loop_waiting - last.loop_waiting)
                            ),
                            full_gc_ms=0.0,  # the collection's callback may not have run yet
                        ),
                    )
                )
        if not self._stop.is_set():
            self._loop.call_later(BEAT, self._heartbeat)

    # ------------------------------------------------------------ any thread
    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self._gc_started[ident] = time.monotonic()
        elif ident in self._gc_started:
            # The loop thread may take the GIL before this line: the end is recorded
            # late, so a stall counts a collection only up to its own end.
            started, ended = self._gc_started[ident], time.monotonic()
            if info["generation"] == 2:
                with self._lock:
                    self._full_gc.append((started, ended))
                    self.full_collections.append(
                        (time.time(), 1000 * (ended - started), threading.current_thread().name)
                    )
            del self._gc_started[ident]  # last: stalls wait for this (see _watch)

    # ------------------------------------------------------------ watchdog thread
    def _watch(self) -> None:
        processes, processes_at = _processes(), time.monotonic()
        while not self._stop.wait(SAMPLE):
            last = self._last
            assert last is not None  # noqa: S101  (set in start)
            if time.monotonic() - last.at - BEAT > self.threshold:
                self._sample(last.at)
            elif time.monotonic() - processes_at > PROCESS_SNAPSHOT:
                processes, processes_at = _processes(), time.monotonic()
            if self._gc_started:  # a collection's callback is still to record it
                continue
            with self._lock:
                filed, self._filed = self._filed, []
            if filed:
                now = _processes()
                for before, after, stall in filed:
                    self._complete(before, after, stall, _busiest(processes, now))

    def _sample(self, beat: float) -> None:
        names = {t.ident: t.name for t in threading.enumerate()}
        with self._lock:
            loop_stacks, others = self._samples.setdefault(beat, (Counter(), Counter()))
        for ident, frame in sys._current_frames().items():
            if ident == self._loop_ident:
                loop_stacks["".join(traceback.format_stack(frame, limit=40))] += 1
            elif ident != threading.get_ident():
                others[f"{names.get(ident, '?')}: {_top(frame)}"] += 1

    def _complete(self, beat: float, after: float, stall: Stall, busiest: list[str]) -> None:
        with self._lock:
            loop_stacks, others = self._samples.pop(beat, (Counter(), Counter()))
            for older in [b for b in self._samples if b < beat]:  # late, but under threshold
                del self._samples[older]
            stall.full_gc_ms = 1000 * sum(
                max(0.0, min(end, after) - max(start, beat)) for start, end in self._full_gc
            )
            self._full_gc = [g for g in self._full_gc if g[1] > beat - 1]
        stall.classify()
        stall.loop_stacks = [(n, s) for s, n in loop_stacks.most_common(3)]
        stall.other_threads = [(n, s) for s, n in others.most_common(8)]
        stall.busiest = busiest
        stall.loadavg = Path("/proc/loadavg").read_text().strip()
        stall.procs_running = _procs_running()
        with self._lock:
            self.stalls.append(stall)
