# shellcheck shell=bash
# W4U — W4 with URL patterns: the same subscribers, topics and events, but every subscriber
# subscribes with match_urlpattern=<its topic> instead of topic=<its topic>. A pattern of fixed
# text selects exactly the topic W4's exact selector does, so the deliveries are the same and the
# difference is the matchers' cost: the broker keys such a pattern by the canonical URL it fixes,
# so each event costs parsing its topic as a URL once and one lookup (W4P measures patterns with
# groups, which must be evaluated). Only sluice peers speak match_urlpattern.
params_W4U() { params_W4; }

workload_desc_W4U() {
  echo "$W4_SUBS subscribers with match_urlpattern over 1000 topics, $W4_EVENTS events at $W4_RATE/s"
}

w4u_one() {
  case "$1" in sluice*) ;; *) return 0 ;; esac
  bench_run W4U "$1" "s${W4_SUBS}t1000-urlpattern" "$2" --subscribers "$W4_SUBS" --topics 1000 \
    --events "$W4_EVENTS" --size 100 --rate "$W4_RATE" --topic-param match_urlpattern
}

workload_W4U() { alternate w4u_one "$ROUNDS"; }
