# shellcheck shell=bash
# W4P — W4 with URL patterns that are not fixed text: every topic is
# https://bench.sluice.test/:g/<k> and every subscriber subscribes with match_urlpattern=<its
# topic>, which as a pattern reads "/" then a named group (:g, one path segment) then "/<k>": it
# selects its own topic among the bench's (and /x/<k> or any other first segment), yet no index
# keyed by a canonical URL can find it, so each event is tried against every distinct pattern's
# automaton (1000 of them, ten subscribers each). W4U's patterns are fixed text; this one shows
# the cost of patterns with groups. Only sluice peers speak match_urlpattern.
params_W4P() { params_W4; }

workload_desc_W4P() {
  echo "$W4_SUBS subscribers with 1000 distinct match_urlpattern patterns with a named group, $W4_EVENTS events at $W4_RATE/s"
}

w4p_one() {
  case "$1" in sluice*) ;; *) return 0 ;; esac
  bench_run W4P "$1" "s${W4_SUBS}t1000-urlpattern-group" "$2" --subscribers "$W4_SUBS" \
    --topics 1000 --events "$W4_EVENTS" --size 100 --rate "$W4_RATE" \
    --topic-param match_urlpattern --topic-prefix 'https://bench.sluice.test/:g/'
}

workload_W4P() { alternate w4p_one "$ROUNDS"; }
