"""A TCP relay that makes a gateway on this machine answer like a distant one."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class HoldingRelay:
    """A TCP relay to ``target`` that holds every request ``hold`` seconds before
    passing it on, and counts requests in flight: from a request's first byte to
    its answer's first byte (HTTP/1.1 without pipelining: one at a time per
    connection)."""

    def __init__(self, target: str, hold: float) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self._target = (host, int(port))
        self._hold = hold
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._relays: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.url = ""

    def __enter__(self) -> HoldingRelay:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self._server = server
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in self._relays:
                task.cancel()
            await asyncio.gather(*self._relays, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def reset(self) -> None:
        self.connections = self.in_flight = self.most_in_flight = 0

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        server_in, server_out = await asyncio.open_connection(*self._target)
        waiting = False

        async def requests() -> None:
            nonlocal waiting
            while data := await client_in.read(65536):
                if not waiting:
                    waiting = True
                    self.in_flight += 1
                    self.most_in_flight = max(self.most_in_flight, self.in_flight)
                    await asyncio.sleep(self._hold)
                server_out.write(data)
                await server_out.drain()
            server_out.write_eof()

        async def answers() -> None:
            nonlocal waiting
            while data := await server_in.read(65536):
                if waiting:
                    waiting = False
                    self.in_flight -= 1
                client_out.write(data)
                await client_out.drain()
            client_out.close()  # the gateway hung up: so does the relay, as a network would

        try:
            await asyncio.gather(requests(), answers(), return_exceptions=True)
        finally:
            for writer in (server_out, client_out):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()
            self._relays.discard(task)
