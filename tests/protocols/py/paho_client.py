"""paho-mqtt 2 (transport="websockets", path /mqtt) against ``ws://HOST:PORT/mqtt``.

The same flow as ../js/mqtt_client.cjs: CONNECT (keepalive 1 s, clean session, paho's own
client id), SUBSCRIBE wstape/echo at QoS 1, PUBLISH "hello" at QoS 1, receive it, stay
``--hold`` s (PINGREQ / PINGRESP every second), UNSUBSCRIBE, DISCONNECT. ``--v5``: MQTT 5
instead of 3.1.1. different: topic wstape/other, payload "other". quit-early:
disconnects after the SUBACK.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from common import Flow, client_args, wait_for


async def flow(f: Flow, url: str, variant: str, hold: float, v5: bool) -> None:
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    events: dict[str, asyncio.Event] = {
        k: asyncio.Event() for k in ("connack", "suback", "puback", "message", "unsuback", "gone")
    }
    counts = {"pingreq": 0, "pingresp": 0}
    leaving = False

    def later(name: str, what: Any = None) -> None:
        def set_it() -> None:
            if what is not None:
                f.event(what)
            events[name].set()

        loop.call_soon_threadsafe(set_it)

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        transport="websockets",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    client.ws_set_options(path=parts.path or "/mqtt")

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        later("connack", {"connack": str(reason)})

    def on_subscribe(c: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        later("suback", {"suback": [int(getattr(r, "value", r)) for r in reasons]})

    def on_publish(c: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        later("puback", "puback")

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        payload = {"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos}
        later("message", {"message": payload})

    def on_unsubscribe(c: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        later("unsuback", "unsuback")

    def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        later("gone", {"disconnect": str(reason)})

    def on_log(c: Any, userdata: Any, level: int, buf: str) -> None:
        if buf.startswith("Sending PINGREQ"):
            counts["pingreq"] += 1
        elif buf.startswith("Received PINGRESP"):
            counts["pingresp"] += 1

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    client.on_unsubscribe = on_unsubscribe
    client.on_disconnect = on_disconnect
    client.on_log = on_log
    f.at("connect")
    client.connect(parts.hostname or "127.0.0.1", parts.port or 80, keepalive=1)
    client.loop_start()
    try:
        await wait_for(events["connack"], f, "connack")
        f.extra["client_id"] = client._client_id.decode()
        topic = "wstape/other" if variant == "different" else "wstape/echo"
        client.subscribe(topic, qos=1)
        await wait_for(events["suback"], f, "suback")
        if variant == "quit-early":
            leaving = True
            client.disconnect()
            await wait_for(events["gone"], f, "disconnect")
            f.event("quit early")
            return
        client.publish(topic, "other" if variant == "different" else "hello", qos=1)
        await wait_for(events["puback"], f, "puback")
        await wait_for(events["message"], f, "message")
        f.at("hold")
        done = asyncio.create_task(events["gone"].wait())
        await asyncio.wait([done], timeout=hold)
        if events["gone"].is_set():
            raise RuntimeError(f"disconnected while holding: {f.events[-1]}")
        done.cancel()
        f.extra["pings"] = dict(counts)
        if hold >= 2.5 and counts["pingresp"] < 2:
            raise RuntimeError(f"only {counts['pingresp']} PINGRESPs in {hold:g} s")
        client.unsubscribe(topic)
        await wait_for(events["unsuback"], f, "unsuback")
        leaving = True
        client.disconnect()
        await wait_for(events["gone"], f, "disconnect")
    finally:
        if not leaving:
            client.disconnect()
        client.loop_stop()


def main() -> int:
    v5 = "--v5" in sys.argv
    if v5:
        sys.argv.remove("--v5")
    args = client_args(__doc__ or "", hold=3.5)
    f = Flow("paho-mqtt" + (" v5" if v5 else ""), args.variant)
    return f.run(lambda f: flow(f, args.url, args.variant, args.hold, v5), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
