# W7: how each peer's streams ended when it was asked to shut down under load (stacked bars), and
# how the peers that sent a final retry: spread the clients' reconnections (cumulative share of
# clients by announced delay, at sluice-bench's bucket bounds).
load sprintf('%s/common.gp', system('dirname ' . ARG0))
set multiplot layout 1,2 title 'W7 — graceful shutdown under load'
set title 'how streams ended'
set ylabel 'subscribers'
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set yrange [0:*]
set key below
set xtics scale 0
file = datadir . '/w7_end.dat'
plot file using 2:xtic(1) skip 1 title 'clean (event boundary)' lc rgb '#2ca02c', \
     '' using 3 skip 1 title 'cut mid-frame' lc rgb '#ff7f0e', \
     '' using 4 skip 1 title 'reset' lc rgb '#d62728', \
     '' using 5 skip 1 title 'timed out' lc rgb '#7f7f7f'
set title 'reconnections: share told to wait at most X (retry:)'
unset style histogram
set xlabel 'announced retry (ms)'
set ylabel 'share of clients'
set yrange [0:1.05]
set xrange [0:*]
set xtics auto
set key inside top left
n = words(retry_peers)
if (n > 0) {
  plot for [i=1:n] sprintf('%s/w7_retry_%s.dat', datadir, word(retry_peers, i)) \
         using 1:2 skip 1 with lines lw 2 \
         lc rgb peer_color(word(retry_peers, i)) title word(retry_peers, i)
} else {
  set xrange [0:1]
  set label 'no peer sent a retry: field' at graph 0.5, graph 0.5 center
  plot NaN notitle
}
unset multiplot
