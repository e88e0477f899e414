"""Reading AMQP frames off a plain TCP socket in large reads.

py-amqp reads a frame with three receives of exact sizes (header, payload, end octet), and a
reader that waits with a timeout also sets the socket's timeout before and after every
frame: about nine ``recv``, ten ``poll`` and six ``ioctl`` system calls per delivered
message. Each of them releases the GIL, so in a worker every one is also a hand-over to
another thread and back. :class:`FrameReader` waits for the socket once, receives whatever
has arrived (up to :data:`READ_SIZE` bytes, often dozens of messages) and cuts the complete
frames out of it. The frames then go through py-amqp's own frame handler, so decoding and
dispatching stay py-amqp's.

TLS connections keep py-amqp's reader: an SSL socket has buffered plaintext the socket
itself cannot be polled for.
"""

from __future__ import annotations

import selectors
import socket
import struct

from amqp.exceptions import UnexpectedFrame

__all__ = ["READ_SIZE", "Frame", "FrameReader"]

#: The most bytes taken from the socket in one receive.
READ_SIZE = 256 * 1024
#: Every frame ends with this octet.
FRAME_END = 0xCE
#: Frame type, channel, payload size.
_HEADER = struct.Struct(">BHI")

#: ``(frame type, channel, payload)``, as py-amqp's frame handler takes it.
Frame = tuple[int, int, bytes]


class FrameReader:
    """The only reader of ``sock`` (a blocking TCP socket; writers may share it).

    Args:
        sock: the connection's socket, handshake done.
        pending: bytes py-amqp had already read past the last frame it consumed.
    """

    def __init__(self, sock: socket.socket, pending: bytes = b"") -> None:
        self._sock = sock
        self._buffer = bytes(pending)
        # Received into one reused buffer: a fresh one per receive would be a fresh
        # allocation (an mmap at this size) per read.
        self._scratch = memoryview(bytearray(READ_SIZE))
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)

    def read(self, timeout: float) -> list[Frame]:
        """The complete frames that arrived within ``timeout`` seconds (none: empty list).

        Raises:
            ConnectionError: the server closed the connection.
            UnexpectedFrame: a frame did not end with the end octet (a broken stream).
        """
        frames = self._cut()
        if frames:
            return frames
        if not self._selector.select(timeout):
            return []
        received = self._sock.recv_into(self._scratch)
        if not received:
            raise ConnectionError("Server unexpectedly closed connection")
        chunk = bytes(self._scratch[:received])
        self._buffer = self._buffer + chunk if self._buffer else chunk
        return self._cut()

    def _cut(self) -> list[Frame]:
        """Take every complete frame off the front of the buffer."""
        buffer = self._buffer
        size = len(buffer)
        position = 0
        frames: list[Frame] = []
        unpack = _HEADER.unpack_from
        while size - position >= 8:
            frame_type, channel, length = unpack(buffer, position)
            end = position + 7 + length
            if end >= size:
                break
            if buffer[end] != FRAME_END:
                raise UnexpectedFrame(f"Received frame_end {buffer[end]:#04x} instead of 0xce")
            frames.append((frame_type, channel, buffer[position + 7 : end]))
            position = end + 1
        if position:
            self._buffer = buffer[position:]
        return frames

    def close(self) -> None:
        self._selector.close()
