# W7: the drain's timeline — of the streams open when the peer got its SIGTERM, the share still
# open t ms later, one line per peer (sluice-bench's end_ms_hist, summed over rounds; each
# histogram bucket is a ramp across its width). Streams that never ended keep a line above 0.
# collect.py passes w7_subs, the subscribers per run.
load sprintf('%s/common.gp', system('dirname ' . ARG0))
set title sprintf('W7 — drain timeline: streams still open after the SIGTERM (%d subscribers under load)', w7_subs)
set xlabel 'ms since SIGTERM'
set ylabel 'streams still open (% of those open at the signal)'
set yrange [0:105]
set xrange [0:*]
set grid xtics lc rgb '#dddddd'
set key top right box opaque
f(p) = sprintf('%s/w7_timeline_%s.dat', datadir, p)
plot for [i=1:words(peers)] f(word(peers, i)) using 1:($2 * 100) skip 1 with lines lw 2 \
       lc rgb peer_color(word(peers, i)) title word(peers, i)
