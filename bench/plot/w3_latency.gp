# W3: latency percentiles against publish rate, one colour per peer: p99 solid, p50 dashed.
load sprintf('%s/common.gp', system('dirname ' . ARG0))
set title 'W3 — delivery latency vs publish rate (1000 subscribers, 100-byte events)'
set xlabel 'events published per second (each delivered to 1000 subscribers)'
set ylabel 'latency (ms)'
set logscale xy
set key outside right top
set format y '%g'
set arrow from graph 0, first 100 to graph 1, first 100 nohead dt 3 lc rgb '#aa0000'
set label 'saturation: p99 = 100 ms' at graph 0.98, first 80 right tc rgb '#aa0000'
f(p) = sprintf('%s/w3_%s.dat', datadir, p)
plot for [i=1:words(peers)] f(word(peers, i)) using 1:4 skip 1 with linespoints lw 2 pt 7 \
       lc rgb peer_color(word(peers, i)) title word(peers, i) . ' p99', \
     for [i=1:words(peers)] f(word(peers, i)) using 1:2 skip 1 with linespoints lw 1.5 dt 2 pt 6 \
       lc rgb peer_color(word(peers, i)) title word(peers, i) . ' p50'
