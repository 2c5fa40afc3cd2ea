# W1: resident memory per idle connection against the number of connections, one line per peer.
load sprintf('%s/common.gp', system('dirname ' . ARG0))
set title 'W1 — memory per idle SSE connection'
set xlabel 'idle connections'
set ylabel 'peer RSS per connection (KiB)'
set logscale x
set xrange [700:25000]
set yrange [0:*]
set key bottom right
file = datadir . '/w1_rss.dat'
plot for [i=1:words(peers)] file using 1:(column(i+1)) with linespoints lw 2 pt 7 ps 1.2 \
     lc rgb peer_color(word(peers, i)) title word(peers, i)
