"""The embedded mode's broker: kombu's filesystem transport, made safe for several processes.

kombu's own transport has two races when more than one process uses the folder:

- a message file is created empty and then written, so a consumer polling at that
  moment can claim an empty file and lose the message; here a message is written under
  a temporary name and renamed into place, which is atomic;
- a consumer claims a file by moving it to the system temporary folder, which is a copy
  (not atomic) when that folder is on another filesystem; here it is renamed into a
  folder beside the queues.

Messages of a queue are taken most urgent first (the message priority, 9 the highest, as
on RabbitMQ), then oldest first; a worker on several queues takes them in turn, so
priority orders a queue, not the queues between them (scheduling/priorities.py).

The folder also keeps state no process cleans up: bindings of queues whose consumer is
gone (a stopped Flower's event queue, ping reply queues) and the event and reply
messages that keep arriving for them. ``reset_transient_state`` clears that before the
platform starts; ``prune_transient_messages`` keeps it bounded while it runs. Task
queues are never touched: a pending task survives a restart.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

TRANSIENT_MESSAGE_MAX_AGE = 300  # seconds an event or ping reply is worth keeping


class Channel(filesystem.Channel):
    @property
    def _claim_folder(self) -> str:
        return str(self.processed_folder)

    def _put(self, queue, payload, **kwargs) -> None:
        # Consumers take a queue's files in name order: urgency first (0 for the highest message
        # priority, as on RabbitMQ), then age, in nanoseconds so that two messages sent within a
        # millisecond keep their order. The letter sorts names from before priorities (digits
        # first) ahead, so what waited across an upgrade goes first.
        urgency = self._get_message_priority(payload, reverse=True)
        name = f"p{urgency}_{time.monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        temporary = os.path.join(self._claim_folder, f"{name}.part")
        try:
            with open(temporary, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to the broker folder") from exc

    def _get(self, queue):
        suffix = f"{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != suffix:
                continue
            claimed = os.path.join(self._claim_folder, filename)
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except OSError:
                continue  # another consumer claimed it first
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
                os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read message {claimed!r}") from exc
            return loads(bytes_to_str(payload))
        raise filesystem.Empty()


class Transport(filesystem.Transport):
    Channel = Channel


def _queue_of(message_file: str) -> str:
    return message_file.partition(".")[2].removesuffix(".msg")


def reset_transient_state(options: dict, task_queues: tuple[str, ...]) -> int:
    """Before any process starts: drop every binding and message that is not a task queue's."""
    removed = 0
    for exchange_file in Path(options["control_folder"]).glob("*.exchange"):
        if exchange_file.name.removesuffix(".exchange") not in task_queues:
            exchange_file.unlink(missing_ok=True)
    for message in Path(options["data_folder_in"]).glob("*.msg"):
        if _queue_of(message.name) not in task_queues:
            message.unlink(missing_ok=True)
            removed += 1
    for leftover in Path(options["processed_folder"]).iterdir():
        leftover.unlink(missing_ok=True)  # half-written or claimed by a process now gone
    return removed


def prune_transient_messages(options: dict, task_queues: tuple[str, ...], max_age: float | None = None) -> int:
    """Remove event and reply messages older than ``max_age``: their consumer is gone."""
    cutoff = time.time() - (TRANSIENT_MESSAGE_MAX_AGE if max_age is None else max_age)
    removed = 0
    for message in Path(options["data_folder_in"]).glob("*.msg"):
        if _queue_of(message.name) in task_queues:
            continue
        try:
            if message.stat().st_mtime < cutoff:
                message.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # consumed meanwhile
    return removed
