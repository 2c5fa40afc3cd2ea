"""test_lost_post — an update the hub accepted but could not hand to a worker (out of memory) is
not lost: the worker's streams end, each told where to resume (an event of an id alone, which
sets an EventSource's Last-Event-ID without firing), and resuming from there brings the update.

The hub runs under tests/fault/fail_realloc.c (LD_PRELOAD), which fails chosen realloc() calls.
With --workers 1, the first post into each of the worker's two inbox arrays allocates it, as
realloc(NULL, 1024) (64 messages), so "1024:SKIP:1" fails the post of update SKIP + 1. The
requests are kept short, so that none of their buffers is first allocated at 1024 bytes
(SLUICE_FAIL_REALLOC_TRACE=1 shows every call).
Skipped under the sanitizers, whose runtime must come first among the loaded libraries.

1. The first update is lost on the worker: a subscriber that got nothing yet is told
   `id: earliest`, its stream ends, and resuming from there brings the update.
2. The second update is lost: a subscriber that got the first, and one that subscribed after it,
   are both told the first update's id, and resuming from there brings the second.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_lost_post")
LIB = os.environ.get("SLUICE_FAULT_LIB") or os.path.join(ht.BUILD, "tests", "libfail_realloc.so")
TOPIC = "urn:lost:t"
# Short, so that no header buffer of the publish grows to 1024 bytes itself.
TOKEN = ht.jwt_hs256({"mercure": {"publish": ["*"]}})


SPREAD = 5  # --reconnect-spread


def faulty_hub(skip):
    return ht.start_hub(anonymous=True, workers=1, heartbeat=0, reconnect_spread=SPREAD,
                        env={"LD_PRELOAD": LIB, "SLUICE_FAIL_REALLOC": f"1024:{skip}:1"})


def resume_point(stream):
    """The Last-Event-ID an EventSource would send: the last id seen, events of an id alone too."""
    ids = [e.id for e in stream.events if e.id is not None]
    return ids[-1] if ids else None


def ended_and_resumes(stream, what, want_id, missed):
    t.check(stream.wait_eof(10 * ht.SLOW), f"{what}: its stream ends", stream.ids())
    t.eq(resume_point(stream), want_id, f"{what}: told to resume after {want_id}")
    retries = [e.retry for e in stream.events if e.retry is not None]
    t.check(len(retries) == 1 and 1 <= int(retries[0]) <= SPREAD * 1000,
            f"{what}: and when, a retry: jittered over --reconnect-spread", retries)
    back = ht.SSEStream(stream.conn.port, ht.sub_query([TOPIC]),
                        headers={"Last-Event-ID": resume_point(stream) or ""})
    back.wait_count(len(missed), 10)
    t.eq([e.id for e in back.events if e.data is not None], missed,
         f"{what}: resuming from there brings what it missed")
    back.close()


def test_first_lost():
    hub = faulty_hub(0)
    s = ht.SSEStream(hub.port, ht.sub_query([TOPIC]))
    s.wait_open()
    uid = ht.publish(hub.port, TOKEN, TOPIC, data="one").text
    t.check(uid.startswith("urn:uuid:"), "the publish is accepted (200, its id)", uid)
    ended_and_resumes(s, "a subscriber that got nothing yet", "earliest", [uid])
    t.check("did not all reach this worker" in hub.log_text(), "the hub logs the loss",
            hub.log_tail(5))
    t.eq(hub.metrics().get("sluice_lost_update_ends_total"), 1,
         "/metrics counts the stream ended by the loss")
    t.stop_hub(hub)


def test_middle_lost():
    hub = faulty_hub(1)
    early = ht.SSEStream(hub.port, ht.sub_query([TOPIC]))
    early.wait_open()
    first = ht.publish(hub.port, TOKEN, TOPIC, data="one").text
    t.check(early.wait_id(first), "the first update is delivered")
    late = ht.SSEStream(hub.port, ht.sub_query([TOPIC]))
    late.wait_open()
    second = ht.publish(hub.port, TOKEN, TOPIC, data="two").text
    t.check(second.startswith("urn:uuid:"), "the second publish is accepted", second)
    ended_and_resumes(early, "a subscriber that got the first update", first, [second])
    ended_and_resumes(late, "a subscriber that came after it", first, [second])
    third = ht.publish(hub.port, TOKEN, TOPIC, data="three").text
    s = ht.SSEStream(hub.port, ht.sub_query([TOPIC]), headers={"Last-Event-ID": first})
    s.wait_count(2, 10)
    t.eq(s.ids(), [second, third], "the hub goes on: history holds all three, in order")
    s.close()
    t.stop_hub(hub)


def main():
    if ht.SANITIZER == "address":
        print("info skipped under AddressSanitizer (LD_PRELOAD would come before its runtime)")
        t.finish()
        return
    if not os.path.exists(LIB):
        t.check(False, f"the fault-injection library {LIB} is built")
        t.finish()
        return
    t.section("1. the first update lost on the worker", test_first_lost)
    t.section("2. a later update lost on the worker", test_middle_lost)
    t.finish()


if __name__ == "__main__":
    main()
