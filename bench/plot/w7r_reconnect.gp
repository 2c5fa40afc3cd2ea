# W7R: when sluice's clients actually came back after a drain — reconnections to the restarted hub
# per 250 ms after each client's stream ended (bars, mean per round), with the retry: delays the
# final frames announced binned the same way (step line); and both as cumulative shares.
# collect.py passes w7r_subs, the subscribers per run.
load sprintf('%s/common.gp', system('dirname ' . ARG0))
set multiplot layout 1,2 title sprintf("W7R — %d subscribers: the hub drains, every client reconnects to a restarted hub after the retry: it was told", w7r_subs)
bins(p) = sprintf('%s/w7r_bins_%s.dat', datadir, p)
cdf(p) = sprintf('%s/w7r_cdf_%s.dat', datadir, p)

set title 'reconnections per 250 ms'
set xlabel 'ms after the stream ended'
set ylabel 'clients per 250 ms (mean per round)'
set xrange [0:*]
set yrange [0:*]
# Headroom above the bars for the key.
set offsets 0, 0, graph 0.35, 0
set key top center box opaque samplen 2
set style fill transparent solid 0.5 border -1
plot for [i=1:words(peers)] bins(word(peers, i)) using (($1 + $2) / 2):3:($2 - $1) skip 1 \
       with boxes lc rgb peer_color(word(peers, i)) title word(peers, i) . ': reconnected (200 from the new hub)', \
     for [i=1:words(peers)] bins(word(peers, i)) using 1:4 skip 1 with steps lw 2 lc rgb '#d62728' \
       title 'retry: announced in the final frame'

set title 'cumulative: share of clients by time'
set ylabel '% of clients'
set yrange [0:105]
set offsets 0, 0, 0, 0
set key bottom right box opaque
plot for [i=1:words(peers)] cdf(word(peers, i)) using 1:($2 * 100) skip 1 with lines lw 2 \
       lc rgb peer_color(word(peers, i)) title word(peers, i) . ': reconnected by t', \
     for [i=1:words(peers)] cdf(word(peers, i)) using 1:($3 * 100) skip 1 with lines lw 2 dt 2 \
       lc rgb '#d62728' title 'told to wait at most t (retry:)'
unset multiplot
