# W7: how each peer's streams ended when it was asked to shut down under load (stacked bars), and
# how the peers that sent a final retry: spread the clients' reconnections (histogram).
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
     '' using 3 skip 1 title 'reset / cut' lc rgb '#d62728', \
     '' using 4 skip 1 title 'timed out' lc rgb '#7f7f7f'
set title "reconnection delay told to clients (retry:)"
set style data linespoints
unset style histogram
set xlabel 'retry (ms)'
set ylabel 'clients'
set xtics auto scale 1
set autoscale x
set yrange [0:*]
set key top right
if (strlen(retry_peers) > 0) {
  plot for [i=1:words(retry_peers)] sprintf('%s/w7_retry_%s.dat', datadir, word(retry_peers, i)) \
         using 1:2 skip 1 with steps lw 2 lc rgb peer_color(word(retry_peers, i)) title word(retry_peers, i)
} else {
  set yrange [0:1]
  set label 'no peer sent a retry: field' at graph 0.5, graph 0.5 center
  plot NaN notitle
}
unset multiplot
