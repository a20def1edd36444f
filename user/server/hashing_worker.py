"""A password hashing process: `python -m user.server.hashing_worker`, started by the user
service (user/server/passwords.py), never by hand.

It reads requests on stdin and answers each on stdout, one at a time, in this framing (network
byte order): a request is the operation (1 byte: HASH or CHECK), the lengths of its two byte
strings (4 bytes each), then the strings (the password, then the salt or the stored hash); an
answer is a status (1 byte: OK or REFUSED), the length of its payload (4 bytes) and the payload
(the hash, a single true/false byte, or bcrypt's refusal as text). It exits at the end of its
input. It imports bcrypt and the standard library only, so it stays small."""

from __future__ import annotations

import ctypes
import os
import signal
import struct
import sys
from typing import BinaryIO

import bcrypt

HASH = 1
CHECK = 2
OK = 0
REFUSED = 1
REQUEST = struct.Struct("!BII")
ANSWER = struct.Struct("!BI")
NICENESS = 10
# bcrypt uses 72 bytes of a password and a salt or hash is 29 or 60: anything longer is not a
# request from the service.
MAX_FIELD_BYTES = 1024
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def answer(operation: int, password: bytes, other: bytes) -> tuple[int, bytes]:
    """The (status, payload) for one request."""
    try:
        if operation == HASH:
            return OK, bcrypt.hashpw(password, other)
        if operation == CHECK:
            return OK, b"\x01" if bcrypt.checkpw(password, other) else b"\x00"
    except ValueError as exc:  # bcrypt refuses the input (e.g. a stored value that is no hash)
        return REFUSED, str(exc).encode()
    return REFUSED, f"unknown operation {operation}".encode()


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Answers requests until the input ends (or is not a request from the service)."""
    while True:
        header = _read_exactly(requests, REQUEST.size)
        if header is None:
            return
        operation, first, second = REQUEST.unpack(header)
        if first > MAX_FIELD_BYTES or second > MAX_FIELD_BYTES:
            return
        fields = _read_exactly(requests, first + second)
        if fields is None:
            return
        status, payload = answer(operation, fields[:first], fields[first:])
        answers.write(ANSWER.pack(status, len(payload)) + payload)
        answers.flush()


def _settle_in(service_pid: int) -> None:
    # Ctrl-C reaches the whole process group; the service decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        # Die with the service even when it is killed outright (SIGKILL, OOM killer).
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != service_pid:  # it died before that took effect
            sys.exit(0)
    try:
        # A burst of logins yields the CPU to the processes serving every other call.
        os.nice(NICENESS)
    except OSError:
        pass  # not allowed: hashing simply keeps normal priority


if __name__ == "__main__":
    _settle_in(int(sys.argv[1]))
    serve(sys.stdin.buffer, sys.stdout.buffer)
