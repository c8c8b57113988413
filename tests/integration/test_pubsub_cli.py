"""The CLI's pubsub: ``aiolibp2p serve --topic T`` prints each received message as a JSON line (data in
base64); ``aiolibp2p pubsub publish MA --topic T --data ... --count N`` dials, joins, waits and publishes."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from test_cli import run, serve


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_serve_topic_and_publish(router: str) -> None:
    async with asyncio.timeout(40):
        async with serve("--topic", "news", "--router", router) as (proc, first):
            addr = first["addrs"][0]
            code, lines, err = await run(
                "pubsub", "publish", addr, "--topic", "news", "--data", "héllo", "--count", "3",
                "--router", router, "--json", "--timeout", "10",
            )  # fmt: skip
            assert code == 0, err
            assert [x["seq"] for x in lines if x["event"] == "published"] == [0, 1, 2]
            assert proc.stdout is not None
            got: list[dict[str, object]] = []
            while len(got) < 3:
                line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
                if line["event"] == "message":
                    got.append(line)
            assert all(m["topic"] == "news" for m in got)
            assert all(base64.b64decode(str(m["data"])) == "héllo".encode() for m in got)
            assert len({m["seqno"] for m in got}) == 3
