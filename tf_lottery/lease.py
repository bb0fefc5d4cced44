"""Exclusive leases on a directory: one writer per model_dir (or per run directory).

A launch holds ``<directory>/lease.json`` while it writes there. The file
names the holder (host, pid, start time, a random token). The holder
refreshes it every ``HEARTBEAT_S`` seconds from a daemon thread and removes
it when it exits, normally or by an exception. Another launch that finds
the lease stops with one line naming the holder (``LeaseHeldError``).

A lease is *stale*, and taken over with a warning in the log, when its
holder is a process of this host that no longer exists (a SIGKILLed or
crashed run: its relaunch resumes at once), or when it has not been
refreshed for ``STALE_AFTER_S`` seconds (its machine is gone, e.g. a
preempted TPU VM). ``force=True`` (``--force_unlock``) takes over a lease
that is not recognisably stale yet, for when the user knows its holder is
gone. A holder whose lease was taken over finds a foreign token at its next
heartbeat, marks itself ``lost`` and calls ``on_lost``.

The lease takes any directory: an experiment's ``--model_dir`` today; a
runner that trains one piece (a child, a level) can lock just that piece's
run directory, so that pieces of one experiment run in parallel.

Guarantees. On local and NFS paths the lease is created by ``os.link`` of a
complete file, which fails if the lease exists (``O_EXCL`` semantics): one
launch wins, always. Object stores (``gs://``) have no create-if-absent in
``tf.io.gfile``, so there a launch writes its lease only when none is found,
waits ``REMOTE_SETTLE_S`` seconds and reads it back: the last writer wins
and every other launch sees a foreign token and stops. That is exact when
two launches' check-then-write steps are less than ``REMOTE_SETTLE_S``
apart, which covers double submissions; a stronger guarantee needs a GCS
generation precondition (``ifGenerationMatch=0``), which gfile does not
expose. Staleness compares the lease's modification time with this host's
clock, so hosts' clocks must agree to well within ``STALE_AFTER_S``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import tensorflow as tf
from absl import logging

from tf_lottery.core import layout
from tf_lottery.errors import ConfigError

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
REMOTE_SETTLE_S = 2.0

_HELD: set[str] = set()  # tokens of the leases this process holds


class LeaseHeldError(ConfigError):
    """The directory is leased by another live launch."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _describe(holder: dict, age: float) -> str:
    if not holder:
        return f"an unreadable {layout.LEASE_FILE} (modified {age:.0f} s ago)"
    started = datetime.datetime.fromtimestamp(holder.get("started", 0),
                                               datetime.timezone.utc)
    return (f"pid {holder.get('pid')} on host {holder.get('host')} since "
            f"{started:%Y-%m-%d %H:%M:%S} UTC (lease refreshed {age:.0f} s ago)")


class Lease:
    """An exclusive lease on ``directory``; a context manager.

    Attributes:
      directory: the leased directory (created if absent).
      path: the lease file.
      token: this lease's random identity, written into the file.
      lost: set when another launch took the lease over.
    """

    def __init__(self, directory: str, *, force: bool = False, label: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S,
                 settle_s: float = REMOTE_SETTLE_S,
                 on_lost: Callable[[], None] | None = None,
                 exclusive_create: bool | None = None):
        """``label`` names the directory in messages (e.g. ``--model_dir=...``).

        ``exclusive_create``: whether the filesystem has an atomic
        create-if-absent (``os.link``); by default local paths do and paths
        with a scheme (``gs://``) use write, settle and verify instead.
        """
        self.directory = directory
        self.path = layout.lease_file(directory)
        self.force = force
        self.label = label or directory
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.settle_s = settle_s
        self.on_lost = on_lost
        self.token = uuid.uuid4().hex
        self.lost = False
        self._local = ("://" not in directory if exclusive_create is None
                       else exclusive_create)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the lease file -------------------------------------------------------

    def _record(self) -> str:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                           "started": time.time(), "token": self.token}) + "\n"

    def _read(self, path: str | None = None) -> tuple[dict | None, float]:
        """(holder, seconds since the lease was refreshed); holder is None when
        there is no lease and {} when it cannot be read."""
        path = path or self.path
        try:
            mtime = tf.io.gfile.stat(path).mtime_nsec / 1e9
            with tf.io.gfile.GFile(path) as f:
                text = f.read()
        except tf.errors.NotFoundError:
            return None, 0.0
        try:
            holder = json.loads(text)
        except json.JSONDecodeError:
            holder = {}
        return (holder if isinstance(holder, dict) else {}), time.time() - mtime

    def _create(self) -> bool:
        """Writes the lease if there is none; True if this launch now holds it."""
        if self._local:
            tmp = f"{self.path}.{self.token}.tmp"
            with open(tmp, "w") as f:
                f.write(self._record())
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            finally:
                os.remove(tmp)
        if tf.io.gfile.exists(self.path):
            return False
        return self._write_and_verify()

    def _write_and_verify(self) -> bool:
        """Object stores: last writer wins; the loser sees a foreign token."""
        with tf.io.gfile.GFile(self.path, "w") as f:
            f.write(self._record())
        time.sleep(self.settle_s)
        holder, _ = self._read()
        return bool(holder and holder.get("token") == self.token)

    def _remove_if(self, token: str | None) -> None:
        """Removes the lease if it still carries ``token`` (None: unreadable)."""
        if not self._local:
            holder, _ = self._read()
            if holder is not None and holder.get("token") == token:
                tf.io.gfile.remove(self.path)
            return
        # Rename first, so that a lease created meanwhile is never deleted.
        aside = f"{self.path}.{self.token}.breaking"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        holder, _ = self._read(aside)
        if holder is not None and holder.get("token") != token:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)  # not the lease we meant: put it back
        os.remove(aside)

    def _stale(self, holder: dict, age: float) -> str | None:
        """Why the lease is stale, or None while its holder may be alive."""
        if age > self.stale_after_s:
            return f"not refreshed for {age:.0f} s"
        if holder and holder.get("host") == socket.gethostname():
            pid = holder.get("pid")
            if pid == os.getpid() and holder.get("token") not in _HELD:
                return "left by this process"
            if isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid):
                return f"pid {pid} no longer runs on this host"
        return None

    # -- acquire, hold, release -------------------------------------------------

    def live_holder(self) -> dict | None:
        """The holder (host, pid, started, ...) while a live launch holds the
        lease, else None (free, or held by a stale one); reads only."""
        holder, age = self._read()
        if not holder or self._stale(holder, age) is not None:
            return None
        return holder

    def acquire(self) -> Lease:
        """Takes the lease, or raises ``LeaseHeldError`` naming its holder."""
        tf.io.gfile.makedirs(self.directory)
        for _ in range(3):
            if self._create():
                break
            holder, age = self._read()
            if holder is None:
                continue  # released meanwhile
            reason = self._stale(holder, age) or ("--force_unlock" if self.force else None)
            if reason is None:
                raise LeaseHeldError(
                    f"{self.label} is in use by {_describe(holder, age)}; wait for it to "
                    f"finish, or if that process is gone, relaunch with --force_unlock "
                    f"(a lease not refreshed for {self.stale_after_s:.0f} s is taken "
                    "over without it)")
            logging.warning("Taking over the lease on %s held by %s: %s.", self.directory,
                            _describe(holder, age), reason)
            if self._local:
                self._remove_if(holder.get("token"))
            elif self._write_and_verify():
                break
        else:
            holder, age = self._read()
            raise LeaseHeldError(f"{self.label} is in use by {_describe(holder or {}, age)}; "
                                 "another launch took it at the same time")
        _HELD.add(self.token)
        self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                        name=f"lease-heartbeat {self.directory}")
        self._thread.start()
        logging.info("Holding the lease %s (token %s).", self.path, self.token)
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                holder, _ = self._read()
                if holder is None or holder.get("token") != self.token:
                    self.lost = True
                    logging.error("Lost the lease on %s: %s; this process stops writing "
                                  "there.", self.directory,
                                  "it was removed" if holder is None
                                  else f"taken over by {_describe(holder, 0.0)}")
                    if self.on_lost is not None:
                        self.on_lost()
                    return
                if self._local:
                    os.utime(self.path)
                else:
                    with tf.io.gfile.GFile(self.path, "w") as f:
                        f.write(json.dumps(holder) + "\n")
            except (tf.errors.OpError, OSError) as e:  # transient: retry next beat
                logging.warning("Could not refresh the lease %s: %s", self.path, e)

    def release(self) -> None:
        """Stops the heartbeat and removes the lease if it is still ours."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=self.heartbeat_s + 5)
        self._thread = None
        _HELD.discard(self.token)
        if not self.lost:
            try:
                self._remove_if(self.token)
            except (tf.errors.OpError, OSError) as e:
                logging.warning("Could not remove the lease %s: %s", self.path, e)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
