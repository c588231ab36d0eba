"""A worker process using the WeChat client, steered line by line over stdin (for the tests).

It prints ``ready``; for each ``call`` line it reads the tags and prints what it did as JSON
(the token in the shared store and how many tokens this process fetched); ``quit`` ends it.
Its settings come from the environment, as a real worker's do.
"""

from __future__ import annotations

import json
import sys

from distributor.channels.wechat.client import WechatClient
from distributor.config import Settings


def main() -> None:
    with WechatClient.from_settings(Settings.from_env()) as client:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "call":
                break
            client.tags()
            print(
                json.dumps({"token": client.tokens.current(), "fetches": client.tokens.fetches}),
                flush=True,
            )


if __name__ == "__main__":
    main()
