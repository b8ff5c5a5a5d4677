"""A webhook receiver for ReflexBlue, ready to run and to copy from.

    pip install aiohttp standardwebhooks
    REFLEXBLUE_WEBHOOK_SECRET=whsec_… python examples/receiver.py --port 9000

It verifies every request with the integration's secret key, drops repeats by `webhook-id`,
answers 2xx at once and leaves the work to a background task, as a receiver should.
"""

import argparse
import asyncio
import json
import logging
import os

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

logger = logging.getLogger("receiver")
SEEN_IDS_KEPT = 10_000


class Receiver:
    def __init__(self, secret: str) -> None:
        self._verifier = Webhook(secret)
        self._seen: dict[str, None] = {}
        self._work: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = self._verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            # Not from ReflexBlue, altered on the way, or older than five minutes.
            return web.Response(status=400, text="signature does not verify")

        event_id = request.headers["webhook-id"]
        if event_id in self._seen:
            return web.Response(status=200, text="already received")
        self._remember(event_id)
        await self._work.put(event)
        return web.Response(status=204)

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        if len(self._seen) > SEEN_IDS_KEPT:
            self._seen.pop(next(iter(self._seen)))

    async def process_forever(self) -> None:
        while True:
            event = await self._work.get()
            logger.info("received %s", json.dumps(event))


async def main(port: int, secret: str) -> None:
    receiver = Receiver(secret)
    app = web.Application()
    app.router.add_post("/webhooks/reflexblue", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    logger.info("listening on http://127.0.0.1:%d/webhooks/reflexblue", port)
    await receiver.process_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(main(arguments.port, os.environ["REFLEXBLUE_WEBHOOK_SECRET"]))
